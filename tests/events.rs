//! Realistic events for tests and benchmarks.

use spend_core::events::{ChangePushed, DraftProposed, EventData, FieldDiff, Outcome, PolicyEvaluated, Reason};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::Append;

/// A realistic event: the i-th step of a draft's life (proposed → evaluated
/// → pushed), on its own aggregate subject.
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
    let env = Envelope::new(
        "spendsignoff/test",
        org,
        Actor::service("test"),
        spend_core::subject::envelope_subject("draft", &draft),
        data,
    );
    let subject = spend_core::subject::aggregate_subject(prefix, org, "draft", &draft).unwrap();
    Append::new(subject, env.id.to_string(), env.to_bytes())
}
