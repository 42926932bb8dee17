//! The approval of SPEND.md proposals, as the app shows it: the request,
//! who approved (as the policy versions counted: verified, distinct
//! approvers), a rejection, expiry and the one escalation. The proposals
//! and whether one is in force are the versions' (`spend_policy::versions`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use spend_core::events::{ApprovalRequested, EventData};
use spend_eventlog::StoredMessage;
use spend_policy::versions::Versions;

use super::{Book, Links};

/// A SPEND.md proposal's approval, as the app shows it (the proposal
/// itself is in [`Versions`]).
#[derive(Debug, Clone, Default)]
pub struct PolicyEntry {
    pub request: Option<ApprovalRequested>,
    pub approval_seq: u64,
    pub approvals: Vec<(String, DateTime<Utc>)>,
    pub rejection: Option<(String, String)>,
    pub expired: bool,
    /// The request escalated (and was extended) once already.
    pub escalated: bool,
}

/// Approvals of SPEND.md proposals, by (org, proposal id).
#[derive(Default)]
pub(super) struct Policies(HashMap<(String, String), PolicyEntry>);

impl Policies {
    /// An event on the approval subject of proposal `id`.
    pub(super) fn apply(&mut self, versions: &Versions, links: &mut Links, org: &str, id: &str, m: &StoredMessage, data: Option<EventData>) {
        // What the versions counted (verified, distinct approvers).
        let counted = versions.approvals(org, id);
        let approved = versions.is_approved(org, id);
        let e = self.0.entry((org.to_string(), id.to_string())).or_default();
        e.approval_seq = m.seq;
        let Some(data) = data else { return };
        let open = e.rejection.is_none() && !e.expired && !approved;
        match data {
            EventData::ApprovalRequested(r) if r.kind == "policy" && e.request.is_none() => {
                links.insert(r.link_token_sha256.clone(), (org.to_string(), id.to_string()));
                e.request = Some(r);
            }
            EventData::ApprovalGranted(g) if counted.contains(&g.approver_id) && !e.approvals.iter().any(|a| a.0 == g.approver_id) => {
                e.approvals.push((g.approver_id, m.time))
            }
            EventData::ApprovalRejected(r) if open => e.rejection = Some((r.approver_id, r.reason)),
            EventData::ApprovalExpired(_) if open => e.expired = true,
            // As the draft aggregate takes one: once, for a request that
            // escalates, and only later.
            EventData::ApprovalEscalated(x) if open && !e.escalated => {
                if let Some(r) = e.request.as_mut()
                    && r.timeout_action == "escalate"
                    && x.previous_expires_at == r.expires_at
                    && DateTime::parse_from_rfc3339(&x.expires_at).ok() > DateTime::parse_from_rfc3339(&r.expires_at).ok()
                {
                    r.expires_at = x.expires_at;
                    e.escalated = true;
                }
            }
            _ => {}
        }
    }
}

impl Book {
    pub fn policy_entry(&self, org: &str, id: &str) -> Option<&PolicyEntry> {
        self.policies.0.get(&(org.to_string(), id.to_string()))
    }

    /// Policy proposals of `org` waiting for a human: (id, version).
    pub fn waiting_policies(&self, org: &str) -> Vec<(String, String)> {
        self.versions
            .waiting(org)
            .into_iter()
            .filter(|(p, _, _)| self.policy_entry(org, &p.draft_id).is_none_or(|e| e.rejection.is_none() && !e.expired))
            .map(|(p, _, _)| (p.draft_id.clone(), p.version.clone()))
            .collect()
    }
}
