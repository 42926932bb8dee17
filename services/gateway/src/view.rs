//! The gateway's view of the event log: every replica follows the whole
//! stream and keeps, in memory, what agents may ask about — each draft (the
//! draft aggregate of `spend-draft`, the one place a status is derived),
//! the organisation's recent audit trail, API keys (see
//! [`crate::credentials::KeyStore`]), tripped circuit breakers and SPEND.md
//! versions.
//!
//! It reads as every consumer must ([`spend_eventlog::read::classify`]): an
//! event where its writer could not have put it, or a republished one, is
//! ignored and audited; an approval counts only through the aggregate's
//! verifier.
//!
//! The log is the truth; the view is a bounded cache of it that any replica
//! can rebuild by replaying: drafts still waiting for a human, and the most
//! recent [`HISTORY_PER_ORG`] others per organisation. Reads that must see
//! the caller's own writes wait for the view to reach the log's last
//! sequence first ([`crate::GatewayState::caught_up`]).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use spend_core::RawEnvelope;
use spend_core::events::EventData;
use spend_draft::approvers::Registry;
use spend_draft::fold::{self, Said, Stored};
use spend_draft::{ApprovalFacts, Draft, DraftEvent, Forgery};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};
use spend_policy::versions::{Noticed, Versions};

/// Audit entries kept per organisation.
pub const AUDIT_PER_ORG: usize = 2_000;
/// Drafts no longer pending kept per organisation (newest).
pub const HISTORY_PER_ORG: usize = 1_000;
/// Drafts waiting for a human an organisation may have at once: the
/// gateway refuses a new draft beyond it (a flood would otherwise grow
/// every replica's memory, and bury the humans' queue).
pub const MAX_PENDING_PER_ORG: usize = 1_000;

/// Aggregates an agent may see in its organisation's audit log: the life
/// of drafts and the spend they committed. Security alerts, API keys and
/// nonces stay with the humans.
const AGENT_VISIBLE: &[&str] = &["draft", "decision", "budget", "limit", "approval", "change", "breaker", "breaker_reset"];

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
struct OrgDrafts {
    drafts: HashMap<String, Draft>,
    /// Ids of drafts no longer pending, oldest first, for eviction.
    settled: VecDeque<String>,
}

impl OrgDrafts {
    fn pending(&self) -> usize {
        self.drafts.len() - self.settled.len()
    }

    fn settle(&mut self, id: &str) {
        if !self.settled.iter().any(|s| s == id) {
            self.settled.push_back(id.to_string());
        }
        while self.settled.len() > HISTORY_PER_ORG {
            if let Some(old) = self.settled.pop_front() {
                self.drafts.remove(&old);
            }
        }
    }
}

