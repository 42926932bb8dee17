//! What the executor knows, from the log alone: every draft through the
//! draft aggregate — approvals counted only through the verifier, against
//! the approver registry this book builds from the same log — the SPEND.md
//! versions in force (only through a human's verified approval), the
//! changes it started and pushed, the rollbacks a human approved (each
//! approval verified against the rollback request's exact bytes), the
//! cards an operator froze. Pure: the runtime
//! follows the log into [`Book::apply`] and asks [`Book::due`] what to do.
//!
//! Nothing here trusts an event for being on the log: an approval counts
//! when its passkey proof verifies; a decision moves a draft, but an
//! auto-approval is pushed only after the runtime re-judges it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use spend_core::Cause;
use spend_core::bounded::FifoMap;
use spend_core::events::{ApprovalGranted, ApproverRemoved, CardFreezeRequested, EventData, FieldDiff, RollbackApproved, RollbackRequested};
use spend_draft::approvers::Registry;
use spend_draft::fold::{self, Said, Stored};
use spend_draft::{ApprovalFacts, Draft, DraftEvent, DraftStatus, event_hash, verify_rollback};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};
use spend_policy::versions::{Noticed, Versions};

/// Drafts the book keeps (the oldest forgotten first).
pub const MAX_DRAFTS: usize = 100_000;

/// Rollback requests the book keeps (the oldest forgotten first).
pub const MAX_ROLLBACKS: usize = 10_000;

/// A change the executor pushed: what its rollback needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// Its `spend.change.pushed.v1`'s sequence: what the rollback's
    /// record expects (one rollback per change).
    pub seq: u64,
    /// The platform's answer: the campaign as the push left it, the charge.
    pub response: Option<serde_json::Value>,
    pub diff: Vec<FieldDiff>,
}

/// A rollback request, and whether a human's approval of it verified.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub request: RollbackRequested,
    /// Hex SHA-256 of its bytes on the log: what an approval must name.
    pub hash: String,
    pub cause: Cause,
    pub approved: bool,
    /// Drafts of it the executor refused to undo.
    pub refused: HashSet<String>,
}

/// A change the executor started: what a resumed push needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub change_id: String,
    /// Its `change.<change_id>` subject's sequence: what the outcome expects.
    pub seq: u64,
    /// The live state before, as captured.
    pub before: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Tracked {
    pub draft: Draft,
    /// The correlation of the draft's events.
    pub cause: Cause,
    pub started: Option<Started>,
    /// The executor asked a human for the account's write scope.
    pub consent_asked: bool,
    /// Waiting for a scope on this account (set by the runtime).
    pub parked: bool,
    /// Its push, once recorded.
    pub pushed: Option<Pushed>,
    /// What its commitment counted, and when the envelope took it.
    pub committed: Option<(i64, DateTime<Utc>)>,
    /// Its commitment was released.
    pub released: bool,
}

