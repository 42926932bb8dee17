//! The policy service decides: given a draft id, it reads the draft from
//! the log (never from the caller), evaluates it against the SPEND.md
//! version in force and the policy's envelope as the executor's
//! commitments left it, and records its one decision on
//! `decision.<draft_id>` (expected last subject sequence 0, so a draft is
//! decided once, by whichever call or replica gets there first). Nothing
//! else may write decisions (k8s/nats/auth.conf). It commits nothing: the
//! executor commits against the envelope right before it pushes, and
//! re-checks the ceiling then, so a decision is never what lets spend
//! through.
//!
//! Events of one draft form one correlation: the decision follows the
//! draft, the limit notices follow the decision.
//!
//! [`decide_undecided`] runs beside the RPC: a durable consumer that
//! decides, on its own, any draft still undecided a short while after it
//! was recorded — so no draft waits for a human without a decision, even
//! when the gateway's call failed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use spend_core::authority::Writer;
use spend_core::events::{BudgetCommitted, DraftProposed, EnvelopeState, EventData, LimitApproaching, LimitExceeded, PolicyEvaluated};
use spend_core::{Actor, ActorKind, Cause, Money, RawEnvelope};
use spend_draft::approvers::Registry;
use spend_eventlog::read::{Read, classify, misplaced_alert};
use spend_eventlog::{EventLog, LogError, Recorder, StartAt, StoredMessage};
use spend_policy::decide::{Decide, DecideError};
use spend_policy::evaluate::evaluate;
use spend_policy::judge::Judged;
use spend_policy::spendmd::SpendMd;
use spend_policy::versions::{Noticed, Versions};
use tokio::sync::{RwLock, watch};

use crate::recent::{Recent, Recorded};

/// The aggregate id of the policy's envelope: `budget.envelope`.
pub const ENVELOPE_ID: &str = "envelope";
/// The durable consumer `spend nats init` creates for [`decide_undecided`].
pub const CONSUMER: &str = "policy";
/// How long a draft may wait for the gateway's call before the policy
/// service decides it on its own.
pub const UNDECIDED_AFTER: Duration = Duration::from_secs(2);
/// How long a decision waits for the follower to deliver a draft before it
/// reads the draft from the log itself.
const FOLLOWER_WAIT: Duration = Duration::from_millis(20);

/// The SPEND.md a process starts with, in force until a human approves a
/// version of an organisation's own.
#[derive(Clone)]
pub struct Bootstrap {
    pub policy: Arc<SpendMd>,
    pub source: String,
    pub approved_by_human: bool,
    /// The relying party approval passkeys are made on (from this
    /// service's configuration, never from an event).
    pub passkey: spend_draft::proof::RelyingParty,
}

/// What the policy service knows from following the log.
pub struct PolicyState {
    pub bootstrap: Bootstrap,
    pub versions: RwLock<Versions>,
    /// Who may approve (a policy approval counts only with a proof by one
    /// of them), as the log says so far.
    pub approvers: RwLock<Registry>,
    /// Undecided drafts and envelopes the follower saw ([`crate::recent`]).
    recent: std::sync::Mutex<Recent>,
    /// The last log sequence applied.
    seen: watch::Sender<u64>,
}

impl PolicyState {
    pub fn new(bootstrap: Bootstrap) -> Arc<Self> {
        Arc::new(Self {
            versions: RwLock::new(Versions::new(Some(bootstrap.policy.clone()))),
            approvers: RwLock::new(Registry::new(bootstrap.passkey.clone())),
            bootstrap,
            recent: std::sync::Mutex::default(),
            seen: watch::channel(0).0,
        })
    }

    /// The version in force for `org`, whether a human approved it, and
    /// its text.
    pub async fn active(&self, org: &str) -> (Arc<SpendMd>, bool, String) {
        match self.versions.read().await.active(org) {
            Some(a) => (a.policy.clone(), true, a.proposal.source.clone()),
            None => (self.bootstrap.policy.clone(), self.bootstrap.approved_by_human, self.bootstrap.source.clone()),
        }
    }

