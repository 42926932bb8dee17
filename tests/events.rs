//! Realistic events for tests and benchmarks, and reading them back.

use spend_core::events::{ChangePushed, DraftProposed, EventData, FieldDiff, Outcome, PolicyEvaluated, Reason};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::{Append, EventLog, StartAt};

/// A realistic event: the i-th step of a draft's life (proposed → evaluated
/// → pushed), each by its writer on its own aggregate's subject.
pub fn draft_event(prefix: &str, org: &str, i: u64) -> Append {
    let draft = format!("d{}", i / 3);
    let data = match i % 3 {
        0 => EventData::DraftProposed(DraftProposed {
            draft_id: draft.clone(),
            account_id: format!("act_{}", i % 7),
            kind: "budget".into(),
            diff: vec![FieldDiff {
                path: format!("campaign/c{}/daily_budget", i % 11),
                before: serde_json::json!({"minor_units": 5000, "currency": "USD"}),
                after: serde_json::json!({"minor_units": 5000 + (i % 50) * 100, "currency": "USD"}),
            }],
            spend_impact: Money::new(((i % 50) * 100) as i64, "USD").unwrap(),
            rationale: "ROAS above target for 7 days; raise the cap".into(),
            drafted_against: None,
            change: spend_core::events::DraftChange::Campaign {
                campaign_id: format!("c{}", i % 11),
                field: "budget".into(),
                daily_budget_before: Money::new(5000, "USD").unwrap(),
                daily_budget_after: Money::new(5000 + ((i % 50) * 100) as i64, "USD").unwrap(),
                status_before: "active".into(),
                status_after: "active".into(),
            },
        }),
        1 => EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: draft.clone(),
            outcome: Outcome::RequireApproval,
            reasons: vec![Reason {
                code: "approval.threshold".into(),
                message: "over 25 USD".into(),
            }],
            policy_version: "sha256:abc".into(),
        }),
        _ => EventData::ChangePushed(ChangePushed {
            change_id: format!("ch{}", i / 3),
            draft_id: draft.clone(),
            platform: "sandbox".into(),
            idempotency_key: draft.clone(),
            diff: vec![],
        }),
    };
    let (aggregate, source, actor) = match i % 3 {
        0 => ("draft", "spendsignoff/gateway", Actor::agent("k_test")),
        1 => ("decision", "spendsignoff/policy", Actor::service("policy")),
        _ => ("change", "spendsignoff/executor", Actor::service("executor")),
    };
    let env = Envelope::new(source, org, actor, spend_core::subject::envelope_subject(aggregate, &draft), data);
    let subject = subject_of(prefix, &env);
    Append::new(subject, env.id.to_string(), env.to_bytes())
}

/// Every message on `log` as it stands now: (subject, payload parsed as
/// JSON, `Null` when it is not JSON), in log order.
pub async fn on_log(log: &dyn EventLog) -> Vec<(String, serde_json::Value)> {
    use futures::StreamExt as _;
    let n = log.info().await.expect("log info").last_seq as usize;
    log.subscribe(StartAt::Beginning)
        .await
        .expect("subscribe")
        .take(n)
        .map(|m| {
            let m = m.expect("a stored message");
            (m.subject.clone(), serde_json::from_slice(&m.payload).unwrap_or_default())
        })
        .collect()
        .await
}

/// The stream subject an envelope belongs on: `<prefix>.<org>.<aggregate>.<id>`.
pub fn subject_of(prefix: &str, env: &Envelope) -> String {
    let (aggregate, id) = env.subject.split_once('/').expect("an <aggregate>/<id> subject");
    spend_core::subject::aggregate_subject(prefix, &env.org, aggregate, id).expect("a valid subject")
}

/// A payment of `minor` US cents to openai.com, drafted by an agent as the
/// gateway records it.
pub fn payment_proposed(org: &str, draft_id: &str, minor: i64) -> Envelope {
    let amount = Money::new(minor, "USD").unwrap();
    Envelope::new(
        "spendsignoff/gateway",
        org,
        Actor::agent("k_test"),
        format!("draft/{draft_id}"),
        EventData::DraftProposed(DraftProposed {
            draft_id: draft_id.into(),
            account_id: "card_1".into(),
            kind: "payment".into(),
            diff: vec![],
            spend_impact: amount.clone(),
            rationale: "API credits".into(),
            drafted_against: None,
            change: spend_core::events::DraftChange::Payment {
                amount,
                merchant: "openai.com".into(),
                category: Some("software".into()),
                country: None,
                url: Some("https://openai.com/billing".into()),
            },
        }),
    )
}

/// The policy service's decision of a draft.
pub fn decided(org: &str, draft_id: &str, outcome: Outcome) -> Envelope {
    Envelope::new(
        "spendsignoff/policy",
        org,
        Actor::service("policy"),
        format!("decision/{draft_id}"),
        EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: draft_id.into(),
            outcome,
            reasons: vec![],
            policy_version: "sha256:test".into(),
        }),
    )
}

/// A human's approval as the approval service records it, of the draft
/// whose stored bytes hash to `approved_hash` (`spend_draft::event_hash`).
pub fn approved(org: &str, draft_id: &str, approver: &str, approved_hash: &str) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        org,
        Actor::human(approver),
        format!("approval/{draft_id}"),
        EventData::ApprovalGranted(spend_core::events::ApprovalGranted {
            draft_id: draft_id.into(),
            approval_id: format!("a-{approver}"),
            step: 1,
            credential_id: format!("cred-{approver}"),
            approver_id: approver.into(),
            approved_hash: approved_hash.into(),
        }),
    )
}
