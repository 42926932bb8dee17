//! The push: the executor applies a change to its platform only on a proof,
//! exactly once, under the ceiling.
//!
//! For each draft the [`book`] finds approved (every approval verified
//! against the approver registry) or auto-approved:
//! 1. the account must hold the write scope — else the executor asks a
//!    human to consent (`spend.account.consent_requested.v1`) and waits;
//! 2. the live state is read again: a campaign that changed since it was
//!    drafted (or whose budget and status are not the ones the draft says
//!    it changes from) is stale, and refused; a payment is charged to the
//!    card it names, which must be active and not frozen by an operator,
//!    and its merchant's category, country and HTTPS are read from the
//!    platform's merchant data (never the draft's word for them);
//! 3. `spend.change.started.v1` (expected sequence 0 on
//!    `change.<change_id>`: one start per change, whatever the replicas),
//!    carrying the state before;
//! 4. the draft is judged again with the pure policy core against the
//!    version in force and the platform's facts — an auto-approval must
//!    still be one under a human-approved mandate (a compromised policy
//!    service's decision alone moves nothing, and is audited), a human's
//!    approval must not be denied by the version in force and must have as
//!    many distinct approvers as the larger of the decision's count and
//!    the rules' count now (never the policy service's word alone) — and
//!    committed against the envelope ([`crate::commit`]);
//! 5. applied with the draft's id as idempotency key, retrying what can
//!    succeed later (429 with `Retry-After`, 5xx, timeouts) until the
//!    deadline;
//! 6. `spend.change.pushed.v1` (before, after, the platform's answer), or
//!    `spend.change.failed.v1` only on a definitive refusal of the key
//!    (the commitment is then released). An outcome nobody knows (no
//!    answer by the deadline, an answer that is not about the key) is
//!    asked of the platform by the key; while it stays unknown the change
//!    stays started with its commitment, and is tried again later with
//!    the same key (docs/push.md).
//!
//! One replica at a time works on a change: it holds the change's lease
//! (in the executor's database) while it does. A replica that dies after
//! the platform applied the write and before step 6 leaves a started
//! change; whichever replica takes the lease next resumes at step 4: the
//! envelope has the draft already, the platform answers the same key with
//! its first answer, and the outcome's append expects the start's
//! sequence — one write, one commitment, one `change.pushed`. A change
//! that failed keeps its commitment until a release of it is on the log;
//! the book hands the release out as work until it is.
//!
//! A rollback ([`rollback`]) is the same discipline backwards: only on a
//! human's verified approval of the rollback request's exact bytes, only
//! while the live state is what the push left, once per change.

pub mod book;
mod finish;
pub mod platform;
mod rollback;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spend_core::events::{
    AccountConsentRequested, CardFrozen, ChangeFailed, ChangePushed, ChangeStarted, DraftChange, DraftProposed, EventData, FieldDiff, Outcome, SecurityAlert,
};
use spend_core::{Actor, Cause};
use spend_eventlog::{EventLog, LogError, Recorder, StoredMessage};
use spend_policy::evaluate::Decision;
use spend_policy::spendmd::SpendMd;
use tokio::sync::{RwLock, Semaphore, watch};

use crate::accounts::Connections;
use crate::commit::{self, Committed, Refusal};
use crate::connector::{Tokens, Want};
use book::{Audit, Book, Started, Work};
use finish::scope_of;
use platform::{KeyState, Platform, WriteError};

/// A write's idempotency key and what is known of it before it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    pub key: &'a str,
    /// A write with the key may have been sent before (a resumed change,
    /// a rollback tried before).
    pub maybe_sent: bool,
    /// Not sent after this (a payment's send window).
    pub send_by: Option<DateTime<Utc>>,
    /// The change's subject and the sequence it must still end at for the
    /// write to be sent: once another replica recorded the outcome, this
    /// one sends nothing more.
    pub open_at: Option<(&'a str, u64)>,
}

