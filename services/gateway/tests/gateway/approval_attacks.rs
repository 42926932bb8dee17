//! What one compromised layer can do to approvals, on a real nats-server
//! with k8s/nats/auth.conf, each service on its own NATS user.
//!
//! - The approval service's credentials cannot anchor a first admin (the
//!   operator's subject) nor write the operator's roster; they can enroll a
//!   key of their own, which nobody vouched for, so its approvals count
//!   for nothing.
//! - Approvals it records without a genuine proof are refused by the
//!   verifier and audited: by that self-enrolled key, a replay of a counted
//!   proof, an expired proof, a proof of another policy version, and an
//!   approval of a second `draft.proposed` the gateway's credentials
//!   appended for the same draft.
//! - Then a genuine approval by the anchored admin is honoured.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Gateway, alerts};
use spend_core::events::EventData;
use spend_core::{Actor, Envelope};
use spend_draft::approvers::Role;
use spend_draft::humans::Human;
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{Append, EventLog};
use spend_gateway::GatewayConfig;
use spend_testkit::authnats::AuthNats;
use spend_testkit::events::{Approvers, subject_of};

async fn put(log: &Arc<dyn EventLog>, env: &Envelope) -> Result<u64, spend_eventlog::LogError> {
    log.append(Append::new(subject_of("spend.evt", env), env.id.to_string(), env.to_bytes()))
        .await
        .map(|a| a.seq)
}

