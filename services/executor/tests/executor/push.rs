//! The push on the real parts: JetStream, PostgreSQL, moto's KMS and the
//! sandbox platform over a socket; approvals made with software passkeys.
//!
//! - an approved campaign change and payment are pushed once (started with
//!   the state before, committed, applied with the draft's id as
//!   idempotency key, recorded with before, after and the platform's
//!   answer); a restarted executor writes nothing again;
//! - a write waits for a human's consent to the write scope, then goes;
//!   a grant names its draft, and lets only that one go on;
//! - a change another replica holds the lease of is left to it until the
//!   lease lapses; an approver removed after approving counts no more at
//!   the push;
//! - a draft whose campaign changed on the platform is refused as stale;
//! - 429 with `Retry-After` and 5xx are retried; a platform that keeps
//!   failing leaves the outcome unknown (committed, never released) until
//!   it answers; a definitive refusal of the key ends it failed, released;
//!   an answer that comes too late is settled by asking the platform what
//!   it did with the key;
//! - 200 approved drafts at once, over three accounts and both rails,
//!   never take the platform past the daily ceiling; each refused one says
//!   why; a standing rate must fit 31 days of every later month;
//! - a payment is judged on the platform's merchant data read at push, and
//!   charges the card it names or none;
//! - releasing one of two commitments on a campaign keeps the other's rate;
//! - an auto-approval without a human-approved mandate is refused and
//!   audited; under one, it is pushed.
//!
//! Freezes and rollbacks are in [`crate::freeze_and_rollback`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use spend_core::events::{DraftChange, DraftProposed, EventData, Outcome};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{EventLog, Recorder};
use spend_executor::accounts::{Access, Connections};
use spend_executor::push::{PushConfig, Pusher, change_id};
use spend_sandbox::Sandbox;
use spend_testkit::events::{Approvers, append_all, decided, on_log, payment_proposed};
use spend_testkit::{Streams, TestDatabase};

use crate::common::{Platform, raise};
use crate::freeze_and_rollback::freeze_requested;

pub(crate) const POLICY: &str = "\
spend:
  daily_limit: 300 USD
  monthly_limit: 20000 USD
  per_transaction: 300 USD
approval:
  require_confirmation_over: 250 USD
";

pub(crate) struct World {
    pub(crate) platform: Platform,
    pub(crate) sandbox: Sandbox,
    pub(crate) base: String,
    pub(crate) connections: Arc<Connections>,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) prefix: String,
    pub(crate) humans: Approvers,
    pub(crate) _db: TestDatabase,
    pub(crate) _streams: Streams,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    pub(crate) pusher: Option<tokio::task::JoinHandle<()>>,
}

