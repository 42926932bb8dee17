//! The life of drafts at the gateway: stale when the live state moves or
//! after 48 hours; circuit breakers that pause an account until a human
//! resets it; SPEND.md versions that take effect only once a human
//! approves them; forged approvals that change nothing and are audited.

use std::sync::Arc;

use crate::common::{Gateway, alerts, embedded_log, events};
use spend_core::events::{ApprovalGranted, BreakerReset, EventData, PolicyProposed};
use spend_core::{Actor, Envelope};
use spend_eventlog::{Append, EventLog};
use spend_gateway::GatewayConfig;
use spend_gateway::ops::{ChangeRequest, OpError, ProposeRequest};

const POLICY: &str = "\
spend:
  daily_limit: 1000 USD
  per_transaction: 100 USD
approval:
  require_confirmation_over: 500 USD
";

fn budget(campaign: &str, new: i64) -> ProposeRequest {
    ProposeRequest {
        account_id: "act_1001".into(),
        rationale: "pacing well".into(),
        change: ChangeRequest::Budget {
            campaign_id: campaign.into(),
            new_daily_budget_minor: new,
            currency: None,
        },
    }
}

fn payment(minor: i64) -> ProposeRequest {
    ProposeRequest {
        account_id: "card_1".into(),
        rationale: "API credits".into(),
        change: ChangeRequest::Payment {
            amount_minor: minor,
            currency: "USD".into(),
            merchant: "openai.com".into(),
            card_id: "crd_1".into(),
            category: None,
            country: None,
            url: None,
        },
    }
}

fn payment_to(merchant: &str, stated_category: Option<&str>) -> ProposeRequest {
    ProposeRequest {
        account_id: "card_1".into(),
        rationale: "tools".into(),
        change: ChangeRequest::Payment {
            amount_minor: 2_000,
            currency: "USD".into(),
            merchant: merchant.into(),
            card_id: "crd_1".into(),
            category: stated_category.map(Into::into),
            country: None,
            url: Some(format!("https://{merchant}/billing")),
        },
    }
}