fn recorded_by_approval(draft_id: &str, data: EventData) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        "acme",
        Actor::human("someone@acme.example"),
        format!("approval/{draft_id}"),
        data,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_mismatched_approvals_are_refused_and_a_genuine_one_is_honoured() {
    let password = || format!("pw{}", spend_credentials::random_hex(16).unwrap());
    let (gateway_pw, operator_pw, policy_pw, admin_pw, approval_pw, others) = (password(), password(), password(), password(), password(), password());
    let nats = AuthNats::start(&[
        ("SPEND_NATS_GATEWAY_PASSWORD", &gateway_pw),
        ("SPEND_NATS_OPERATOR_PASSWORD", &operator_pw),
        ("SPEND_NATS_POLICY_PASSWORD", &policy_pw),
        ("SPEND_NATS_ADMIN_PASSWORD", &admin_pw),
        ("SPEND_NATS_APPROVAL_PASSWORD", &approval_pw),
        ("SPEND_NATS_EXECUTOR_PASSWORD", &others),
        ("SPEND_NATS_LEDGER_PASSWORD", &others),
    ])
    .await;
    JetStreamLog::connect(nats.config("admin", &admin_pw, true)).await.unwrap();
    let connect = |user: &'static str, pw: String| {
        let cfg = nats.config(user, &pw, false);
        async move { Arc::new(JetStreamLog::connect(cfg).await.unwrap()) as Arc<dyn EventLog> }
    };
    let gateway_log = connect("gateway", gateway_pw).await;
    let operator_log = connect("operator", operator_pw).await;
    let policy_log = connect("policy", policy_pw).await;
    let approval_log = connect("approval", approval_pw).await;

    // The registry: ada, anchored by the operator; enrollments by the
    // approval service, each through its own user.
    let mut humans = Approvers::new("acme", &["ada"]);
    for env in humans.trust() {
        let log = if env.subject.starts_with("anchor/") { &operator_log } else { &approval_log };
        put(log, &env).await.unwrap();
    }

    // 1. The approval service's user cannot anchor nor write the roster.
    let mut mallory = Human::new("mallory", Role::Admin);
    let anchor = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("mallory"),
        "anchor/acme",
        EventData::ApproverAnchored(mallory.anchored("acme")),
    );
    assert!(put(&approval_log, &anchor).await.is_err(), "the approval service cannot anchor");
    let removal = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("mallory"),
        "roster/ada",
        EventData::ApproverRemoved(spend_core::events::ApproverRemoved {
            org: "acme".into(),
            approver_id: "ada".into(),
            reason: "x".into(),
        }),
    );
    assert!(put(&approval_log, &removal).await.is_err(), "nor write the operator's roster");
    let server_log = std::fs::read_to_string(&nats.log_file).unwrap();
    assert!(
        server_log.contains("Publish Violation - User \"approval\", Subject \"spend.evt.acme.anchor.acme\""),
        "{server_log}"
    );
    // ... but it can enroll a key of its own, vouched for by nobody.
    let self_enrolled = Envelope::new(
        "spendsignoff/approval",
        "acme",
        Actor::human("mallory"),
        "approver/mallory",
        EventData::ApproverEnrolled(mallory.enrolled("acme", None)),
    );
    put(&approval_log, &self_enrolled).await.unwrap();

    // A draft the policy requires a human for.
    let gw = Gateway::start_full(
        gateway_log.clone(),
        &operator_log,
        "spend.evt",
        "spend:\n  per_transaction: 10 USD\n",
        GatewayConfig::new(""),
        Some(policy_log),
    )
    .await;
    let who = gw.identity(&gw.key);
    let payment = |minor| spend_gateway::ops::ProposeRequest {
        account_id: "card_1".into(),
        rationale: "credits".into(),
        change: spend_gateway::ops::ChangeRequest::Payment {
            amount_minor: minor,
            currency: "USD".into(),
            merchant: "openai.com".into(),
            card_id: "crd_1".into(),
            category: None,
            country: None,
            url: None,
        },
    };
    let draft = gw.state.propose_change(&who, payment(500)).await.unwrap();
    assert_eq!(draft.status, "pending_approval", "{draft:?}");
    let id = draft.draft_id.clone();
    let version = draft.decision.as_ref().unwrap().policy_version.clone();
    let stored = gateway_log.last_on_subject(&format!("spend.evt.acme.draft.{id}")).await.unwrap().unwrap();
    let hash = spend_draft::event_hash(&stored.payload);

    let still_pending = || async {
        gw.state.caught_up().await.unwrap();
        gw.state.get_draft_status(&who, &id).await.unwrap().status
    };

    // a. By the self-enrolled key: a real signature, by nobody trusted.
    let by_mallory = mallory.grant(&id, &hash, &version, "2099-01-01T00:00:00Z", 1);
    put(&approval_log, &recorded_by_approval(&id, EventData::ApprovalGranted(by_mallory)))
        .await
        .unwrap();
    assert_eq!(still_pending().await, "pending_approval", "a self-enrolled key approves nothing");

    // b. Expired: ada's genuine signature over an expiry long past.
    let expired = humans.approved_under(&id, "ada", &hash, &version);
    let EventData::ApprovalGranted(mut expired_data) = expired.data.clone() else {
        unreachable!()
    };
    expired_data.proof.expires_at = "2020-01-01T00:00:00Z".into();
    put(&approval_log, &recorded_by_approval(&id, EventData::ApprovalGranted(expired_data)))
        .await
        .unwrap();
    assert_eq!(
        still_pending().await,
        "pending_approval",
        "a proof edited after signing (or expired) counts for nothing"
    );

    // c. A proof of another policy version than the one that decided.
    let other_version = humans.approved_under(&id, "ada", &hash, "sha256:another-version");
    put(&approval_log, &other_version).await.unwrap();
    assert_eq!(still_pending().await, "pending_approval", "a proof of another policy version");

    // d. The gateway's credentials append a second proposal for the same
    //    draft; an approval of those bytes is refused.
    let mut second = spend_testkit::events::payment_proposed("acme", &id, 40_000);
    second.subject = format!("draft/{id}");
    put(&gateway_log, &second).await.unwrap();
    let second_hash = spend_draft::event_hash(&second.to_bytes());
    let of_second = humans.approved_under(&id, "ada", &second_hash, &version);
    put(&approval_log, &of_second).await.unwrap();
    assert_eq!(still_pending().await, "pending_approval", "an approval of a second proposal");

    // The genuine approval is honoured.
    let genuine = humans.approved_under(&id, "ada", &hash, &version);
    put(&approval_log, &genuine).await.unwrap();
    assert_eq!(still_pending().await, "approved");

    // e. Its replay, re-recorded on the same draft (a new event, the same
    //    proof) and on another draft that waits: refused.
    put(&approval_log, &recorded_by_approval(&id, genuine.data.clone())).await.unwrap();
    let other = gw.state.propose_change(&who, payment(600)).await.unwrap();
    put(&approval_log, &recorded_by_approval(&other.draft_id, genuine.data.clone())).await.unwrap();
    gw.state.caught_up().await.unwrap();
    assert_eq!(gw.state.get_draft_status(&who, &other.draft_id).await.unwrap().status, "pending_approval");

    // Every refusal is audited by the gateway, on its own subject.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = alerts(&gateway_log, 1).await;
        let forged = all.iter().filter(|a| a["data"]["reason"] == "approval.forged").count();
        let untrusted = all.iter().filter(|a| a["data"]["reason"] == "approver.untrusted").count();
        if forged >= 6 && untrusted >= 1 {
            let details: Vec<String> = all.iter().map(|a| a["data"]["detail"].as_str().unwrap_or("").to_string()).collect();
            let text = details.join("\n");
            for why in [
                "mallory is not an approver",
                "the proof expired",
                "the draft was decided under",
                "approves the event hashing to",
                "was counted already",
                "its subject names",
            ] {
                assert!(text.contains(why), "a refusal says {why:?}:\n{text}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "refusals audited: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
}
