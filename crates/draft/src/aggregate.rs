//! The draft aggregate: [`Draft`] is the state, [`DraftEvent`] the facts
//! that move it ([`Draft::apply`]), [`Command`] what a service asks of it
//! ([`decide`]).
//!
//! ```text
//! proposed ─┬─▶ pending_approval ─▶ (awaiting_second_approval) ─▶ approved ─┐
//!           ├─▶ auto_approved ───────────────────────────────────────────────┴─▶ pushing ─┬─▶ pushed ─▶ rolled_back
//!           └─▶ denied                                                                    └─▶ failed
//! while pending (proposed, pending_approval, awaiting_second_approval):
//!           ─▶ rejected | stale | expired
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use spend_core::events::{
    ApprovalEscalated, ApprovalExpired, ApprovalGranted, ApprovalRejected, ApprovalRequested, ChangeFailed, ChangePushed, ChangeRolledBack, ChangeStarted,
    DraftProposed, DraftStaled, EventData, FieldDiff, Outcome, PolicyEvaluated, Reason,
};
use spend_core::{Money, RawEnvelope};

use crate::status::DraftStatus;
use crate::verify::{VerifiedApproval, event_hash};

/// How long a draft waits for a human before it expires.
pub const EXPIRES_AFTER_HOURS: i64 = 48;

/// `DraftStaled.reason` when the live state moved past `drafted_against`.
pub const STALE_LIVE_STATE_MOVED: &str = "live_state_moved";
/// `DraftStaled.reason` when the draft waited too long.
pub const STALE_EXPIRED: &str = "expired";

/// One draft as its events on the log make it. Its fields are private and it
/// does not deserialize: a `Draft` only comes from [`Draft::from_proposed`]
/// and [`Draft::apply`], so its status cannot be set anywhere else.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    org: String,
    /// The proposal as recorded: id, account, kind, diff, spend impact,
    /// rationale, `drafted_against` and the change policy judges.
    proposal: DraftProposed,
    proposed_at: DateTime<Utc>,
    /// Hex SHA-256 of the stored `spend.draft.proposed.v1` bytes: what an
    /// approval must name, so it approves exactly this change.
    proposed_hash: String,
    decision: Option<PolicyEvaluated>,
    /// The approval service's request, once it asked humans (its
    /// `expires_at` extended once if it escalated).
    request: Option<ApprovalRequested>,
    /// Whether the request escalated (it may, once).
    escalated: bool,
    /// Distinct humans who approved, in order: dual control counts them.
    approvers: Vec<String>,
    /// The change applying this draft, once the executor started it: a
    /// push, failure or rollback must name it.
    change_id: Option<String>,
    status: DraftStatus,
    /// The type of the last event that moved the draft.
    last_event: &'static str,
}

impl Draft {
    /// The draft a `spend.draft.proposed.v1` creates. `hash` is
    /// [`event_hash`] of that event's bytes as stored; prefer
    /// [`DraftEvent::from_stored_proposal`], which computes it.
    pub fn from_proposed(org: impl Into<String>, data: &DraftProposed, at: DateTime<Utc>, hash: impl Into<String>) -> Self {
        Self {
            org: org.into(),
            proposal: data.clone(),
            proposed_at: at,
            proposed_hash: hash.into(),
            decision: None,
            request: None,
            escalated: false,
            approvers: Vec::new(),
            change_id: None,
            status: DraftStatus::Proposed,
            last_event: DraftProposed::TYPE,
        }
    }

