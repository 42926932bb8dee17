//! A compromised service cannot push: on a real nats-server with
//! k8s/nats/auth.conf, the executor on its own NATS user, the vault on
//! PostgreSQL and moto's KMS, the sandbox platform. With the gateway's, the
//! policy service's and the approval service's own credentials, everything
//! each may publish is published — approvals with a bad signature, of
//! another draft's hash, replayed, expired, by an approver nobody knows, by
//! one enrolled without a countersignature; an auto-approval for a draft no
//! human-approved mandate covers; an approval on a subject of the
//! gateway's; a rollback approval with a bad signature — and no write
//! reaches the platform; each is audited; then a genuine approval is pushed
//! and a genuine rollback approval refunds it (so a stopped executor cannot
//! pass). The policy service's credentials cannot lower dual control to one
//! approver, and an approver the approval service removes no longer counts
//! towards a draft still waiting for its second approval. A compromised
//! gateway's draft that shows one change and carries another is denied by
//! the policy service and refused by the executor, each audited, even when
//! two humans approved its bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spend_core::events::{EventData, Outcome};
use spend_core::{Actor, Envelope};
use spend_draft::approvers::Role;
use spend_draft::humans::Human;
use spend_eventlog::{Append, EventLog, Recorder};
use spend_executor::push::{PushConfig, Pusher, change_id};
use spend_testkit::authnats::AuthNats;
use spend_testkit::events::{Approvers, TEST_POLICY_VERSION, decided, on_log, payment_proposed, rollback_requested, subject_of};

use crate::common::Platform;

const POLICY: &str = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\napproval:\n  auto_approve_under: 50 USD\n";

async fn put(log: &Arc<dyn EventLog>, env: &Envelope) -> Result<u64, spend_eventlog::LogError> {
    log.append(Append::new(subject_of("spend.evt", env), env.id.to_string(), env.to_bytes()))
        .await
        .map(|a| a.seq)
}

fn approval_as(org: &str, draft_id: &str, data: spend_core::events::ApprovalGranted) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        org,
        Actor::human(&data.approver_id),
        format!("approval/{draft_id}"),
        EventData::ApprovalGranted(data),
    )
}

fn granted(env: &Envelope) -> spend_core::events::ApprovalGranted {
    match &env.data {
        EventData::ApprovalGranted(g) => g.clone(),
        _ => panic!("an approval"),
    }
}

/// The services' own NATS users on a nats-server with k8s/nats/auth.conf,
/// the sandbox with card_1 connected (read and write), the approvers
/// trusted (each writer through its own user), and the executor pushing.
struct Attack {
    gateway: Arc<dyn EventLog>,
    policy: Arc<dyn EventLog>,
    approval: Arc<dyn EventLog>,
    operator: Arc<dyn EventLog>,
    platform: Platform,
    humans: Approvers,
    stop: tokio::sync::watch::Sender<bool>,
    running: tokio::task::JoinHandle<()>,
    _nats: AuthNats,
    _db: spend_testkit::TestDatabase,
}