impl<'a> Key<'a> {
    /// A key that may have been sent before, with no send window (a
    /// rollback: tried again on every approval's tick until settled),
    /// sent while `subject` still ends at `seq`.
    pub(crate) fn resent(key: &'a str, subject: &'a str, seq: u64) -> Self {
        Self {
            key,
            maybe_sent: true,
            send_by: None,
            open_at: Some((subject, seq)),
        }
    }
}

/// What one push sent of a key: whether anything (now or before this
/// try), and when this try's last request ended.
pub(crate) struct Sent {
    ever: bool,
    last: Option<tokio::time::Instant>,
}

impl Sent {
    fn new(before: bool) -> Self {
        Self { ever: before, last: None }
    }

    fn now(&mut self) {
        self.ever = true;
        self.last = Some(tokio::time::Instant::now());
    }
}

/// What became of a write, as far as the platform has said.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Applied: the platform's answer.
    Applied(serde_json::Value),
    /// Refused for good: nothing with the key applied, or ever will.
    Refused(String),
    /// Nobody knows yet: tried again later with the same key.
    Unknown(String),
    /// Another replica recorded the outcome meanwhile: nothing to do.
    Settled,
}

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
    /// The longest wait between two tries of a change whose outcome is
    /// unknown (the waits double from a second up to this).
    pub unknown_backoff_max: Duration,
    /// How long a change's lease outlives its holder: the holder renews it
    /// every third of this while it works, so a replica that dies hands its
    /// changes on after at most this long.
    pub lease_ttl: Duration,
    /// The relying party approval passkeys are made on: a proof counts
    /// only when made there (from configuration, never from an event).
    pub passkey: spend_draft::proof::RelyingParty,
}