    /// Waits until the versions reflect the log up to `seq`.
    pub async fn reached(&self, seq: u64) -> Result<(), DecideError> {
        let mut rx = self.seen.subscribe();
        match tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(DecideError::Unavailable(format!(
                "the policy service's view of the log is behind (at {}, needs {seq})",
                *self.seen.borrow()
            ))),
        }
    }

    pub fn seen(&self) -> u64 {
        *self.seen.borrow()
    }

    /// The undecided draft `draft_id` as the follower delivered it, with
    /// the envelope as of the follower's position, waiting up to `wait`
    /// for the follower to get there; `None` if it did not.
    async fn recent_draft(&self, org: &str, draft_id: &str, wait: Duration) -> Option<(Recorded, (EnvelopeState, u64))> {
        // `Err`: settled (decided, or no draft there): do not wait.
        let lookup = || {
            let recent = self.recent.lock().expect("recent lock");
            if recent.settled(org, draft_id) {
                return Err(());
            }
            Ok(recent.draft(org, draft_id).map(|d| (d, recent.envelope(org))))
        };
        let mut rx = self.seen.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match lookup() {
                Ok(Some(found)) => return Some(found),
                Err(()) => return None,
                Ok(None) => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return lookup().ok().flatten(),
            }
        }
    }

    /// A misplaced event first on a draft's subject leaves no draft there
    /// (as the log path finds: the first event on the subject is no draft).
    fn remember_misplaced(&self, prefix: &str, m: &StoredMessage, org: &str) {
        if let Some(("draft", id)) = spend_core::subject::split_aggregate(&m.subject, prefix, org) {
            self.recent.lock().expect("recent lock").draft_event(org, id, None);
        }
    }

    /// What the follower remembers of one message for deciding.
    fn remember(&self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>, aggregate: &str, id: &str) {
        let mut recent = self.recent.lock().expect("recent lock");
        match aggregate {
            "draft" => {
                let draft = (env.event_type == DraftProposed::TYPE && env.actor.kind == ActorKind::Agent)
                    .then(|| serde_json::from_str::<DraftProposed>(env.data.get()).ok())
                    .flatten()
                    .filter(|d| d.draft_id == id)
                    .map(|data| Recorded {
                        data,
                        cause: env.cause(),
                        seq: m.seq,
                    });
                recent.draft_event(&env.org, id, draft);
            }
            "decision" => recent.decided(&env.org, id),
            "budget" if id == ENVELOPE_ID && env.event_type == BudgetCommitted::TYPE => match serde_json::from_str::<BudgetCommitted>(env.data.get()) {
                Ok(c) => recent.envelope_seen(&env.org, c.envelope, m.seq),
                Err(e) => tracing::warn!(seq = m.seq, prefix, error = %e, "an envelope event that does not parse"),
            },
            _ => {}
        }
    }
}

/// Applies one message to the versions, auditing what must be (through
/// `recorder`, on the policy's own security subject).
pub async fn apply(state: &PolicyState, recorder: &Recorder, m: &StoredMessage) {
    match classify(recorder.prefix(), m) {
        Read::Event { env, aggregate, id } => {
            state.remember(recorder.prefix(), m, &env, aggregate, id);
            let noticed = {
                let (mut versions, mut approvers) = (state.versions.write().await, state.approvers.write().await);
                versions.apply(recorder.prefix(), m, &env, &mut approvers)
            };
            match noticed {
                Some(Noticed::ReusedId { org, detail }) => once_alert(recorder, &org, m.seq, "policy.proposal_reused", detail).await,
                Some(Noticed::Forged { org, forgery }) => {
                    let a = forgery.security_alert();
                    once_alert(recorder, &org, m.seq, &a.reason, a.detail).await
                }
                Some(Noticed::Untrusted { org, detail }) => once_alert(recorder, &org, m.seq, spend_policy::versions::UNTRUSTED, detail).await,
                None => {}
            }
        }
        Read::Misplaced { org, detail } => {
            state.remember_misplaced(recorder.prefix(), m, &org);
            let (id, alert) = misplaced_alert(m.seq, detail);
            record_once(recorder, &org, &id, alert).await;
        }
        Read::NotAnEvent => {}
    }
    state.seen.send_replace(m.seq);
}

async fn once_alert(recorder: &Recorder, org: &str, seq: u64, reason: &str, detail: String) {
    let alert = spend_core::events::SecurityAlert {
        reason: reason.into(),
        key_id: None,
        address: None,
        detail,
    };
    record_once(recorder, org, &format!("{}-{seq}", reason.replace('.', "_")), alert).await;
}