impl Tracked {
    fn new(draft: Draft, cause: Cause) -> Self {
        Self {
            draft,
            cause,
            started: None,
            consent_asked: false,
            parked: false,
            pushed: None,
            committed: None,
            released: false,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Push an approved or auto-approved draft.
    Push { org: String, draft_id: String },
    /// Finish a change started earlier (by this process before a crash,
    /// or a replica that stopped).
    Resume { org: String, draft_id: String, started: Started },
    /// Undo one change of a rollback a human approved.
    RollBack { org: String, rollback_id: String, draft_id: String },
    /// Give back the commitment of a change the platform refused for good.
    Release { org: String, draft_id: String },
}

impl Work {
    /// What the work is about, one key per change (or rollback of one):
    /// the in-flight set, the backoff and the lease go by it.
    pub fn key(&self) -> (String, String) {
        match self {
            Work::Push { org, draft_id } | Work::Resume { org, draft_id, .. } => (org.clone(), format!("change/{draft_id}")),
            Work::Release { org, draft_id } => (org.clone(), format!("release/{draft_id}")),
            Work::RollBack { org, rollback_id, draft_id } => (org.clone(), format!("rollback/{rollback_id}/{draft_id}")),
        }
    }
}

/// Something read that must be audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub org: String,
    pub reason: String,
    pub detail: String,
}

impl Audit {
    fn alert(org: String, alert: spend_core::events::SecurityAlert) -> Self {
        Self {
            org,
            reason: alert.reason,
            detail: alert.detail,
        }
    }
}

#[derive(Default)]
struct Frozen {
    all: bool,
    cards: HashSet<String>,
    reason: String,
}

pub struct Book {
    /// SPEND.md versions.
    pub versions: Versions,
    /// Who may approve, as the log says so far: approvals (of drafts,
    /// rollbacks and versions) count only with a proof by one of them.
    pub approvers: Registry,
    drafts: FifoMap<(String, String), Tracked>,
    rollbacks: FifoMap<(String, String), Rollback>,
    frozen: HashMap<String, Frozen>,
    /// The last stream sequence applied.
    pub seq: u64,
}

impl Book {
    /// A book whose SPEND.md versions are compared with `bootstrap` until
    /// one is approved (what a version loosens needs two approvers).
    pub fn new(passkey: spend_draft::proof::RelyingParty, bootstrap: std::sync::Arc<spend_policy::spendmd::SpendMd>) -> Self {
        Self {
            versions: Versions::new(Some(bootstrap)),
            approvers: Registry::new(passkey),
            drafts: FifoMap::new(MAX_DRAFTS),
            rollbacks: FifoMap::new(MAX_ROLLBACKS),
            frozen: HashMap::new(),
            seq: 0,
        }
    }

    /// Applies one message; returns what must be audited.
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) -> Option<Audit> {
        self.seq = self.seq.max(m.seq);
        let (env, aggregate, id) = match classify(prefix, m) {
            Read::Event { env, aggregate, id } => (env, aggregate, id),
            Read::Misplaced { org, detail } => {
                return Some(Audit {
                    org,
                    reason: "event.misplaced".into(),
                    detail,
                });
            }
            Read::NotAnEvent => return None,
        };
        let org = env.org.to_string();
        match self.versions.apply(prefix, m, &env, &mut self.approvers) {
            Some(Noticed::Forged { org, forgery }) => return Some(Audit::alert(org, forgery.security_alert())),
            Some(Noticed::Untrusted { org, detail }) => {
                return Some(Audit {
                    org,
                    reason: spend_policy::versions::UNTRUSTED.into(),
                    detail,
                });
            }
            Some(Noticed::ReusedId { .. }) | None => {}
        }
        if env.event_type == ApproverRemoved::TYPE
            && let Ok(r) = serde_json::from_str::<ApproverRemoved>(env.data.get())
            && r.org == org
        {
            // Their approvals of drafts still waiting for a human lapse, as
            // in the app, the gateway and the ledger: dual control then
            // needs two other people.
            for t in self.drafts.values_mut().filter(|t| t.draft.org() == org) {
                t.draft.lapse_approvals_of(&r.approver_id);
            }
            return None;
        }
        if env.event_type == RollbackApproved::TYPE {
            return self.approve_rollback(prefix, m, &env, &org);
        }
        if env.event_type == ApprovalGranted::TYPE && self.versions.proposal(&org, id).is_some() {
            return None;
        }
        let data = match fold::read(&Stored::new(prefix, &m.subject, &m.payload, m.republished, m.seq, m.time), &env, aggregate, id) {
            Said::Approval(facts) => return self.count_approval(org, &facts),
            Said::Forged(forgery) => return Some(Audit::alert(org, forgery.security_alert())),
            Said::Proposed { draft, by_agent, .. } => {
                // Only an agent's proposal is a draft to push.
                let key = (org, draft.id().to_string());
                if by_agent && !self.drafts.contains_key(&key) {
                    self.drafts.insert_new(key, Tracked::new(*draft, env.cause()));
                }
                return None;
            }
            Said::Fact(event) => {
                self.fact(org, &event, m.seq);
                return None;
            }
            Said::Misplaced(_) | Said::Unreadable => return None,
            Said::Other(data) => data,
        };
        self.other(org, aggregate, id, data, m, &env);
        None
    }

