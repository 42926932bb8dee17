//! The policy service decides each draft from the log, once, against the
//! envelope as the executor's commitments left it (it commits nothing
//! itself: the executor commits right before it pushes, and its tests hold
//! the ceiling under 200 racing pushes); one draft's events form one
//! correlation.

use std::sync::Arc;

use spend_core::authority::Writer;
use spend_core::events::{DraftChange, DraftProposed, EventData, Outcome};
use spend_core::{Actor, Money};
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{EventLog, Recorder};
use spend_policy::decide::{Decide, DecideError};
use spend_policy::envelope::EnvelopeExt;
use spend_policy::spendmd;
use spend_policy_service::decide::{Bootstrap, Decider};

const POLICY: &str = "\
spend:
  daily_limit: 100 USD
  monthly_limit: 1000 USD
  per_transaction: 10 USD
  allowlist: [openai.com]
  require_https: true
approval:
  auto_approve_under: 6 USD
  require_confirmation_over: 50 USD
";

fn draft(i: u64) -> DraftProposed {
    // Mostly small (auto-approved under the mandate); every fourth needs a
    // human. Spread over accounts, so a per-account budget would let them
    // through.
    let minor = if i % 4 == 3 { 800 } else { 100 + (i % 5) as i64 * 100 };
    spend_draft::display::proposed(
        &format!("d{i}"),
        &format!("card_{}", i % 7),
        "tokens",
        None,
        DraftChange::Payment {
            amount: Money::new(minor, "USD").unwrap(),
            merchant: "api.openai.com".into(),
            category: None,
            country: None,
            url: Some("https://api.openai.com".into()),
            https: Some(true),
            card_id: Some("crd_1".into()),
            stated_category: None,
            stated_country: None,
        },
    )
    .expect("a payment")
}

async fn record(gateway: &Recorder, d: &DraftProposed) {
    gateway
        .event("acme", Actor::agent("key_1"), "draft", &d.draft_id, EventData::DraftProposed(d.clone()))
        .expect_seq(0)
        .record()
        .await
        .unwrap();
}

fn decider(log: Arc<dyn EventLog>, prefix: &str, approved: bool) -> Decider {
    Decider::start(
        log,
        prefix,
        Bootstrap {
            policy: Arc::new(spendmd::parse(POLICY).unwrap()),
            source: POLICY.into(),
            approved_by_human: approved,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        },
    )
}

/// A commitment the executor made, filling the envelope to `minor`.
async fn executor_commitment(log: &Arc<dyn EventLog>, prefix: &str, minor: i64) {
    let envelope = spend_core::events::EnvelopeState {
        currency: "USD".into(),
        ..Default::default()
    };
    let paid = draft(1_000);
    let change = DraftChange::Payment {
        amount: Money::new(minor, "USD").unwrap(),
        merchant: "api.openai.com".into(),
        category: None,
        country: None,
        url: None,
        https: Some(true),
        card_id: Some("crd_1".into()),
        stated_category: None,
        stated_country: None,
    };
    let c = envelope.commit("d_paid", &paid.account_id, &change, chrono::Utc::now());
    Recorder::new(log.clone(), prefix, Writer::Executor)
        .event(
            "acme",
            Actor::service("executor"),
            "budget",
            "envelope",
            EventData::BudgetCommitted(spend_core::events::BudgetCommitted {
                draft_id: "d_paid".into(),
                account_id: paid.account_id.clone(),
                amount: Money::new(minor, "USD").unwrap(),
                campaign_id: None,
                envelope: c.after,
            }),
        )
        .record()
        .await
        .unwrap();
}