/// One alert per message however many replicas or replays see it.
async fn record_once(recorder: &Recorder, org: &str, id: &str, alert: spend_core::events::SecurityAlert) {
    match recorder.alert(org, alert).on_id(id).expect_seq(0).record().await {
        Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
        Err(e) => tracing::error!(error = %e, "could not record a security alert"),
    }
}

/// Follows the whole log into `state` (resuming where it stopped).
pub async fn follow(state: Arc<PolicyState>, recorder: Recorder) {
    let (_keep, never) = watch::channel(false);
    follow_until(state, recorder, never).await
}

/// [`follow`] until `stop` turns true, finishing the message in hand.
pub async fn follow_until(state: Arc<PolicyState>, recorder: Recorder, stop: watch::Receiver<bool>) {
    let log = recorder.log().clone();
    spend_eventlog::follow_until(log, 1, stop, |m| {
        let (state, recorder) = (state.clone(), recorder.clone());
        async move { apply(&state, &recorder, &m).await }
    })
    .await;
}

/// The in-process decider (the gRPC `Policy.Decide` serves the same).
#[derive(Clone)]
pub struct Decider {
    recorder: Recorder,
    state: Arc<PolicyState>,
}

fn evaluation(bytes: &[u8]) -> Option<PolicyEvaluated> {
    let env = RawEnvelope::parse(bytes).ok()?;
    (env.event_type == PolicyEvaluated::TYPE)
        .then(|| serde_json::from_str(env.data.get()).ok())
        .flatten()
}