    /// Applies one fact from the log and says whether it moved the draft.
    /// Total and pure: an event of another draft, or one the state machine
    /// does not accept from the current status (out of order, a second
    /// proposal, an approver counted already, a push naming another
    /// change, a staling with an unknown reason), leaves the draft as it
    /// was. This is the one place a draft's status is derived.
    pub fn apply(&mut self, event: &DraftEvent) -> bool {
        use DraftStatus as S;
        if event.draft_id() != self.id() {
            return false;
        }
        let same_change = |id: &str| self.change_id.as_deref() == Some(id);
        let next = match (self.status, event) {
            (S::Proposed, DraftEvent::Decided(d)) => {
                self.decision = Some(d.clone());
                match d.outcome {
                    Outcome::Deny => S::Denied,
                    Outcome::AutoApprove => S::AutoApproved,
                    Outcome::RequireApproval | Outcome::RequireDualApproval => S::PendingApproval,
                }
            }
            (S::PendingApproval | S::AwaitingSecondApproval, DraftEvent::Approved(a)) => {
                if a.approved_hash() != self.proposed_hash || self.approvers.iter().any(|x| x == a.approver_id()) {
                    return false;
                }
                self.approvers.push(a.approver_id().to_string());
                if self.approvers.len() >= self.approvals_needed() {
                    S::Approved
                } else {
                    S::AwaitingSecondApproval
                }
            }
            (S::PendingApproval | S::AwaitingSecondApproval, DraftEvent::Requested(r)) => {
                // The first request counts (it is appended with expected
                // sequence 0, so there is one); it moves no status.
                if self.request.is_some() || r.approved_hash != self.proposed_hash {
                    return false;
                }
                self.request = Some(r.clone());
                self.last_event = event.event_type();
                return true;
            }
            (S::PendingApproval | S::AwaitingSecondApproval, DraftEvent::Escalated(e)) => {
                // Once, for a request that said it would escalate, and only
                // later: an escalation never shortens (and cannot outlast
                // the draft's own limit, `expires_at`).
                let Some(r) = self.request.as_mut() else { return false };
                if self.escalated || r.timeout_action != "escalate" || e.previous_expires_at != r.expires_at || !later(&e.expires_at, &r.expires_at) {
                    return false;
                }
                r.expires_at = e.expires_at.clone();
                self.escalated = true;
                self.last_event = event.event_type();
                return true;
            }
            (S::PendingApproval | S::AwaitingSecondApproval, DraftEvent::ApprovalExpired(_)) => S::Expired,
            (s, DraftEvent::Rejected(_)) if s.is_pending() => S::Rejected,
            (s, DraftEvent::Staled(st)) if s.is_pending() => match st.reason.as_str() {
                STALE_LIVE_STATE_MOVED => S::Stale,
                STALE_EXPIRED => S::Expired,
                _ => return false,
            },
            (S::Approved | S::AutoApproved, DraftEvent::PushStarted(c)) => {
                self.change_id = Some(c.change_id.clone());
                S::Pushing
            }
            (S::Pushing, DraftEvent::Pushed(c)) if same_change(&c.change_id) => S::Pushed,
            (S::Pushing, DraftEvent::Failed(c)) if same_change(&c.change_id) => S::Failed,
            (S::Pushed, DraftEvent::RolledBack(c)) if same_change(&c.rollback_of) => S::RolledBack,
            _ => return false,
        };
        self.status = next;
        self.last_event = event.event_type();
        true
    }

    /// An approver was removed: their approvals of a draft still waiting
    /// for a human lapse (dual control then needs two other people).
    /// Returns whether the draft moved. A draft already approved keeps its
    /// approval: it was complete, and verified, before the removal.
    pub fn lapse_approvals_of(&mut self, approver_id: &str) -> bool {
        use DraftStatus as S;
        if !matches!(self.status, S::PendingApproval | S::AwaitingSecondApproval) || !self.approvers.iter().any(|a| a == approver_id) {
            return false;
        }
        self.approvers.retain(|a| a != approver_id);
        self.status = if self.approvers.is_empty() {
            S::PendingApproval
        } else {
            S::AwaitingSecondApproval
        };
        true
    }

    /// Distinct human approvals the policy's decision requires: two under
    /// dual control (`require_confirmation_over`), otherwise one. The
    /// executor requires the larger of this and [`approvals_required`] of
    /// its own judgement at push time.
    pub fn approvals_needed(&self) -> usize {
        self.decision.as_ref().map_or(1, |d| approvals_required(&d.outcome))
    }

