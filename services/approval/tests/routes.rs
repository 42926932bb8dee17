//! The approval app refuses every agent credential, and audits it: an agent
//! key presented on arm or confirm gets 403 and a `spend.security.alert.v1`
//! naming the key id (never the key) and the address. Without a signed-in
//! human session the answer is 401.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt;
use spend_core::authority::Writer;
use spend_core::events::{ApiKeyRevoked, EventData};
use spend_eventlog::Recorder;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{EventLog, StartAt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_keys_on_human_approval_routes_are_refused_and_audited() {
    let (_dir, log, addr) = serve().await;

    let secret = format!("ssk_a1b2c3d4e5f6_{}", "9".repeat(64));
    let http = reqwest::Client::new();
    for (method, path) in [("POST", "/approvals/d_1/arm"), ("POST", "/approvals/d_1/confirm"), ("GET", "/approvals/d_1")] {
        let r = http
            .request(method.parse().unwrap(), format!("http://{addr}{path}"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // No credential and no session: sign in first.
    let r = http.post(format!("http://{addr}/approvals/d_1/arm")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let n = log.info().await.unwrap().last_seq as usize;
    let events: Vec<serde_json::Value> = log
        .subscribe(StartAt::Beginning)
        .await
        .unwrap()
        .take(n)
        .map(|m| serde_json::from_slice(&m.unwrap().payload).unwrap())
        .collect()
        .await;
    assert_eq!(events.len(), 3, "one alert per agent attempt, none for the anonymous one");
    for e in &events {
        assert_eq!(e["type"], "spend.security.alert.v1");
        assert_eq!(e["data"]["reason"], "agent_on_human_route");
        assert_eq!(e["data"]["key_id"], "a1b2c3d4e5f6");
        assert_eq!(e["data"]["address"], "127.0.0.1");
        assert!(!e.to_string().contains(&secret), "never the key itself");
    }
    assert!(events[0]["data"]["detail"].as_str().unwrap().contains("POST /approvals/d_1/arm"));
}

/// The approval app on a fresh log, served on a local port.
async fn serve() -> (tempfile::TempDir, Arc<dyn EventLog>, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let app = spend_approval::Application::build(spend_approval::ApprovalConfig::new("127.0.0.1:0"), deps(&log))
        .await
        .unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (dir, log, addr)
}

fn deps(log: &Arc<dyn EventLog>) -> spend_approval::Deps {
    spend_approval::Deps {
        log: log.clone(),
        prefix: "spend.evt".into(),
        policy: Arc::new(spend_policy::spendmd::parse("spend:\n  per_transaction: 5 USD\n").unwrap()),
        accounts: None,
    }
}

/// Every message on the log: (subject, event).
async fn everything(log: &Arc<dyn EventLog>) -> Vec<(String, serde_json::Value)> {
    spend_testkit::events::on_log(log.as_ref()).await
}

async fn alerts(log: &Arc<dyn EventLog>) -> Vec<(String, serde_json::Value)> {
    everything(log)
        .await
        .into_iter()
        .filter(|(_, e)| e["type"] == "spend.security.alert.v1")
        .collect()
}

/// An agent key of `org`, recorded on the log as the operator's CLI does.
async fn create_key(log: &Arc<dyn EventLog>, org: &str) -> spend_credentials::NewKey {
    use spend_credentials::{AgentScope, generate};
    let key = generate(org, "bot", &[AgentScope::Read, AgentScope::Draft], chrono::Utc::now()).unwrap();
    Recorder::new(log.clone(), "spend.evt", Writer::Operator)
        .event(
            org,
            spend_core::Actor::human("ops"),
            "apikey",
            &key.created.key_id,
            EventData::ApiKeyCreated(key.created.clone()),
        )
        .record()
        .await
        .unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credential_is_refused_and_audited_whatever_its_scheme_or_header() {
    let (_dir, log, addr) = serve().await;
    let secret = format!("ssk_a1b2c3d4e5f6_{}", "7".repeat(64));
    let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJvcmciOiJhY21lIn0.c2lnbmF0dXJl";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent:{secret}"));
    let cases: Vec<(&str, String, &str)> = vec![
        ("authorization", format!("bearer {secret}"), "scheme \\\"bearer\\\""),
        ("authorization", format!("BEARER {secret}"), "scheme \\\"BEARER\\\""),
        ("authorization", secret.clone(), "(no scheme)"),
        ("x-api-key", secret.clone(), "in x-api-key"),
        ("authorization", format!("Bearer {jwt}"), "an OAuth access token"),
        ("authorization", format!("Basic {basic}"), "user name or password"),
        ("authorization", "Token opaque-thing".into(), "an unrecognised credential"),
        ("cookie", format!("theme=dark; k={secret}"), "in the cookie header"),
    ];
    let http = reqwest::Client::new();
    for (header, value, _) in &cases {
        let r = http
            .post(format!("http://{addr}/approvals/d_1/arm"))
            .header(*header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
    }
    let r = http
        .post(format!("http://{addr}/approvals/d_1/push?api_key=ssk%5Fa1b2c3d4e5f6_{}", "7".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a key in the query string");

    let alerts = alerts(&log).await;
    assert_eq!(alerts.len(), cases.len() + 1, "one alert per refused credential");
    for ((_, e), (header, value, says)) in alerts.iter().zip(&cases) {
        assert_eq!(e["data"]["reason"], "agent_on_human_route");
        assert_eq!(e["data"]["address"], "127.0.0.1");
        assert!(e.to_string().contains(says), "{header}: {value}: {e}");
    }
    assert!(alerts.last().unwrap().1["data"]["detail"].as_str().unwrap().contains("in the query string"));
    for (subject, e) in &alerts {
        let text = e.to_string();
        assert!(
            !text.contains(&secret[17..]) && !text.contains(jwt) && !text.contains(&basic),
            "never the credential: {text}"
        );
        assert!(subject.starts_with("spend.evt.unknown.security_approval."), "{subject}");
    }
    assert_eq!(alerts[0].1["data"]["key_id"], "a1b2c3d4e5f6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_agent_keys_alert_goes_to_its_own_organisation() {
    let (_dir, log, addr) = serve().await;
    let acme = create_key(&log, "acme").await;
    let globex = create_key(&log, "globex").await;
    let http = reqwest::Client::new();
    let refuse = |secret: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/approvals/d_1/arm"))
                .header("x-api-key", secret)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
        }
    };
    refuse(acme.secret.clone()).await;
    refuse(globex.secret.clone()).await;
    // Revoked, it is still acme's key presented.
    Recorder::new(log.clone(), "spend.evt", Writer::Operator)
        .event(
            "acme",
            spend_core::Actor::human("ops"),
            "apikey",
            "all",
            EventData::ApiKeyRevoked(ApiKeyRevoked {
                key_id: "*".into(),
                org: "acme".into(),
                reason: "incident".into(),
            }),
        )
        .record()
        .await
        .unwrap();
    refuse(acme.secret.clone()).await;
    // acme's key id with a secret that is not acme's: not attributed to acme.
    let mut forged = acme.secret.clone();
    forged.replace_range(20..21, if &forged[20..21] == "a" { "b" } else { "a" });
    refuse(forged).await;

    let alerts = alerts(&log).await;
    let seen: Vec<(&str, &str)> = alerts.iter().map(|(s, e)| (s.as_str(), e["org"].as_str().unwrap())).collect();
    let (a, g) = (&acme.created.key_id, &globex.created.key_id);
    assert_eq!(
        seen,
        vec![
            (format!("spend.evt.acme.security_approval.{a}").as_str(), "acme"),
            (format!("spend.evt.globex.security_approval.{g}").as_str(), "globex"),
            (format!("spend.evt.acme.security_approval.{a}").as_str(), "acme"),
            (format!("spend.evt.unknown.security_approval.{a}").as_str(), "unknown"),
        ]
    );
    assert!(alerts[2].1["data"]["detail"].as_str().unwrap().contains("(revoked)"), "{}", alerts[2].1);
    for (_, e) in &alerts {
        assert_eq!(e["source"], "spendsignoff/approval");
        assert!(!e.to_string().contains(&acme.secret[17..]) && !e.to_string().contains(&globex.secret[17..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_id_invalid_in_a_subject_is_still_audited_with_the_id_in_the_detail() {
    let (_dir, log, addr) = serve().await;
    let tail = "s3cr3t".repeat(10);
    let long_id = "x".repeat(200);
    let http = reqwest::Client::new();
    for token in [format!("ssk_ab.c*d>_{tail}"), format!("ssk_{long_id}_{tail}")] {
        let r = http.get(format!("http://{addr}/approvals/d_1")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 403);
    }
    let alerts = alerts(&log).await;
    assert_eq!(alerts.len(), 2, "neither alert is dropped");
    for (subject, e) in &alerts {
        assert_eq!(subject, "spend.evt.unknown.security_approval.anonymous");
        assert!(e["data"]["key_id"].is_null(), "the id is not a key id: {e}");
        assert!(!e.to_string().contains(&tail), "never the part after the id");
    }
    assert!(
        alerts[0].1["data"]["detail"].as_str().unwrap().contains(r#"invalid key id "ab.c*d>""#),
        "{}",
        alerts[0].1
    );
    let detail = alerts[1].1["data"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("\"{}…\"", "x".repeat(12))) && !detail.contains(&"x".repeat(13)),
        "truncated: {detail}"
    );
}

/// A flood of one refused credential makes a bounded number of events, and
/// none goes uncounted: three recorded singly, the rest counted into one
/// alert that the service records by the end of the window, or, as here,
/// when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_aggregated_and_every_refusal_counted() {
    use spend_approval::{Application, ApprovalConfig};
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let key = create_key(&log, "acme").await;
    let app = Application::build(ApprovalConfig::new("127.0.0.1:0"), deps(&log)).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    for _ in 0..50 {
        let r = http
            .post(format!("http://{addr}/approvals/d_1/arm"))
            .bearer_auth(&key.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "every one is refused");
    }
    // Presented another way: recorded on its own.
    let r = http
        .post(format!("http://{addr}/approvals/d_1/arm"))
        .header("x-api-key", &key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(alerts(&log).await.len(), 4, "three singles of the flood and the other form");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let alerts = alerts(&log).await;
    assert_eq!(alerts.len(), 5, "the counted repeats are recorded as the service stops");
    let (subject, last) = alerts.last().unwrap();
    assert_eq!(subject, &format!("spend.evt.acme.security_approval.{}", key.created.key_id));
    let detail = last["data"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("47 more refusals (agent_on_human_route: "), "{detail}");
    assert!(!last.to_string().contains(&key.secret[17..]));
}

/// Sign-in and enrollment attempts are limited per address: past the
/// limit the answer is 429, and the refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_sign_in_attempts_from_one_address_are_refused_and_audited() {
    let (_dir, log, addr) = serve().await;
    let origin = format!("http://localhost:{}", addr.port());
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..(spend_approval::web::ATTEMPTS_PER_MINUTE + 5) {
        let r = http
            .post(format!("http://{addr}/signin/start"))
            .header("origin", &origin)
            .json(&serde_json::json!({"email": "nobody@example.com"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let limit = spend_approval::web::ATTEMPTS_PER_MINUTE as usize;
    assert!(statuses[..limit].iter().all(|s| *s == 200), "unknown email, within the limit: {statuses:?}");
    assert!(statuses[limit..].iter().all(|s| *s == 429), "past the limit: {statuses:?}");
    // From another origin: refused before counting.
    let r = http
        .post(format!("http://{addr}/signin/start"))
        .header("origin", "http://evil.example")
        .json(&serde_json::json!({"email": "nobody@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let limited = alerts(&log)
            .await
            .into_iter()
            .filter(|(_, e)| e["data"]["reason"] == "approval.rate_limited")
            .count();
        if limited >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the refusal is audited");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `/signin/start` answers alike for a trusted approver's email and for
/// anyone else's: the same status and the same shape, one credential id
/// each, stable per email; so it tells no one whether an address is an
/// approver's. The sign-in of the unknown one can never finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_tells_no_one_whether_an_email_is_an_approvers() {
    use spend_approval::{Application, ApprovalConfig};
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let mut humans = spend_testkit::events::Approvers::new("acme", &["ada"]);
    spend_testkit::events::append_all(&*log, "spend.evt", humans.trust()).await;
    let mut config = ApprovalConfig::new("127.0.0.1:0");
    config.passkey = Some(spend_draft::humans::test_rp());
    let app = Application::build(config, deps(&log)).await.unwrap();
    let addr = app.local_addr();
    let origin = app.origin();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    let start = |email: &'static str| {
        let (http, origin) = (http.clone(), origin.clone());
        async move {
            let r = http
                .post(format!("http://{addr}/signin/start"))
                .header("origin", &origin)
                .json(&serde_json::json!({"email": email}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    // The app reads ada's enrollment from the log first.
    let mut known = start("ada@acme.example").await;
    for _ in 0..50 {
        if known.1["credential_ids"] == serde_json::json!([humans.human("ada").credential_id.clone()]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        known = start("ada@acme.example").await;
    }
    let unknown = start("nobody@acme.example").await;
    assert_eq!(known.0, 200, "{known:?}");
    assert_eq!(unknown.0, known.0, "{unknown:?}");
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&unknown.1), keys(&known.1));
    let ids = |v: &serde_json::Value| {
        v["credential_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().len())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&unknown.1).len(), 1);
    assert_eq!(
        start("nobody@acme.example").await.1["credential_ids"],
        unknown.1["credential_ids"],
        "stable per email"
    );
    assert_ne!(start("other@acme.example").await.1["credential_ids"], unknown.1["credential_ids"]);
    // Its ceremony cannot be finished with ada's passkey.
    let nonce = unknown.1["ceremony"].as_str().unwrap().to_string();
    let challenge = spend_draft::proof::signin_challenge(&origin, &nonce);
    let (ad, cdj, sig) = humans.human("ada").key.assert(&challenge);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let r = http
        .post(format!("http://{addr}/signin/finish"))
        .header("origin", &origin)
        .json(&serde_json::json!({"ceremony": nonce, "assertion": {
            "credential_id": humans.human("ada").credential_id.clone(), "authenticator_data": b64.encode(ad),
            "client_data_json": b64.encode(cdj), "signature": b64.encode(sig)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.abort();
}

/// Two replicas sharing the link secret give an unknown email one decoy
/// credential id, as they give an approver one real id: a caller reaching
/// both cannot tell the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_the_link_secret_answer_an_unknown_email_alike() {
    use spend_approval::{Application, ApprovalConfig};
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let replica = |secret: Option<&str>| {
        let log = log.clone();
        let secret = secret.map(spend_core::Secret::new);
        async move {
            let mut config = ApprovalConfig::new("127.0.0.1:0");
            config.passkey = Some(spend_draft::humans::test_rp());
            config.link_secret = secret;
            let app = Application::build(config, deps(&log)).await.unwrap();
            let (addr, origin) = (app.local_addr(), app.origin());
            (tokio::spawn(app.run_until_stopped(std::future::pending())), addr, origin)
        }
    };
    let decoy = |addr: SocketAddr, origin: String| async move {
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/signin/start"))
            .header("origin", origin)
            .json(&serde_json::json!({"email": "nobody@acme.example"}))
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["credential_ids"].clone()
    };
    let shared = "the-same-link-secret-on-every-replica-0123456789";
    let (a, a_addr, a_origin) = replica(Some(shared)).await;
    let (b, b_addr, b_origin) = replica(Some(shared)).await;
    assert_eq!(decoy(a_addr, a_origin).await, decoy(b_addr, b_origin).await, "one deployment, one answer");
    let (c, c_addr, c_origin) = replica(Some("another-deployments-link-secret-0123456789abcdef")).await;
    assert_ne!(
        decoy(c_addr, c_origin).await,
        decoy(a_addr, format!("http://localhost:{}", a_addr.port())).await
    );
    for s in [a, b, c] {
        s.abort();
    }
}
