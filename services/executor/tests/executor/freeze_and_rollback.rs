//! Freezes and rollbacks on the real parts (JetStream, PostgreSQL, moto's
//! KMS and the sandbox platform over a socket):
//! - an operator's freeze stops charges within a second; one asked for
//!   while no executor ran is answered, once, when one starts;
//! - a rollback restores a campaign and refunds a payment once, only on a
//!   human's verified approval of the request, and refuses a change whose
//!   live state moved since its push.

use std::time::{Duration, Instant};

use spend_core::events::{EventData, Outcome};
use spend_core::{Actor, Envelope};
use spend_testkit::events::{bogus_proof, payment_proposed, rollback_requested};

use crate::common::raise;
use crate::push::{POLICY, World, wait_for_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_freeze_stops_charges_within_a_second() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    let first = w.approved(payment_proposed("acme", "d_before", 400), Outcome::RequireApproval, &["ada"]).await;
    assert_eq!(w.outcome(&first, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    let asked = Instant::now();
    w.append(vec![freeze_requested("*", "incident")]).await;
    loop {
        if w.events().await.iter().any(|(_, e)| e["type"] == "spend.card.frozen.v1") {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(1), "not frozen within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("frozen after {:?}", asked.elapsed());
    let id = w.approved(payment_proposed("acme", "d_after", 400), Outcome::RequireApproval, &["ada"]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    assert!(data["reason"].as_str().unwrap().contains("frozen"), "{data}");
    assert_eq!(w.applied().await["charged_minor"], 400);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_asked_for_while_no_executor_ran_is_answered_when_one_starts() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    let first = w.approved(payment_proposed("acme", "d_before", 400), Outcome::RequireApproval, &["ada"]).await;
    assert_eq!(w.outcome(&first, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    w.stop().await;
    w.append(vec![freeze_requested("crd_1", "lost while the executor was down")]).await;
    w.start(POLICY, Duration::from_secs(30));
    let frozen = wait_for_event(&w, "the freeze", Duration::from_secs(10), |e| e["type"] == "spend.card.frozen.v1").await;
    assert_eq!(frozen["data"]["card_id"], "crd_1", "{frozen}");
    assert!(frozen["data"]["reason"].as_str().unwrap().contains("frozen at the platform too"), "{frozen}");
    // A restart after that does not freeze it again.
    w.stop().await;
    w.start(POLICY, Duration::from_secs(30));
    let id = w.approved(payment_proposed("acme", "d_after", 400), Outcome::RequireApproval, &["ada"]).await;
    assert_eq!(w.outcome(&id, Duration::from_secs(20)).await.0, "spend.change.failed.v1");
    let freezes = w.events().await.into_iter().filter(|(_, e)| e["type"] == "spend.card.frozen.v1").count();
    assert_eq!(freezes, 1);
    w.stop().await;
}

/// An operator's `spend card freeze` of `card` (`*`: every card).
pub(crate) fn freeze_requested(card: &str, reason: &str) -> Envelope {
    let id = if card == "*" { "all" } else { card };
    Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("operator"),
        format!("card_freeze/{id}"),
        EventData::CardFreezeRequested(spend_core::events::CardFreezeRequested {
            card_id: card.into(),
            reason: reason.into(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_rollback_restores_once_and_refuses_what_moved_since_the_push() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["act_1001", "card_1"], &[]).await;
    let budget = w
        .approved(raise(&w.sandbox, "d_rb_budget", "act_1001", "cmp_1", 6_000), Outcome::RequireApproval, &["ada"])
        .await;
    let pay = w
        .approved(payment_proposed("acme", "d_rb_pay", 1_200), Outcome::RequireApproval, &["ada"])
        .await;
    let moved = w
        .approved(raise(&w.sandbox, "d_rb_moved", "act_1001", "cmp_3", 3_500), Outcome::RequireApproval, &["ada"])
        .await;
    for d in [&budget, &pay, &moved] {
        assert_eq!(w.outcome(d, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    }
    assert_eq!(w.sandbox.campaign("cmp_1").unwrap().daily_budget_minor, 6_000);
    // Someone changes cmp_3 on the platform after the push.
    spend_testkit::sandbox_control::post(&w.base, "/sandbox/campaigns/cmp_3", serde_json::json!({"daily_budget_minor": 4_000})).await;

    // One request for the three; a forged approval of it moves nothing.
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let request = rollback_requested("acme", "rb_1", &[&budget, &pay, &moved], &expires);
    let hash = spend_draft::event_hash(&request.to_bytes());
    let mut forged = w.humans.approved_rollback("rb_1", "ada", &hash, &expires);
    if let EventData::RollbackApproved(a) = &mut forged.data {
        a.0.proof = bogus_proof("rb_1", "ada", &hash);
        a.0.proof.expires_at = expires.clone();
    }
    // An approval of the draft kind, naming the request's hash: another
    // type, never a rollback's approval.
    let draft_kind = w.humans.approved("rb_1", "bob", &hash);
    w.append(vec![request, forged, draft_kind]).await;
    let alert = wait_for_event(&w, "alert about the forged rollback approval", Duration::from_secs(10), |e| {
        e["type"] == "spend.security.alert.v1" && e["data"]["detail"].as_str().is_some_and(|d| d.contains("rb_1"))
    })
    .await;
    assert_eq!(alert["data"]["reason"], "approval.forged", "{alert}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(w.sandbox.campaign("cmp_1").unwrap().daily_budget_minor, 6_000, "nothing restored on a forgery");
    assert!(
        !w.events().await.iter().any(|(_, e)| e["type"] == "spend.change.rolled_back.v1"),
        "no rollback without a verified approval"
    );

    // A human's genuine approval: restored, refunded, and the moved one refused.
    let genuine = w.humans.approved_rollback("rb_1", "ada", &hash, &expires);
    w.append(vec![genuine]).await;
    let rolled_back = |d: &str| {
        let d = d.to_string();
        move |e: &serde_json::Value| e["type"] == "spend.change.rolled_back.v1" && e["data"]["draft_id"] == d.as_str()
    };
    let data = wait_for_event(&w, "rollback of the budget", Duration::from_secs(20), rolled_back(&budget)).await["data"].clone();
    assert_eq!(data["rollback_id"], "rb_1");
    assert_eq!(data["diff"][0]["before"], 6_000);
    assert_eq!(data["diff"][0]["after"], 5_000);
    assert_eq!(w.sandbox.campaign("cmp_1").unwrap().daily_budget_minor, 5_000);
    let data = wait_for_event(&w, "refund of the payment", Duration::from_secs(20), rolled_back(&pay)).await["data"].clone();
    assert_eq!(data["response"]["status"], "refunded");
    let refused = wait_for_event(&w, "refused rollback", Duration::from_secs(20), |e| e["type"] == "spend.rollback.refused.v1").await;
    assert_eq!(refused["data"]["draft_id"], moved.as_str());
    let reason = refused["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("moved since the push") && reason.contains("4000"), "{reason}");
    assert_eq!(
        w.sandbox.campaign("cmp_3").unwrap().daily_budget_minor,
        4_000,
        "nothing written over a moved state"
    );
    // The refund takes nothing back from the envelope: the ceilings bound
    // what was charged in its 24 hours and its month.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !w.events().await.iter().any(|(_, e)| e["type"] == "spend.budget.released.v1"),
        "a refund releases nothing"
    );
    let applied = w.applied().await;
    assert_eq!(applied["charged_minor"], 0, "charged once, refunded once");

    // A restarted executor undoes nothing twice.
    w.stop().await;
    w.start(POLICY, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = w.applied().await;
    assert_eq!(applied["by_key"][format!("rb_1-{budget}")], 1);
    assert_eq!(applied["by_key"][format!("rb_1-{pay}")], 1);
    let events = w.events().await;
    assert_eq!(events.iter().filter(|(_, e)| e["type"] == "spend.change.rolled_back.v1").count(), 2);
    assert_eq!(events.iter().filter(|(_, e)| e["type"] == "spend.rollback.refused.v1").count(), 1);
    w.stop().await;
}