    /// When a draft still waiting for a human expires: its approval
    /// request's expiry once there is one (`timeout_minutes`), else
    /// [`EXPIRES_AFTER_HOURS`] after the proposal.
    pub fn expires_at(&self) -> DateTime<Utc> {
        let fallback = self.proposed_at + Duration::hours(EXPIRES_AFTER_HOURS);
        self.request
            .as_ref()
            .and_then(|r| DateTime::parse_from_rfc3339(&r.expires_at).ok())
            .map(|t| t.with_timezone(&Utc).min(fallback))
            .unwrap_or(fallback)
    }

    /// The approval request's expiry exactly as recorded (what every proof
    /// of it signs), once the approval service asked humans.
    pub fn approval_expires_at(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.expires_at.as_str())
    }

    /// Whether the approval request escalated (and was extended) already.
    pub fn escalated(&self) -> bool {
        self.escalated
    }

    /// The approval service's request, once it asked humans.
    pub fn request(&self) -> Option<&ApprovalRequested> {
        self.request.as_ref()
    }

    /// The SPEND.md version that decided the draft.
    pub fn decided_version(&self) -> Option<&str> {
        self.decision.as_ref().map(|d| d.policy_version.as_str())
    }

    /// Whether the draft is still pending at `now` although it has expired:
    /// the caller then decides [`Command::Expire`].
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status.is_pending() && now >= self.expires_at()
    }

    pub fn id(&self) -> &str {
        &self.proposal.draft_id
    }
    pub fn org(&self) -> &str {
        &self.org
    }
    /// The proposal as recorded (every field the agent drafted).
    pub fn proposal(&self) -> &DraftProposed {
        &self.proposal
    }
    pub fn account_id(&self) -> &str {
        &self.proposal.account_id
    }
    /// `budget`, `bid`, `status` or `payment`.
    pub fn kind(&self) -> &str {
        &self.proposal.kind
    }
    pub fn diff(&self) -> &[FieldDiff] {
        &self.proposal.diff
    }
    pub fn spend_impact(&self) -> &Money {
        &self.proposal.spend_impact
    }
    pub fn rationale(&self) -> &str {
        &self.proposal.rationale
    }
    pub fn proposed_at(&self) -> DateTime<Utc> {
        self.proposed_at
    }
    /// The live-state version the diff was read from.
    pub fn drafted_against(&self) -> Option<&str> {
        self.proposal.drafted_against.as_deref()
    }
    /// Lower-case hex SHA-256 of the stored `spend.draft.proposed.v1` bytes.
    pub fn proposed_hash(&self) -> &str {
        &self.proposed_hash
    }
    pub fn decision(&self) -> Option<&PolicyEvaluated> {
        self.decision.as_ref()
    }
    /// Distinct approver ids so far, in order.
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }
    /// The change that applies (or applied) this draft.
    pub fn change_id(&self) -> Option<&str> {
        self.change_id.as_deref()
    }
    pub fn status(&self) -> DraftStatus {
        self.status
    }
    /// The type of the last event that moved the draft.
    pub fn last_event(&self) -> &'static str {
        self.last_event
    }
}

/// Distinct human approvals an outcome requires: two under dual control
/// (`require_confirmation_over`), otherwise one.
pub fn approvals_required(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::RequireDualApproval => 2,
        _ => 1,
    }
}

