//! The push: the executor applies a change to its platform only on a proof,
//! exactly once, under the ceiling.
//!
//! For each draft the [`book`] finds approved (every approval verified
//! against the approver registry) or auto-approved:
//! 1. the account must hold the write scope — else the executor asks a
//!    human to consent (`spend.account.consent_requested.v1`) and waits;
//! 2. the live state is read again: a campaign that changed since it was
//!    drafted is stale, and refused; a payment needs a card no operator
//!    froze;
//! 3. `spend.change.started.v1` (expected sequence 0 on
//!    `change.<change_id>`: one start per change, whatever the replicas),
//!    carrying the state before;
//! 4. the draft is judged again with the pure policy core against the
//!    version in force — an auto-approval must still be one under a
//!    human-approved mandate (a compromised policy service's decision
//!    alone moves nothing, and is audited), an approval made under a
//!    version since replaced must not be denied by the new one — and
//!    committed against the envelope ([`crate::commit`]);
//! 5. applied with the draft's id as idempotency key, retrying what can
//!    succeed later (429 with `Retry-After`, 5xx, timeouts) until the
//!    deadline;
//! 6. `spend.change.pushed.v1` (before, after, the platform's answer) or
//!    `spend.change.failed.v1` (why; the commitment is released).
//!
//! A replica that dies after the platform applied the write and before
//! step 6 leaves a started change; whichever replica reads it next resumes
//! at step 4: the envelope has the draft already, the platform answers the
//! same key with its first answer, and the outcome's append expects the
//! start's sequence — one write, one commitment, one `change.pushed`.
//!
//! A rollback ([`rollback`]) is the same discipline backwards: only on a
//! human's verified approval of the rollback request's exact bytes, only
//! while the live state is what the push left, once per change.

pub mod book;
pub mod platform;
mod rollback;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spend_core::events::{
    AccountConsentRequested, CardFrozen, ChangeFailed, ChangePushed, ChangeStarted, DraftChange, EventData, FieldDiff, Outcome, SecurityAlert,
};
use spend_core::{Actor, Cause};
use spend_eventlog::{EventLog, LogError, Recorder, StoredMessage};
use spend_policy::spendmd::SpendMd;
use tokio::sync::{RwLock, Semaphore, watch};

use crate::accounts::Connections;
use crate::commit::{self, Committed};
use crate::connector::{Tokens, Want};
use book::{Audit, Book, Started, Work};
use platform::{Platform, WriteError};

/// How the executor pushes.
#[derive(Clone)]
pub struct PushConfig {
    /// The SPEND.md in force for an organisation until a human approves a
    /// version on the log. It never carries a standing mandate here: only
    /// a human-approved version can auto-approve.
    pub bootstrap: Arc<SpendMd>,
    /// Pushes at once.
    pub concurrency: usize,
    /// How long one write is retried before the change fails.
    pub deadline: Duration,
    /// One platform request's limit.
    pub request_timeout: Duration,
}