    /// An approval of a draft: counted on the draft when its proof
    /// verifies, audited when it does not.
    fn count_approval(&mut self, org: String, facts: &ApprovalFacts) -> Option<Audit> {
        let t = self.drafts.get_mut(&(org.clone(), facts.data.draft_id.clone()))?;
        match fold::count(facts, &mut t.draft, &mut self.approvers) {
            Ok(_) => None,
            Err(forgery) => Some(Audit::alert(org, forgery.security_alert())),
        }
    }

    /// A fact of a draft's life: the draft moves, and a start or a push is
    /// kept for what follows it.
    fn fact(&mut self, org: String, event: &DraftEvent, seq: u64) {
        let Some(t) = self.drafts.get_mut(&(org, event.draft_id().to_string())) else {
            return;
        };
        if !t.draft.apply(event) {
            return;
        }
        match event {
            DraftEvent::PushStarted(s) => {
                t.started = Some(Started {
                    change_id: s.change_id.clone(),
                    seq,
                    before: s.before.clone(),
                });
            }
            DraftEvent::Pushed(p) => {
                t.pushed = Some(Pushed {
                    seq,
                    response: p.response.clone(),
                    diff: p.diff.clone(),
                });
            }
            _ => {}
        }
    }

    /// What the executor keeps of events beside drafts' lives: consents and
    /// grants, rollback requests, commitments, frozen cards.
    fn other(&mut self, org: String, aggregate: &str, id: &str, data: EventData, m: &StoredMessage, env: &spend_core::RawEnvelope<'_>) {
        match data {
            EventData::AccountConsentRequested(c) if aggregate == "account" => {
                if let Some(t) = self.drafts.get_mut(&(org, c.draft_id)) {
                    t.consent_asked = true;
                }
            }
            EventData::AccountConnected(c) if aggregate == "account" => {
                // The write scope a human granted for one approved draft
                // lets that draft's push go on, and no other: each waits
                // for a grant that names it.
                if let Some(draft_id) = c.draft_id
                    && let Some(t) = self.drafts.get_mut(&(org, draft_id))
                    && t.draft.account_id() == c.account_id
                {
                    t.parked = false;
                }
            }
            // A human asks in the app (on the approval service's subject),
            // an operator with the CLI: the first request of an id counts.
            EventData::RollbackRequested(r) if matches!(aggregate, "approval" | "rollback_request") && r.rollback_id == id => {
                let key = (org, r.rollback_id.clone());
                if !self.rollbacks.contains_key(&key) {
                    self.rollbacks.insert_new(
                        key,
                        Rollback {
                            hash: event_hash(&m.payload),
                            cause: env.cause(),
                            request: r,
                            approved: false,
                            refused: HashSet::new(),
                        },
                    );
                }
            }
            EventData::RollbackRefused(r) if aggregate == "rollback" => {
                if let Some(rb) = self.rollbacks.get_mut(&(org, r.rollback_id)) {
                    rb.refused.insert(r.draft_id);
                }
            }
            EventData::BudgetCommitted(c) if aggregate == "budget" => {
                if let Some(t) = self.drafts.get_mut(&(org, c.draft_id)) {
                    t.committed = Some((c.amount.minor_units, env.time));
                }
            }
            EventData::BudgetReleased(c) if aggregate == "budget" => {
                if let Some(t) = self.drafts.get_mut(&(org, c.draft_id)) {
                    t.released = true;
                }
            }
            EventData::CardFreezeRequested(CardFreezeRequested { card_id, reason }) if matches!(aggregate, "card_freeze" | "kill_switch") => {
                let f = self.frozen.entry(org).or_default();
                if card_id == "*" {
                    f.all = true;
                } else {
                    f.cards.insert(card_id);
                }
                f.reason = reason;
            }
            _ => {}
        }
    }