/// Whether RFC 3339 time `a` is later than `b` (both must parse).
fn later(a: &str, b: &str) -> bool {
    match (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

/// [`Draft::apply`] for a draft that may not exist yet: a proposal creates
/// it, anything else before it is ignored (returns `false`).
pub fn apply(state: &mut Option<Draft>, event: &DraftEvent) -> bool {
    match (state.as_mut(), event) {
        (Some(draft), e) => draft.apply(e),
        (None, DraftEvent::Proposed { org, data, at, hash }) => {
            *state = Some(Draft::from_proposed(org, data, *at, hash));
            true
        }
        (None, _) => false,
    }
}

/// A stored fact about a draft. An approval enters only as a
/// [`VerifiedApproval`], so a draft never counts an approval event alone.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftEvent {
    Proposed {
        /// The envelope's org.
        org: String,
        data: Box<DraftProposed>,
        /// The envelope's time.
        at: DateTime<Utc>,
        /// [`event_hash`] of the event's bytes as stored.
        hash: String,
    },
    Decided(PolicyEvaluated),
    Approved(VerifiedApproval),
    Requested(ApprovalRequested),
    Escalated(ApprovalEscalated),
    ApprovalExpired(ApprovalExpired),
    Rejected(ApprovalRejected),
    Staled(DraftStaled),
    PushStarted(ChangeStarted),
    Pushed(ChangePushed),
    Failed(ChangeFailed),
    RolledBack(ChangeRolledBack),
}

impl DraftEvent {
    /// The proposal in stored event bytes, hashed as stored (never
    /// re-serialized). `None` when the bytes are not a valid
    /// `spend.draft.proposed.v1`.
    pub fn from_stored_proposal(bytes: &[u8]) -> Option<Self> {
        let env = RawEnvelope::parse(bytes).ok()?;
        if env.event_type != DraftProposed::TYPE {
            return None;
        }
        let data: DraftProposed = serde_json::from_str(env.data.get()).ok()?;
        Some(Self::Proposed {
            org: env.org.to_string(),
            data: Box::new(data),
            at: env.time,
            hash: event_hash(bytes),
        })
    }

    /// The draft event that needs nothing but its data: every one except a
    /// proposal (see [`DraftEvent::from_stored_proposal`]) and an approval
    /// (see [`crate::verify::recorded_approval`]), and `None` for events
    /// that are not about a draft's lifecycle.
    pub fn from_fact(data: EventData) -> Option<Self> {
        Self::from_fact_or_data(data).ok()
    }

    /// [`DraftEvent::from_fact`], handing the data back when it is not a
    /// draft's fact.
    // The `Err` is the caller's own data handed back, not an error: boxing
    // it would allocate for every event that is not a draft's.
    #[allow(clippy::result_large_err)]
    pub fn from_fact_or_data(data: EventData) -> Result<Self, EventData> {
        Ok(match data {
            EventData::PolicyEvaluated(e) => Self::Decided(e),
            EventData::ApprovalRejected(e) => Self::Rejected(e),
            EventData::ApprovalRequested(e) if e.kind == "draft" => Self::Requested(e),
            EventData::ApprovalExpired(e) => Self::ApprovalExpired(e),
            EventData::ApprovalEscalated(e) => Self::Escalated(e),
            EventData::DraftStaled(e) => Self::Staled(e),
            EventData::ChangeStarted(e) => Self::PushStarted(e),
            EventData::ChangePushed(e) => Self::Pushed(e),
            EventData::ChangeFailed(e) => Self::Failed(e),
            EventData::ChangeRolledBack(e) => Self::RolledBack(e),
            other => return Err(other),
        })
    }

    /// The event's data as the log carries it; `None` for an approval,
    /// which counts only as the verifier's [`crate::VerifiedApproval`].
    pub fn into_data(self) -> Option<EventData> {
        Some(match self {
            Self::Proposed { data, .. } => EventData::DraftProposed(*data),
            Self::Decided(e) => EventData::PolicyEvaluated(e),
            Self::Approved(_) => return None,
            Self::Rejected(e) => EventData::ApprovalRejected(e),
            Self::Requested(e) => EventData::ApprovalRequested(e),
            Self::ApprovalExpired(e) => EventData::ApprovalExpired(e),
            Self::Escalated(e) => EventData::ApprovalEscalated(e),
            Self::Staled(e) => EventData::DraftStaled(e),
            Self::PushStarted(e) => EventData::ChangeStarted(e),
            Self::Pushed(e) => EventData::ChangePushed(e),
            Self::Failed(e) => EventData::ChangeFailed(e),
            Self::RolledBack(e) => EventData::ChangeRolledBack(e),
        })
    }

    /// The draft this event is about.
    pub fn draft_id(&self) -> &str {
        match self {
            Self::Proposed { data, .. } => &data.draft_id,
            Self::Decided(e) => &e.draft_id,
            Self::Approved(a) => a.draft_id(),
            Self::Rejected(e) => &e.draft_id,
            Self::Requested(e) => &e.draft_id,
            Self::ApprovalExpired(e) => &e.draft_id,
            Self::Escalated(e) => &e.draft_id,
            Self::Staled(e) => &e.draft_id,
            Self::PushStarted(e) => &e.draft_id,
            Self::Pushed(e) => &e.draft_id,
            Self::Failed(e) => &e.draft_id,
            Self::RolledBack(e) => &e.draft_id,
        }
    }

    /// The `spend.<noun>.<verb>.v1` type of the event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Proposed { .. } => DraftProposed::TYPE,
            Self::Decided(_) => PolicyEvaluated::TYPE,
            Self::Approved(_) => ApprovalGranted::TYPE,
            Self::Rejected(_) => ApprovalRejected::TYPE,
            Self::Requested(_) => ApprovalRequested::TYPE,
            Self::ApprovalExpired(_) => ApprovalExpired::TYPE,
            Self::Escalated(_) => ApprovalEscalated::TYPE,
            Self::Staled(_) => DraftStaled::TYPE,
            Self::PushStarted(_) => ChangeStarted::TYPE,
            Self::Pushed(_) => ChangePushed::TYPE,
            Self::Failed(_) => ChangeFailed::TYPE,
            Self::RolledBack(_) => ChangeRolledBack::TYPE,
        }
    }
}

