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
        Some(match data {
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
            _ => return None,
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
mod tests {
    use super::*;
    use crate::verify::{APPROVAL_SOURCE, ApprovalFacts, ForgeryKind, recorded_approval, verify_for_hash};
    use spend_core::{Actor, Envelope};

    // ---- given ----

    /// A change to genuine approval facts.
    type Forge = fn(&mut ApprovalFacts);

    /// core's sample proposal (a budget raise of 25 USD), as draft `id`.
    fn proposal(id: &str) -> DraftProposed {
        let sample = spend_core::events::samples().into_iter().find_map(|e| match e {
            EventData::DraftProposed(p) => Some(p),
            _ => None,
        });
        DraftProposed {
            draft_id: id.into(),
            ..sample.unwrap()
        }
    }

    /// The bytes the gateway stores for a proposal.
    fn stored(data: DraftProposed) -> Vec<u8> {
        let id = data.draft_id.clone();
        Envelope::new(
            "spendsignoff/gateway",
            "acme",
            Actor::agent("key_1"),
            format!("draft/{id}"),
            EventData::DraftProposed(data),
        )
        .to_bytes()
    }

    /// A draft `d1` as recorded on the log.
    fn proposed() -> Draft {
        let mut state = None;
        let event = DraftEvent::from_stored_proposal(&stored(proposal("d1"))).unwrap();
        assert!(apply(&mut state, &event));
        state.unwrap()
    }

    /// The humans of these tests: the first to approve is acme's anchored
    /// first admin, the others approvers she countersigned; the registry
    /// learns of them as a reader of the log would.
    struct World {
        registry: crate::approvers::Registry,
        humans: std::collections::HashMap<String, crate::humans::Human>,
        admin: Option<String>,
    }

    thread_local! {
        static WORLD: std::cell::RefCell<World> = std::cell::RefCell::new(World {
            registry: crate::approvers::Registry::new(crate::humans::test_rp()),
            humans: std::collections::HashMap::new(),
            admin: None,
        });
    }

    fn with_registry<R>(f: impl FnOnce(&mut crate::approvers::Registry) -> R) -> R {
        WORLD.with(|w| f(&mut w.borrow_mut().registry))
    }

    /// A fresh, genuine approval of `hash` by `approver` (enrolled on first use).
    fn grant(approver: &str, draft: &Draft, hash: &str) -> ApprovalGranted {
        use crate::approvers::{Enrollment, Role};
        use crate::humans::Human;
        WORLD.with(|w| {
            let w = &mut *w.borrow_mut();
            if !w.humans.contains_key(approver) {
                let enrolled = match w.admin.clone() {
                    None => {
                        let h = Human::new(approver, Role::Admin);
                        let e = h.enrolled("acme", None);
                        w.registry.enroll(Enrollment::from_event(&e).unwrap()).unwrap();
                        w.registry.anchor("acme", &h.fingerprint()).unwrap();
                        w.admin = Some(approver.to_string());
                        w.humans.insert(approver.to_string(), h);
                        None
                    }
                    Some(admin) => {
                        let h = Human::new(approver, Role::Approver);
                        let e = h.enrolled("acme", w.humans.get_mut(&admin));
                        w.humans.insert(approver.to_string(), h);
                        Some(e)
                    }
                };
                if let Some(e) = enrolled {
                    w.registry.enroll(Enrollment::from_event(&e).unwrap()).unwrap();
                }
            }
            let version = draft.decided_version().unwrap_or("sha256:00").to_string();
            let step = draft.approvers().len() as u32 + 1;
            w.humans
                .get_mut(approver)
                .unwrap()
                .grant(draft.id(), hash, &version, "2099-01-01T00:00:00Z", step)
        })
    }

    /// The facts of an approval the approval service recorded for a human,
    /// with a genuine proof of `hash`.
    fn recorded_hash(approver: &str, draft: &Draft, hash: &str) -> ApprovalFacts {
        ApprovalFacts {
            subject: format!("spend.evt.acme.approval.{}", draft.id()),
            org: "acme".into(),
            aggregate: "approval".into(),
            subject_id: draft.id().into(),
            actor: Actor::human(format!("{approver}@example.com")),
            source: APPROVAL_SOURCE.into(),
            republished: false,
            seq: 100,
            stored_at: chrono::Utc::now(),
            data: grant(approver, draft, hash),
        }
    }

    fn recorded(approver: &str, draft: &Draft) -> ApprovalFacts {
        recorded_hash(approver, draft, draft.proposed_hash())
    }

    fn checked(facts: &ApprovalFacts, draft: &Draft) -> Result<VerifiedApproval, crate::Forgery> {
        with_registry(|r| recorded_approval(facts, draft, r))
    }

    fn approval(approver: &str, draft: &Draft) -> VerifiedApproval {
        checked(&recorded(approver, draft), draft).unwrap()
    }

    fn decide_as(outcome: Outcome) -> Command {
        Command::Decide {
            outcome,
            reasons: vec![],
            policy_version: "sha256:00".into(),
        }
    }

    /// The draft after `command`: decides it, then applies what it decided
    /// as the log's readers would (an approval through the verifier), and
    /// checks every decided event moved the draft.
    fn when(mut draft: Draft, command: Command) -> Result<Draft, DraftError> {
        for data in decide(Some(&draft), command)? {
            let event = match data {
                // What the approval service records for this approver: a
                // fresh proof (the command's was counted when it was made).
                EventData::ApprovalGranted(g) => DraftEvent::Approved(checked(&recorded(&g.approver_id, &draft), &draft).unwrap()),
                other => DraftEvent::from_fact(other).unwrap(),
            };
            assert!(draft.apply(&event), "{} did not move a {} draft", event.event_type(), draft.status());
        }
        Ok(draft)
    }

    fn pending() -> Draft {
        when(proposed(), decide_as(Outcome::RequireApproval)).unwrap()
    }

    fn pending_dual() -> Draft {
        when(proposed(), decide_as(Outcome::RequireDualApproval)).unwrap()
    }

    /// Dual control with one approver so far.
    fn half_approved() -> Draft {
        let d = pending_dual();
        let a = approval("u_alice", &d);
        when(d, Command::Approve(a)).unwrap()
    }

    fn approved() -> Draft {
        let d = pending();
        let a = approval("u_alice", &d);
        when(d, Command::Approve(a)).unwrap()
    }

    fn pushing() -> Draft {
        when(
            approved(),
            Command::StartPush {
                change_id: "c1".into(),
                before: None,
            },
        )
        .unwrap()
    }

    fn pushed() -> Draft {
        let push = Command::RecordPushed {
            platform: "sandbox".into(),
            idempotency_key: "d1".into(),
            diff: vec![],
            response: None,
        };
        when(pushing(), push).unwrap()
    }

    fn invalid(draft: &Draft, command: Command) -> DraftError {
        let name = command.name();
        let e = decide(Some(draft), command).unwrap_err();
        assert_eq!(
            e,
            DraftError::InvalidTransition {
                draft_id: draft.id().into(),
                from: draft.status(),
                command: name,
            }
        );
        e
    }

    // ---- proposal ----

    #[test]
    fn proposing_a_new_draft_records_it_with_the_hash_of_its_stored_bytes() {
        let events = decide(None, Command::Propose(Box::new(proposal("d1")))).unwrap();
        assert_eq!(events, vec![EventData::DraftProposed(proposal("d1"))]);
        let bytes = stored(proposal("d1"));
        let mut state = None;
        assert!(apply(&mut state, &DraftEvent::from_stored_proposal(&bytes).unwrap()));
        let d = state.unwrap();
        assert_eq!((d.id(), d.org(), d.status()), ("d1", "acme", DraftStatus::Proposed));
        assert_eq!(d.proposed_hash(), event_hash(&bytes));
        assert_eq!(d.spend_impact(), &Money::new(2500, "USD").unwrap());
        assert_eq!(d.last_event(), "spend.draft.proposed.v1");
    }

    #[test]
    fn proposing_an_existing_draft_again_is_refused_and_a_second_proposal_changes_nothing() {
        let d = proposed();
        assert_eq!(
            decide(Some(&d), Command::Propose(Box::new(proposal("d1")))).unwrap_err(),
            DraftError::AlreadyExists { draft_id: "d1".into() }
        );
        let mut other = proposal("d1");
        other.rationale = "a replay with other content".into();
        let mut state = Some(d.clone());
        assert!(!apply(&mut state, &DraftEvent::from_stored_proposal(&stored(other)).unwrap()));
        assert_eq!(state, Some(d), "the first proposal of an id wins");
    }

    #[test]
    fn nothing_but_a_proposal_applies_to_a_draft_that_does_not_exist() {
        assert_eq!(
            decide(None, Command::MarkStale { detail: "x".into() }).unwrap_err(),
            DraftError::NotFound { command: "mark stale" }
        );
        let mut state = None;
        let decided = DraftEvent::from_fact(EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: "d1".into(),
            outcome: Outcome::AutoApprove,
            reasons: vec![],
            policy_version: "v".into(),
        }))
        .unwrap();
        assert!(!apply(&mut state, &decided));
        assert_eq!(state, None);
    }

    #[test]
    fn bytes_that_are_not_a_stored_proposal_are_not_a_proposal() {
        assert_eq!(DraftEvent::from_stored_proposal(b"{}"), None);
        let alert = Envelope::new(
            "spendsignoff/gateway",
            "acme",
            Actor::service("gateway"),
            "draft/d1",
            EventData::DraftStaled(DraftStaled {
                draft_id: "d1".into(),
                reason: STALE_EXPIRED.into(),
                detail: "x".into(),
            }),
        );
        assert_eq!(DraftEvent::from_stored_proposal(&alert.to_bytes()), None);
    }

    // ---- policy decision ----

    #[test]
    fn the_policy_decision_moves_a_proposed_draft_to_its_outcome() {
        for (outcome, status) in [
            (Outcome::Deny, DraftStatus::Denied),
            (Outcome::AutoApprove, DraftStatus::AutoApproved),
            (Outcome::RequireApproval, DraftStatus::PendingApproval),
            (Outcome::RequireDualApproval, DraftStatus::PendingApproval),
        ] {
            let d = when(proposed(), decide_as(outcome.clone())).unwrap();
            assert_eq!(d.status(), status, "{outcome:?}");
            assert_eq!(d.decision().unwrap().outcome, outcome);
            assert_eq!(d.last_event(), "spend.policy.evaluated.v1");
        }
    }

    #[test]
    fn a_decided_draft_is_not_decided_again() {
        invalid(&pending(), decide_as(Outcome::AutoApprove));
        let mut d = pending();
        let again = DraftEvent::Decided(PolicyEvaluated {
            draft_id: "d1".into(),
            outcome: Outcome::AutoApprove,
            reasons: vec![],
            policy_version: "v2".into(),
        });
        assert!(!d.apply(&again));
        assert_eq!(d.status(), DraftStatus::PendingApproval);
    }

    // ---- human approval ----

    #[test]
    fn one_human_approval_approves_a_draft_that_requires_one() {
        let d = approved();
        assert_eq!(d.status(), DraftStatus::Approved);
        assert_eq!(d.approvers(), ["u_alice"]);
        assert_eq!(d.last_event(), "spend.approval.granted.v1");
    }

    #[test]
    fn dual_control_needs_two_distinct_approvers() {
        let d = pending_dual();
        assert_eq!(d.approvals_needed(), 2);
        let alice = approval("u_alice", &d);
        let d = when(d, Command::Approve(alice.clone())).unwrap();
        assert_eq!(d.status(), DraftStatus::AwaitingSecondApproval);

        // The same approver twice is refused, and on the log counts once.
        let alice_again = approval("u_alice", &d);
        assert_eq!(
            decide(Some(&d), Command::Approve(alice_again.clone())).unwrap_err(),
            DraftError::SameApprover {
                draft_id: "d1".into(),
                approver_id: "u_alice".into(),
            }
        );
        let mut replayed = d.clone();
        assert!(!replayed.apply(&DraftEvent::Approved(alice_again)));
        assert_eq!(replayed, d);

        // A second, distinct approver approves it.
        let bob = approval("u_bob", &d);
        let d = when(d, Command::Approve(bob)).unwrap();
        assert_eq!(d.status(), DraftStatus::Approved);
        assert_eq!(d.approvers(), ["u_alice", "u_bob"]);
    }

    #[test]
    fn an_approval_naming_another_events_hash_is_refused() {
        let d = pending();
        let other = event_hash(&stored(proposal("d2")));
        let facts = recorded_hash("u_alice", &d, &other);
        assert_eq!(checked(&facts, &d).unwrap_err().kind, ForgeryKind::WrongHash);

        // Even an approval verified for other bytes does not move this draft.
        let facts = recorded_hash("u_alice", &d, &other);
        let for_other = with_registry(|r| verify_for_hash(&facts, &other, "d1", r)).unwrap();
        assert_eq!(
            decide(Some(&d), Command::Approve(for_other.clone())).unwrap_err(),
            DraftError::WrongHash {
                draft_id: "d1".into(),
                expected: d.proposed_hash().into(),
                found: other,
            }
        );
        let mut replayed = d.clone();
        assert!(!replayed.apply(&DraftEvent::Approved(for_other)));
        assert_eq!(replayed.status(), DraftStatus::PendingApproval);
    }

    #[test]
    fn an_approval_of_another_draft_is_refused() {
        let d = pending();
        let mut other = d.clone();
        other.proposal.draft_id = "d2".into();
        let a = approval("u_alice", &other);
        assert_eq!(
            decide(Some(&d), Command::Approve(a.clone())).unwrap_err(),
            DraftError::WrongDraft {
                draft_id: "d1".into(),
                found: "d2".into(),
            }
        );
        let mut replayed = d.clone();
        assert!(!replayed.apply(&DraftEvent::Approved(a)));
    }

    #[test]
    fn a_denied_draft_cannot_be_approved() {
        let denied = when(proposed(), decide_as(Outcome::Deny)).unwrap();
        let a = approval("u_alice", &denied);
        invalid(&denied, Command::Approve(a.clone()));
        let mut d = denied.clone();
        assert!(!d.apply(&DraftEvent::Approved(a)));
        assert_eq!(d.status(), DraftStatus::Denied);
    }

    #[test]
    fn a_draft_the_policy_has_not_decided_cannot_be_approved() {
        let d = proposed();
        invalid(&d, Command::Approve(approval("u_alice", &d)));
    }

    #[test]
    fn forged_approvals_are_refused_with_a_reason_naming_the_draft() {
        let d = pending();
        let cases: Vec<(Forge, ForgeryKind)> = vec![
            (|f| f.aggregate = "draft".into(), ForgeryKind::WrongAggregate),
            (|f| f.actor = Actor::agent("key_1"), ForgeryKind::NotHuman),
            (|f| f.source = "spendsignoff/gateway".into(), ForgeryKind::WrongSource),
            (|f| f.republished = true, ForgeryKind::Republished),
            (|f| f.subject_id = "d2".into(), ForgeryKind::IdMismatch),
            (|f| f.data.draft_id = "d2".into(), ForgeryKind::IdMismatch),
            (|f| f.org = "other".into(), ForgeryKind::WrongOrg),
            (|f| f.data.proof.policy_version = "sha256:other".into(), ForgeryKind::ProofMismatch),
            (|f| f.data.approver_id = "u_bob".into(), ForgeryKind::ProofMismatch),
        ];
        for (forge, kind) in cases {
            let mut facts = recorded("u_alice", &d);
            forge(&mut facts);
            let forgery = checked(&facts, &d).unwrap_err();
            assert_eq!(forgery.kind, kind, "{forgery}");
            assert!(forgery.to_string().starts_with("approval.forged: "), "{forgery}");
            assert!(forgery.detail.contains("d1"), "{forgery}");
        }
    }

    #[test]
    fn a_removed_approvers_pending_approval_lapses() {
        let mut d = half_approved();
        assert_eq!(d.status(), DraftStatus::AwaitingSecondApproval);
        assert!(!d.lapse_approvals_of("u_bob"), "bob gave none");
        assert!(d.lapse_approvals_of("u_alice"));
        assert_eq!((d.status(), d.approvers().len()), (DraftStatus::PendingApproval, 0));
        let mut done = approved();
        assert!(!done.lapse_approvals_of("u_alice"), "a complete approval stands");
        assert_eq!(done.status(), DraftStatus::Approved);
    }

    #[test]
    fn a_human_rejects_a_pending_draft() {
        for d in [proposed(), pending(), half_approved()] {
            let reject = Command::Reject {
                approval_id: "a9".into(),
                approver_id: "u_carol".into(),
                reason: "not this quarter".into(),
            };
            let d = when(d, reject).unwrap();
            assert_eq!(d.status(), DraftStatus::Rejected);
            assert_eq!(d.status().notification(), Some("transaction.declined"));
        }
    }

    #[test]
    fn an_approved_draft_can_no_longer_be_rejected_staled_or_expired() {
        let d = approved();
        invalid(
            &d,
            Command::Reject {
                approval_id: "a9".into(),
                approver_id: "u_carol".into(),
                reason: "late".into(),
            },
        );
        invalid(&d, Command::MarkStale { detail: "x".into() });
        invalid(&d, Command::Expire { detail: "x".into() });
    }

    #[test]
    fn a_rejected_draft_cannot_be_approved() {
        let reject = Command::Reject {
            approval_id: "a9".into(),
            approver_id: "u_carol".into(),
            reason: "no".into(),
        };
        let d = when(pending(), reject).unwrap();
        invalid(&d, Command::Approve(approval("u_alice", &d)));
    }

    // ---- stale and expired ----

    #[test]
    fn a_pending_draft_goes_stale_when_the_live_state_moves() {
        let d = when(
            pending(),
            Command::MarkStale {
                detail: "campaign c1 changed".into(),
            },
        )
        .unwrap();
        assert_eq!(d.status(), DraftStatus::Stale);
        assert_eq!(d.last_event(), "spend.draft.staled.v1");
        invalid(&d, Command::Approve(approval("u_alice", &d)));
    }

    #[test]
    fn a_request_that_escalates_is_extended_once_and_only_later() {
        let request = |d: &Draft, action: &str| {
            DraftEvent::Requested(ApprovalRequested {
                draft_id: "d1".into(),
                kind: "draft".into(),
                approved_hash: d.proposed_hash().to_string(),
                policy_version: "sha256:00".into(),
                required: 1,
                expires_at: "2026-11-21T12:15:00Z".into(),
                timeout_action: action.into(),
                link_token_sha256: "ab".repeat(32),
            })
        };
        let escalation = |from: &str, to: &str| {
            DraftEvent::Escalated(ApprovalEscalated {
                draft_id: "d1".into(),
                previous_expires_at: from.into(),
                expires_at: to.into(),
                channel: "email".into(),
            })
        };
        let mut d = pending();
        assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")), "no request yet");
        assert!(d.apply(&request(&d.clone(), "escalate")));
        assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:10:00Z")), "never sooner");
        assert!(!d.apply(&escalation("2026-11-21T12:00:00Z", "2026-11-21T12:30:00Z")), "from another expiry");
        assert!(d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")));
        assert_eq!(d.approval_expires_at(), Some("2026-11-21T12:30:00Z"), "what proofs sign from now on");
        assert_eq!(d.status(), DraftStatus::PendingApproval);
        assert!(d.escalated());
        assert!(!d.apply(&escalation("2026-11-21T12:30:00Z", "2026-11-21T12:45:00Z")), "once");
        // A request that denies on timeout never escalates.
        let mut d = pending();
        assert!(d.apply(&request(&d.clone(), "deny")));
        assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")));
        assert_eq!(d.approval_expires_at(), Some("2026-11-21T12:15:00Z"));
    }

    #[test]
    fn a_draft_left_waiting_too_long_expires() {
        let d = pending();
        assert!(!d.is_overdue(d.proposed_at() + Duration::hours(47)));
        assert!(d.is_overdue(d.proposed_at() + Duration::hours(48)));
        let events = decide(Some(&d), Command::Expire { detail: "48 h".into() }).unwrap();
        assert_eq!(
            events,
            vec![EventData::DraftStaled(DraftStaled {
                draft_id: "d1".into(),
                reason: "expired".into(),
                detail: "48 h".into(),
            })]
        );
        let d = when(d, Command::Expire { detail: "48 h".into() }).unwrap();
        assert_eq!(d.status(), DraftStatus::Expired);
        assert!(!d.is_overdue(d.proposed_at() + Duration::hours(49)), "only a pending draft is overdue");
    }

    #[test]
    fn a_staling_with_an_unknown_reason_changes_nothing() {
        let mut d = pending();
        let odd = DraftEvent::Staled(DraftStaled {
            draft_id: "d1".into(),
            reason: "because".into(),
            detail: "x".into(),
        });
        assert!(!d.apply(&odd));
        assert_eq!(d.status(), DraftStatus::PendingApproval);
    }

    // ---- push ----

    #[test]
    fn an_approved_draft_is_pushed_in_two_steps() {
        let d = pushing();
        assert_eq!((d.status(), d.change_id()), (DraftStatus::Pushing, Some("c1")));
        let d = pushed();
        assert_eq!(d.status(), DraftStatus::Pushed);
        assert_eq!(d.status().notification(), Some("transaction.completed"));
        assert_eq!(d.last_event(), "spend.change.pushed.v1");
    }

    #[test]
    fn an_auto_approved_draft_is_pushed_without_a_human() {
        let d = when(proposed(), decide_as(Outcome::AutoApprove)).unwrap();
        invalid(&d, Command::Approve(approval("u_alice", &d)));
        let d = when(
            d,
            Command::StartPush {
                change_id: "c1".into(),
                before: None,
            },
        )
        .unwrap();
        assert_eq!(d.status(), DraftStatus::Pushing);
        assert!(d.approvers().is_empty());
    }

    #[test]
    fn a_draft_waiting_for_a_human_cannot_be_pushed() {
        invalid(
            &pending(),
            Command::StartPush {
                change_id: "c1".into(),
                before: None,
            },
        );
        invalid(
            &half_approved(),
            Command::StartPush {
                change_id: "c1".into(),
                before: None,
            },
        );
        invalid(
            &pushing(),
            Command::StartPush {
                change_id: "c2".into(),
                before: None,
            },
        );
    }

    #[test]
    fn a_push_that_fails_for_good_fails_the_draft() {
        let d = when(
            pushing(),
            Command::RecordFailed {
                reason: "campaign archived".into(),
            },
        )
        .unwrap();
        assert_eq!(d.status(), DraftStatus::Failed);
        assert!(d.status().is_terminal());
        invalid(
            &d,
            Command::RollBack {
                change_id: "c2".into(),
                diff: vec![],
            },
        );
    }

    #[test]
    fn only_a_started_push_is_recorded_as_pushed_or_failed() {
        let push = || Command::RecordPushed {
            platform: "sandbox".into(),
            idempotency_key: "d1".into(),
            diff: vec![],
            response: None,
        };
        invalid(&approved(), push());
        invalid(&pushed(), push());
        invalid(&approved(), Command::RecordFailed { reason: "x".into() });
    }

    #[test]
    fn a_pushed_change_is_rolled_back_by_a_new_change() {
        let events = decide(
            Some(&pushed()),
            Command::RollBack {
                change_id: "c2".into(),
                diff: vec![],
            },
        )
        .unwrap();
        assert_eq!(
            events,
            vec![EventData::ChangeRolledBack(ChangeRolledBack {
                change_id: "c2".into(),
                draft_id: "d1".into(),
                rollback_of: "c1".into(),
                diff: vec![],
                rollback_id: None,
                response: None,
            })]
        );
        let d = when(
            pushed(),
            Command::RollBack {
                change_id: "c2".into(),
                diff: vec![],
            },
        )
        .unwrap();
        assert_eq!(d.status(), DraftStatus::RolledBack);
        invalid(
            &d,
            Command::RollBack {
                change_id: "c3".into(),
                diff: vec![],
            },
        );
        invalid(
            &pushing(),
            Command::RollBack {
                change_id: "c2".into(),
                diff: vec![],
            },
        );
    }

    // ---- apply ignores what the state machine would not accept ----

    #[test]
    fn apply_ignores_an_out_of_state_event() {
        let mut d = pending();
        let before = d.clone();
        let out_of_order = [
            DraftEvent::Pushed(ChangePushed {
                change_id: "c1".into(),
                draft_id: "d1".into(),
                platform: "sandbox".into(),
                idempotency_key: "d1".into(),
                diff: vec![],
                response: None,
            }),
            DraftEvent::PushStarted(ChangeStarted {
                change_id: "c1".into(),
                draft_id: "d1".into(),
                before: None,
            }),
            DraftEvent::RolledBack(ChangeRolledBack {
                change_id: "c2".into(),
                draft_id: "d1".into(),
                rollback_of: "c1".into(),
                diff: vec![],
                rollback_id: None,
                response: None,
            }),
        ];
        for e in &out_of_order {
            assert!(!d.apply(e), "{}", e.event_type());
        }
        assert_eq!(d, before);
    }

    #[test]
    fn apply_ignores_an_event_of_another_draft() {
        let mut d = pending();
        let other = DraftEvent::Staled(DraftStaled {
            draft_id: "d2".into(),
            reason: STALE_EXPIRED.into(),
            detail: "x".into(),
        });
        assert!(!d.apply(&other));
        assert_eq!(d.status(), DraftStatus::PendingApproval);
    }

    #[test]
    fn apply_ignores_a_push_result_naming_another_change() {
        let mut d = pushing();
        let failed_elsewhere = DraftEvent::Failed(ChangeFailed {
            change_id: "c9".into(),
            draft_id: "d1".into(),
            reason: "x".into(),
        });
        assert!(!d.apply(&failed_elsewhere));
        assert_eq!(d.status(), DraftStatus::Pushing);
        let mut d = pushed();
        let rollback_of_other = DraftEvent::RolledBack(ChangeRolledBack {
            change_id: "c2".into(),
            draft_id: "d1".into(),
            rollback_of: "c9".into(),
            diff: vec![],
            rollback_id: None,
            response: None,
        });
        assert!(!d.apply(&rollback_of_other));
        assert_eq!(d.status(), DraftStatus::Pushed);
    }

    #[test]
    fn only_lifecycle_facts_convert_without_verification() {
        let approval = EventData::ApprovalGranted(recorded("u_alice", &pending()).data);
        assert_eq!(DraftEvent::from_fact(approval), None, "an approval enters only through the verifier");
        assert_eq!(DraftEvent::from_fact(EventData::DraftProposed(proposal("d1"))), None);
    }
}
