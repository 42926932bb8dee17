//! The gateway's view of the event log: every replica follows the whole
//! stream and keeps, in memory, what agents may ask about — each draft's
//! status and contents, the organisation's recent audit trail, API keys
//! (see [`crate::credentials::KeyStore`]) and tripped circuit breakers.
//!
//! The log is the truth; the view is a cache of it that any replica can
//! rebuild by replaying. Reads that must see the caller's own writes wait
//! for the view to reach the log's last sequence first
//! ([`crate::GatewayState::caught_up`]).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;
use spend_core::events::{ApprovalGranted, DraftProposed, EventData, FieldDiff, Outcome, PolicyEvaluated};
use spend_core::{Money, RawEnvelope};
use spend_eventlog::StoredMessage;
use spend_policy::versions::{Versions, is_recorded_approval};

/// Audit entries kept per organisation.
const AUDIT_PER_ORG: usize = 10_000;

/// Aggregates an agent may see in its organisation's audit log: the life
/// of drafts and the spend they committed. Security alerts, API keys and
/// nonces stay with the humans.
const AGENT_VISIBLE: &[&str] = &["draft", "budget", "limit", "approval", "change", "breaker"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    Proposed,
    PendingApproval,
    Approved,
    Denied,
    Pushed,
    RolledBack,
    Stale,
}

impl DraftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Pushed => "pushed",
            Self::RolledBack => "rolled_back",
            Self::Stale => "stale",
        }
    }

    /// Still waiting for a human (and so able to go stale).
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Proposed | Self::PendingApproval)
    }
}

#[derive(Debug, Clone)]
pub struct DraftRecord {
    pub draft_id: String,
    pub org: String,
    pub account_id: String,
    pub kind: String,
    pub diff: Vec<FieldDiff>,
    pub spend_impact: Money,
    pub rationale: String,
    pub proposed_at: DateTime<Utc>,
    pub drafted_against: Option<String>,
    pub decision: Option<PolicyEvaluated>,
    pub approvals: u32,
    pub status: DraftStatus,
    pub last_event: String,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub seq: u64,
    pub subject: String,
    pub event_type: String,
    pub time: DateTime<Utc>,
    pub payload: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    pub reason: String,
    pub detail: String,
    pub since: DateTime<Utc>,
}

#[derive(Default)]
pub struct View {
    /// The last stream sequence applied.
    pub seq: u64,
    drafts: HashMap<(String, String), DraftRecord>,
    audit: HashMap<String, VecDeque<AuditEntry>>,
    breakers: HashMap<(String, String), Breaker>,
    /// SPEND.md versions proposed and approved, per organisation.
    pub versions: Versions,
}

/// What [`View::apply`] noticed beyond updating itself.
pub enum Applied {
    Event(EventData),
    /// An approval that did not come from the approval service on an
    /// approval subject with a human actor: a forgery, to be audited.
    ForgedApproval {
        org: String,
        detail: String,
    },
    Nothing,
}

