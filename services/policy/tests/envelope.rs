//! The 24-hour envelope is a hard ceiling under concurrency: 200 drafts
//! racing against one account, some auto-approved and some approved by a
//! human afterwards, never commit more than the daily limit — on the
//! embedded log and on JetStream.

use std::sync::Arc;

use futures::future::join_all;
use spend_core::events::Outcome;
use spend_core::{Actor, Money};
use spend_eventlog::EventLog;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::jetstream::JetStreamLog;
use spend_policy::evaluate::{Change, Draft};
use spend_policy::service::{PolicyService, Proposal};
use spend_policy::spendmd;

const POLICY: &str = "\
spend:
  daily_limit: 100 USD
  monthly_limit: 1000 USD
  per_transaction: 10 USD
  allowlist: [openai.com]
approval:
  auto_approve_under: 6 USD
  require_confirmation_over: 50 USD
";

fn proposal(i: u64) -> Proposal {
    // Mostly small (auto-approved under the mandate); every fourth needs a human.
    let minor = if i % 4 == 3 { 800 } else { 100 + (i % 5) as i64 * 100 };
    Proposal {
        org: "acme".into(),
        draft_id: format!("d{i}"),
        actor: Actor::agent("key_1"),
        draft: Draft {
            account_id: "card_1".into(),
            change: Change::Payment {
                merchant: "api.openai.com".into(),
                category: None,
                country: None,
                url: Some("https://api.openai.com".into()),
            },
            spend_impact: Money::new(minor, "USD").unwrap(),
        },
        diff: vec![],
        rationale: "tokens".into(),
        drafted_against: None,
        campaign_last_changed: None,
    }
}

async fn two_hundred_racing_drafts_never_cross_the_ceiling(log: Arc<dyn EventLog>, prefix: &str) {
    let policy = spendmd::parse(POLICY).unwrap();
    let service = Arc::new(PolicyService::new(log, prefix));
    let proposals: Vec<Proposal> = (0..200).map(proposal).collect();
    let decisions = join_all(proposals.iter().map(|p| {
        let s = service.clone();
        let policy = policy.clone();
        async move { s.propose(&policy, true, p).await.unwrap() }
    }))
    .await;
    let mut committed = 0i64;
    let mut pending = Vec::new();
    for (p, d) in proposals.iter().zip(&decisions) {
        match d.outcome {
            Outcome::AutoApprove => committed += p.draft.spend_impact.minor_units,
            Outcome::RequireApproval => pending.push(p.clone()),
            Outcome::Deny => assert!(d.reasons.iter().any(|r| r.code == "limit.daily"), "{d:?}"),
            Outcome::RequireDualApproval => panic!("nothing here is over 50 USD"),
        }
    }
    assert!(!pending.is_empty());
    // Humans approve every pending draft at once; each approval re-checks.
    let approvals = join_all(pending.iter().map(|p| {
        let s = service.clone();
        let policy = policy.clone();
        async move { s.reserve_approved(&policy, p).await.unwrap() }
    }))
    .await;
    for (p, d) in pending.iter().zip(&approvals) {
        if d.outcome != Outcome::Deny {
            committed += p.draft.spend_impact.minor_units;
        }
    }
    let (budget, _) = service.budget("acme", "card_1").await.unwrap();
    let now = chrono::Utc::now();
    assert_eq!(budget.last_24h(now), committed, "every commitment is a reservation, and only those");
    assert!(committed <= 10_000, "committed {committed} over the 100 USD envelope");
    assert!(committed > 10_000 - 1_000, "the envelope was used, not refused early: {committed}");
    // Crossing 80% and hitting the ceiling were announced on the limit subject.
    let alerts = service
        .log()
        .last_on_subject(&format!("{}.acme.limit.card_1", service.prefix()))
        .await
        .unwrap()
        .expect("limit alerts");
    let alert: serde_json::Value = serde_json::from_slice(&alerts.payload).unwrap();
    assert!(
        alert["type"] == "spend.limit.exceeded.v1" || alert["type"] == "spend.limit.approaching.v1",
        "{alert}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    two_hundred_racing_drafts_never_cross_the_ceiling(Arc::new(log), "spend.evt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_jetstream() {
    let streams = spend_testkit::Streams::new();
    let log = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    two_hundred_racing_drafts_never_cross_the_ceiling(Arc::new(log), &streams.events.subject_prefix).await;
}

#[tokio::test]
async fn a_draft_id_is_used_once_and_events_are_in_order_on_its_subject() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let service = PolicyService::new(log.clone(), "spend.evt");
    let policy = spendmd::parse(POLICY).unwrap();
    let d = service.propose(&policy, false, &proposal(0)).await.unwrap();
    assert_eq!(d.outcome, Outcome::RequireApproval, "no standing mandate: a human decides");
    assert!(matches!(
        service.propose(&policy, false, &proposal(0)).await,
        Err(spend_policy::service::ServiceError::DuplicateDraft(_))
    ));
    use futures::StreamExt;
    let events: Vec<_> = log
        .subscribe(spend_eventlog::StartAt::Beginning)
        .await
        .unwrap()
        .take(2)
        .map(|m| m.unwrap())
        .collect()
        .await;
    let types: Vec<String> = events
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["spend.draft.proposed.v1", "spend.policy.evaluated.v1"]);
    assert!(events.iter().all(|m| m.subject == "spend.evt.acme.draft.d0"));
    let evaluated: serde_json::Value = serde_json::from_slice(&events[1].payload).unwrap();
    assert_eq!(evaluated["data"]["policy_version"], policy.version);
}