impl PushConfig {
    pub fn new(bootstrap: Arc<SpendMd>) -> Self {
        Self {
            bootstrap,
            concurrency: 8,
            deadline: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The executor's pushes.
pub struct Pusher {
    book: RwLock<Book>,
    recorder: Recorder,
    connections: Arc<Connections>,
    platform: Platform,
    config: PushConfig,
    in_flight: std::sync::Mutex<HashSet<(String, String)>>,
    permits: Arc<Semaphore>,
    /// Effects of messages at or below this sequence were had before this
    /// process started (a replay): not acted on again.
    live_from: std::sync::atomic::AtomicU64,
}

/// The change id of a draft's push: one per draft, the same on every
/// replica.
pub fn change_id(draft_id: &str) -> String {
    format!("ch_{draft_id}")
}

impl Pusher {
    pub fn new(recorder: Recorder, connections: Arc<Connections>, platform_url: &str, config: PushConfig) -> Result<Arc<Self>, String> {
        let platform = Platform::new(platform_url, config.request_timeout)?;
        Ok(Arc::new(Self {
            book: RwLock::new(Book::default()),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            recorder,
            connections,
            platform,
            config,
            in_flight: std::sync::Mutex::new(HashSet::new()),
            live_from: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Follows the log and pushes what is due, until `stop`; then lets the
    /// pushes in hand reach their outcome (a push cut short is resumed by
    /// whichever replica reads it next).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let log = self.recorder.log().clone();
        if let Ok(info) = log.info().await {
            self.live_from.store(info.last_seq, std::sync::atomic::Ordering::SeqCst);
        }
        let me = self.clone();
        let follower = tokio::spawn(spend_eventlog::follow_until(log.clone(), 1, stop.clone(), move |m| {
            let me = me.clone();
            async move { me.apply(&m).await }
        }));
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
            self.clone().tick(&log).await;
        }
        let _ = follower.await;
        // Every permit back: no push in hand.
        let _ = self.permits.acquire_many(self.config.concurrency.max(1) as u32).await;
    }

    async fn apply(&self, m: &StoredMessage) {
        let audit = self.book.write().await.apply(self.recorder.prefix(), m);
        if let Some(a) = audit {
            self.audit_once(&a, &format!("{}-{}", a.reason.replace('.', "_"), m.seq)).await;
        }
        if m.seq > self.live_from.load(std::sync::atomic::Ordering::SeqCst)
            && let Ok(env) = spend_core::RawEnvelope::parse(&m.payload)
            && env.event_type == spend_core::events::CardFreezeRequested::TYPE
            && let Some(("card_freeze" | "kill_switch", _)) = spend_core::subject::split_aggregate(&m.subject, self.recorder.prefix(), &env.org)
            && let Ok(req) = serde_json::from_str::<spend_core::events::CardFreezeRequested>(env.data.get())
        {
            self.freeze(&env.org, &req).await;
        }
    }

    /// One alert per message, however many replicas or replays read it.
    async fn audit_once(&self, a: &Audit, id: &str) {
        let alert = SecurityAlert {
            reason: a.reason.clone(),
            key_id: None,
            address: None,
            detail: a.detail.chars().take(2_000).collect(),
        };
        tracing::warn!(org = %a.org, reason = %a.reason, detail = %a.detail, "refused");
        match self.recorder.alert(&a.org, alert).on_id(id).expect_seq(0).record().await {
            Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(error = %e, "could not record a security alert"),
        }
    }

    async fn tick(self: Arc<Self>, log: &Arc<dyn EventLog>) {
        let Ok(info) = log.info().await else { return };
        let due = {
            let book = self.book.read().await;
            if book.seq < info.last_seq {
                return;
            }
            book.due()
        };
        for work in due {
            let key = match &work {
                Work::Push { org, draft_id } | Work::Resume { org, draft_id, .. } => (org.clone(), draft_id.clone()),
                Work::RollBack { org, rollback_id, draft_id } => (org.clone(), format!("{rollback_id}/{draft_id}")),
            };
            if !self.in_flight.lock().expect("in flight").insert(key.clone()) {
                continue;
            }
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.in_flight.lock().expect("in flight").remove(&key);
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                match work {
                    Work::Push { org, draft_id } => me.push(&org, &draft_id).await,
                    Work::Resume { org, draft_id, started } => me.finish(&org, &draft_id, started).await,
                    Work::RollBack { org, rollback_id, draft_id } => me.roll_back(&org, &rollback_id, &draft_id).await,
                }
                // Until the follower has read what the push recorded, the
                // book would offer it again: wait for the log to catch up.
                let seq = me.recorder.log().info().await.map(|i| i.last_seq).unwrap_or(0);
                for _ in 0..50 {
                    if me.book.read().await.seq >= seq {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                me.in_flight.lock().expect("in flight").remove(&key);
                drop(permit);
            });
        }
    }

    async fn record(&self, org: &str, aggregate: &'static str, id: &str, data: EventData, cause: Cause, expect: Option<u64>) -> Result<u64, LogError> {
        let mut e = self.recorder.event(org, Actor::service("executor"), aggregate, id, data).following(cause);
        if let Some(s) = expect {
            e = e.expect_seq(s);
        }
        e.record().await.map(|r| r.seq)
    }

    /// Steps 1 to 3, then [`Pusher::finish`].
    async fn push(&self, org: &str, draft_id: &str) {
        let Some((draft, cause, consent_asked)) = self
            .book
            .read()
            .await
            .tracked(org, draft_id)
            .map(|t| (t.draft.clone(), t.cause, t.consent_asked))
        else {
            return;
        };
        let proposal = draft.proposal().clone();
        let account = proposal.account_id.clone();
        let scope = match proposal.change {
            DraftChange::Payment { .. } => "cards.write",
            DraftChange::Campaign { .. } => "ads.write",
        };
        // 1. The write scope, consented to by a human.
        match self.connections.holds(org, &account, scope).await {
            Ok(true) => {}
            Ok(false) => {
                if !consent_asked {
                    let asked = EventData::AccountConsentRequested(AccountConsentRequested {
                        platform: self.connections.platform().to_string(),
                        account_id: account.clone(),
                        scope: scope.into(),
                        draft_id: draft_id.into(),
                    });
                    let id = format!("{}-{account}", self.connections.platform());
                    if let Err(e) = self.record(org, "account", &id, asked, cause, None).await {
                        tracing::warn!(error = %e, "could not ask for a consent");
                        return;
                    }
                    tracing::info!(org, draft_id, account, scope, "waiting for a human to grant the write scope");
                }
                self.book.write().await.park(org, draft_id);
                return;
            }
            Err(spend_platform::ReadError::NotConnected(m)) => {
                return self.refuse_unstarted(org, draft_id, cause, None, &format!("not connected: {m}")).await;
            }
            Err(e) => {
                tracing::warn!(org, draft_id, error = %e, "cannot check the account's scopes; retrying");
                return;
            }
        }
        // 2. The live state, read again.
        let token = match self.connections.token(org, Want::Account(&account), None).await {
            Ok(t) => t,
            Err(e) => return tracing::warn!(org, draft_id, error = %e, "cannot read the live state; retrying"),
        };
        let before = match &proposal.change {
            DraftChange::Campaign { campaign_id, .. } => match self.platform.campaign(&token, &account, campaign_id).await {
                Ok(live) => {
                    let drafted = proposal
                        .drafted_against
                        .as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    if drafted.is_some_and(|d| d != live.updated_at) {
                        let why = format!(
                            "stale: campaign {campaign_id} changed on the platform at {} after it was drafted against {}; re-draft it",
                            live.updated_at.to_rfc3339(),
                            proposal.drafted_against.clone().unwrap_or_default()
                        );
                        return self.refuse_unstarted(org, draft_id, cause, None, &why).await;
                    }
                    serde_json::json!({
                        "campaign_id": live.id,
                        "daily_budget_minor": live.daily_budget_minor,
                        "bid_minor": live.bid_minor,
                        "status": live.status,
                        "updated_at": live.updated_at,
                    })
                }
                Err(e) => return tracing::warn!(org, draft_id, error = %e, "cannot read the campaign; retrying"),
            },
            DraftChange::Payment { .. } => {
                let cards = match self.platform.cards(&token).await {
                    Ok(c) => c,
                    Err(e) => return tracing::warn!(org, draft_id, error = %e, "cannot read the cards; retrying"),
                };
                let book = self.book.read().await;
                let usable = cards.iter().find(|c| c.status == "active" && book.frozen(org, &c.id).is_none());
                match usable {
                    Some(c) => serde_json::json!({"card_id": c.id, "last4": c.last4, "status": c.status}),
                    None => {
                        drop(book);
                        let why = format!("no card of {account} can be charged: every card is frozen (by an operator or at the platform)");
                        return self.refuse_unstarted(org, draft_id, cause, None, &why).await;
                    }
                }
            }
        };
        // 3. Started, once.
        let change = change_id(draft_id);
        let started = EventData::ChangeStarted(ChangeStarted {
            change_id: change.clone(),
            draft_id: draft_id.into(),
            before: Some(before.clone()),
        });
        match self.record(org, "change", &change, started, cause, Some(0)).await {
            Ok(seq) => {
                let s = Started {
                    change_id: change,
                    seq,
                    before: Some(before),
                };
                self.finish(org, draft_id, s).await;
            }
            Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::warn!(org, draft_id, error = %e, "could not start the change; retrying"),
        }
    }

    /// Starts and fails at once a change refused before anything happened.
    async fn refuse_unstarted(&self, org: &str, draft_id: &str, cause: Cause, alert: Option<&str>, why: &str) {
        let change = change_id(draft_id);
        let started = EventData::ChangeStarted(ChangeStarted {
            change_id: change.clone(),
            draft_id: draft_id.into(),
            before: None,
        });
        if let Ok(seq) = self.record(org, "change", &change, started, cause, Some(0)).await {
            let s = Started {
                change_id: change,
                seq,
                before: None,
            };
            self.fail(org, draft_id, &s, cause, why, None, None).await;
            if let Some(reason) = alert {
                let a = Audit {
                    org: org.into(),
                    reason: reason.into(),
                    detail: format!("draft {draft_id}: {why}"),
                };
                self.audit_once(&a, &format!("{}-{draft_id}", reason.replace('.', "_"))).await;
            }
        }
    }

    /// Records a change failed (and releases its commitment).
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        org: &str,
        draft_id: &str,
        s: &Started,
        cause: Cause,
        why: &str,
        counted: Option<(i64, DateTime<Utc>)>,
        draft: Option<&spend_core::events::DraftProposed>,
    ) {
        tracing::warn!(org, draft_id, reason = why, "push failed");
        let failed = EventData::ChangeFailed(ChangeFailed {
            change_id: s.change_id.clone(),
            draft_id: draft_id.into(),
            reason: why.chars().take(1_000).collect(),
        });
        match self.record(org, "change", &s.change_id, failed, cause, Some(s.seq)).await {
            Ok(_) => {
                if let (Some((n, at)), Some(d)) = (counted, draft)
                    && let Err(e) = commit::release(&self.recorder, org, d, n, at, Some(cause)).await
                {
                    tracing::error!(org, draft_id, error = %e, "could not release a failed change's commitment");
                }
            }
            Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(org, draft_id, error = %e, "could not record a failed change"),
        }
    }

    /// Steps 4 to 6, for a change started (now, or before a crash).
    async fn finish(&self, org: &str, draft_id: &str, s: Started) {
        let (draft, cause, policy, mandate) = {
            let book = self.book.read().await;
            let Some(t) = book.tracked(org, draft_id) else { return };
            let (policy, mandate) = match book.versions.active(org) {
                Some(a) => (a.policy.clone(), true),
                None => (self.config.bootstrap.clone(), false),
            };
            (t.draft.clone(), t.cause, policy, mandate)
        };
        let proposal = draft.proposal().clone();
        // Auto-approved: no human approved it, so the standing mandate of
        // the version in force must grant it now.
        let automatic = draft.approvers().is_empty();
        let accept = |o: &Outcome| if automatic { *o == Outcome::AutoApprove } else { *o != Outcome::Deny };
        // 4. Judged again and committed under the ceiling.
        let counted = match commit::commit(&self.recorder, org, &proposal, &policy, mandate, accept, Some(cause)).await {
            Ok(Committed::Now { counted, at }) => Some((counted, at)),
            Ok(Committed::Already) => None,
            Ok(Committed::Refused { outcome, reasons }) => {
                let listed: Vec<String> = reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
                let why = if automatic && outcome != Outcome::Deny {
                    format!(
                        "refused: the decision auto-approved it, but under SPEND.md {} it is {outcome:?}{}: only a human-approved standing mandate pushes without a human",
                        policy.version,
                        if mandate { "" } else { " (no version in force was approved by a human)" }
                    )
                } else {
                    format!("refused under SPEND.md {} in force now: {}", policy.version, listed.join("; "))
                };
                self.fail(org, draft_id, &s, cause, &why, None, None).await;
                if automatic && outcome != Outcome::Deny {
                    let a = Audit {
                        org: org.into(),
                        reason: "push.unapproved".into(),
                        detail: format!("draft {draft_id}: {why}"),
                    };
                    self.audit_once(&a, &format!("push_unapproved-{draft_id}")).await;
                }
                return;
            }
            Err(e) => return tracing::warn!(org, draft_id, error = %e, "could not commit; the push is retried"),
        };
        // 5. Applied, once, retried while it can succeed.
        let scope = match proposal.change {
            DraftChange::Payment { .. } => "cards.write",
            DraftChange::Campaign { .. } => "ads.write",
        };
        let result = self.apply_with_retries(org, draft_id, &proposal, scope, s.before.as_ref()).await;
        // 6. The outcome.
        match result {
            Ok(response) => {
                let diff = diff_of(&proposal.change, s.before.as_ref(), &response);
                let pushed = EventData::ChangePushed(ChangePushed {
                    change_id: s.change_id.clone(),
                    draft_id: draft_id.into(),
                    platform: self.connections.platform().into(),
                    idempotency_key: draft_id.into(),
                    diff,
                    response: Some(response),
                });
                match self.record(org, "change", &s.change_id, pushed, cause, Some(s.seq)).await {
                    Ok(_) => tracing::info!(org, draft_id, "pushed"),
                    Err(LogError::WrongLastSequence { .. }) => {}
                    Err(e) => tracing::error!(org, draft_id, error = %e, "the platform applied the change but its record failed; resumed later"),
                }
            }
            Err(why) => self.fail(org, draft_id, &s, cause, &why, counted, Some(&proposal)).await,
        }
    }

    async fn apply_with_retries(
        &self,
        org: &str,
        draft_id: &str,
        proposal: &spend_core::events::DraftProposed,
        scope: &str,
        before: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        self.with_retries(org, draft_id, &proposal.account_id, scope, |token| async move {
            match &proposal.change {
                DraftChange::Campaign {
                    campaign_id,
                    field,
                    daily_budget_after,
                    status_after,
                    ..
                } => {
                    let fields = match field.as_str() {
                        "budget" => serde_json::json!({"daily_budget_minor": daily_budget_after.minor_units}),
                        "status" => serde_json::json!({"status": status_after}),
                        _ => bid_fields(proposal),
                    };
                    self.platform.update_campaign(&token, campaign_id, fields, draft_id).await
                }
                DraftChange::Payment { amount, merchant, .. } => {
                    let card = before.and_then(|b| b["card_id"].as_str()).unwrap_or_default();
                    if let Some(reason) = self.book.read().await.frozen(org, card) {
                        return Err(WriteError::Refused(format!("card {card} was frozen by an operator: {reason}")));
                    }
                    self.platform
                        .charge(&token, card, merchant, amount.minor_units, &amount.currency, draft_id)
                        .await
                }
            }
        })
        .await
    }

    /// Makes one write with the account's token (fetched afresh each
    /// try), retrying what can succeed later (429 with `Retry-After`, 5xx,
    /// timeouts, a token the vault cannot refresh yet) with backoff until
    /// the push deadline; a refusal ends it at once.
    async fn with_retries<F, Fut>(&self, org: &str, what: &str, account: &str, scope: &str, attempt: F) -> Result<serde_json::Value, String>
    where
        F: Fn(crate::connector::PlatformToken) -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value, WriteError>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.deadline;
        let mut wait = Duration::from_millis(500);
        let mut tries = 0u32;
        loop {
            tries += 1;
            let outcome = match self.connections.token(org, Want::Account(account), Some(scope)).await {
                Ok(token) => attempt(token).await,
                Err(spend_platform::ReadError::Unavailable(m)) => Err(WriteError::Retry { after: None, reason: m }),
                Err(e) => return Err(format!("the account's token: {e}")),
            };
            match outcome {
                Ok(r) => return Ok(r),
                Err(WriteError::Refused(m)) => return Err(m),
                Err(WriteError::Retry { after, reason }) => {
                    let pause = after.unwrap_or(wait);
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(format!("gave up after {tries} tries: {reason}"));
                    }
                    tracing::info!(org, what, tries, retry_in_ms = pause.as_millis() as u64, %reason, "the platform did not apply it yet; retrying");
                    tokio::time::sleep(pause).await;
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
            }
        }
    }

    /// An operator's freeze: from now on no charge on the card (or any
    /// card); frozen at the platform too where the connection may.
    async fn freeze(&self, org: &str, req: &spend_core::events::CardFreezeRequested) {
        let cards: Vec<String> = if req.card_id == "*" {
            match self.connections.token(org, Want::Cards, Some("cards.read")).await {
                Ok(token) => self
                    .platform
                    .cards(&token)
                    .await
                    .map(|c| c.into_iter().map(|c| c.id).collect())
                    .unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(org, error = %e, "cannot list the cards to freeze; every charge is refused all the same");
                    vec!["*".into()]
                }
            }
        } else {
            vec![req.card_id.clone()]
        };
        let write = self.connections.token(org, Want::Cards, Some("cards.write")).await.ok();
        for card in cards {
            let at_platform = match (&write, card.as_str()) {
                (Some(t), c) if c != "*" => self.platform.freeze(t, c).await.is_ok(),
                _ => false,
            };
            let frozen = EventData::CardFrozen(CardFrozen {
                card_id: card.clone(),
                reason: format!(
                    "{}{}",
                    req.reason,
                    if at_platform {
                        " (frozen at the platform too)"
                    } else {
                        " (the executor refuses every charge on it)"
                    }
                ),
            });
            let id = if card == "*" { "all".to_string() } else { card.clone() };
            if let Err(e) = self.recorder.event(org, Actor::service("executor"), "card", &id, frozen).record().await {
                tracing::error!(org, card, error = %e, "could not record a frozen card");
            }
        }
    }
}

fn bid_fields(proposal: &spend_core::events::DraftProposed) -> serde_json::Value {
    let after = proposal
        .diff
        .iter()
        .find(|d| d.path.ends_with("/bid"))
        .and_then(|d| d.after.get("minor_units").and_then(|m| m.as_i64()));
    serde_json::json!({"bid_minor": after.unwrap_or_default()})
}

/// The change as recorded: each field before → after.
fn diff_of(change: &DraftChange, before: Option<&serde_json::Value>, response: &serde_json::Value) -> Vec<FieldDiff> {
    match change {
        DraftChange::Campaign { campaign_id, .. } => ["daily_budget_minor", "bid_minor", "status"]
            .iter()
            .filter_map(|f| {
                let b = before.map(|b| b[*f].clone()).unwrap_or_default();
                let a = response[*f].clone();
                (b != a).then(|| FieldDiff {
                    path: format!("campaign/{campaign_id}/{f}"),
                    before: b,
                    after: a,
                })
            })
            .collect(),
        DraftChange::Payment { .. } => vec![FieldDiff {
            path: format!("card/{}/charges", response["card_id"].as_str().unwrap_or_default()),
            before: serde_json::Value::Null,
            after: response.clone(),
        }],
    }
}