pub struct View {
    /// The last stream sequence applied.
    pub seq: u64,
    orgs: HashMap<String, OrgDrafts>,
    audit: HashMap<String, VecDeque<AuditEntry>>,
    breakers: HashMap<(String, String), Breaker>,
    /// Organisations whose agents were paused, with why, by who paused
    /// them: the operator (`pause`) or an admin in the app
    /// (`kill_switch`). An admin's resume lifts only an admin's pause; the
    /// operator's lifts both.
    paused: HashMap<(String, &'static str), String>,
    /// SPEND.md versions proposed and approved, per organisation.
    pub versions: Versions,
    /// Who may approve, as the log says so far.
    pub approvers: Registry,
    /// MCP clients' grants revoked: (org, grant id). Their access tokens
    /// are refused from the moment the view applies the revocation.
    revoked_grants: std::collections::HashSet<(String, String)>,
    /// When the operator last revoked every agent credential of an
    /// organisation (`spend api-key revoke --all`): MCP clients' access
    /// tokens issued until then are refused too.
    credentials_revoked_at: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

/// What [`View::apply`] noticed beyond updating itself.
#[allow(clippy::large_enum_variant)] // returned once per message, never stored
pub enum Applied {
    Event(EventData),
    /// Something to audit once (an approval the verifier refused, an
    /// event out of place, a reused policy id): alert subject id, reason,
    /// detail.
    Audit {
        org: String,
        id: String,
        reason: String,
        detail: String,
    },
    Nothing,
}

/// The audit of an approval the verifier refused.
fn forged(org: String, seq: u64, forgery: Forgery) -> Applied {
    Applied::Audit {
        org,
        id: format!("forged-{seq}"),
        reason: Forgery::REASON.into(),
        detail: forgery.detail,
    }
}

impl View {
    /// An empty view whose approvals and SPEND.md versions count only with
    /// passkeys made on `rp`, versions compared with `bootstrap`.
    pub fn new(rp: spend_draft::proof::RelyingParty, bootstrap: Option<std::sync::Arc<spend_policy::spendmd::SpendMd>>) -> Self {
        Self {
            seq: 0,
            orgs: HashMap::new(),
            audit: HashMap::new(),
            breakers: HashMap::new(),
            paused: HashMap::new(),
            versions: Versions::new(bootstrap),
            approvers: Registry::new(rp),
            revoked_grants: std::collections::HashSet::new(),
            credentials_revoked_at: HashMap::new(),
        }
    }

    /// Why `org`'s agents are paused, while paused.
    pub fn paused(&self, org: &str) -> Option<&str> {
        ["pause", "kill_switch"]
            .iter()
            .find_map(|by| self.paused.get(&(org.to_string(), *by)))
            .map(String::as_str)
    }

    /// Whether an MCP client's grant was revoked, or every credential of
    /// its organisation since the token was issued (`issued_at`, unix
    /// seconds), or the approver who granted it (`grantor`, the token's
    /// subject) was removed.
    pub fn grant_revoked(&self, org: &str, grant_id: &str, issued_at: i64, grantor: &str) -> bool {
        self.revoked_grants.contains(&(org.to_string(), grant_id.to_string()))
            || self.credentials_revoked_at.get(org).is_some_and(|t| issued_at <= t.timestamp())
            || self.approvers.approver(org, grantor).is_some_and(|a| a.removed_at.is_some())
    }

    /// The account a draft of `org` is on, while the view keeps it.
    pub fn account_of(&self, org: &str, draft_id: &str) -> Option<String> {
        self.orgs.get(org)?.drafts.get(draft_id).map(|d| d.account_id().to_string())
    }

    /// Applies one message from the log. Payloads that are not valid
    /// events are skipped here (the ledger records them as rejected).
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) -> Applied {
        self.seq = self.seq.max(m.seq);
        match classify(prefix, m) {
            Read::Event { env, aggregate, id } => self.apply_event(prefix, m, &env, aggregate, id),
            Read::Misplaced { org, detail } => Applied::Audit {
                org,
                id: format!("misplaced-{}", m.seq),
                reason: "event.misplaced".into(),
                detail,
            },
            Read::NotAnEvent => Applied::Nothing,
        }
    }

    fn apply_event(&mut self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>, aggregate: &str, id: &str) -> Applied {
        let org = env.org.to_string();
        if AGENT_VISIBLE.contains(&aggregate) {
            let q = self.audit.entry(org.clone()).or_default();
            if q.len() >= AUDIT_PER_ORG {
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
        if env.event_type == spend_core::events::ApproverRemoved::TYPE
            && let Ok(r) = serde_json::from_str::<spend_core::events::ApproverRemoved>(env.data.get())
            && let Some(o) = self.orgs.get_mut(&org)
        {
            for d in o.drafts.values_mut() {
                d.lapse_approvals_of(&r.approver_id);
            }
        }
        match self.versions.apply(prefix, m, env, &mut self.approvers) {
            Some(Noticed::ReusedId { org, detail }) => {
                return Applied::Audit {
                    org,
                    id: format!("policy_reused-{}", m.seq),
                    reason: "policy.proposal_reused".into(),
                    detail,
                };
            }
            Some(Noticed::Forged { org, forgery }) => return forged(org, m.seq, forgery),
            Some(Noticed::Untrusted { org, detail }) => {
                return Applied::Audit {
                    org,
                    id: format!("untrusted-{}", m.seq),
                    reason: spend_policy::versions::UNTRUSTED.into(),
                    detail,
                };
            }
            None => {}
        }
        let data = match fold::read(&Stored::new(prefix, &m.subject, &m.payload, m.republished, m.seq, m.time), env, aggregate, id) {
            Said::Approval(facts) => return self.apply_approval(org, m.seq, &facts),
            Said::Forged(forgery) => return forged(org, m.seq, forgery),
            Said::Misplaced(detail) => {
                return Applied::Audit {
                    detail,
                    org,
                    id: format!("misplaced-{}", m.seq),
                    reason: "event.misplaced".into(),
                };
            }
            Said::Unreadable => return Applied::Nothing,
            Said::Proposed { draft, .. } => {
                let data = EventData::DraftProposed(draft.proposal().clone());
                self.orgs.entry(org).or_default().drafts.entry(draft.id().to_string()).or_insert(*draft);
                return Applied::Event(data);
            }
            Said::Fact(event) => {
                self.apply_to_draft(&org, &event);
                return event.into_data().map_or(Applied::Nothing, Applied::Event);
            }
            Said::Other(data) => data,
        };
        match &data {
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
            EventData::ClientRevoked(r) if aggregate == "client" && r.grant_id == id => {
                self.revoked_grants.insert((org.clone(), r.grant_id.clone()));
            }
            EventData::ApiKeyRevoked(r) if aggregate == "apikey" && r.key_id == "*" && r.org == org => {
                self.credentials_revoked_at.insert(org.clone(), env.time);
            }
            EventData::AgentsPaused(p) => {
                let by = if aggregate == "pause" { "pause" } else { "kill_switch" };
                self.paused.insert((org.clone(), by), p.reason.clone());
            }
            EventData::AgentsResumed(_) => {
                self.paused.remove(&(org.clone(), "kill_switch"));
                if aggregate == "pause" {
                    self.paused.remove(&(org.clone(), "pause"));
                }
            }
            _ => {}
        }
        Applied::Event(data)
    }

    fn apply_approval(&mut self, org: String, seq: u64, facts: &ApprovalFacts) -> Applied {
        // A policy proposal's approval (handled by the versions), or a
        // draft this replica no longer keeps: nothing to count here.
        let Some(o) = self.orgs.get_mut(&org) else { return Applied::Nothing };
        let Some(draft) = o.drafts.get_mut(&facts.data.draft_id) else {
            return Applied::Nothing;
        };
        match fold::count(facts, draft, &mut self.approvers) {
            Ok(moved) => {
                if moved && !draft.status().is_pending() {
                    o.settle(&facts.data.draft_id);
                }
                Applied::Nothing
            }
            Err(forgery) => forged(org, seq, forgery),
        }
    }

    fn apply_to_draft(&mut self, org: &str, e: &DraftEvent) {
        let Some(o) = self.orgs.get_mut(org) else { return };
        let id = e.draft_id().to_string();
        let Some(d) = o.drafts.get_mut(&id) else { return };
        if d.apply(e) && !d.status().is_pending() {
            o.settle(&id);
        }
    }

    pub fn draft(&self, org: &str, draft_id: &str) -> Option<&Draft> {
        self.orgs.get(org).and_then(|o| o.drafts.get(draft_id))
    }

    /// How many of the organisation's drafts the view keeps (pending and
    /// recent history), for the memory benchmark.
    pub fn drafts_kept(&self, org: &str) -> usize {
        self.orgs.get(org).map(|o| o.drafts.len()).unwrap_or(0)
    }

    /// How many of the organisation's drafts wait for a human.
    pub fn pending_count(&self, org: &str) -> usize {
        self.orgs.get(org).map(OrgDrafts::pending).unwrap_or(0)
    }

    /// The organisation's drafts still waiting for a human, oldest first.
    pub fn pending(&self, org: &str, account_id: Option<&str>) -> Vec<Draft> {
        let Some(o) = self.orgs.get(org) else { return vec![] };
        let mut v: Vec<Draft> = o
            .drafts
            .values()
            .filter(|d| d.status().is_pending() && account_id.is_none_or(|a| d.account_id() == a))
            .cloned()
            .collect();
        v.sort_by_key(|d| d.proposed_at());
        v
    }

    /// The organisation's most recent audit entries, newest last,
    /// optionally only those about one draft.
    pub fn audit(&self, org: &str, subjects: Option<&[String]>, limit: usize) -> Vec<AuditEntry> {
        let Some(q) = self.audit.get(org) else { return vec![] };
        let mut v: Vec<AuditEntry> = q
            .iter()
            .rev()
            .filter(|e| subjects.is_none_or(|s| s.contains(&e.subject)))
            .take(limit)
            .cloned()
            .collect();
        v.reverse();
        v
    }

    pub fn breaker(&self, org: &str, account_id: &str) -> Option<&Breaker> {
        self.breakers.get(&(org.to_string(), account_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::events::{AgentsPaused, AgentsResumed};
    use spend_core::{Actor, Envelope};

    fn stored(seq: u64, subject: &str, data: EventData) -> StoredMessage {
        let env = Envelope::new("spendsignoff/test", "acme", Actor::human("someone"), subject, data);
        spend_testkit::events::stored("spend.evt", seq, &env)
    }

    #[test]
    fn an_admins_resume_lifts_only_an_admins_pause() {
        let mut v = View::new(spend_draft::proof::RelyingParty::default_app(), None);
        let pause = |r: &str| EventData::AgentsPaused(AgentsPaused { reason: r.into() });
        let resume = || EventData::AgentsResumed(AgentsResumed { reason: "ok".into() });
        v.apply("spend.evt", &stored(1, "pause/acme", pause("operator")));
        v.apply("spend.evt", &stored(2, "kill_switch/agents", pause("admin")));
        v.apply("spend.evt", &stored(3, "kill_switch/agents", resume()));
        assert_eq!(v.paused("acme"), Some("operator"), "the operator's pause stands");
        v.apply("spend.evt", &stored(4, "kill_switch/agents", pause("admin")));
        v.apply("spend.evt", &stored(5, "pause/acme", resume()));
        assert_eq!(v.paused("acme"), None, "the operator's resume lifts both");
        v.apply("spend.evt", &stored(6, "kill_switch/agents", pause("admin")));
        assert_eq!(v.paused("acme"), Some("admin"));
        v.apply("spend.evt", &stored(7, "kill_switch/agents", resume()));
        assert_eq!(v.paused("acme"), None);
    }

    #[test]
    fn a_rejection_on_another_drafts_approval_subject_is_audited_and_moves_nothing() {
        use spend_testkit::events::{decided, payment_proposed};
        let mut v = View::new(spend_draft::humans::test_rp(), None);
        let mut seq = 0;
        let mut put = |v: &mut View, env: Envelope, subject: Option<&str>| {
            seq += 1;
            let mut m = spend_testkit::events::stored("spend.evt", seq, &env);
            if let Some(s) = subject {
                m.subject = s.into();
            }
            v.apply("spend.evt", &m)
        };
        put(&mut v, payment_proposed("acme", "d1", 900), None);
        put(&mut v, decided("acme", "d1", spend_core::events::Outcome::RequireApproval), None);
        let rejected = Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::human("alice"),
            "approval/d9",
            EventData::ApprovalRejected(spend_core::events::ApprovalRejected {
                draft_id: "d1".into(),
                approval_id: "r1".into(),
                approver_id: "alice".into(),
                reason: "written where d9's are".into(),
            }),
        );
        let applied = put(&mut v, rejected, Some("spend.evt.acme.approval.d9"));
        assert!(
            matches!(&applied, Applied::Audit { reason, .. } if reason == "event.misplaced"),
            "a misplaced rejection is audited"
        );
        assert_eq!(v.draft("acme", "d1").unwrap().status(), spend_draft::DraftStatus::PendingApproval);
    }

    #[test]
    fn an_mcp_grant_ends_when_its_approver_is_removed() {
        let mut v = View::new(spend_draft::humans::test_rp(), None);
        let mut humans = spend_testkit::events::Approvers::new("acme", &["ada", "bob"]);
        let mut seq = 0;
        let mut put = |v: &mut View, env: Envelope| {
            seq += 1;
            v.apply("spend.evt", &spend_testkit::events::stored("spend.evt", seq, &env));
        };
        for env in humans.trust() {
            put(&mut v, env);
        }
        assert!(!v.grant_revoked("acme", "gr_1", 0, "bob"), "bob is an approver: his grant stands");
        put(
            &mut v,
            Envelope::new(
                "spendsignoff/cli",
                "acme",
                Actor::human("operator"),
                "roster/bob",
                EventData::ApproverRemoved(spend_core::events::ApproverRemoved {
                    org: "acme".into(),
                    approver_id: "bob".into(),
                    reason: "left".into(),
                }),
            ),
        );
        assert!(v.grant_revoked("acme", "gr_1", 0, "bob"), "removed: every token of his grants is refused");
        assert!(!v.grant_revoked("acme", "gr_2", 0, "ada"), "ada's stand");
    }
}