impl PushConfig {
    pub fn new(bootstrap: Arc<SpendMd>, passkey: spend_draft::proof::RelyingParty) -> Self {
        Self {
            bootstrap,
            passkey,
            concurrency: 8,
            deadline: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            unknown_backoff_max: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(15),
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
    /// Work whose outcome was unknown, and when to try it again (with the
    /// waits still to come).
    backoff: std::sync::Mutex<HashMap<(String, String), (tokio::time::Instant, spend_core::retry::Backoff)>>,
    /// This replica's name on the leases it holds.
    holder: String,
    permits: Arc<Semaphore>,
    /// Effects of messages at or below this sequence were had before this
    /// process started (a replay): not acted on again.
    live_from: std::sync::atomic::AtomicU64,
    /// Freezes asked for before this process started that no executor
    /// answered (it was down, or starting): answered once the replay is
    /// read, so an operator's freeze is never lost to a restart.
    unanswered: std::sync::Mutex<Vec<(String, spend_core::events::CardFreezeRequested)>>,
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
            book: RwLock::new(Book::new(config.passkey.clone(), config.bootstrap.clone())),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            recorder,
            connections,
            platform,
            config,
            in_flight: std::sync::Mutex::new(HashSet::new()),
            backoff: std::sync::Mutex::new(HashMap::new()),
            holder: uuid::Uuid::new_v4().to_string(),
            live_from: std::sync::atomic::AtomicU64::new(0),
            unanswered: std::sync::Mutex::new(Vec::new()),
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
        let live_from = self.live_from.load(std::sync::atomic::Ordering::SeqCst);
        if let Ok(env) = spend_core::RawEnvelope::parse(&m.payload) {
            if env.event_type == spend_core::events::CardFreezeRequested::TYPE
                && let Some(("card_freeze" | "kill_switch", _)) = spend_core::subject::split_aggregate(&m.subject, self.recorder.prefix(), &env.org)
                && let Ok(req) = serde_json::from_str::<spend_core::events::CardFreezeRequested>(env.data.get())
            {
                if m.seq > live_from {
                    self.freeze(&env.org, &req).await;
                } else {
                    self.unanswered.lock().expect("unanswered").push((env.org.to_string(), req));
                }
            } else if env.event_type == CardFrozen::TYPE
                && m.seq <= live_from
                && let Ok(frozen) = serde_json::from_str::<CardFrozen>(env.data.get())
            {
                // Answered: a freeze of every card is answered by any card's
                // freeze recorded after it (the executor records one per card).
                self.unanswered
                    .lock()
                    .expect("unanswered")
                    .retain(|(org, req)| !(org == &env.org && (req.card_id == frozen.card_id || req.card_id == "*")));
            }
        }
        if m.seq >= live_from {
            let pending = std::mem::take(&mut *self.unanswered.lock().expect("unanswered"));
            for (org, req) in pending {
                tracing::info!(org, card = %req.card_id, "answering a freeze asked for while no executor was reading");
                self.freeze(&org, &req).await;
            }
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
        let now = tokio::time::Instant::now();
        for work in due {
            let key = work.key();
            if self.backoff.lock().expect("backoff").get(&key).is_some_and(|(at, _)| *at > now) {
                continue;
            }
            if !self.in_flight.lock().expect("in flight").insert(key.clone()) {
                continue;
            }
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.in_flight.lock().expect("in flight").remove(&key);
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                // One replica at a time: the others leave it to the lease
                // holder until the lease lapses.
                let lease = format!("{}/{}", key.0, key.1);
                let ttl = me.config.lease_ttl.max(Duration::from_secs(1));
                match me.connections.lease(&lease, &me.holder, ttl).await {
                    Ok(true) => {
                        // Renewed while the work runs: it lapses only when
                        // this replica stops (or dies).
                        let keeper = {
                            let (me, lease) = (me.clone(), lease.clone());
                            tokio::spawn(async move {
                                loop {
                                    tokio::time::sleep(ttl / 3).await;
                                    if let Err(e) = me.connections.lease(&lease, &me.holder, ttl).await {
                                        tracing::warn!(lease, error = %e, "could not renew a lease");
                                    }
                                }
                            })
                        };
                        let settled = match work {
                            Work::Push { org, draft_id } => me.push(&org, &draft_id).await,
                            Work::Resume { org, draft_id, started } => me.finish(&org, &draft_id, started, true).await,
                            Work::RollBack { org, rollback_id, draft_id } => me.roll_back(&org, &rollback_id, &draft_id).await,
                            Work::Release { org, draft_id } => me.release(&org, &draft_id).await,
                        };
                        keeper.abort();
                        // Settled: the lease goes back. Unknown: this
                        // replica keeps it while it waits to try again, so
                        // the others do not try sooner.
                        let held = match me.back_off(&key, settled) {
                            None => me.connections.unlease(&lease, &me.holder).await,
                            Some(wait) => me.connections.lease(&lease, &me.holder, wait).await.map(|_| ()),
                        };
                        if let Err(e) = held {
                            tracing::warn!(lease, error = %e, "could not give a lease back or keep it; it lapses by itself");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(lease, error = %e, "cannot take the lease of a change; retrying"),
                }
                // Until the follower has read what the work recorded, the
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

    /// After a try: settled work forgets its backoff; work whose outcome
    /// is unknown waits about twice as long as last time (from a second,
    /// with jitter, up to the configured ceiling) before it is tried again.
    /// Returns the wait, for unsettled work.
    fn back_off(&self, key: &(String, String), settled: bool) -> Option<Duration> {
        let mut backoff = self.backoff.lock().expect("backoff");
        if settled {
            backoff.remove(key);
            return None;
        }
        let max = self.config.unknown_backoff_max;
        let (at, waits) = backoff
            .entry(key.clone())
            .or_insert_with(|| (tokio::time::Instant::now(), spend_core::retry::backoff(Duration::from_secs(1), max)));
        let wait = waits.wait();
        *at = tokio::time::Instant::now() + wait;
        Some(wait)
    }

    async fn record(&self, org: &str, aggregate: &'static str, id: &str, data: EventData, cause: Cause, expect: Option<u64>) -> Result<u64, LogError> {
        let mut e = self.recorder.event(org, Actor::service("executor"), aggregate, id, data).following(cause);
        if let Some(s) = expect {
            e = e.expect_seq(s);
        }
        e.record().await.map(|r| r.seq)
    }

    /// Steps 1 to 3, then [`Pusher::finish`]. Returns whether the work is
    /// settled for now (false: its outcome is unknown, tried again later).
    async fn push(&self, org: &str, draft_id: &str) -> bool {
        let Some((draft, cause, consent_asked)) = self
            .book
            .read()
            .await
            .tracked(org, draft_id)
            .map(|t| (t.draft.clone(), t.cause, t.consent_asked))
        else {
            return true;
        };
        let proposal = draft.proposal().clone();
        // 0. What the human was shown is what its change pushes (a draft
        // whose stored diff or impact disagrees is a compromised gateway's),
        // and a campaign draft names the live state it was drafted against.
        if let Some(why) = spend_draft::display::inconsistency(&proposal) {
            self.refuse_unstarted(org, draft_id, cause, &format!("refused: {why}")).await;
            let a = Audit {
                org: org.into(),
                reason: spend_draft::display::INCONSISTENT.into(),
                detail: why,
            };
            self.audit_once(&a, &format!("draft_inconsistent-{draft_id}")).await;
            return true;
        }
        let account = proposal.account_id.clone();
        let scope = scope_of(&proposal.change);
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
                        return true;
                    }
                    tracing::info!(org, draft_id, account, scope, "waiting for a human to grant the write scope");
                }
                self.book.write().await.park(org, draft_id);
                return true;
            }
            Err(spend_platform::ReadError::NotConnected(m)) => {
                self.refuse_unstarted(org, draft_id, cause, &format!("not connected: {m}")).await;
                return true;
            }
            Err(e) => {
                tracing::warn!(org, draft_id, error = %e, "cannot check the account's scopes; retrying");
                return true;
            }
        }
        // 2. The live state, read again.
        let before = match self.live_before(org, &account, &proposal).await {
            Ok(Ok(before)) => before,
            Ok(Err(why)) => {
                self.refuse_unstarted(org, draft_id, cause, &why).await;
                return true;
            }
            Err(e) => {
                tracing::warn!(org, draft_id, error = %e, "cannot read the live state; retrying");
                return true;
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
                self.finish(org, draft_id, s, false).await
            }
            Err(LogError::WrongLastSequence { .. }) => true,
            Err(e) => {
                tracing::warn!(org, draft_id, error = %e, "could not start the change; retrying");
                true
            }
        }
    }

    /// The live state a change starts from: `Ok(Ok(before))` to go on,
    /// `Ok(Err(why))` when the change cannot be made (stale, no usable
    /// card), `Err` to try again later.
    async fn live_before(&self, org: &str, account: &str, proposal: &DraftProposed) -> Result<Result<serde_json::Value, String>, String> {
        let token = self.connections.token(org, Want::Account(account), None).await.map_err(|e| e.to_string())?;
        match &proposal.change {
            DraftChange::Campaign {
                campaign_id,
                daily_budget_before,
                status_before,
                ..
            } => {
                let live = self.platform.campaign(&token, account, campaign_id).await.map_err(|e| e.to_string())?;
                let drafted = proposal
                    .drafted_against
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                if drafted.is_some_and(|d| d != live.updated_at) {
                    return Ok(Err(format!(
                        "stale: campaign {campaign_id} changed on the platform at {} after it was drafted against {}; re-draft it",
                        live.updated_at.to_rfc3339(),
                        proposal.drafted_against.clone().unwrap_or_default()
                    )));
                }
                // The draft says what it changes from; the platform says
                // what is there. A draft that disagrees (a compromised
                // gateway's, or one the platform moved past) is not pushed.
                if live.daily_budget_minor != daily_budget_before.minor_units || &live.status != status_before {
                    return Ok(Err(format!(
                        "stale: campaign {campaign_id} is {} a day and {} on the platform, but the draft changes it from {} a day and {}; re-draft it",
                        live.daily_budget_minor, live.status, daily_budget_before.minor_units, status_before
                    )));
                }
                Ok(Ok(serde_json::json!({
                    "campaign_id": live.id,
                    "daily_budget_minor": live.daily_budget_minor,
                    "bid_minor": live.bid_minor,
                    "status": live.status,
                    "updated_at": live.updated_at,
                })))
            }
            DraftChange::Payment { card_id, merchant, .. } => {
                let Some(card_id) = card_id else {
                    return Ok(Err("the payment names no card: re-draft it with the card to charge".into()));
                };
                let cards = self.platform.cards(&token).await.map_err(|e| e.to_string())?;
                let Some(card) = cards.iter().find(|c| &c.id == card_id) else {
                    return Ok(Err(format!("card {card_id} is not a card of {account}")));
                };
                if card.status != "active" {
                    return Ok(Err(format!("card {card_id} is {} at the platform: nothing is charged to it", card.status)));
                }
                if let Some(reason) = self.book.read().await.frozen(org, card_id) {
                    return Ok(Err(format!("card {card_id} was frozen by an operator ({reason}): nothing is charged to it")));
                }
                // The merchant as the platform knows it, judged at push
                // time (the draft's facts are the gateway's word).
                let facts = self.platform.merchant(&token, merchant).await.map_err(|e| e.to_string())?;
                Ok(Ok(serde_json::json!({
                    "card_id": card.id,
                    "last4": card.last4,
                    "status": card.status,
                    "merchant": facts,
                })))
            }
        }
    }

    /// Starts and fails at once a change refused before anything happened.
    async fn refuse_unstarted(&self, org: &str, draft_id: &str, cause: Cause, why: &str) {
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
            self.fail(org, draft_id, &s, cause, why).await;
        }
    }

    /// Records a change failed. Its commitment, if it had one, is released
    /// by [`Work::Release`] once the failure is on the log.
    async fn fail(&self, org: &str, draft_id: &str, s: &Started, cause: Cause, why: &str) {
        tracing::warn!(org, draft_id, reason = why, "push failed");
        let failed = EventData::ChangeFailed(ChangeFailed {
            change_id: s.change_id.clone(),
            draft_id: draft_id.into(),
            reason: why.chars().take(1_000).collect(),
        });
        match self.record(org, "change", &s.change_id, failed, cause, Some(s.seq)).await {
            Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(org, draft_id, error = %e, "could not record a failed change; retried"),
        }
    }

    /// Gives back the commitment of a change the platform refused for
    /// good (it never spent).
    async fn release(&self, org: &str, draft_id: &str) -> bool {
        let Some((proposal, cause, Some((counted, at)))) = self
            .book
            .read()
            .await
            .tracked(org, draft_id)
            .map(|t| (t.draft.proposal().clone(), t.cause, t.committed))
        else {
            return true;
        };
        match commit::release(&self.recorder, org, &proposal, counted, at, Some(cause)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(org, draft_id, error = %e, "could not release a commitment; retrying");
                false
            }
        }
    }

    /// The change as the rules judge it at push time: a payment with the
    /// platform's facts about its merchant as captured when it started.
    fn as_judged(proposal: &DraftProposed, before: Option<&serde_json::Value>) -> DraftProposed {
        let mut judged = proposal.clone();
        if let DraftChange::Payment { category, country, https, .. } = &mut judged.change {
            let facts = before.map(|b| &b["merchant"]);
            *category = facts.and_then(|m| m["category"].as_str()).map(str::to_string);
            *country = facts.and_then(|m| m["country"].as_str()).map(str::to_string);
            *https = facts.and_then(|m| m["https"].as_bool());
        }
        judged
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
