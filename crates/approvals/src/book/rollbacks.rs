//! Rollback requests (a human's in the app, on its approval subject, or an
//! operator's) and what happens on their approval subject: the request
//! opened, a human's approval (counted only when its proof verifies against
//! the request's exact bytes and expiry), its expiry.

use chrono::{DateTime, Utc};
use spend_core::RawEnvelope;
use spend_core::bounded::FifoMap;
use spend_core::events::{ApprovalRequested, EventData, RollbackApproved, RollbackRequested};
use spend_draft::approvers::Registry;
use spend_draft::{ApprovalFacts, event_hash, verify_rollback};
use spend_eventlog::StoredMessage;

use super::{Book, Links};

/// Rollback requests kept (the oldest forgotten first).
pub const MAX_ROLLBACKS: usize = 10_000;

/// A rollback request and its approval, as the app shows it.
#[derive(Debug, Clone)]
pub struct RollbackEntry {
    pub request: RollbackRequested,
    /// Hex SHA-256 of its bytes on the log: what a proof approves.
    pub hash: String,
    /// Asked for in the app (on the approval subject), not by an operator.
    pub in_app: bool,
    /// The approval request opened for it.
    pub approval: Option<ApprovalRequested>,
    pub approval_seq: u64,
    /// Who approved it, when (a proof that verified).
    pub approved: Option<(String, DateTime<Utc>)>,
    pub expired: bool,
}

pub(super) struct Rollbacks(pub(super) FifoMap<(String, String), RollbackEntry>);

/// Where a rollback event sits: the stored message, its envelope and the
/// subject's aggregate and id.
pub(super) struct At<'a> {
    pub prefix: &'a str,
    pub m: &'a StoredMessage,
    pub env: &'a RawEnvelope<'a>,
    pub aggregate: &'a str,
    pub id: &'a str,
}

impl Rollbacks {
    pub(super) fn new() -> Self {
        Self(FifoMap::new(MAX_ROLLBACKS))
    }

    /// Whether `at` is about a rollback this book keeps (or opens one).
    pub(super) fn concerns(&self, org: &str, at: &At<'_>) -> bool {
        at.env.event_type == RollbackRequested::TYPE || (at.aggregate == "approval" && self.0.contains_key(&(org.to_string(), at.id.to_string())))
    }

    pub(super) fn apply(&mut self, org: &str, at: &At<'_>, registry: &mut Registry, links: &mut Links) {
        let (m, env, aggregate, id) = (at.m, at.env, at.aggregate, at.id);
        let key = (org.to_string(), id.to_string());
        if env.event_type == RollbackApproved::TYPE {
            let Ok(facts) = ApprovalFacts::from_stored_rollback(at.prefix, &m.subject, env, m.republished, m.seq, m.time) else {
                return;
            };
            let Some(e) = self.0.get_mut(&key) else { return };
            e.approval_seq = m.seq;
            if e.approved.is_none() && !e.expired && verify_rollback(&facts, org, id, &e.hash, &e.request.expires_at, registry).is_ok() {
                e.approved = Some((facts.data.approver_id.clone(), m.time));
            }
            return;
        }
        let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
            return;
        };
        match data {
            EventData::RollbackRequested(r) if matches!(aggregate, "approval" | "rollback_request") && r.rollback_id == id && !self.0.contains_key(&key) => {
                self.0.insert_new(
                    key,
                    RollbackEntry {
                        request: r,
                        hash: event_hash(&m.payload),
                        in_app: aggregate == "approval",
                        approval: None,
                        approval_seq: if aggregate == "approval" { m.seq } else { 0 },
                        approved: None,
                        expired: false,
                    },
                );
            }
            other if aggregate == "approval" => {
                let Some(e) = self.0.get_mut(&key) else { return };
                e.approval_seq = m.seq;
                match other {
                    EventData::ApprovalRequested(r) if r.kind == "rollback" && e.approval.is_none() && r.approved_hash == e.hash => {
                        links.insert(r.link_token_sha256.clone(), key);
                        e.approval = Some(r);
                    }
                    EventData::ApprovalExpired(_) if e.approved.is_none() => e.expired = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl Book {
    pub fn rollback(&self, org: &str, id: &str) -> Option<&RollbackEntry> {
        self.rollbacks.0.get(&(org.to_string(), id.to_string()))
    }

    /// The organisation's rollback requests waiting for a human.
    pub fn waiting_rollbacks(&self, org: &str) -> Vec<&RollbackEntry> {
        self.rollbacks
            .0
            .iter()
            .filter(|((o, _), e)| o == org && e.approval.is_some() && e.approved.is_none() && !e.expired)
            .map(|(_, e)| e)
            .collect()
    }
}