impl World {
    pub(crate) async fn new(policy: &str, deadline: Duration, writable: &[&str], readable: &[&str]) -> Self {
        let platform = Platform::start().await;
        let streams = Streams::new();
        let prefix = streams.events.subject_prefix.clone();
        let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(streams.events.clone()).await.unwrap());
        let db = TestDatabase::create().await;
        let connections = platform.connections(log.clone(), &prefix, &db.url, None).await;
        let mut humans = Approvers::new("acme", &["ada", "bob"]);
        append_all(log.as_ref(), &prefix, humans.trust()).await;
        for a in readable {
            crate::common::consent(&connections, Access::Read, a).await;
        }
        crate::common::writable(&connections, writable).await;
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut w = Self {
            sandbox: platform.sandbox.clone(),
            base: platform.base.clone(),
            platform,
            connections,
            log,
            prefix,
            humans,
            _db: db,
            _streams: streams,
            stop,
            pusher: None,
        };
        w.start(policy, deadline);
        w
    }

    /// A human consents on the platform's page.
    pub(crate) async fn consent(&self, access: Access, account: &str) {
        crate::common::consent(&self.connections, access, account).await;
    }

    pub(crate) fn start(&mut self, policy: &str, deadline: Duration) {
        self.start_with(policy, |c| c.deadline = deadline);
    }

    /// Starts the executor's pushes with the configuration `configure`
    /// makes of the defaults.
    pub(crate) fn start_with(&mut self, policy: &str, configure: impl FnOnce(&mut PushConfig)) {
        let mut config = PushConfig::new(Arc::new(spend_policy::spendmd::parse(policy).unwrap()), spend_draft::humans::test_rp());
        configure(&mut config);
        let pusher = Pusher::new(
            Recorder::new(self.log.clone(), &self.prefix, spend_core::authority::Writer::Executor),
            self.connections.clone(),
            &self.base,
            config,
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        self.stop = stop;
        self.pusher = Some(tokio::spawn(pusher.run(stopped)));
    }

    pub(crate) async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(p) = self.pusher.take() {
            p.await.unwrap();
        }
    }

    pub(crate) async fn append(&self, envs: Vec<Envelope>) {
        append_all(self.log.as_ref(), &self.prefix, envs).await;
    }

    /// A draft, decided as needing a human, approved by `approvers`.
    pub(crate) async fn approved(&mut self, proposed: Envelope, outcome: Outcome, approvers: &[&str]) -> String {
        let EventData::DraftProposed(d) = &proposed.data else { panic!("a draft") };
        let id = d.draft_id.clone();
        let hash = spend_draft::event_hash(&proposed.to_bytes());
        let mut envs = vec![proposed, decided("acme", &id, outcome)];
        for a in approvers {
            envs.push(self.humans.approved(&id, a, &hash));
        }
        self.append(envs).await;
        id
    }

    /// The outcome of a draft's change: (type, data), waiting for it.
    pub(crate) async fn outcome(&self, draft_id: &str, within: Duration) -> (String, serde_json::Value) {
        let subject = format!("{}.acme.change.{}", self.prefix, change_id(draft_id));
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.log.last_on_subject(&subject).await.unwrap() {
                let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                if e["type"] != "spend.change.started.v1" {
                    return (e["type"].as_str().unwrap().to_string(), e["data"].clone());
                }
            }
            assert!(Instant::now() < deadline, "no outcome for {draft_id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn applied(&self) -> serde_json::Value {
        self.platform.applied().await
    }

    pub(crate) async fn faults(&self, f: serde_json::Value) {
        self.platform.faults(f).await;
    }

    pub(crate) async fn events(&self) -> Vec<(String, serde_json::Value)> {
        on_log(self.log.as_ref()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_changes_are_pushed_once_with_their_before_and_after() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["act_1001", "card_1"], &[]).await;
    let budget = w
        .approved(raise(&w.sandbox, "d_budget", "act_1001", "cmp_1", 6_000), Outcome::RequireApproval, &["ada"])
        .await;
    let pay = w.approved(payment_proposed("acme", "d_pay", 1_200), Outcome::RequireApproval, &["ada"]).await;
    let (t, data) = w.outcome(&budget, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert_eq!(data["diff"][0]["path"], "campaign/cmp_1/daily_budget_minor");
    assert_eq!(
        (data["diff"][0]["before"].clone(), data["diff"][0]["after"].clone()),
        (serde_json::json!(5_000), serde_json::json!(6_000))
    );
    assert_eq!(data["response"]["daily_budget_minor"], 6_000);
    assert_eq!(w.sandbox.campaign("cmp_1").unwrap().daily_budget_minor, 6_000);
    let (t, data) = w.outcome(&pay, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert_eq!(data["response"]["merchant"], "openai.com");
    assert_eq!(data["response"]["amount_minor"], 1_200);
    // Started with the state before; committed before the write.
    let events = w.events().await;
    let started = events
        .iter()
        .find(|(_, e)| e["type"] == "spend.change.started.v1" && e["data"]["draft_id"] == budget.as_str())
        .unwrap();
    assert_eq!(started.1["data"]["before"]["daily_budget_minor"], 5_000);
    let committed: Vec<&serde_json::Value> = events.iter().map(|(_, e)| e).filter(|e| e["type"] == "spend.budget.committed.v1").collect();
    assert_eq!(committed.len(), 2);
    // A restarted executor writes nothing again.
    w.stop().await;
    w.start(POLICY, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = w.applied().await;
    assert_eq!(applied["by_key"][&budget], 1);
    assert_eq!(applied["by_key"][&pay], 1);
    assert_eq!(applied["writes"], 2);
    let pushed = w.events().await.iter().filter(|(_, e)| e["type"] == "spend.change.pushed.v1").count();
    assert_eq!(pushed, 2);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_a_humans_consent_to_the_write_scope() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &[], &["act_1002"]).await;
    let id = w
        .approved(raise(&w.sandbox, "d_consent", "act_1002", "cmp_5", 8_000), Outcome::RequireApproval, &["ada"])
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let asked = w
            .events()
            .await
            .into_iter()
            .any(|(_, e)| e["type"] == "spend.account.consent_requested.v1" && e["data"]["scope"] == "ads.write");
        if asked {
            break;
        }
        assert!(Instant::now() < deadline, "no consent asked for");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.applied().await["writes"], 0, "nothing written without the scope");
    w.consent(
        Access::Write {
            account_id: "act_1002".into(),
            draft_id: id.clone(),
        },
        "act_1002",
    )
    .await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert_eq!(w.sandbox.campaign("cmp_5").unwrap().daily_budget_minor, 8_000);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_drafts_are_refused_and_platform_faults_are_retried_or_end_failed() {
    let mut w = World::new(POLICY, Duration::from_secs(4), &["act_1001", "card_1"], &[]).await;
    // Someone edits the campaign on the platform after it was drafted.
    let stale = raise(&w.sandbox, "d_stale", "act_1001", "cmp_2", 13_000);
    spend_testkit::sandbox_control::post(&w.base, "/sandbox/campaigns/cmp_2", serde_json::json!({"daily_budget_minor": 12_500})).await;
    let id = w.approved(stale, Outcome::RequireApproval, &["ada"]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1");
    assert!(data["reason"].as_str().unwrap().starts_with("stale:"), "{data}");
    assert_eq!(w.sandbox.campaign("cmp_2").unwrap().daily_budget_minor, 12_500, "nothing written");

    // 429 with Retry-After, then 503: retried, pushed once.
    w.faults(serde_json::json!({"fail_next": 1, "status": 429, "retry_after": 1, "writes_only": true}))
        .await;
    let started = Instant::now();
    let id = w.approved(payment_proposed("acme", "d_retry", 700), Outcome::RequireApproval, &["ada"]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured");
    w.faults(serde_json::json!({"fail_next": 2, "status": 503, "writes_only": true})).await;
    let id = w.approved(payment_proposed("acme", "d_503", 800), Outcome::RequireApproval, &["ada"]).await;
    assert_eq!(w.outcome(&id, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");

    // A platform that keeps failing past the deadline: the outcome is
    // unknown, not failed — the commitment stays, nothing is released, and
    // the write goes once the platform answers again.
    w.faults(serde_json::json!({"fail_next": 1000, "status": 503, "writes_only": true})).await;
    let id = w.approved(payment_proposed("acme", "d_down", 900), Outcome::RequireApproval, &["ada"]).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let events = w.events().await;
    assert!(
        events
            .iter()
            .any(|(_, e)| e["type"] == "spend.budget.committed.v1" && e["data"]["draft_id"] == "d_down"),
        "committed"
    );
    assert!(
        !events
            .iter()
            .any(|(_, e)| e["data"]["draft_id"] == "d_down" && (e["type"] == "spend.change.failed.v1" || e["type"] == "spend.budget.released.v1")),
        "an unknown outcome is neither failed nor released"
    );
    w.faults(serde_json::json!({"fail_next": 0})).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(30)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");

    // A definitive refusal of the key: failed, and its commitment released.
    w.faults(serde_json::json!({"random": {"seed": 1, "decline": 1000, "writes": 1}})).await;
    let id = w
        .approved(payment_proposed("acme", "d_declined", 600), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1");
    assert!(data["reason"].as_str().unwrap().contains("declined"), "{data}");
    wait_for_event(&w, "the release of the declined payment", Duration::from_secs(10), |e| {
        e["type"] == "spend.budget.released.v1" && e["data"]["draft_id"] == "d_declined"
    })
    .await;
    let applied = w.applied().await;
    assert_eq!(applied["charged_minor"], 2_400, "the three that went through, once each");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_comes_too_late_is_settled_by_its_key_and_its_commitment_kept() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    w.stop().await;
    // Every write is applied at once and answered 2.5 s later; the
    // executor waits 1 s for an answer. Each retry with the same key meets
    // the first request still being answered (409, as platforms answer).
    w.start_with(POLICY, |c| {
        c.deadline = Duration::from_secs(3);
        c.request_timeout = Duration::from_secs(1);
    });
    w.faults(serde_json::json!({"delay_next": 100, "delay_ms": 2_500})).await;
    let id = w.approved(payment_proposed("acme", "d_late", 400), Outcome::RequireApproval, &["ada"]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(30)).await;
    assert_eq!(t, "spend.change.pushed.v1", "the platform says what it did with the key: {data}");
    assert_eq!(data["response"]["amount_minor"], 400);
    let applied = w.applied().await;
    assert_eq!(
        (applied["by_key"][&id].clone(), applied["charged_minor"].clone()),
        (serde_json::json!(1), serde_json::json!(400))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = w.events().await;
    assert!(
        !events.iter().any(|(_, e)| e["type"] == "spend.budget.released.v1"),
        "nothing the platform applied is released"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standing_rate_must_fit_every_later_month_not_only_the_rest_of_this_one() {
    // 60 USD a day is 1,860 USD in a 31-day month: over 1,500 USD, however
    // few days this month has left.
    let policy = "spend:\n  daily_limit: 300 USD\n  monthly_limit: 1500 USD\n";
    let mut w = World::new(policy, Duration::from_secs(30), &["act_1001"], &[]).await;
    let id = w
        .approved(raise(&w.sandbox, "d_month", "act_1001", "cmp_1", 6_000), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    let reason = data["reason"].as_str().unwrap();
    assert!(reason.contains("limit.monthly") && reason.contains("every month from the next on"), "{reason}");
    assert_eq!(w.sandbox.campaign("cmp_1").unwrap().daily_budget_minor, 5_000, "nothing written");
    // 48 USD a day fits every month (1,488 USD in 31 days): pushed.
    let id = w
        .approved(raise(&w.sandbox, "d_fits", "act_1001", "cmp_3", 4_800), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    w.stop().await;
}

/// A payment of `minor` to `merchant` on `card`, as a (compromised)
/// gateway records it: whatever facts it likes about the merchant.
pub(crate) fn payment_to(id: &str, merchant: &str, card: Option<&str>, minor: i64) -> Envelope {
    let mut e = payment_proposed("acme", id, minor);
    if let EventData::DraftProposed(d) = &mut e.data
        && let DraftChange::Payment {
            merchant: m,
            category,
            country,
            https,
            card_id,
            url,
            ..
        } = &mut d.change
    {
        *m = merchant.into();
        *category = Some("software".into());
        *country = Some("US".into());
        *https = Some(true);
        *url = Some(format!("https://{merchant}/pay"));
        *card_id = card.map(str::to_string);
        // Shown as it is (a display that disagrees is refused on its own).
        let shown = spend_draft::display::derive(&d.change).unwrap();
        d.diff = shown.diff;
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_judged_on_the_platforms_merchant_data_read_again_at_push() {
    let policy = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\n  blocked_categories: [gambling]\n  geographic_restrictions: [US]\n  require_https: true\n";
    let mut w = World::new(policy, Duration::from_secs(30), &["card_1"], &[]).await;
    // Each says "software, US, https" of its merchant; the platform knows
    // better, or knows nothing (and a rule that needs a fact fails closed).
    let cases = [
        ("d_casino", "casino.example.com", "category.blocked"),
        ("d_france", "tools.example.fr", "geography.restricted"),
        ("d_plain", "plain.example.com", "https.required"),
        ("d_unknown", "unknown-merchant.example", "category.unknown"),
    ];
    for (id, merchant, _) in cases {
        w.approved(payment_to(id, merchant, Some("crd_1"), 500), Outcome::RequireApproval, &["ada"])
            .await;
    }
    for (id, _, code) in cases {
        let (t, data) = w.outcome(id, Duration::from_secs(20)).await;
        assert_eq!(t, "spend.change.failed.v1", "{id}: {data}");
        assert!(data["reason"].as_str().unwrap().contains(code), "{id}: {data}");
    }
    let unknown = w.outcome("d_unknown", Duration::from_secs(1)).await.1["reason"].as_str().unwrap().to_string();
    assert!(unknown.contains("geography.unknown") && unknown.contains("https.unknown"), "{unknown}");
    // What the platform knows to be fine is paid.
    let id = w
        .approved(payment_to("d_openai", "openai.com", Some("crd_1"), 500), Outcome::RequireApproval, &["ada"])
        .await;
    assert_eq!(w.outcome(&id, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    assert_eq!(w.applied().await["charged_minor"], 500);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_charges_the_card_it_names_or_none() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    w.append(vec![freeze_requested("crd_1", "lost")]).await;
    wait_for_event(&w, "the freeze", Duration::from_secs(10), |e| e["type"] == "spend.card.frozen.v1").await;
    // Named crd_1, which is frozen: charged to no other card.
    let frozen = w
        .approved(payment_to("d_on_frozen", "openai.com", Some("crd_1"), 700), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&frozen, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    assert!(data["reason"].as_str().unwrap().contains("crd_1"), "{data}");
    // Named no card (a draft from before cards were named): refused.
    let none = w
        .approved(payment_to("d_no_card", "openai.com", None, 700), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&none, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    assert!(data["reason"].as_str().unwrap().contains("names no card"), "{data}");
    // Named crd_2: charged to crd_2.
    let named = w
        .approved(payment_to("d_on_crd_2", "openai.com", Some("crd_2"), 700), Outcome::RequireApproval, &["ada"])
        .await;
    let (t, data) = w.outcome(&named, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert_eq!(data["response"]["card_id"], "crd_2");
    let applied = w.applied().await;
    let charges = applied["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 1, "{applied}");
    assert_eq!(charges[0]["card_id"], "crd_2");
    w.stop().await;
}

/// Nothing sent on the change of `draft_id` and nothing charged, watched
/// for `during`.
async fn nothing_sent(w: &World, draft_id: &str, during: Duration) {
    let subject = format!("{}.acme.change.{}", w.prefix, change_id(draft_id));
    let watch = Instant::now() + during;
    while Instant::now() < watch {
        assert!(w.log.last_on_subject(&subject).await.unwrap().is_none(), "{draft_id} was started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.applied().await["writes"], 0, "{draft_id} was written");
}

/// Replicas take a lease on a change before they work on it: while another
/// replica holds it this one starts and sends nothing; once it lapses (a
/// dead holder renews it no more), this one pushes the change, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_another_replica_holds_is_left_to_it_until_its_lease_lapses() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    let held = Duration::from_secs(6);
    let taken = Instant::now();
    assert!(w.connections.lease("acme/change/d_leased", "a-replica-that-died", held).await.unwrap());
    let id = w
        .approved(payment_to("d_leased", "openai.com", Some("crd_1"), 700), Outcome::RequireApproval, &["ada"])
        .await;
    nothing_sent(&w, &id, Duration::from_secs(4)).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(30)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    assert!(taken.elapsed() >= held, "pushed {:?} into another replica's lease of {held:?}", taken.elapsed());
    assert_eq!(w.applied().await["charges"].as_array().unwrap().len(), 1);
    w.stop().await;
}

/// An approver removed after the draft had all its approvals, before the
/// push: the executor counts the approvals it holds at push time, so the
/// change is refused (released, nothing written), naming who was removed.
/// (Another replica's lease holds the push back while the removal lands.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_removed_before_the_push_counts_no_more_at_the_push() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["card_1"], &[]).await;
    assert!(
        w.connections
            .lease("acme/change/d_unapproved", "another-replica", Duration::from_secs(4))
            .await
            .unwrap()
    );
    let id = w
        .approved(payment_to("d_unapproved", "openai.com", Some("crd_1"), 700), Outcome::RequireApproval, &["bob"])
        .await;
    w.append(vec![w.humans.removed("bob", "left the team")]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(30)).await;
    assert_eq!(t, "spend.change.failed.v1", "{data}");
    let why = data["reason"].as_str().unwrap();
    assert!(why.contains("0 approved") && why.contains("bob, removed since"), "{why}");
    assert_eq!(w.applied().await["writes"], 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_grant_lets_only_the_draft_it_names_go_on() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &[], &["act_1002"]).await;
    let first = w
        .approved(raise(&w.sandbox, "d_grant_a", "act_1002", "cmp_4", 21_000), Outcome::RequireApproval, &["ada"])
        .await;
    let second = w
        .approved(raise(&w.sandbox, "d_grant_b", "act_1002", "cmp_5", 8_000), Outcome::RequireApproval, &["ada"])
        .await;
    wait_for_event(&w, "a consent asked for the second draft", Duration::from_secs(15), |e| {
        e["type"] == "spend.account.consent_requested.v1" && e["data"]["draft_id"] == second.as_str()
    })
    .await;
    // The human grants write access for the first draft only.
    w.consent(
        Access::Write {
            account_id: "act_1002".into(),
            draft_id: first.clone(),
        },
        "act_1002",
    )
    .await;
    assert_eq!(w.outcome(&first, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = w.applied().await;
    assert_eq!(applied["writes"], 1, "the second waits for a grant that names it: {applied}");
    assert_eq!(w.sandbox.campaign("cmp_5").unwrap().daily_budget_minor, 7_500);
    w.consent(
        Access::Write {
            account_id: "act_1002".into(),
            draft_id: second.clone(),
        },
        "act_1002",
    )
    .await;
    assert_eq!(w.outcome(&second, Duration::from_secs(20)).await.0, "spend.change.pushed.v1");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_a_campaign_commitment_keeps_what_a_later_commitment_on_it_counts() {
    // Two replicas commit two raises of cmp_1 drafted against the same live
    // 50 USD a day: 80, then 100. The first fails for good and is released;
    // the campaign may still spend the second's 100 a day.
    let mut w = World::new(POLICY, Duration::from_secs(30), &["act_1001"], &[]).await;
    let recorder = Recorder::new(w.log.clone(), &w.prefix, spend_core::authority::Writer::Executor);
    let policy = spend_policy::spendmd::parse(POLICY).unwrap();
    let drafts: Vec<DraftProposed> = [("d_r80", 8_000), ("d_r100", 10_000)]
        .iter()
        .map(|(id, to)| match raise(&w.sandbox, id, "act_1001", "cmp_1", *to).data {
            EventData::DraftProposed(d) => d,
            _ => unreachable!(),
        })
        .collect();
    let mut at = Vec::new();
    for d in &drafts {
        let anything = |_: &spend_policy::evaluate::Decision| Ok(());
        match spend_executor::commit::commit(&recorder, "acme", d, &policy, false, anything, None)
            .await
            .unwrap()
        {
            spend_executor::commit::Committed::Now { counted, at: t } => at.push((counted, t)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((at[0].0, at[1].0), (8_000, 2_000));
    spend_executor::commit::release(&recorder, "acme", &drafts[0], at[0].0, at[0].1, None)
        .await
        .unwrap();
    let (state, _) = spend_executor::commit::envelope(&recorder, "acme").await.unwrap();
    assert_eq!(
        state.campaigns.iter().find(|c| c.campaign_id == "cmp_1").map(|c| c.daily_minor),
        Some(10_000),
        "the rate left is the outstanding commitment's, not 100 - 80: {state:?}"
    );
    // Released once, however often it is asked.
    spend_executor::commit::release(&recorder, "acme", &drafts[0], at[0].0, at[0].1, None)
        .await
        .unwrap();
    let released = w.events().await.iter().filter(|(_, e)| e["type"] == "spend.budget.released.v1").count();
    assert_eq!(released, 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_approved_drafts_at_once_never_cross_the_daily_ceiling() {
    let mut w = World::new(POLICY, Duration::from_secs(30), &["act_1001", "act_1002", "card_1"], &[]).await;
    // Both rails, three accounts: raises of four campaigns, and payments.
    let raises = [
        ("act_1001", "cmp_1", 9_000),
        ("act_1001", "cmp_3", 6_000),
        ("act_1002", "cmp_4", 24_000),
        ("act_1002", "cmp_5", 9_000),
    ];
    let mut envs = Vec::new();
    let mut ids = Vec::new();
    for (i, (account, campaign, after)) in raises.iter().enumerate() {
        let d = raise(&w.sandbox, &format!("d_r{i}"), account, campaign, *after);
        ids.push(format!("d_r{i}"));
        envs.push(d);
    }
    for i in 0..196 {
        ids.push(format!("d_p{i}"));
        envs.push(payment_proposed("acme", &format!("d_p{i}"), 300 + (i % 7) * 100));
    }
    let mut all = Vec::new();
    for proposed in envs {
        let EventData::DraftProposed(d) = &proposed.data else { unreachable!() };
        let id = d.draft_id.clone();
        let hash = spend_draft::event_hash(&proposed.to_bytes());
        all.push(proposed);
        all.push(decided("acme", &id, Outcome::RequireApproval));
        all.push(w.humans.approved(&id, "ada", &hash));
    }
    w.append(all).await;
    let mut refused = 0;
    for id in &ids {
        let (t, data) = w.outcome(id, Duration::from_secs(120)).await;
        if t == "spend.change.failed.v1" {
            refused += 1;
            let reason = data["reason"].as_str().unwrap();
            assert!(reason.contains("limit.daily") || reason.contains("limit.monthly"), "{id}: {reason}");
        }
    }
    assert!(refused > 0, "the ceiling was reached");
    // What the platform applied: charges, and the campaigns' daily rates
    // (a budget spends every day) — never over 300 USD.
    let applied = w.applied().await;
    let campaigns = applied["campaigns"].as_array().unwrap();
    let written: i64 = raises
        .iter()
        .filter(|(_, c, after)| campaigns.iter().any(|x| x["id"] == *c && x["daily_budget_minor"] == *after))
        .map(|(_, _, after)| after)
        .sum();
    let charged = applied["charged_minor"].as_i64().unwrap();
    assert!(charged + written <= 30_000, "charged {charged} + daily budgets {written} > 30000");
    assert!(
        charged + written > 30_000 - 1_000,
        "the ceiling was used, not refused early: {}",
        charged + written
    );
    println!(
        "200 approved drafts at once: {refused} refused, each saying which limit; the platform applied {charged} charged + {written} of daily budgets, ceiling 30000"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_approval_without_a_human_approved_mandate_is_refused_and_audited() {
    // The file enables a mandate, but no human approved it.
    let policy = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\napproval:\n  auto_approve_under: 10 USD\n";
    let mut w = World::new(policy, Duration::from_secs(30), &["card_1"], &[]).await;
    let id = w.approved(payment_proposed("acme", "d_auto", 500), Outcome::AutoApprove, &[]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.failed.v1");
    assert!(data["reason"].as_str().unwrap().contains("human-approved standing mandate"), "{data}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w
        .events()
        .await
        .iter()
        .any(|(s, e)| s.contains(".security_executor.") && e["data"]["reason"] == "push.unapproved")
    {
        assert!(Instant::now() < deadline, "not audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.applied().await["writes"], 0);

    // A human approves a version with the mandate: now it applies.
    let proposal = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("operator"),
        "policy/p1",
        EventData::PolicyProposed(spend_core::events::PolicyProposed {
            draft_id: "p1".into(),
            version: spend_policy::spendmd::version_of(policy),
            source: policy.into(),
            previous_version: None,
            enables_auto_approve: true,
        }),
    );
    let hash = spend_draft::event_hash(&proposal.to_bytes());
    // Enabling a mandate loosens: two approvers, one an admin.
    let mut events = vec![proposal];
    events.extend(
        w.humans
            .approved_policy("p1", &["ada", "bob"], &hash, &spend_policy::spendmd::version_of(policy)),
    );
    w.append(events).await;
    let id = w.approved(payment_proposed("acme", "d_auto2", 500), Outcome::AutoApprove, &[]).await;
    let (t, data) = w.outcome(&id, Duration::from_secs(20)).await;
    assert_eq!(t, "spend.change.pushed.v1", "{data}");
    w.stop().await;
}

/// Waits for an event on the log that `pred` picks.
pub(crate) async fn wait_for_event(w: &World, what: &str, within: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some((_, e)) = w.events().await.into_iter().find(|(_, e)| pred(e)) {
            return e;
        }
        assert!(Instant::now() < deadline, "no {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