async fn append(log: &Arc<dyn EventLog>, subject: String, env: Envelope) {
    log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_goes_stale_when_the_live_state_moves() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let gw = Gateway::start(log.clone(), POLICY, GatewayConfig::new("")).await;
    let who = gw.identity(&gw.key);
    let d1 = gw.state.propose_change(&who, budget("cmp_1", 5_500)).await.unwrap();
    let d2 = gw.state.propose_change(&who, budget("cmp_2", 12_500)).await.unwrap();
    assert_eq!(d1.status, "pending_approval");
    assert_eq!(gw.state.get_draft_status(&who, &d1.draft_id).await.unwrap().status, "pending_approval");

    // Someone changes cmp_1 on the platform itself.
    let moved = reqwest::Client::new()
        .patch(format!("{}/v1/campaigns/cmp_1", gw.sandbox_url))
        .bearer_auth("sandbox-test-token")
        .json(&serde_json::json!({"daily_budget_minor": 4_000}))
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success());
    let s = gw.state.get_draft_status(&who, &d1.draft_id).await.unwrap();
    assert_eq!(s.status, "stale");
    let pending = gw.state.list_pending_drafts(&who, None).await.unwrap();
    assert_eq!(pending.iter().map(|d| d.draft_id.as_str()).collect::<Vec<_>>(), vec![d2.draft_id.as_str()]);
    // Recorded once, on the draft's subject, with its reason.
    let staled: Vec<_> = events(&log).await.into_iter().filter(|e| e["type"] == "spend.draft.staled.v1").collect();
    assert_eq!(staled.len(), 1);
    assert_eq!(staled[0]["data"]["draft_id"], d1.draft_id.as_str());
    assert_eq!(staled[0]["data"]["reason"], "live_state_moved");
    assert_eq!(staled[0]["subject"], format!("draft/{}", d1.draft_id));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_platform_errors_trip_the_breaker_until_a_human_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let gw = Gateway::start(log.clone(), POLICY, GatewayConfig::new("")).await;
    let who = gw.identity(&gw.key);
    let faults = spend_testkit::sandbox_control::post(&gw.sandbox_url, "/sandbox/faults", serde_json::json!({"fail_next": 5, "status": 503})).await;
    assert_eq!(faults.status(), 204);
    for _ in 0..5 {
        let e = gw.state.list_campaigns(&who, "act_1001").await.unwrap_err();
        assert!(matches!(e, OpError::Unavailable(_)), "{e}");
    }
    // The platform is back, but the account stays paused for drafts.
    assert_eq!(gw.state.list_campaigns(&who, "act_1001").await.unwrap().len(), 3);
    let e = gw.state.propose_change(&who, budget("cmp_1", 5_100)).await.unwrap_err();
    assert!(e.to_string().contains("circuit breaker"), "{e}");
    // Other accounts are not affected.
    assert!(gw.state.propose_change(&who, payment(100)).await.is_ok());
    let all = alerts(&log, 1).await;
    assert!(all.iter().any(|a| a["data"]["reason"] == "breaker.tripped"), "{all:?}");
    let tripped: Vec<_> = events(&log).await.into_iter().filter(|e| e["type"] == "spend.breaker.tripped.v1").collect();
    assert_eq!(tripped.len(), 1);
    assert_eq!(tripped[0]["data"]["reason"], "platform_errors");

    // A human resets it (as `spend breaker reset` does).
    let reset = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("ops"),
        "breaker_reset/act_1001",
        EventData::BreakerReset(BreakerReset {
            account_id: "act_1001".into(),
            note: "platform incident over".into(),
        }),
    );
    // Resets are the operator's, on a subject of their own.
    append(&log, "spend.evt.acme.breaker_reset.act_1001".into(), reset).await;
    gw.state.caught_up().await.unwrap();
    assert!(gw.state.propose_change(&who, budget("cmp_1", 5_100)).await.is_ok());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_agent_trips_the_pacing_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let mut config = GatewayConfig::new("");
    config.breaker.max_drafts_per_minute = 10;
    let gw = Gateway::start(log.clone(), POLICY, config).await;
    let who = gw.identity(&gw.key);
    for _ in 0..11 {
        gw.state.propose_change(&who, payment(100)).await.unwrap();
    }
    let e = gw.state.propose_change(&who, payment(100)).await.unwrap_err();
    assert!(e.to_string().contains("pacing_anomaly"), "{e}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_version_applies_once_a_human_approves_it_and_forgeries_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let gw = Gateway::start(log.clone(), POLICY, GatewayConfig::new("")).await;
    let who = gw.identity(&gw.key);
    let before = gw.state.propose_change(&who, payment(300)).await.unwrap();
    assert_eq!(before.status, "pending_approval", "no mandate in the bootstrap policy");
    let bootstrap_version = before.decision.unwrap().policy_version;

    // A new version with a standing mandate, proposed as a draft.
    let source = format!("{POLICY}  auto_approve_under: 5 USD\n");
    let version = spend_policy::spendmd::version_of(&source);
    let proposed = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("ops"),
        "draft/p1",
        EventData::PolicyProposed(PolicyProposed {
            draft_id: "p1".into(),
            version: version.clone(),
            source,
            previous_version: Some(bootstrap_version.clone()),
            enables_auto_approve: true,
        }),
    );
    // Serialization is deterministic: these are the bytes appended.
    let hash = spend_draft::event_hash(&proposed.to_bytes());
    append(&log, "spend.evt.acme.policy.p1".into(), proposed).await;
    gw.state.caught_up().await.unwrap();
    let pending = gw.state.propose_change(&who, payment(300)).await.unwrap();
    assert_eq!(pending.decision.unwrap().policy_version, bootstrap_version, "proposed is not in force");

    // A forged approval: an agent's, on the draft subject.
    let forged = Envelope::new(
        "spendsignoff/gateway",
        "acme",
        Actor::agent(gw.key.created.key_id.clone()),
        "draft/p1",
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: "p1".into(),
            approval_id: "a0".into(),
            step: 1,
            credential_id: "none".into(),
            approver_id: "mallory".into(),
            approved_hash: hash.clone(),
            proof: spend_testkit::events::bogus_proof("p1", "mallory", &hash),
        }),
    );
    append(&log, "spend.evt.acme.draft.p1".into(), forged).await;
    gw.state.caught_up().await.unwrap();
    let still = gw.state.propose_change(&who, payment(300)).await.unwrap();
    assert_eq!(still.decision.unwrap().policy_version, bootstrap_version, "a forgery changes nothing");
    let by_gateway = |a: &serde_json::Value| a["data"]["reason"] == "event.misplaced" && a["subject"].as_str().unwrap_or("").starts_with("security_gateway/");
    let forged_alerts: Vec<_> = alerts(&log, 1).await.into_iter().filter(by_gateway).collect();
    assert_eq!(forged_alerts.len(), 1);
    assert!(
        forged_alerts[0]["data"]["detail"].as_str().unwrap().contains("draft.p1"),
        "{}",
        forged_alerts[0]
    );

    // The approval service records a human's approval, with a passkey
    // proof by an approver the registry trusts.
    // Enabling a mandate loosens: two approvers, one an admin.
    let mut humans = spend_testkit::events::Approvers::new("acme", &["alice", "bob"]);
    spend_testkit::events::append_all(&*log, "spend.evt", humans.trust()).await;
    let approved = humans.approved_policy("p1", &["alice", "bob"], &hash, &version);
    spend_testkit::events::append_all(&*log, "spend.evt", approved).await;
    gw.state.caught_up().await.unwrap();
    let after = gw.state.propose_change(&who, payment(300)).await.unwrap();
    let decision = after.decision.unwrap();
    assert_eq!(decision.policy_version, version, "decisions name the approved version");
    assert_eq!(decision.outcome, "auto_approve", "the standing mandate applies");
    gw.stop().await;

    // A replica starting later replays the log: the approved version is in
    // force there too, and the old forgery is not alerted a second time.
    let replica = Gateway::start(log.clone(), POLICY, GatewayConfig::new("")).await;
    let who = replica.identity(&replica.key);
    let d = replica.state.propose_change(&who, payment(300)).await.unwrap();
    assert_eq!(d.decision.unwrap().policy_version, version);
    let forged_alerts = events(&log).await.into_iter().filter(by_gateway).count();
    assert_eq!(forged_alerts, 1, "one alert per forgery, however many replicas replay it");
    replica.stop().await;
}

