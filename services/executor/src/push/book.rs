//! What the executor knows, from the log alone: every draft through the
//! draft aggregate — approvals counted only through the verifier, against
//! the approver registry this book builds from the same log — the SPEND.md
//! versions in force (only through a human's verified approval), the
//! changes it started, the cards an operator froze. Pure: the runtime
//! follows the log into [`Book::apply`] and asks [`Book::due`] what to do.
//!
//! Nothing here trusts an event for being on the log: an approval counts
//! when its passkey proof verifies; a decision moves a draft, but an
//! auto-approval is pushed only after the runtime re-judges it.

use std::collections::{HashMap, HashSet};

use spend_core::bounded::FifoMap;
use spend_core::events::{ApprovalGranted, CardFreezeRequested, DraftProposed, EventData};
use spend_core::{ActorKind, Cause};
use spend_draft::{ApprovalFacts, Draft, DraftEvent, DraftStatus, recorded_approval};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};
use spend_policy::versions::{Noticed, Versions};

/// Drafts the book keeps (the oldest forgotten first).
pub const MAX_DRAFTS: usize = 100_000;

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
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Push an approved or auto-approved draft.
    Push { org: String, draft_id: String },
    /// Finish a change started earlier (by this process before a crash,
    /// or a replica that stopped).
    Resume { org: String, draft_id: String, started: Started },
}

/// Something read that must be audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub org: String,
    pub reason: String,
    pub detail: String,
}

#[derive(Default)]
struct Frozen {
    all: bool,
    cards: HashSet<String>,
    reason: String,
}

pub struct Book {
    /// SPEND.md versions and the approver registry.
    pub versions: Versions,
    drafts: FifoMap<(String, String), Tracked>,
    frozen: HashMap<String, Frozen>,
    /// The last stream sequence applied.
    pub seq: u64,
}

impl Default for Book {
    fn default() -> Self {
        Self {
            versions: Versions::default(),
            drafts: FifoMap::new(MAX_DRAFTS),
            frozen: HashMap::new(),
            seq: 0,
        }
    }
}

impl Book {
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
        match self.versions.apply(prefix, m, &env) {
            Some(Noticed::Forged { org, forgery }) => {
                let a = forgery.security_alert();
                return Some(Audit {
                    org,
                    reason: a.reason,
                    detail: a.detail,
                });
            }
            Some(Noticed::Untrusted { org, detail }) => {
                return Some(Audit {
                    org,
                    reason: spend_policy::versions::UNTRUSTED.into(),
                    detail,
                });
            }
            Some(Noticed::ReusedId { .. }) | None => {}
        }
        if env.event_type == ApprovalGranted::TYPE {
            if self.versions.proposal(&org, id).is_some() {
                return None;
            }
            let facts = match ApprovalFacts::from_stored(prefix, &m.subject, &env, m.republished, m.seq, m.time) {
                Ok(f) => f,
                Err(forgery) => {
                    let a = forgery.security_alert();
                    return Some(Audit {
                        org,
                        reason: a.reason,
                        detail: a.detail,
                    });
                }
            };
            let key = (org.clone(), facts.data.draft_id.clone());
            let registry = &mut self.versions.approvers;
            let t = self.drafts.get_mut(&key)?;
            return match recorded_approval(&facts, &t.draft, registry) {
                Ok(verified) => {
                    t.draft.apply(&DraftEvent::Approved(verified));
                    None
                }
                Err(forgery) => {
                    let a = forgery.security_alert();
                    Some(Audit {
                        org,
                        reason: a.reason,
                        detail: a.detail,
                    })
                }
            };
        }
        let data = EventData::from_json(&env.event_type, env.data.get()).ok()?;
        match data {
            EventData::DraftProposed(_) if aggregate == "draft" && env.actor.kind == ActorKind::Agent => {
                if let Some(DraftEvent::Proposed { data, at, hash, .. }) = DraftEvent::from_stored_proposal(&m.payload)
                    && data.draft_id == id
                {
                    let key = (org.clone(), data.draft_id.clone());
                    if !self.drafts.contains_key(&key) {
                        let proposal: &DraftProposed = &data;
                        self.drafts.insert_new(
                            key,
                            Tracked {
                                draft: Draft::from_proposed(&org, proposal, at, hash),
                                cause: env.cause(),
                                started: None,
                                consent_asked: false,
                                parked: false,
                            },
                        );
                    }
                }
            }
            EventData::AccountConsentRequested(c) if aggregate == "account" => {
                if let Some(t) = self.drafts.get_mut(&(org, c.draft_id)) {
                    t.consent_asked = true;
                }
            }
            EventData::AccountConnected(c) if aggregate == "account" => {
                // A new scope may be what a parked push waited for.
                for t in self
                    .drafts
                    .values_mut()
                    .filter(|t| t.parked && t.draft.org() == org && t.draft.account_id() == c.account_id)
                {
                    t.parked = false;
                }
            }
            EventData::CardFreezeRequested(CardFreezeRequested { card_id, reason }) if aggregate == "card_freeze" => {
                let f = self.frozen.entry(org).or_default();
                if card_id == "*" {
                    f.all = true;
                } else {
                    f.cards.insert(card_id);
                }
                f.reason = reason;
            }
            other => {
                let event = DraftEvent::from_fact(other)?;
                // Decisions sit on their draft's subject; the rest name it.
                if aggregate == "decision" && event.draft_id() != id {
                    return None;
                }
                if matches!(aggregate, "approval") && event.draft_id() != id {
                    return None;
                }
                let t = self.drafts.get_mut(&(org, event.draft_id().to_string()))?;
                if t.draft.apply(&event)
                    && let DraftEvent::PushStarted(s) = &event
                {
                    t.started = Some(Started {
                        change_id: s.change_id.clone(),
                        seq: m.seq,
                        before: s.before.clone(),
                    });
                }
            }
        }
        None
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

    /// What to do now: drafts to push, changes to finish.
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
                _ => {}
            }
        }
        out
    }
}
