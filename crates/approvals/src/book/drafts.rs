//! The drafts that need or needed a human, as the app shows them: each one
//! the draft aggregate folds (through `spend_draft::fold`, the one reading
//! every service shares), beside who drafted it, who approved or rejected
//! it and when, its push and whether the executor refused its rollback.

use chrono::{DateTime, Utc};
use spend_core::bounded::FifoMap;
use spend_core::events::ChangePushed;
use spend_draft::approvers::Registry;
use spend_draft::{ApprovalFacts, Draft, DraftEvent, DraftStatus, fold};

use super::{Book, Links};

/// Drafts the book keeps (the oldest forgotten first): pending ones and
/// the recent history the app shows.
pub const MAX_DRAFTS: usize = 100_000;

/// One draft as the app shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub draft: Draft,
    /// Who drafted it (the agent key id on the envelope).
    pub agent: String,
    /// Its approval subject's last stream sequence (0: none yet): what the
    /// service's next append on it expects.
    pub approval_seq: u64,
    /// Approvals counted: (approver id, when).
    pub approvals: Vec<(String, DateTime<Utc>)>,
    /// The rejection, if rejected: (approver id, reason).
    pub rejection: Option<(String, String)>,
    /// The live state before its push, as the executor captured it.
    pub before: Option<serde_json::Value>,
    /// Its push, once recorded, and when the log stored it.
    pub pushed: Option<ChangePushed>,
    pub pushed_at: Option<DateTime<Utc>>,
    /// Why the executor did not roll it back, when it refused.
    pub rollback_refused: Option<String>,
}

type Key = (String, String);

pub(super) struct Drafts(pub(super) FifoMap<Key, Entry>);

impl Drafts {
    pub(super) fn new() -> Self {
        Self(FifoMap::new(MAX_DRAFTS))
    }

    /// A draft proposed by `agent`: kept unless its place is taken.
    pub(super) fn propose(&mut self, draft: Draft, agent: String) {
        let key = (draft.org().to_string(), draft.id().to_string());
        if self.0.contains_key(&key) {
            return;
        }
        self.0.insert_new(
            key,
            Entry {
                draft,
                agent,
                approval_seq: 0,
                approvals: Vec::new(),
                rejection: None,
                before: None,
                pushed: None,
                pushed_at: None,
                rollback_refused: None,
            },
        );
    }

    /// An approval stored at `seq`, `at`: counted when its proof verifies.
    pub(super) fn approve(&mut self, facts: &ApprovalFacts, seq: u64, at: DateTime<Utc>, registry: &mut Registry) {
        let Some(entry) = self.0.get_mut(&(facts.org.clone(), facts.data.draft_id.clone())) else {
            return;
        };
        entry.approval_seq = seq;
        if fold::count(facts, &mut entry.draft, registry) == Ok(true) {
            entry.approvals.push((facts.data.approver_id.clone(), at));
        }
    }

    /// A fact of a draft's life, stored at `seq`, `at` on an `aggregate` subject.
    pub(super) fn fact(&mut self, org: String, aggregate: &str, event: &DraftEvent, seq: u64, at: DateTime<Utc>, links: &mut Links) {
        let key = (org, event.draft_id().to_string());
        let Some(entry) = self.0.get_mut(&key) else { return };
        if aggregate == "approval" {
            entry.approval_seq = seq;
        }
        if !entry.draft.apply(event) {
            return;
        }
        match event {
            DraftEvent::Requested(r) => {
                links.insert(r.link_token_sha256.clone(), key);
            }
            DraftEvent::Rejected(r) => entry.rejection = Some((r.approver_id.clone(), r.reason.clone())),
            DraftEvent::PushStarted(s) => entry.before = s.before.clone(),
            DraftEvent::Pushed(p) => {
                entry.pushed = Some(p.clone());
                entry.pushed_at = Some(at);
            }
            _ => {}
        }
    }

    /// A removed approver's approvals of `org`'s drafts still waiting lapse.
    pub(super) fn lapse(&mut self, org: &str, approver_id: &str) {
        for e in self.0.values_mut().filter(|e| e.draft.org() == org) {
            if e.draft.lapse_approvals_of(approver_id) {
                e.approvals.retain(|(a, _)| a != approver_id);
            }
        }
    }

    /// The executor did not roll `draft_id` back, for `reason`.
    pub(super) fn rollback_refused(&mut self, org: String, draft_id: String, reason: String) {
        if let Some(e) = self.0.get_mut(&(org, draft_id)) {
            e.rollback_refused = Some(reason);
        }
    }
}

impl Book {
    pub fn entry(&self, org: &str, draft_id: &str) -> Option<&Entry> {
        self.drafts.0.get(&(org.to_string(), draft_id.to_string()))
    }

    /// The organisation's pushed changes, newest first (at most `max`).
    pub fn pushed(&self, org: &str, max: usize) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.drafts.0.values().filter(|e| e.draft.org() == org && e.pushed.is_some()).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.draft.proposed_at()));
        v.truncate(max);
        v
    }

    /// The organisation's drafts, newest first: those waiting for a human
    /// and the `history` most recent others.
    pub fn queue(&self, org: &str, history: usize) -> (Vec<&Entry>, Vec<&Entry>) {
        let mut all: Vec<&Entry> = self.drafts.0.values().filter(|e| e.draft.org() == org).collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.draft.proposed_at()));
        let (waiting, done): (Vec<&Entry>, Vec<&Entry>) = all.into_iter().partition(|e| waits_for_a_human(e.draft.status()));
        (waiting, done.into_iter().take(history).collect())
    }
}

/// Whether a draft in `status` waits for a human.
pub fn waits_for_a_human(status: DraftStatus) -> bool {
    matches!(status, DraftStatus::PendingApproval | DraftStatus::AwaitingSecondApproval)
}
