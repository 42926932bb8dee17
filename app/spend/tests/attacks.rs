//! The authority issue's attacks against the running system, not a model
//! of it: a nats-server of this test's own with k8s/nats/auth.conf,
//! `spend nats init` as the NATS admin, and every service as its own
//! `spend serve` process logged in as its own NATS user (sandbox platform,
//! executor, policy, gateway, approval). Each attack is refused, by the
//! server where it should be, or ignored and audited by the running
//! readers; and after each, the genuine path still works — a real draft is
//! decided by the policy process — so that a stopped service cannot pass
//! for a refusal. Last, the operator's kill switches take effect on the
//! running services within a second: agents paused, cards frozen.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::agent::Agent;
use common::{Spawned, free_port, run, spend, text};
use spend_core::events::{ApprovalGranted, EventData};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::{JetStreamConfig, JetStreamLog};
use spend_proto::v1 as pb;

use spend_testkit::authnats::AuthNats;

const USERS: [&str; 7] = ["gateway", "policy", "approval", "executor", "ledger", "operator", "admin"];

const POLICY: &str = "\
spend:
  daily_limit: 100 USD
  per_transaction: 50 USD
  allowlist: [openai.com]
  require_https: true
approval:
  require_confirmation_over: 10 USD
";

struct System {
    nats: AuthNats,
    passwords: Vec<(String, String)>,
    dir: tempfile::TempDir,
    gateway_port: u16,
    approval_port: u16,
    executor_port: u16,
    policy_port: u16,
    /// Each caller's own credential between services (made at test time).
    credentials: Vec<(&'static str, String)>,
    _services: Vec<Spawned>,
    /// The executor's vault database, alive as long as the system.
    _vault_db: Option<spend_testkit::TestDatabase>,
}

impl System {
    /// The environment of `spend` logged in to NATS as `user`.
    fn env(&self, user: &str) -> Vec<(String, String)> {
        let mut env = self.nats.spend_env(user);
        env.push(("SPEND__GATEWAY__POLICY_FILE".into(), self.dir.path().join("SPEND.md").display().to_string()));
        env.push(("RUST_LOG".into(), "warn".into()));
        env
    }

    /// `user`'s own credential between services.
    fn credential(&self, caller: &str) -> &str {
        &self.credentials.iter().find(|(c, _)| *c == caller).expect("a credential per caller").1
    }

    fn password(&self, user: &str) -> String {
        let var = format!("SPEND_NATS_{}_PASSWORD", user.to_uppercase());
        self.passwords
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.clone())
            .expect("a password per user")
    }

    /// A direct connection to the stream as `user` (what a compromised
    /// service holding that user's credentials has).
    async fn log_as(&self, user: &str) -> JetStreamLog {
        JetStreamLog::connect(self.nats.config(user, &self.password(user), false))
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"))
    }

    async fn agent(&self, key: &str) -> Agent {
        Agent::connect(&format!("127.0.0.1:{}", self.gateway_port), key).await
    }
}

/// Every event on the stream: (subject, event), read as `log`'s user.
async fn events(log: &JetStreamLog) -> Vec<(String, serde_json::Value)> {
    spend_testkit::events::on_log(log).await
}