/// What a service asks of a draft. Each names the one transition it makes.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built one at a time and decided at once, never stored
pub enum Command {
    /// An agent drafts a change (gateway). Only for a draft that does not
    /// exist.
    Propose(Box<DraftProposed>),
    /// The policy decides a proposed draft (policy service).
    Decide {
        outcome: Outcome,
        reasons: Vec<Reason>,
        policy_version: String,
    },
    /// A human approves a pending draft (approval service, with the
    /// verified approval in hand).
    Approve(VerifiedApproval),
    /// A human rejects a pending draft.
    Reject { approval_id: String, approver_id: String, reason: String },
    /// The live state moved past `drafted_against`.
    MarkStale { detail: String },
    /// The draft waited too long (see [`Draft::is_overdue`]).
    Expire { detail: String },
    /// The executor starts applying an approved or auto-approved draft to
    /// the live state `before`.
    StartPush { change_id: String, before: Option<serde_json::Value> },
    /// The started change was applied on its platform.
    RecordPushed {
        platform: String,
        idempotency_key: String,
        diff: Vec<FieldDiff>,
        response: Option<serde_json::Value>,
    },
    /// The started change failed for good.
    RecordFailed { reason: String },
    /// A pushed change is undone by a new change `change_id`.
    RollBack { change_id: String, diff: Vec<FieldDiff> },
}

impl Command {
    /// The command's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Propose(_) => "propose",
            Self::Decide { .. } => "decide",
            Self::Approve(_) => "approve",
            Self::Reject { .. } => "reject",
            Self::MarkStale { .. } => "mark stale",
            Self::Expire { .. } => "expire",
            Self::StartPush { .. } => "start pushing",
            Self::RecordPushed { .. } => "record as pushed",
            Self::RecordFailed { .. } => "record as failed",
            Self::RollBack { .. } => "roll back",
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("there is no draft to {command}: a draft must be proposed first")]
    NotFound { command: &'static str },
    #[error("draft {draft_id} already exists: a draft is proposed once, a change is re-drafted under a new id")]
    AlreadyExists { draft_id: String },
    #[error("draft {draft_id} is {from}: it cannot {command}")]
    InvalidTransition {
        draft_id: String,
        from: DraftStatus,
        command: &'static str,
    },
    #[error("{approver_id} already approved draft {draft_id}: dual control needs a second, distinct approver")]
    SameApprover { draft_id: String, approver_id: String },
    #[error("the approval names the event hashing to {found}, but draft {draft_id} was proposed as {expected}")]
    WrongHash { draft_id: String, expected: String, found: String },
    #[error("the approval is of draft {found}, not of draft {draft_id}")]
    WrongDraft { draft_id: String, found: String },
}