impl View {
    /// Applies one message from the log. Payloads that are not valid
    /// events are skipped here (the ledger records them as rejected).
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) -> Applied {
        self.seq = self.seq.max(m.seq);
        self.apply_event(prefix, m).unwrap_or(Applied::Nothing)
    }

    fn apply_event(&mut self, prefix: &str, m: &StoredMessage) -> Option<Applied> {
        let env = RawEnvelope::parse(&m.payload).ok()?;
        let org = env.org.to_string();
        let (aggregate, _) = spend_core::subject::split_aggregate(&m.subject, prefix, &org)?;
        if AGENT_VISIBLE.contains(&aggregate) {
            let q = self.audit.entry(org.clone()).or_default();
            if q.len() == AUDIT_PER_ORG {
                q.pop_front();
            }
            q.push_back(AuditEntry {
                seq: m.seq,
                subject: m.subject.clone(),
                event_type: env.event_type.to_string(),
                time: env.time,
                payload: m.payload.clone(),
            });
        }
        let data = EventData::from_json(&env.event_type, env.data.get()).ok()?;
        let event_type = env.event_type.to_string();
        let key = |draft_id: &str| (org.clone(), draft_id.to_string());
        match &data {
            EventData::DraftProposed(d) => {
                self.drafts.insert(key(&d.draft_id), record(&org, d, &env));
            }
            EventData::PolicyEvaluated(e) => {
                if let Some(r) = self.drafts.get_mut(&key(&e.draft_id)) {
                    r.status = match e.outcome {
                        Outcome::Deny => DraftStatus::Denied,
                        Outcome::AutoApprove => DraftStatus::Approved,
                        Outcome::RequireApproval | Outcome::RequireDualApproval => DraftStatus::PendingApproval,
                    };
                    r.decision = Some(e.clone());
                    r.last_event = event_type.clone();
                }
            }
            // Only a human's approval, recorded by the approval service on
            // the approval subject, counts — even for display. Anything else
            // is a forgery (the gateway's own NATS user, for one, may write
            // draft subjects but not approval subjects).
            EventData::ApprovalGranted(ApprovalGranted { draft_id, .. }) if !is_recorded_approval(env.actor.kind, &env.source, aggregate) => {
                return Some(Applied::ForgedApproval {
                    org,
                    detail: format!(
                        "an approval of draft {draft_id} at seq {} on {} by {:?} {} from {}: only the approval service records a human's approval, on an approval subject",
                        m.seq, m.subject, env.actor.kind, env.actor.id, env.source
                    ),
                });
            }
            EventData::ApprovalGranted(ApprovalGranted { draft_id, .. }) => {
                self.versions.approved(&org, draft_id);
                if let Some(r) = self.drafts.get_mut(&key(draft_id)) {
                    r.approvals += 1;
                    let needed = match r.decision.as_ref().map(|d| &d.outcome) {
                        Some(Outcome::RequireDualApproval) => 2,
                        _ => 1,
                    };
                    if r.approvals >= needed && r.status.is_pending() {
                        r.status = DraftStatus::Approved;
                    }
                    r.last_event = event_type.clone();
                }
            }
            EventData::ChangePushed(c) => self.set_status(&key(&c.draft_id), DraftStatus::Pushed, &event_type),
            EventData::ChangeRolledBack(c) => self.set_status(&key(&c.draft_id), DraftStatus::RolledBack, &event_type),
            EventData::DraftStaled(s) => self.set_status(&key(&s.draft_id), DraftStatus::Stale, &event_type),
            EventData::BreakerTripped(b) => {
                self.breakers.insert(
                    (org.clone(), b.account_id.clone()),
                    Breaker {
                        reason: b.reason.clone(),
                        detail: b.detail.clone(),
                        since: env.time,
                    },
                );
            }
            EventData::BreakerReset(b) => {
                self.breakers.remove(&(org.clone(), b.account_id.clone()));
            }
            EventData::PolicyProposed(p) => self.versions.proposed(&org, p),
            _ => {}
        }
        Some(Applied::Event(data))
    }

    fn set_status(&mut self, key: &(String, String), status: DraftStatus, event_type: &str) {
        if let Some(r) = self.drafts.get_mut(key) {
            r.status = status;
            r.last_event = event_type.to_string();
        }
    }

    pub fn draft(&self, org: &str, draft_id: &str) -> Option<&DraftRecord> {
        self.drafts.get(&(org.to_string(), draft_id.to_string()))
    }

    /// The organisation's drafts still waiting for a human, oldest first.
    pub fn pending(&self, org: &str, account_id: Option<&str>) -> Vec<DraftRecord> {
        let mut v: Vec<DraftRecord> = self
            .drafts
            .values()
            .filter(|r| r.org == org && r.status.is_pending() && account_id.is_none_or(|a| r.account_id == a))
            .cloned()
            .collect();
        v.sort_by_key(|r| r.proposed_at);
        v
    }

    /// The organisation's most recent audit entries, newest last,
    /// optionally only those on one draft's subject.
    pub fn audit(&self, org: &str, subject: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        let Some(q) = self.audit.get(org) else { return vec![] };
        let mut v: Vec<AuditEntry> = q.iter().rev().filter(|e| subject.is_none_or(|s| e.subject == s)).take(limit).cloned().collect();
        v.reverse();
        v
    }

    pub fn breaker(&self, org: &str, account_id: &str) -> Option<&Breaker> {
        self.breakers.get(&(org.to_string(), account_id.to_string()))
    }
}

fn record(org: &str, d: &DraftProposed, env: &RawEnvelope<'_>) -> DraftRecord {
    DraftRecord {
        draft_id: d.draft_id.clone(),
        org: org.to_string(),
        account_id: d.account_id.clone(),
        kind: d.kind.clone(),
        diff: d.diff.clone(),
        spend_impact: d.spend_impact.clone(),
        rationale: d.rationale.clone(),
        proposed_at: env.time,
        drafted_against: d.drafted_against.clone(),
        decision: None,
        approvals: 0,
        status: DraftStatus::Proposed,
        last_event: env.event_type.to_string(),
    }
}