    /// A `spend.rollback.approved.v1`: counted only when its passkey proof
    /// verifies against the request's exact bytes and expiry, by an
    /// approver of the request's organisation.
    fn approve_rollback(&mut self, prefix: &str, m: &StoredMessage, env: &spend_core::RawEnvelope<'_>, org: &str) -> Option<Audit> {
        let audit = |detail: String| {
            Some(Audit {
                org: org.to_string(),
                reason: spend_draft::Forgery::REASON.into(),
                detail,
            })
        };
        let facts = match ApprovalFacts::from_stored_rollback(prefix, &m.subject, env, m.republished, m.seq, m.time) {
            Ok(f) => f,
            Err(forgery) => return audit(forgery.detail),
        };
        let key = (org.to_string(), facts.data.draft_id.clone());
        let Some(rb) = self.rollbacks.get_mut(&key) else {
            return audit(format!(
                "approval {} on {} names rollback request {}, which is not on the log",
                facts.data.approval_id, m.subject, facts.data.draft_id
            ));
        };
        if rb.approved {
            return None;
        }
        match verify_rollback(&facts, org, &rb.request.rollback_id, &rb.hash, &rb.request.expires_at, &mut self.approvers) {
            Ok(_) => {
                rb.approved = true;
                None
            }
            Err(forgery) => audit(forgery.detail),
        }
    }

    pub fn rollback(&self, org: &str, rollback_id: &str) -> Option<&Rollback> {
        self.rollbacks.get(&(org.to_string(), rollback_id.to_string()))
    }

    pub fn tracked(&self, org: &str, draft_id: &str) -> Option<&Tracked> {
        self.drafts.get(&(org.to_string(), draft_id.to_string()))
    }

    /// Marks a draft as waiting for a scope on its account (until the
    /// account's connection changes).
    pub fn park(&mut self, org: &str, draft_id: &str) {
        if let Some(t) = self.drafts.get_mut(&(org.to_string(), draft_id.to_string())) {
            t.parked = true;
        }
    }

    /// Whether an operator froze `card_id` (or every card) of `org`, and why.
    pub fn frozen(&self, org: &str, card_id: &str) -> Option<&str> {
        self.frozen.get(org).filter(|f| f.all || f.cards.contains(card_id)).map(|f| f.reason.as_str())
    }

    /// Whether every card of `org` is frozen.
    pub fn all_frozen(&self, org: &str) -> bool {
        self.frozen.get(org).is_some_and(|f| f.all)
    }

    /// What to do now: drafts to push, changes to finish, commitments of
    /// failed changes to give back.
    pub fn due(&self) -> Vec<Work> {
        let mut out = Vec::new();
        for t in self.drafts.values() {
            let (org, draft_id) = (t.draft.org().to_string(), t.draft.id().to_string());
            match (t.draft.status(), &t.started) {
                (DraftStatus::Approved | DraftStatus::AutoApproved, None) if !t.parked => out.push(Work::Push { org, draft_id }),
                (DraftStatus::Pushing, Some(s)) => out.push(Work::Resume {
                    org,
                    draft_id,
                    started: s.clone(),
                }),
                (DraftStatus::Failed, _) if t.committed.is_some() && !t.released => out.push(Work::Release { org, draft_id }),
                _ => {}
            }
        }
        for ((org, rollback_id), rb) in self.rollbacks.iter().filter(|(_, rb)| rb.approved) {
            for item in &rb.request.changes {
                if rb.refused.contains(&item.draft_id) {
                    continue;
                }
                let done = self.tracked(org, &item.draft_id).is_some_and(|t| t.draft.status() == DraftStatus::RolledBack);
                if !done {
                    out.push(Work::RollBack {
                        org: org.clone(),
                        rollback_id: rollback_id.clone(),
                        draft_id: item.draft_id.clone(),
                    });
                }
            }
        }
        out
    }
}