impl Attack {
    async fn new(policy_md: &str, approvers: &[&str]) -> Self {
        let nats = AuthNats::with_streams().await;
        let connect = |user: &'static str| nats.log_as(user);
        let (gateway, policy, approval, executor, operator) = (
            connect("gateway").await,
            connect("policy").await,
            connect("approval").await,
            connect("executor").await,
            connect("operator").await,
        );

        // The platform, the vault, card_1 connected with write consent.
        let platform = Platform::start().await;
        let db = spend_testkit::TestDatabase::create().await;
        let connections = platform.connections(executor.clone(), "spend.evt", &db.url, None).await;
        crate::common::writable(&connections, &["card_1"]).await;
        let recorder = Recorder::new(executor.clone(), "spend.evt", spend_core::authority::Writer::Executor);

        // The registry: the first approver, anchored by the operator, the
        // others countersigned by her; enrolled by the approval service.
        let mut humans = Approvers::new("acme", approvers);
        for env in humans.trust() {
            let log = if env.subject.starts_with("anchor/") { &operator } else { &approval };
            put(log, &env).await.unwrap();
        }
        let pusher = Pusher::new(
            recorder,
            connections,
            &platform.base,
            PushConfig::new(Arc::new(spend_policy::spendmd::parse(policy_md).unwrap()), spend_draft::humans::test_rp()),
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(pusher.run(stopped));
        Self {
            gateway,
            policy,
            approval,
            operator,
            platform,
            humans,
            stop,
            running,
            _nats: nats,
            _db: db,
        }
    }

    async fn applied(&self) -> serde_json::Value {
        self.platform.applied().await
    }

    /// Waits until the platform applied the write of `key`.
    async fn wait_applied(&self, key: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let applied = self.applied().await;
            if applied["by_key"][key] == 1 {
                return;
            }
            assert!(Instant::now() < deadline, "{what} was never pushed: {applied}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The executor's security alerts: "reason detail".
    async fn alerts(&self) -> Vec<String> {
        on_log(self.operator.as_ref())
            .await
            .iter()
            .filter(|(s, e)| s.contains(".security_executor.") && e["type"] == "spend.security.alert.v1")
            .map(|(_, e)| format!("{} {}", e["data"]["reason"].as_str().unwrap(), e["data"]["detail"].as_str().unwrap()))
            .collect()
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.running.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_reaches_the_platform_on_anything_but_a_verified_approval() {
    let mut a = Attack::new(POLICY, &["ada"]).await;
    let (gateway, policy, approval, operator) = (a.gateway.clone(), a.policy.clone(), a.approval.clone(), a.operator.clone());
    let base = a.platform.base.clone();
    let humans = &mut a.humans;
    // Drafts, by the gateway; decided by the policy service.
    let mut hashes = std::collections::HashMap::new();
    for (id, minor) in [
        ("d_sig", 6_000),
        ("d_hash", 6_100),
        ("d_replay", 6_200),
        ("d_expired", 6_300),
        ("d_eve", 6_400),
        ("d_mallory", 6_500),
        ("d_gw", 6_600),
        ("d_over", 8_000),
    ] {
        let p = payment_proposed("acme", id, minor);
        hashes.insert(id, spend_draft::event_hash(&p.to_bytes()));
        put(&gateway, &p).await.unwrap();
    }
    for id in ["d_sig", "d_hash", "d_replay", "d_expired", "d_eve", "d_mallory", "d_gw"] {
        put(&policy, &decided("acme", id, Outcome::RequireApproval)).await.unwrap();
    }
    // The policy service's own credentials: an auto-approval of 80 USD,
    // over the 50 USD mandate (which no human approved anyway).
    put(&policy, &decided("acme", "d_over", Outcome::AutoApprove)).await.unwrap();

    // The approval service's own credentials:
    // - a bad signature;
    let mut bad = granted(&humans.approved("d_sig", "ada", &hashes["d_sig"]));
    let mut sig = bad.proof.signature.clone().into_bytes();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    bad.proof.signature = String::from_utf8(sig).unwrap();
    put(&approval, &approval_as("acme", "d_sig", bad)).await.unwrap();
    // - a genuine signature over another draft's hash;
    put(&approval, &humans.approved("d_hash", "ada", &hashes["d_sig"])).await.unwrap();
    // - a replay, onto d_replay, of ada's proof for d_sig;
    let replayed = granted(&humans.approved("d_sig", "ada", &hashes["d_sig"]));
    put(
        &approval,
        &approval_as(
            "acme",
            "d_replay",
            spend_core::events::ApprovalGranted {
                draft_id: "d_replay".into(),
                ..replayed
            },
        ),
    )
    .await
    .unwrap();
    // - an expired proof;
    put(
        &approval,
        &humans.approved_until("d_expired", "ada", &hashes["d_expired"], TEST_POLICY_VERSION, "2020-01-01T00:00:00Z"),
    )
    .await
    .unwrap();
    // - an approver nobody enrolled;
    let mut eve = Human::new("eve", Role::Admin);
    put(
        &approval,
        &approval_as(
            "acme",
            "d_eve",
            eve.grant("d_eve", &hashes["d_eve"], TEST_POLICY_VERSION, "2099-01-01T00:00:00Z", 1),
        ),
    )
    .await
    .unwrap();
    // - an approver the approval service enrolled without a countersignature.
    let mut mallory = Human::new("mallory", Role::Admin);
    put(
        &approval,
        &Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::human("mallory"),
            "approver/mallory",
            EventData::ApproverEnrolled(mallory.enrolled("acme", None)),
        ),
    )
    .await
    .unwrap();
    put(
        &approval,
        &approval_as(
            "acme",
            "d_mallory",
            mallory.grant("d_mallory", &hashes["d_mallory"], TEST_POLICY_VERSION, "2099-01-01T00:00:00Z", 1),
        ),
    )
    .await
    .unwrap();
    // The gateway's own credentials: a genuine-looking approval on a
    // subject of its own (it may not write approval subjects at all).
    let gw_approval = humans.approved("d_gw", "ada", &hashes["d_gw"]);
    let misplaced = Envelope::new(
        "spendsignoff/approval",
        "acme",
        Actor::human("ada"),
        "draft/d_gw_approval",
        gw_approval.data.clone(),
    );
    put(&gateway, &misplaced).await.unwrap();
    assert!(put(&gateway, &gw_approval).await.is_err(), "the gateway cannot write an approval subject");

    // Nothing reaches the platform; every attempt is audited.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let applied = spend_testkit::sandbox_control::get(&base, "/sandbox/applied").await;
    assert_eq!(applied["writes"], 0, "no write: {applied}");
    let log = on_log(operator.as_ref()).await;
    let alerts: Vec<String> = log
        .iter()
        .filter(|(s, e)| s.contains(".security_executor.") && e["type"] == "spend.security.alert.v1")
        .map(|(_, e)| format!("{} {}", e["data"]["reason"].as_str().unwrap(), e["data"]["detail"].as_str().unwrap()))
        .collect();
    for (what, needle) in [
        ("bad signature", "d_sig"),
        ("another draft's hash", "d_hash"),
        ("replay", "d_replay"),
        ("expired", "d_expired"),
        ("unknown approver", "d_eve"),
        ("uncountersigned approver", "mallory"),
        ("auto-approval over the mandate", "d_over"),
        ("misplaced approval", "draft.d_gw_approval"),
    ] {
        assert!(alerts.iter().any(|a| a.contains(needle)), "{what} not audited: {alerts:#?}");
    }
    let over = log
        .iter()
        .find(|(s, e)| s.ends_with(&change_id("d_over")) && e["type"] == "spend.change.failed.v1");
    assert!(over.is_some(), "the auto-approval over the mandate is refused on the record");

    // A genuine approval by ada is pushed.
    put(&approval, &humans.approved("d_gw", "ada", &hashes["d_gw"])).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = spend_testkit::sandbox_control::get(&base, "/sandbox/applied").await;
        if applied["writes"] == 1 {
            assert_eq!(applied["by_key"]["d_gw"], 1, "{applied}");
            break;
        }
        assert!(Instant::now() < deadline, "the genuine approval was never pushed: {applied}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rollback: the approval service may record a request in a human's
    // name, but not approve it without that human's passkey; it cannot
    // write on the operator's subjects at all.
    let expires = "2099-01-01T00:00:00Z";
    let mut request = rollback_requested("acme", "rb_attack", &["d_gw"], expires);
    assert!(
        put(&approval, &request).await.is_err(),
        "the approval service cannot write the operator's rollback requests"
    );
    request.subject = "approval/rb_attack".into();
    put(&approval, &request).await.unwrap();
    let hash = spend_draft::event_hash(&request.to_bytes());
    let mut forged = humans.approved_rollback("rb_attack", "ada", &hash, expires);
    if let EventData::RollbackApproved(a) = &mut forged.data {
        let mut sig = a.0.proof.signature.clone().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        a.0.proof.signature = String::from_utf8(sig).unwrap();
    }
    put(&approval, &forged).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = spend_testkit::sandbox_control::get(&base, "/sandbox/applied").await;
    assert!(applied["by_key"].get("rb_attack-d_gw").is_none(), "no refund on a forged approval: {applied}");
    let log = on_log(operator.as_ref()).await;
    assert!(
        log.iter().any(|(s, e)| s.contains(".security_executor.")
            && e["data"]["reason"] == "approval.forged"
            && e["data"]["detail"].as_str().is_some_and(|d| d.contains("rb_attack"))),
        "the forged rollback approval is audited"
    );
    // Ada's genuine approval of it: refunded, once.
    put(&approval, &humans.approved_rollback("rb_attack", "ada", &hash, expires)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = spend_testkit::sandbox_control::get(&base, "/sandbox/applied").await;
        if applied["by_key"]["rb_attack-d_gw"] == 1 {
            assert_eq!(applied["charged_minor"], 0, "refunded: {applied}");
            break;
        }
        assert!(Instant::now() < deadline, "the genuine rollback approval was never carried out: {applied}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.finish().await;
}

/// Waits for `draft_id`'s change to end, and returns (type, data).
async fn outcome(log: &Arc<dyn EventLog>, draft_id: &str) -> (String, serde_json::Value) {
    let subject = format!("spend.evt.acme.change.{}", change_id(draft_id));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = log.last_on_subject(&subject).await.unwrap() {
            let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            if e["type"] != "spend.change.started.v1" {
                return (e["type"].as_str().unwrap().to_string(), e["data"].clone());
            }
        }
        assert!(Instant::now() < deadline, "no outcome for {draft_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two approvers over 50 USD.
const DUAL: &str = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\napproval:\n  require_confirmation_over: 50 USD\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_control_is_counted_by_the_executor_never_taken_from_the_policy_services_decision() {
    let mut a = Attack::new(DUAL, &["ada", "bob"]).await;
    // An 80 USD payment needs two people. The policy service's own
    // credentials decide it needs one; one human approves.
    let p = payment_proposed("acme", "d_one", 8_000);
    let hash = spend_draft::event_hash(&p.to_bytes());
    put(&a.gateway, &p).await.unwrap();
    put(&a.policy, &decided("acme", "d_one", Outcome::RequireApproval)).await.unwrap();
    let ada = a.humans.approved("d_one", "ada", &hash);
    put(&a.approval, &ada).await.unwrap();
    let (t, data) = outcome(&a.operator, "d_one").await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    assert!(data["reason"].as_str().unwrap().contains("2 distinct approvers"), "{data}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.alerts().await.iter().any(|x| x.starts_with("push.approvals_short") && x.contains("d_one")) {
        assert!(Instant::now() < deadline, "the short count is not audited: {:?}", a.alerts().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.applied().await["writes"], 0);

    // The genuine path: decided as needing two, approved by both.
    let p = payment_proposed("acme", "d_two", 8_000);
    let hash = spend_draft::event_hash(&p.to_bytes());
    put(&a.gateway, &p).await.unwrap();
    put(&a.policy, &decided("acme", "d_two", Outcome::RequireDualApproval)).await.unwrap();
    let ada = a.humans.approved("d_two", "ada", &hash);
    put(&a.approval, &ada).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(a.applied().await["writes"], 0, "one of two approvers pushes nothing");
    let bob = a.humans.approved("d_two", "bob", &hash);
    put(&a.approval, &bob).await.unwrap();
    a.wait_applied("d_two", "the payment two people approved").await;
    a.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_approvers_pending_approval_no_longer_counts_at_the_executor() {
    let mut a = Attack::new(DUAL, &["ada", "bob", "carol"]).await;
    let p = payment_proposed("acme", "d_lapse", 8_000);
    let hash = spend_draft::event_hash(&p.to_bytes());
    put(&a.gateway, &p).await.unwrap();
    put(&a.policy, &decided("acme", "d_lapse", Outcome::RequireDualApproval)).await.unwrap();
    let bob = a.humans.approved("d_lapse", "bob", &hash);
    put(&a.approval, &bob).await.unwrap();
    // An admin removes bob before a second approver comes: his approval of
    // the waiting draft lapses, as the app, the gateway and the ledger say.
    put(&a.approval, &a.humans.removed("bob", "left the team")).await.unwrap();
    let carol = a.humans.approved("d_lapse", "carol", &hash);
    put(&a.approval, &carol).await.unwrap();
    // Carol's approval is the first that counts, one of two: the executor
    // starts nothing (it would within a second if it counted bob's).
    let change = format!("spend.evt.acme.change.{}", change_id("d_lapse"));
    let watch = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch {
        assert!(
            a.operator.last_on_subject(&change).await.unwrap().is_none(),
            "pushed on a removed approver's approval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.applied().await["writes"], 0);
    let ada = a.humans.approved("d_lapse", "ada", &hash);
    put(&a.approval, &ada).await.unwrap();
    a.wait_applied("d_lapse", "the payment carol and ada approved").await;
    a.finish().await;
}

/// The security alerts of `writer` (`security_<writer>`): "reason detail".
async fn alerts_of(log: &Arc<dyn EventLog>, writer: &str) -> Vec<String> {
    on_log(log.as_ref())
        .await
        .iter()
        .filter(|(s, e)| s.contains(&format!(".security_{writer}.")) && e["type"] == "spend.security.alert.v1")
        .map(|(_, e)| format!("{} {}", e["data"]["reason"].as_str().unwrap(), e["data"]["detail"].as_str().unwrap()))
        .collect()
}

/// A draft whose `diff` and `spend_impact` show `shown_minor` and whose
/// `change` (what is pushed) pays `minor`: a compromised gateway's.
fn lying_payment(draft_id: &str, minor: i64, shown_minor: i64) -> Envelope {
    let shown = payment_proposed("acme", draft_id, shown_minor);
    let mut p = payment_proposed("acme", draft_id, minor);
    if let (EventData::DraftProposed(lie), EventData::DraftProposed(s)) = (&mut p.data, &shown.data) {
        lie.diff = s.diff.clone();
        lie.spend_impact = s.spend_impact.clone();
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_that_shows_one_change_and_pushes_another_is_refused_by_policy_and_executor() {
    let mut a = Attack::new(DUAL, &["ada", "bob"]).await;
    // The gateway's own credentials record a draft showing 4.00 USD whose
    // change pays 90.00 USD. The policy service, on its own user, denies
    // it and says why, audited.
    put(&a.gateway, &lying_payment("d_lie", 9_000, 400)).await.unwrap();
    let decider = spend_policy_service::decide::Decider::start(
        a.policy.clone(),
        "spend.evt",
        spend_policy_service::decide::Bootstrap {
            policy: Arc::new(spend_policy::spendmd::parse(DUAL).unwrap()),
            source: DUAL.into(),
            approved_by_human: true,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        },
    );
    let d = spend_policy::decide::Decide::decide(&decider, "acme", "d_lie").await.unwrap();
    assert_eq!(d.outcome, Outcome::Deny, "{d:?}");
    assert_eq!(d.reasons[0].code, spend_draft::display::INCONSISTENT, "{d:?}");
    assert!(d.reasons[0].message.contains("4.00 USD") && d.reasons[0].message.contains("90.00 USD"), "{d:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alerts_of(&a.operator, "policy")
        .await
        .iter()
        .any(|x| x.starts_with("draft.inconsistent") && x.contains("d_lie"))
    {
        assert!(Instant::now() < deadline, "the policy service did not audit it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // With the policy service compromised too, and two humans approving
    // its exact bytes, the executor still refuses it and audits it.
    let p = lying_payment("d_lie2", 9_000, 400);
    let hash = spend_draft::event_hash(&p.to_bytes());
    put(&a.gateway, &p).await.unwrap();
    put(&a.policy, &decided("acme", "d_lie2", Outcome::RequireDualApproval)).await.unwrap();
    for who in ["ada", "bob"] {
        let g = a.humans.approved("d_lie2", who, &hash);
        put(&a.approval, &g).await.unwrap();
    }
    let (t, data) = outcome(&a.operator, "d_lie2").await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    assert!(data["reason"].as_str().unwrap().contains("shows"), "{data}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.alerts().await.iter().any(|x| x.starts_with("draft.inconsistent") && x.contains("d_lie2")) {
        assert!(Instant::now() < deadline, "the executor did not audit it: {:?}", a.alerts().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.applied().await["writes"], 0, "nothing reaches the platform");

    // The genuine path: a draft that shows what it pays is pushed.
    let p = payment_proposed("acme", "d_true", 8_000);
    let hash = spend_draft::event_hash(&p.to_bytes());
    put(&a.gateway, &p).await.unwrap();
    put(&a.policy, &decided("acme", "d_true", Outcome::RequireDualApproval)).await.unwrap();
    for who in ["ada", "bob"] {
        let g = a.humans.approved("d_true", who, &hash);
        put(&a.approval, &g).await.unwrap();
    }
    a.wait_applied("d_true", "the payment two people approved").await;
    a.finish().await;
}