/// Waits until an event matching `want` is on the stream.
async fn eventually(log: &JetStreamLog, what: &str, want: impl Fn(&str, &serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((_, e)) = events(log).await.into_iter().find(|(s, e)| want(s, e)) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "never on the stream: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start() -> System {
    let passwords: Vec<(String, String)> = USERS
        .iter()
        .map(|u| (format!("SPEND_NATS_{}_PASSWORD", u.to_uppercase()), format!("pw{}", spend_testkit::unique())))
        .collect();
    let pairs: Vec<(&str, &str)> = passwords.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nats = AuthNats::start(&pairs).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("SPEND.md"), POLICY).unwrap();
    let credentials: Vec<(&'static str, String)> = ["gateway", "approval", "operator"]
        .into_iter()
        .map(|c| (c, format!("{c}-{}", spend_testkit::unique())))
        .collect();
    let (sandbox_port, executor_port, policy_port) = (free_port(), free_port(), free_port());
    let mut system = System {
        nats,
        passwords,
        dir,
        gateway_port: free_port(),
        approval_port: free_port(),
        executor_port,
        policy_port,
        credentials,
        _services: vec![],
        _vault_db: None,
    };
    let out = run(&system.env("admin"), &["nats", "init"]);
    assert!(out.status.success(), "spend nats init: {}", text(&out.stderr));

    let (vault, vault_db) = common::vault_env().await;
    system._vault_db = Some(vault_db);
    let mut wiring: Vec<(String, String)> = vault;
    wiring.extend(
        [
            ("SPEND__SANDBOX__LISTEN", format!("127.0.0.1:{sandbox_port}")),
            ("SPEND__EXECUTOR__LISTEN", format!("127.0.0.1:{executor_port}")),
            ("SPEND__EXECUTOR__PLATFORM_URL", format!("http://127.0.0.1:{sandbox_port}")),
            ("SPEND__GATEWAY__EXECUTOR_URL", format!("http://127.0.0.1:{executor_port}")),
            ("SPEND__POLICY__LISTEN", format!("127.0.0.1:{policy_port}")),
            ("SPEND__GATEWAY__POLICY_URL", format!("http://127.0.0.1:{policy_port}")),
            ("SPEND__GATEWAY__LISTEN", format!("127.0.0.1:{}", system.gateway_port)),
            // The names agents reach MCP by, besides loopback.
            ("SPEND__GATEWAY__ALLOWED_HOSTS", "spend-gateway.test, agents.spend.test".to_string()),
            ("SPEND__APPROVAL__LISTEN", format!("127.0.0.1:{}", system.approval_port)),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    // The policy service and the executor know each caller by its
    // credential's digest; each caller holds its own credential.
    for (caller, token) in &system.credentials {
        wiring.push((
            format!("SPEND__INTERNAL__CALLERS__{}", caller.to_uppercase()),
            spend_proto::internal::digest(token),
        ));
    }
    for (service, user, port) in [
        ("sandbox", "executor", sandbox_port),
        ("executor", "executor", executor_port),
        ("policy", "policy", policy_port),
        ("gateway", "gateway", system.gateway_port),
        ("approval", "approval", system.approval_port),
    ] {
        let mut env = system.env(user);
        env.extend(wiring.iter().cloned());
        if matches!(service, "gateway" | "approval") {
            env.push(("SPEND__INTERNAL__TOKEN".into(), system.credential(service).to_string()));
        }
        system._services.push(common::serve(&env, service, port));
    }
    // A human connects acme's card account (read access), through the
    // executor as its own NATS user.
    let mut operator = system.env("executor");
    operator.extend(wiring.iter().cloned());
    operator.push(("SPEND__INTERNAL__TOKEN".into(), system.credential("operator").to_string()));
    common::connect_account(&operator, &format!("http://127.0.0.1:{executor_port}"), "acme", "card_1").await;
    system
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_the_running_services_are_refused_or_ignored_and_audited() {
    let system = start().await;
    let reader = system.log_as("operator").await;

    // A wrong NATS password: the service does not start, and the password
    // is in none of what it prints.
    let mut wrong = system.env("gateway");
    let bad = format!("wrong{}", spend_testkit::unique());
    for (k, v) in &mut wrong {
        if k == "SPEND__NATS__PASSWORD" {
            *v = bad.clone();
        }
    }
    wrong.push(("SPEND__GATEWAY__LISTEN".into(), format!("127.0.0.1:{}", free_port())));
    let out = tokio::task::block_in_place(|| {
        let mut c = spend(&wrong)
            .args(["serve", "gateway"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while c.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                panic!("a gateway with a wrong NATS password kept running");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        c.wait_with_output().unwrap()
    });
    assert!(!out.status.success());
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!printed.contains(&bad), "the password is never printed: {printed}");
    assert!(
        printed.to_lowercase().contains("authoriz") || printed.to_lowercase().contains("auth"),
        "{printed}"
    );

    // An agent key, recorded by the operator's CLI as the operator's user.
    let out = run(&system.env("operator"), &["api-key", "create", "--org", "acme", "--name", "bot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let secret = text(&out.stdout).trim().to_string();
    let key_id = secret[4..16].to_string();
    let mut agent = system.agent(&secret).await;

    // The genuine path: recorded by the gateway process, decided by the
    // policy process, one correlation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let genuine = loop {
        match agent.pay("card_1", 2_000, "API credits").await {
            Ok(d) => break d,
            Err(e) if tokio::time::Instant::now() < deadline => {
                // The gateway learns the new key from the log.
                assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the genuine draft: {e:?}"),
        }
    };
    assert_eq!(genuine.status, "pending_approval", "$20 needs a human: {genuine:?}");
    let subject = |aggregate: &str, id: &str| format!("spend.evt.acme.{aggregate}.{id}");
    let draft_event = eventually(&reader, "the draft", |s, _| s == subject("draft", &genuine.draft_id)).await;
    let decision = eventually(&reader, "the decision", |s, _| s == subject("decision", &genuine.draft_id)).await;
    assert_eq!(decision["source"], "spendsignoff/policy", "the policy process decided it");
    assert_eq!(decision["causationid"], draft_event["id"]);
    assert_eq!(decision["correlationid"], draft_event["correlationid"]);

    // 1. The gateway's credentials cannot publish an approval, a policy
    //    proposal or a budget commitment: the server refuses each.
    let gateway_conn = spend_eventlog::jetstream::connect_client(&JetStreamConfig {
        url: system.nats.url.clone(),
        user: Some("gateway".into()),
        password: Some(spend_core::Secret::new(system.password("gateway"))),
        inbox_prefix: Some("_INBOX_gateway".into()),
        ..JetStreamConfig::default()
    })
    .await
    .unwrap();
    let js = async_nats::jetstream::with_prefix(gateway_conn.clone(), "$JS.API");
    for (aggregate, id) in [
        ("approval", genuine.draft_id.as_str()),
        ("policy", "p_forged"),
        ("budget", "envelope"),
        ("decision", "d_forged"),
    ] {
        let forged = approval_envelope(&genuine.draft_id, &format!("{aggregate}/{id}"));
        let sent = js.publish(subject(aggregate, id), forged.to_bytes().into()).await;
        let acked = match sent {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        assert!(acked.is_none(), "the gateway's user stored an event on {aggregate}.{id}");
    }
    // ...nor create a stream (a republishing one was the critical attack).
    let created = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "FORGE".into(),
            subjects: vec!["_INBOX_gateway.forge.*".into()],
            republish: Some(async_nats::jetstream::stream::Republish {
                source: ">".into(),
                destination: subject("approval", &genuine.draft_id),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "the gateway's user created a stream");
    let nats_log = std::fs::read_to_string(&system.nats.log_file).unwrap_or_default();
    for refused in [
        format!("Publish Violation - User \"gateway\", Subject \"{}\"", subject("approval", &genuine.draft_id)),
        format!("Publish Violation - User \"gateway\", Subject \"{}\"", subject("policy", "p_forged")),
        "Publish Violation - User \"gateway\", Subject \"$JS.API.STREAM.CREATE.FORGE\"".to_string(),
    ] {
        assert!(nats_log.contains(&refused), "the server refused it: {refused}");
    }

    // 2. An approval written where the gateway may write (the draft's own
    //    subject) is ignored by the running readers and audited; the draft
    //    stays waiting for a human.
    let forged = approval_envelope(&genuine.draft_id, &format!("draft/{}", genuine.draft_id));
    let ack = js.publish(subject("draft", &genuine.draft_id), forged.to_bytes().into()).await.unwrap();
    ack.await.unwrap();
    let audited = eventually(&reader, "the forged approval's alert", |s, e| {
        s.starts_with("spend.evt.acme.security_gateway.") && e["data"]["reason"] == "event.misplaced"
    })
    .await;
    assert!(audited["data"]["detail"].as_str().unwrap().contains(&genuine.draft_id), "{audited}");
    eventually(&reader, "the policy service's own alert", |s, e| {
        s.starts_with("spend.evt.acme.security_policy.") && e["data"]["reason"] == "event.misplaced"
    })
    .await;
    assert_eq!(agent.status(&genuine.draft_id).await, "pending_approval", "a forgery approves nothing");

    // 3. Payments over an invented account: refused before anything is
    //    recorded.
    let before = events(&reader).await.len();
    let e = agent.pay("card_invented_999", 300, "split the limit").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let drafts_after: Vec<_> = events(&reader).await.into_iter().skip(before).filter(|(s, _)| s.contains(".draft.")).collect();
    assert!(drafts_after.is_empty(), "nothing is drafted against an invented account: {drafts_after:?}");

    // 4. A 900 KB rationale: a clear error, nothing recorded.
    let e = agent.pay("card_1", 300, &"x".repeat(900 * 1024)).await.unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{e:?}"
    );

    // 5. A flood of unauthenticated calls: every one refused, a bounded
    //    number of alerts.
    let mut anonymous = system.agent("ssk_000000000000_not-a-key").await;
    for _ in 0..200 {
        let req = anonymous.req(pb::ListAccountsRequest {});
        assert_eq!(anonymous.client.list_accounts(req).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
    let flood_alerts = events(&reader)
        .await
        .into_iter()
        .filter(|(s, e)| s.contains(".security_gateway.") && e["data"]["address"] == "127.0.0.1" && e["data"]["reason"] != "event.misplaced")
        .count();
    assert!((1..=10).contains(&flood_alerts), "200 refusals, {flood_alerts} alerts");

    // 6. An agent key with a lower-case scheme on a human approval route of
    //    the running approval service: refused and audited on the key's own
    //    organisation.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/approvals/{}/approve", system.approval_port, genuine.draft_id))
        .header("authorization", format!("bearer {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let alert = eventually(&reader, "the approval route's alert", |s, _| s == subject("security_approval", &key_id)).await;
    assert_eq!(alert["data"]["reason"], "agent_on_human_route");
    assert!(!alert.to_string().contains(&secret[17..]), "never the key");

    // After all of it, the genuine path still works.
    let again = agent.pay("card_1", 500, "more API credits").await.unwrap();
    assert_eq!(again.status, "pending_approval", "{again:?}");
    let decided = eventually(&reader, "the second decision", |s, _| s == subject("decision", &again.draft_id)).await;
    assert_eq!(decided["source"], "spendsignoff/policy");

    // 7. Between services each caller holds its own credential, and each
    //    RPC serves only its callers: the gateway's (the most exposed
    //    service) reads, but cannot connect, complete, abandon or
    //    disconnect accounts at the executor (refused and audited on the
    //    executor's own subject); the policy service decides for it alone.
    internal_callers_are_told_apart(&system, &reader).await;

    // MCP answers agents at the names the gateway is configured with, and
    // refuses any other (a DNS-rebound page).
    let port = system.gateway_port;
    let mut http = reqwest::Client::builder();
    for name in ["spend-gateway.test", "agents.spend.test", "rebound.evil.test"] {
        http = http.resolve(name, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let http = http.build().unwrap();
    for (host, want) in [("spend-gateway.test", 200), ("agents.spend.test", 200), ("rebound.evil.test", 403)] {
        let r = http
            .post(format!("http://{host}:{port}/mcp"))
            .bearer_auth(&secret)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "attacks", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "MCP at {host}");
    }

    // 8. The kill switches, from the operator's CLI, each measured from the
    //    command's exit to the running services acting on it.
    let out = run(&system.env("operator"), &["agents", "pause", "--org", "acme", "--reason", "incident review"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let paused_at = std::time::Instant::now();
    loop {
        match agent.client.list_accounts(agent.req(pb::ListAccountsRequest {})).await {
            Err(e) if e.message().contains("paused") => break,
            _ => assert!(paused_at.elapsed() < Duration::from_secs(1), "agents not paused within a second"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pause_took = paused_at.elapsed();
    let e = agent.pay("card_1", 300, "while paused").await.unwrap_err();
    assert!(e.message().contains("paused"), "drafts refused too: {e:?}");
    let out = run(&system.env("operator"), &["agents", "resume", "--org", "acme", "--reason", "cleared"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &system.env("operator"),
        &["card", "freeze", "--all", "--org", "acme", "--reason", "suspected fraud"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let frozen_at = std::time::Instant::now();
    let frozen = eventually(&reader, "a frozen card", |_, e| e["type"] == "spend.card.frozen.v1").await;
    let freeze_took = frozen_at.elapsed();
    assert!(freeze_took < Duration::from_secs(1), "frozen after {freeze_took:?}");
    assert_eq!(frozen["source"], "spendsignoff/executor");
    assert!(frozen["data"]["reason"].as_str().unwrap().starts_with("suspected fraud"));
    println!("kill switches: agents paused within {pause_took:?}, cards frozen within {freeze_took:?}");
    let resumed_at = std::time::Instant::now();
    while agent.client.list_accounts(agent.req(pb::ListAccountsRequest {})).await.is_err() {
        assert!(resumed_at.elapsed() < Duration::from_secs(2), "not resumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A request to an internal service about acme, with `token` (a caller's
/// own credential) when given.
fn internal_request<T>(token: Option<&str>, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut().insert("spend-org", "acme".parse().unwrap());
    if let Some(t) = token {
        r.metadata_mut().insert(spend_proto::internal::HEADER, t.parse().unwrap());
    }
    r
}

fn token_of<'s>(system: &'s System, caller: Option<&str>) -> Option<&'s str> {
    caller.map(|c| system.credential(c))
}

async fn internal_callers_are_told_apart(system: &System, reader: &JetStreamLog) {
    use spend_proto::v1::executor_client::ExecutorClient;
    use spend_proto::v1::policy_client::PolicyClient;
    let channel = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy()
    };
    let mut executor = ExecutorClient::new(channel(system.executor_port));
    let gateway = Some("gateway");

    // The gateway reads.
    let accounts = executor
        .list_accounts(internal_request(token_of(system, gateway), pb::ListAccountsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(accounts.accounts.iter().any(|a| a.id == "card_1"), "{accounts:?}");
    // ...and is refused every way of connecting or disconnecting accounts.
    let denied = |r: Result<(), tonic::Status>, what: &str| {
        let e = r.err().unwrap_or_else(|| panic!("the gateway's credential ran {what}"));
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
        assert!(e.message().contains("not the gateway"), "{e:?}");
    };
    let begin = pb::BeginConnectionRequest {
        org: "acme".into(),
        account_id: "card_1".into(),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        purpose: "an attack test".into(),
        ..Default::default()
    };
    denied(
        executor
            .begin_connection(internal_request(token_of(system, gateway), begin.clone()))
            .await
            .map(drop),
        "BeginConnection",
    );
    denied(
        executor
            .disconnect(internal_request(
                token_of(system, gateway),
                pb::DisconnectRequest {
                    org: "acme".into(),
                    account_id: "card_1".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "Disconnect",
    );
    denied(
        executor
            .abandon_connection(internal_request(
                token_of(system, gateway),
                pb::AbandonConnectionRequest {
                    state: "s".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "AbandonConnection",
    );
    denied(
        executor
            .complete_connection(internal_request(
                token_of(system, gateway),
                pb::CompleteConnectionRequest {
                    state: "s".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "CompleteConnection",
    );
    let alert = eventually(reader, "the executor's alert", |s, e| {
        s == "spend.evt.acme.security_executor.gateway" && e["data"]["reason"] == "internal.caller_refused"
    })
    .await;
    assert_eq!(alert["source"], "spendsignoff/executor");
    assert_eq!(alert["data"]["address"], "127.0.0.1");
    assert!(!alert.to_string().contains(system.credential("gateway")), "never the credential");

    // The approval app's credential connects, but does not read.
    let begun = executor
        .begin_connection(internal_request(token_of(system, Some("approval")), begin))
        .await
        .unwrap()
        .into_inner();
    assert!(begun.authorize_url.contains("/oauth/authorize?"), "{begun:?}");
    let e = executor
        .list_accounts(internal_request(token_of(system, Some("approval")), pb::ListAccountsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // No credential, or a guessed one: unauthenticated.
    for caller in [None, Some("guess")] {
        let mut r = internal_request(token_of(system, None), pb::ListAccountsRequest {});
        if let Some(g) = caller {
            r.metadata_mut().insert(spend_proto::internal::HEADER, g.parse().unwrap());
        }
        assert_eq!(executor.list_accounts(r).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    // The policy service decides for the gateway alone.
    let mut policy = PolicyClient::new(channel(system.policy_port));
    let decide = |caller| {
        internal_request(
            token_of(system, caller),
            pb::DecideRequest {
                org: "acme".into(),
                draft_id: "d_nothing_here".into(),
            },
        )
    };
    let e = policy.decide(decide(Some("approval"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    if let Err(e) = policy.decide(decide(gateway)).await {
        assert!(
            !matches!(e.code(), tonic::Code::PermissionDenied | tonic::Code::Unauthenticated),
            "the gateway is past the guard (there is no such draft): {e:?}"
        );
    }
    eventually(reader, "the policy service's alert", |s, e| {
        s == "spend.evt.acme.security_policy.approval" && e["data"]["reason"] == "internal.caller_refused"
    })
    .await;
}

fn approval_envelope(draft_id: &str, subject: &str) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        "acme",
        Actor::human("mallory"),
        subject,
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: draft_id.into(),
            approval_id: "forged".into(),
            step: 1,
            credential_id: "none".into(),
            approver_id: "mallory".into(),
            approved_hash: "0".repeat(64),
            proof: spend_testkit::events::bogus_proof(draft_id, "mallory", &"0".repeat(64)),
        }),
    )
}