impl Decider {
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>, state: Arc<PolicyState>) -> Self {
        Self {
            recorder: Recorder::new(log, prefix, Writer::Policy),
            state,
        }
    }

    /// A decider in this process, following the log for versions (the
    /// in-process form `spend dev` and tests use; `spend serve policy`
    /// serves the same over gRPC).
    pub fn start(log: Arc<dyn EventLog>, prefix: impl Into<String>, bootstrap: Bootstrap) -> Self {
        let decider = Self::new(log, prefix, PolicyState::new(bootstrap));
        tokio::spawn(follow(decider.state.clone(), decider.recorder.clone()));
        decider
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn state(&self) -> &Arc<PolicyState> {
        &self.state
    }

    /// The draft `draft_id` of `org` as the gateway recorded it: the first
    /// event on its subject, a `spend.draft.proposed.v1` by an agent.
    async fn read_draft(&self, org: &str, draft_id: &str) -> Result<Recorded, DecideError> {
        let subject = self.recorder.subject(org, "draft", draft_id).map_err(|e| DecideError::Invalid(e.to_string()))?;
        let m = self
            .recorder
            .log()
            .first_on_subject(&subject)
            .await?
            .ok_or_else(|| DecideError::NotFound(draft_id.to_string()))?;
        let Read::Event { env, .. } = classify(self.recorder.prefix(), &m) else {
            return Err(DecideError::Invalid(format!("the first event on {subject} is not a draft")));
        };
        if env.event_type != DraftProposed::TYPE || env.actor.kind != ActorKind::Agent {
            return Err(DecideError::Invalid(format!(
                "the first event on {subject} is a {} by {:?}, not an agent's draft",
                env.event_type, env.actor.kind
            )));
        }
        let data: DraftProposed = serde_json::from_str(env.data.get()).map_err(|e| DecideError::Invalid(format!("draft {draft_id}: {e}")))?;
        if data.draft_id != draft_id {
            return Err(DecideError::Invalid(format!("the draft on {subject} names id {}", data.draft_id)));
        }
        Ok(Recorded {
            data,
            cause: env.cause(),
            seq: m.seq,
        })
    }

    /// The envelope's state and its subject's sequence.
    pub async fn envelope(&self, org: &str) -> Result<(EnvelopeState, u64), DecideError> {
        let subject = self.recorder.subject(org, "budget", ENVELOPE_ID)?;
        let Some(m) = self.recorder.log().last_on_subject(&subject).await? else {
            return Ok((EnvelopeState::default(), 0));
        };
        let env = RawEnvelope::parse(&m.payload).map_err(|e| DecideError::Unavailable(format!("envelope event {}: {e}", m.seq)))?;
        let c: BudgetCommitted = serde_json::from_str(env.data.get()).map_err(|e| DecideError::Unavailable(format!("envelope event {}: {e}", m.seq)))?;
        Ok((c.envelope, m.seq))
    }

    async fn existing_decision(&self, org: &str, draft_id: &str) -> Result<Option<PolicyEvaluated>, DecideError> {
        let subject = self.recorder.subject(org, "decision", draft_id)?;
        Ok(self.recorder.log().last_on_subject(&subject).await?.and_then(|m| evaluation(&m.payload)))
    }

    async fn decide_draft(&self, org: &str, draft_id: &str) -> Result<PolicyEvaluated, DecideError> {
        if let Some(decided) = self.decide_from_follower(org, draft_id).await? {
            return Ok(decided);
        }
        // Independent reads, one round trip: whether it is decided already,
        // the draft itself, and the envelope for the first attempt.
        let (existing, draft, first_read) = futures::join!(self.existing_decision(org, draft_id), self.read_draft(org, draft_id), self.envelope(org));
        if let Some(d) = existing? {
            return Ok(d);
        }
        let draft = draft?;
        self.state.reached(draft.seq).await?;
        let (policy, mandate, _) = self.state.active(org).await;
        let (envelope, _) = first_read?;
        let now = Utc::now();
        let judged = Judged::new(&draft.data, &envelope, now);
        let decision = match self.inconsistent(org, &draft).await {
            Some(denied) => denied,
            None => evaluate(&policy, mandate, &judged.windows, &judged.draft, now),
        };
        self.record_decision(org, &draft, &policy.version, decision, &judged.currency, draft.cause)
            .await
    }

    /// The fast path ([`crate::recent`]): a draft the follower delivered,
    /// judged against the envelope as of the follower's position, decided
    /// without reading the log. `None` when the draft is not in the
    /// follower's memory.
    async fn decide_from_follower(&self, org: &str, draft_id: &str) -> Result<Option<PolicyEvaluated>, DecideError> {
        let Some((draft, (envelope, _))) = self.state.recent_draft(org, draft_id, FOLLOWER_WAIT).await else {
            return Ok(None);
        };
        let (policy, mandate, _) = self.state.active(org).await;
        let now = Utc::now();
        let judged = Judged::new(&draft.data, &envelope, now);
        let decision = match self.inconsistent(org, &draft).await {
            Some(denied) => denied,
            None => evaluate(&policy, mandate, &judged.windows, &judged.draft, now),
        };
        self.record_decision(org, &draft, &policy.version, decision, &judged.currency, draft.cause)
            .await
            .map(Some)
    }

    /// A denial, audited once, of a draft whose shown diff, impact or kind
    /// is not what its change pushes (a compromised gateway's), or a
    /// campaign draft without the live state it was drafted against.
    async fn inconsistent(&self, org: &str, draft: &Recorded) -> Option<spend_policy::evaluate::Decision> {
        let why = spend_draft::display::inconsistency(&draft.data)?;
        once_alert(&self.recorder, org, draft.seq, spend_draft::display::INCONSISTENT, why.clone()).await;
        Some(spend_policy::evaluate::Decision {
            outcome: spend_core::events::Outcome::Deny,
            reasons: vec![spend_core::events::Reason {
                code: spend_draft::display::INCONSISTENT.into(),
                message: why,
            }],
            alerts: Vec::new(),
        })
    }

    /// Appends the one decision of `draft` on `decision.<draft_id>`
    /// (expected sequence 0): if another call or replica decided first,
    /// its decision holds and is returned.
    async fn record_decision(
        &self,
        org: &str,
        draft: &Recorded,
        version: &str,
        decision: spend_policy::evaluate::Decision,
        currency: &str,
        cause: Cause,
    ) -> Result<PolicyEvaluated, DecideError> {
        let draft_id = draft.data.draft_id.as_str();
        let evaluated = PolicyEvaluated {
            draft_id: draft_id.to_string(),
            outcome: decision.outcome.clone(),
            reasons: decision.reasons.clone(),
            policy_version: version.to_string(),
        };
        let recorded = self
            .recorder
            .event(
                org,
                Actor::service("policy"),
                "decision",
                draft_id,
                EventData::PolicyEvaluated(evaluated.clone()),
            )
            .following(cause)
            .expect_seq(0)
            .record()
            .await;
        match recorded {
            Ok(r) => {
                self.limit_notices(org, &draft.data, &decision.alerts, currency, r.cause).await;
                Ok(evaluated)
            }
            // Another call or replica decided first: its decision holds.
            Err(LogError::WrongLastSequence { .. }) => self
                .existing_decision(org, draft_id)
                .await?
                .ok_or_else(|| DecideError::Unavailable(format!("draft {draft_id}'s decision subject is not empty but holds no decision"))),
            Err(e) => Err(e.into()),
        }
    }

    /// `spend.limit.approaching.v1` / `spend.limit.exceeded.v1` on the
    /// policy's limit subject (apart from the envelope, so that notices
    /// never contend with commitments).
    async fn limit_notices(&self, org: &str, d: &DraftProposed, alerts: &[spend_policy::evaluate::LimitAlert], currency: &str, cause: Cause) {
        for a in alerts {
            let money = |minor| Money {
                minor_units: minor,
                currency: currency.to_string(),
            };
            let (account_id, draft_id, limit) = (d.account_id.clone(), d.draft_id.clone(), a.limit.to_string());
            let data = if a.event == "limit.exceeded" {
                EventData::LimitExceeded(LimitExceeded {
                    account_id,
                    draft_id,
                    limit,
                    used: money(a.used),
                    value: money(a.value),
                })
            } else {
                EventData::LimitApproaching(LimitApproaching {
                    account_id,
                    draft_id,
                    limit,
                    used: money(a.used),
                    value: money(a.value),
                })
            };
            if let Err(e) = self
                .recorder
                .event(org, Actor::service("policy"), "limit", ENVELOPE_ID, data)
                .following(cause)
                .record()
                .await
            {
                tracing::error!(error = %e, "could not record a limit notice");
            }
        }
    }

    /// Decides the draft `m` records if it is still undecided
    /// [`UNDECIDED_AFTER`] after it was recorded.
    async fn decide_if_undecided(&self, m: &StoredMessage) {
        let Read::Event { env, aggregate, id } = classify(self.recorder.prefix(), m) else {
            return;
        };
        if aggregate != "draft" || env.event_type != DraftProposed::TYPE {
            return;
        }
        let due = env.time + chrono::Duration::from_std(UNDECIDED_AFTER).unwrap_or_default();
        if let Ok(wait) = (due - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        match self.existing_decision(&env.org, id).await {
            Ok(Some(_)) => {}
            Ok(None) => match self.decide_draft(&env.org, id).await {
                Ok(d) => tracing::info!(org = %env.org, draft = id, outcome = ?d.outcome, "decided a draft whose decision was missing"),
                Err(e) => tracing::warn!(org = %env.org, draft = id, error = %e, "could not decide an undecided draft"),
            },
            Err(e) => tracing::warn!(draft = id, error = %e, "cannot check a draft's decision"),
        }
    }
}

#[async_trait]
impl Decide for Decider {
    #[tracing::instrument(skip_all, fields(org, draft_id))]
    async fn decide(&self, org: &str, draft_id: &str) -> Result<PolicyEvaluated, DecideError> {
        self.decide_draft(org, draft_id).await
    }
}

/// Decides, on its own, every draft still undecided [`UNDECIDED_AFTER`]
/// after it was recorded: a durable consumer ([`CONSUMER`]) over the whole
/// stream, acknowledged as it goes, until `shutdown` (finishing the batch
/// in hand first).
pub async fn decide_undecided(decider: Decider, consumer_name: String, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let log = decider.recorder.log().clone();
    let mut consumer = loop {
        match log.durable_consumer(&consumer_name, StartAt::Beginning).await {
            Ok(c) => break c,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "policy consumer unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    loop {
        let batch = tokio::select! {
            b = consumer.fetch(256, Duration::from_secs(1)) => b,
            _ = shutdown.changed() => return Ok(()),
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "policy consumer fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(last) = batch.last().map(|m| m.seq) else { continue };
        for m in &batch {
            decider.decide_if_undecided(m).await;
        }
        if let Err(e) = consumer.ack_through(last).await {
            tracing::warn!(error = %e, "policy consumer ack failed; the batch comes back and is checked again");
        }
    }
}