/// `allowed_categories` and `blocked_categories` judge the category the
/// platform's merchant data gives, never the one the agent states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_come_from_the_platform_not_from_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let policy = "\
spend:
  daily_limit: 1000 USD
  per_transaction: 100 USD
  allowlist: [openai.com]
  allowed_categories: [software]
  blocked_categories: [gambling]
approval:
  require_confirmation_over: 500 USD
";
    let gw = Gateway::start(log.clone(), policy, GatewayConfig::new("")).await;
    let who = gw.identity(&gw.key);
    let reasons = |d: &spend_gateway::ops::DraftOut| d.decision.as_ref().unwrap().reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>();

    // figma.com is not allowlisted, but the platform files it under software.
    let figma = gw.state.propose_change(&who, payment_to("figma.com", None)).await.unwrap();
    assert_eq!(figma.status, "pending_approval", "{:?}", reasons(&figma));
    assert!(!reasons(&figma).contains(&"allowlist.merchant".to_string()), "{:?}", reasons(&figma));

    // A merchant the platform does not know: saying "software" does not help.
    let unknown = gw
        .state
        .propose_change(&who, payment_to("totally-legit.example", Some("software")))
        .await
        .unwrap();
    assert_eq!(unknown.status, "denied");
    assert!(reasons(&unknown).contains(&"allowlist.merchant".to_string()), "{:?}", reasons(&unknown));

    // The platform files the casino under gambling, whatever the agent says.
    let casino = gw.state.propose_change(&who, payment_to("Casino.Example.com", Some("software"))).await.unwrap();
    assert_eq!(casino.status, "denied");
    assert!(reasons(&casino).contains(&"category.blocked".to_string()), "{:?}", reasons(&casino));

    // What was recorded for the policy is the platform's category.
    let events = events(&log).await;
    let recorded: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "spend.draft.proposed.v1")
        .map(|e| e["data"]["change"]["category"].clone())
        .collect();
    assert_eq!(
        recorded,
        vec![serde_json::json!("software"), serde_json::Value::Null, serde_json::json!("gambling")]
    );
    gw.stop().await;
}

/// `geographic_restrictions` and `require_https` judge what the platform's
/// merchant data says (fail closed when it says nothing), never what the
/// agent states; a payment names the card it charges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_and_https_come_from_the_platform_and_a_payment_names_its_card() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let policy = "\
spend:
  daily_limit: 1000 USD
  per_transaction: 100 USD
  geographic_restrictions: [US]
  require_https: true
";
    let gw = Gateway::start(log.clone(), policy, GatewayConfig::new("")).await;
    let who = gw.identity(&gw.key);
    let reasons = |d: &spend_gateway::ops::DraftOut| d.decision.as_ref().unwrap().reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>();
    let stated = |merchant: &str| {
        let mut p = payment_to(merchant, Some("software"));
        if let ChangeRequest::Payment { country, url, .. } = &mut p.change {
            *country = Some("US".into());
            *url = Some(format!("https://{merchant}/pay"));
        }
        p
    };
    // The agent says US; the platform says France.
    let fr = gw.state.propose_change(&who, stated("tools.example.fr")).await.unwrap();
    assert_eq!(reasons(&fr), vec!["geography.restricted"]);
    // The agent gives an https URL; the platform says the merchant does not
    // take payment over HTTPS.
    let plain = gw.state.propose_change(&who, stated("plain.example.com")).await.unwrap();
    assert_eq!(reasons(&plain), vec!["https.required"]);
    // The platform knows nothing: both rules fail closed.
    let unknown = gw.state.propose_change(&who, stated("nobody.example")).await.unwrap();
    assert_eq!(reasons(&unknown), vec!["https.unknown", "geography.unknown"]);
    let ok = gw.state.propose_change(&who, stated("openai.com")).await.unwrap();
    assert_eq!(ok.status, "pending_approval", "{:?}", reasons(&ok));
    let events = events(&log).await;
    let change = events
        .iter()
        .rev()
        .find(|e| e["type"] == "spend.draft.proposed.v1")
        .map(|e| e["data"]["change"].clone())
        .unwrap();
    assert_eq!(
        (change["country"].clone(), change["https"].clone(), change["card_id"].clone()),
        (serde_json::json!("US"), serde_json::json!(true), serde_json::json!("crd_1"))
    );
    // A card the organisation does not have: refused before anything is drafted.
    let mut nope = stated("openai.com");
    if let ChangeRequest::Payment { card_id, .. } = &mut nope.change {
        *card_id = "crd_999".into();
    }
    assert!(matches!(gw.state.propose_change(&who, nope).await, Err(OpError::NotFound(_))));
    gw.stop().await;
}