/// Decides a command against a draft (`None`: not proposed yet) and returns
/// the events to append, in order; it changes nothing itself. Every `Ok`
/// event moves the draft when applied. An `Approve` returns the
/// `spend.approval.granted.v1` to record: a reader of the log counts it
/// through [`crate::verify::recorded_approval`] and [`Draft::apply`], never
/// through `decide`.
pub fn decide(state: Option<&Draft>, command: Command) -> Result<Vec<EventData>, DraftError> {
    use DraftStatus as S;
    let (d, command) = match (state, command) {
        (None, Command::Propose(data)) => return Ok(vec![EventData::DraftProposed(*data)]),
        (Some(d), Command::Propose(_)) => return Err(DraftError::AlreadyExists { draft_id: d.id().to_string() }),
        (None, c) => return Err(DraftError::NotFound { command: c.name() }),
        (Some(d), c) => (d, c),
    };
    let id = || d.id().to_string();
    // Set whenever the draft is pushing or pushed (see `Draft::apply`).
    let started = || d.change_id.clone().unwrap_or_default();
    let refuse = |command: &Command| DraftError::InvalidTransition {
        draft_id: d.id().to_string(),
        from: d.status,
        command: command.name(),
    };
    let event = match (d.status, command) {
        (
            S::Proposed,
            Command::Decide {
                outcome,
                reasons,
                policy_version,
            },
        ) => EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: id(),
            outcome,
            reasons,
            policy_version,
        }),
        (status, Command::Approve(a)) => {
            if a.draft_id() != d.id() {
                return Err(DraftError::WrongDraft {
                    draft_id: id(),
                    found: a.draft_id().to_string(),
                });
            }
            if !matches!(status, S::PendingApproval | S::AwaitingSecondApproval) {
                return Err(refuse(&Command::Approve(a)));
            }
            if a.approved_hash() != d.proposed_hash {
                return Err(DraftError::WrongHash {
                    draft_id: id(),
                    expected: d.proposed_hash.clone(),
                    found: a.approved_hash().to_string(),
                });
            }
            if d.approvers.iter().any(|x| x == a.approver_id()) {
                return Err(DraftError::SameApprover {
                    draft_id: id(),
                    approver_id: a.approver_id().to_string(),
                });
            }
            EventData::ApprovalGranted(a.granted().clone())
        }
        (
            s,
            Command::Reject {
                approval_id,
                approver_id,
                reason,
            },
        ) if s.is_pending() => EventData::ApprovalRejected(ApprovalRejected {
            draft_id: id(),
            approval_id,
            approver_id,
            reason,
        }),
        (s, Command::MarkStale { detail }) if s.is_pending() => staled(id(), STALE_LIVE_STATE_MOVED, detail),
        (s, Command::Expire { detail }) if s.is_pending() => staled(id(), STALE_EXPIRED, detail),
        (S::Approved | S::AutoApproved, Command::StartPush { change_id, before }) => EventData::ChangeStarted(ChangeStarted {
            change_id,
            draft_id: id(),
            before,
        }),
        (
            S::Pushing,
            Command::RecordPushed {
                platform,
                idempotency_key,
                diff,
                response,
            },
        ) => EventData::ChangePushed(ChangePushed {
            change_id: started(),
            draft_id: id(),
            platform,
            idempotency_key,
            diff,
            response,
        }),
        (S::Pushing, Command::RecordFailed { reason }) => EventData::ChangeFailed(ChangeFailed {
            change_id: started(),
            draft_id: id(),
            reason,
        }),
        (S::Pushed, Command::RollBack { change_id, diff }) => EventData::ChangeRolledBack(ChangeRolledBack {
            change_id,
            draft_id: id(),
            rollback_of: started(),
            diff,
            rollback_id: None,
            response: None,
        }),
        (_, c) => return Err(refuse(&c)),
    };
    Ok(vec![event])
}

fn staled(draft_id: String, reason: &str, detail: String) -> EventData {
    EventData::DraftStaled(DraftStaled {
        draft_id,
        reason: reason.to_string(),
        detail,
    })
}

#[cfg(test)]
mod tests;