async fn decisions_judge_the_envelope_the_executor_committed(log: Arc<dyn EventLog>, prefix: &str) {
    let gateway = Recorder::new(log.clone(), prefix, Writer::Gateway);
    executor_commitment(&log, prefix, 9_600).await;
    let decider = decider(log.clone(), prefix, true);
    // 4 USD more would cross the 100 USD day: denied, and announced.
    let over = draft(3_001);
    let over = spend_draft::display::proposed(
        &over.draft_id,
        &over.account_id,
        &over.rationale,
        None,
        DraftChange::Payment {
            amount: Money::new(500, "USD").unwrap(),
            merchant: "api.openai.com".into(),
            category: None,
            country: None,
            url: Some("https://api.openai.com".into()),
            https: Some(true),
            card_id: Some("crd_1".into()),
            stated_category: None,
            stated_country: None,
        },
    )
    .expect("a payment");
    record(&gateway, &over).await;
    let d = decider.decide("acme", &over.draft_id).await.unwrap();
    assert_eq!(d.outcome, Outcome::Deny, "{d:?}");
    assert!(d.reasons.iter().any(|r| r.code == "limit.daily"), "{d:?}");
    // What fits is auto-approved under the mandate — and not committed:
    // the executor commits right before it pushes.
    let fits = draft(0);
    record(&gateway, &fits).await;
    assert_eq!(decider.decide("acme", "d0").await.unwrap().outcome, Outcome::AutoApprove);
    let (envelope, _) = decider.envelope("acme").await.unwrap();
    assert_eq!(envelope.daily_committed(chrono::Utc::now()), 9_600, "the policy commits nothing");
    // Deciding again returns the decision recorded.
    assert_eq!(decider.decide("acme", "d0").await.unwrap().outcome, Outcome::AutoApprove);
    let notice = log
        .last_on_subject(&format!("{prefix}.acme.limit.envelope"))
        .await
        .unwrap()
        .expect("limit notices");
    let notice: serde_json::Value = serde_json::from_slice(&notice.payload).unwrap();
    assert!(
        notice["type"] == "spend.limit.exceeded.v1" || notice["type"] == "spend.limit.approaching.v1",
        "{notice}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    decisions_judge_the_envelope_the_executor_committed(Arc::new(log), "spend.evt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_jetstream() {
    let streams = spend_testkit::Streams::new();
    let log = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    decisions_judge_the_envelope_the_executor_committed(Arc::new(log), &streams.events.subject_prefix).await;
}

fn parse(m: &spend_eventlog::StoredMessage) -> serde_json::Value {
    serde_json::from_slice(&m.payload).unwrap()
}

#[tokio::test]
async fn one_draft_is_followed_from_proposal_to_decision_by_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let gateway = Recorder::new(log.clone(), "spend.evt", Writer::Gateway);
    let d = draft(0);
    record(&gateway, &d).await;
    let decider = decider(log.clone(), "spend.evt", true);
    assert_eq!(decider.decide("acme", "d0").await.unwrap().outcome, Outcome::AutoApprove);
    assert!(matches!(decider.decide("acme", "nope").await, Err(DecideError::NotFound(_))));
    use futures::StreamExt;
    let all: Vec<serde_json::Value> = log
        .subscribe(spend_eventlog::StartAt::Beginning)
        .await
        .unwrap()
        .take(2)
        .map(|m| parse(&m.unwrap()))
        .collect()
        .await;
    let proposed = all.iter().find(|e| e["type"] == "spend.draft.proposed.v1").unwrap();
    let correlation = proposed["correlationid"].clone();
    let chain: Vec<&serde_json::Value> = all.iter().filter(|e| e["correlationid"] == correlation).collect();
    assert_eq!(chain.len(), 2, "draft and decision share the draft's correlation: {all:?}");
    let decided = chain.iter().find(|e| e["type"] == "spend.policy.evaluated.v1").unwrap();
    assert_eq!(decided["causationid"], proposed["id"], "the decision follows the draft");
    assert_eq!(decided["subject"], "decision/d0");
    for e in &chain {
        let tp = e["traceparent"].as_str().expect("every event carries a traceparent");
        assert!(tp.starts_with(&format!("00-{}-", correlation.as_str().unwrap().replace('-', ""))), "{tp}");
    }
}

#[tokio::test]
async fn a_draft_whose_decision_call_never_came_is_decided_by_the_policy_service_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let gateway = Recorder::new(log.clone(), "spend.evt", Writer::Gateway);
    // Recorded, and then the gateway "crashed" before calling Decide.
    record(&gateway, &draft(3)).await;
    let decider = decider(log.clone(), "spend.evt", false);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(spend_policy_service::decide::decide_undecided(decider, "policy".into(), stopped));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let decision = loop {
        if let Some(m) = log.last_on_subject("spend.evt.acme.decision.d3").await.unwrap() {
            break parse(&m);
        }
        assert!(tokio::time::Instant::now() < deadline, "the undecided draft was never decided");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(decision["data"]["outcome"], "require_approval");
    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
}

fn campaign_raise(id: &str, before: i64, after: i64) -> DraftProposed {
    let usd = |m| Money::new(m, "USD").unwrap();
    spend_draft::display::proposed(
        id,
        "act_1001",
        "scale the winner",
        Some("2026-12-07T00:00:00Z".into()),
        DraftChange::Campaign {
            campaign_id: "cmp_1".into(),
            field: "budget".into(),
            daily_budget_before: usd(before),
            daily_budget_after: usd(after),
            status_before: "active".into(),
            status_after: "active".into(),
            bid_before: None,
            bid_after: None,
        },
    )
    .expect("a campaign change")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_raise_repeated_on_the_next_day_does_not_refill_the_envelope() {
    let streams = spend_testkit::Streams::new();
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(streams.events.clone()).await.unwrap());
    let prefix = streams.events.subject_prefix.clone();
    // Yesterday's raise to 80 USD a day, committed then: its payments
    // window is long gone, but the campaign spends 80 USD every day.
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).date_naive().format("%Y-%m-%d").to_string();
    let yesterday = spend_core::events::EnvelopeState {
        currency: "USD".into(),
        payments: vec![],
        month: String::new(),
        month_payments: 0,
        campaigns: vec![spend_core::events::CampaignRate {
            account_id: "act_1001".into(),
            campaign_id: "cmp_1".into(),
            daily_minor: 8_000,
            since: two_days_ago,
            commitments: vec![spend_core::events::RateCommitment {
                draft_id: "d_day1".into(),
                daily_minor: 8_000,
            }],
            floor_minor: Some(0),
        }],
        recent_drafts: vec!["d_day1".into()],
        recent_releases: vec![],
    };
    Recorder::new(log.clone(), &prefix, Writer::Executor)
        .event(
            "acme",
            Actor::service("executor"),
            "budget",
            "envelope",
            EventData::BudgetCommitted(spend_core::events::BudgetCommitted {
                draft_id: "d_day1".into(),
                account_id: "act_1001".into(),
                amount: Money::new(8_000, "USD").unwrap(),
                campaign_id: Some("cmp_1".into()),
                envelope: yesterday,
            }),
        )
        .record()
        .await
        .unwrap();
    let policy = "spend:\n  daily_limit: 100 USD\n  monthly_limit: 100000 USD\napproval:\n  auto_approve_under: 200 USD\n";
    let decider = Decider::start(
        log.clone(),
        &prefix,
        Bootstrap {
            policy: Arc::new(spendmd::parse(policy).unwrap()),
            source: policy.into(),
            approved_by_human: true,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        },
    );
    let gateway = Recorder::new(log.clone(), &prefix, Writer::Gateway);
    // The same raise again today, 80 → 160 USD: it would spend 160 a day.
    record(&gateway, &campaign_raise("d_day2", 8_000, 16_000)).await;
    let again = decider.decide("acme", "d_day2").await.unwrap();
    assert_eq!(again.outcome, Outcome::Deny, "{again:?}");
    assert!(again.reasons.iter().any(|r| r.code == "limit.daily"), "{again:?}");
    // What still fits under the ceiling is allowed: 80 → 95 USD.
    record(&gateway, &campaign_raise("d_day2b", 8_000, 9_500)).await;
    assert_eq!(decider.decide("acme", "d_day2b").await.unwrap().outcome, Outcome::AutoApprove);
    let (envelope, _) = decider.envelope("acme").await.unwrap();
    assert_eq!(
        envelope.daily_committed(chrono::Utc::now()),
        8_000,
        "decided, not committed: the executor commits at push"
    );
}
