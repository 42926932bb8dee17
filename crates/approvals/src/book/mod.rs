//! What the approval service knows, and only from the log: the people
//! (invitations, registered passkeys, emails, agent keys' names), the
//! drafts that need or needed a human (the draft aggregate of
//! `spend-draft`, the one place a status is derived), rollback requests,
//! SPEND.md proposals' approvals, what the console shows (envelopes,
//! consents, pauses, frozen cards), and the approval links' token hashes.
//! The approver registry is kept here, beside the policy [`Versions`]
//! (which it lends to count approvals of SPEND.md proposals).
//!
//! Each part folds what it is about in a module of its own ([`people`],
//! [`drafts`], [`rollbacks`], [`policies`], [`console`]); [`Book::apply`]
//! hands each event to the one it concerns.
//!
//! Any replica rebuilds it by replaying; it is the service's only state
//! beyond short-lived sign-in ceremonies and sessions. Pure: the service
//! follows the log into [`Book::apply`] and asks [`Book::due`] what to
//! append next (requests to open, requests that expired).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use spend_core::events::{ApproverRemoved, EventData, Outcome};
use spend_draft::approvers::Registry;
use spend_draft::fold::{self, Said, Stored};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};
use spend_policy::versions::Versions;

mod console;
mod drafts;
mod people;
mod policies;
mod rollbacks;

pub use drafts::{Entry, MAX_DRAFTS, waits_for_a_human};
pub use people::Invite;
pub use policies::PolicyEntry;
pub use rollbacks::{MAX_ROLLBACKS, RollbackEntry};

/// Invitations kept (the oldest forgotten first).
pub const MAX_INVITES: usize = 10_000;

/// Approval links: token hash -> (org, draft, rollback or proposal id).
type Links = HashMap<String, (String, String)>;

/// What a human can approve, whichever kind it is: a draft or a policy
/// proposal.
#[derive(Debug, Clone)]
pub struct Target {
    /// `draft`, `policy` or `rollback`.
    pub kind: &'static str,
    pub approved_hash: String,
    pub request: Option<spend_core::events::ApprovalRequested>,
    pub waiting: bool,
    /// Its request escalated already (it may, once).
    pub escalated: bool,
    pub approvers: Vec<String>,
    pub approval_seq: u64,
}

pub struct Book {
    /// SPEND.md versions.
    pub versions: Versions,
    /// Who may approve, as the log says so far (anchored first admins and
    /// admin-countersigned approvers): every approval counts only with a
    /// proof by one of them.
    pub approvers: Registry,
    people: people::People,
    drafts: drafts::Drafts,
    rollbacks: rollbacks::Rollbacks,
    policies: policies::Policies,
    console: console::Console,
    links: Links,
    /// The last stream sequence applied.
    pub seq: u64,
}

impl Book {
    /// A book whose approvals count only with passkeys made on `rp`, and
    /// whose SPEND.md versions are compared with `bootstrap` until one is
    /// approved.
    pub fn new(rp: spend_draft::proof::RelyingParty, bootstrap: Option<std::sync::Arc<spend_policy::spendmd::SpendMd>>) -> Self {
        Self {
            versions: Versions::new(bootstrap),
            approvers: Registry::new(rp),
            people: people::People::new(),
            drafts: drafts::Drafts::new(),
            rollbacks: rollbacks::Rollbacks::new(),
            policies: policies::Policies::default(),
            console: console::Console::new(),
            links: HashMap::new(),
            seq: 0,
        }
    }

    /// Applies one message from the log.
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) {
        self.seq = self.seq.max(m.seq);
        let Read::Event { env, aggregate, id } = classify(prefix, m) else {
            return;
        };
        let org = env.org.to_string();
        // The registry (enrollments, anchors, removals) and policy versions
        // (proposals, their approvals).
        let _ = self.versions.apply(prefix, m, &env, &mut self.approvers);
        if env.event_type == ApproverRemoved::TYPE
            && let Ok(r) = serde_json::from_str::<ApproverRemoved>(env.data.get())
            && r.org == org
        {
            // Their approvals of drafts still waiting lapse.
            self.drafts.lapse(&org, &r.approver_id);
        }
        if aggregate == "approval" && self.versions.proposal(&org, id).is_some() {
            let data = EventData::from_json(&env.event_type, env.data.get()).ok();
            self.policies.apply(&self.versions, &mut self.links, &org, id, m, data);
            return;
        }
        let at = rollbacks::At {
            prefix,
            m,
            env: &env,
            aggregate,
            id,
        };
        if self.rollbacks.concerns(&org, &at) {
            self.rollbacks.apply(&org, &at, &mut self.approvers, &mut self.links);
            return;
        }
        let data = match fold::read(&Stored::new(prefix, &m.subject, &m.payload, m.republished, m.seq, m.time), &env, aggregate, id) {
            Said::Approval(facts) => return self.drafts.approve(&facts, m.seq, m.time, &mut self.approvers),
            Said::Proposed { draft, agent, .. } => return self.drafts.propose(*draft, agent),
            Said::Fact(event) => return self.drafts.fact(org, aggregate, &event, m.seq, m.time, &mut self.links),
            Said::Forged(_) | Said::Misplaced(_) | Said::Unreadable => return,
            Said::Other(data) => data,
        };
        let Some(data) = self.people.apply(&org, aggregate, data) else { return };
        let Some(data) = self.console.apply(&org, aggregate, data, &env) else {
            return;
        };
        if let EventData::RollbackRefused(r) = data
            && aggregate == "rollback"
        {
            self.drafts.rollback_refused(org, r.draft_id, r.reason);
        }
    }

    /// What a human can approve under `id`: a draft, a rollback request,
    /// else a policy proposal.
    pub fn target(&self, org: &str, id: &str) -> Option<Target> {
        if let Some(e) = self.rollback(org, id) {
            return Some(Target {
                kind: "rollback",
                approved_hash: e.hash.clone(),
                request: e.approval.clone(),
                waiting: e.approval.is_some() && e.approved.is_none() && !e.expired,
                escalated: false,
                approvers: e.approved.iter().map(|a| a.0.clone()).collect(),
                approval_seq: e.approval_seq,
            });
        }
        if let Some(e) = self.entry(org, id) {
            return Some(Target {
                kind: "draft",
                approved_hash: e.draft.proposed_hash().to_string(),
                request: e.draft.request().cloned(),
                waiting: waits_for_a_human(e.draft.status()),
                escalated: e.draft.escalated(),
                approvers: e.approvals.iter().map(|a| a.0.clone()).collect(),
                approval_seq: e.approval_seq,
            });
        }
        let (_, hash) = self.versions.proposal(org, id)?;
        let p = self.policy_entry(org, id).cloned().unwrap_or_default();
        Some(Target {
            kind: "policy",
            approved_hash: hash.to_string(),
            waiting: p.rejection.is_none() && !p.expired && !self.versions.is_approved(org, id),
            escalated: p.escalated,
            request: p.request,
            approvers: p.approvals.iter().map(|a| a.0.clone()).collect(),
            approval_seq: p.approval_seq,
        })
    }

    /// The draft, rollback or proposal an approval link's token (hashed) names.
    pub fn link(&self, token_sha256: &str) -> Option<&(String, String)> {
        self.links.get(token_sha256)
    }

    /// What the service should append now: drafts whose decision asks for
    /// a human and that have no request yet, and requests that expired at
    /// `now`.
    pub fn due(&self, now: DateTime<Utc>) -> Due {
        let mut due = Due { ..Due::default() };
        for org in self.versions.orgs_with_proposals() {
            for (id, _) in self.waiting_policies(&org) {
                match self.policy_entry(&org, &id).and_then(|e| e.request.as_ref()) {
                    None => due.policy_requests.push((org.clone(), id)),
                    Some(r) => {
                        if DateTime::parse_from_rfc3339(&r.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now) {
                            due.expired.push((org.clone(), id));
                        }
                    }
                }
            }
        }
        for ((org, id), e) in self.rollbacks.0.iter() {
            match &e.approval {
                None if e.approved.is_none() && !e.expired => due.rollback_requests.push((org.clone(), id.clone())),
                Some(r) if e.approved.is_none() && !e.expired && DateTime::parse_from_rfc3339(&r.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now) => {
                    due.expired.push((org.clone(), id.clone()));
                }
                _ => {}
            }
        }
        for e in self.drafts.0.values() {
            if !waits_for_a_human(e.draft.status()) {
                continue;
            }
            match e.draft.request() {
                None => {
                    let needs = matches!(
                        e.draft.decision().map(|d| &d.outcome),
                        Some(Outcome::RequireApproval | Outcome::RequireDualApproval)
                    );
                    if needs {
                        due.requests.push((e.draft.org().to_string(), e.draft.id().to_string()));
                    }
                }
                Some(r) => {
                    let expired = DateTime::parse_from_rfc3339(&r.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now);
                    if expired {
                        due.expired.push((e.draft.org().to_string(), e.draft.id().to_string()));
                    }
                }
            }
        }
        due
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// (org, draft id) to open an approval request for.
    pub requests: Vec<(String, String)>,
    /// (org, proposal id) of SPEND.md proposals to open a request for.
    pub policy_requests: Vec<(String, String)>,
    /// (org, rollback id) of rollback requests to open a request for.
    pub rollback_requests: Vec<(String, String)>,
    /// (org, draft or proposal id) whose request expired.
    pub expired: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::events::{ApprovalRequested, EventData};
    use spend_core::{Actor, Envelope};
    use spend_testkit::events::{decided, payment_proposed, subject_of};

    struct Given {
        book: Book,
        seq: u64,
    }

    impl Given {
        fn new() -> Self {
            Self {
                book: Book::new(spend_draft::humans::test_rp(), None),
                seq: 0,
            }
        }

        fn when(&mut self, env: Envelope) {
            self.seq += 1;
            let m = StoredMessage {
                seq: self.seq,
                subject: subject_of("spend.evt", &env),
                payload: env.to_bytes().into(),
                time: Utc::now(),
                msg_id: None,
                republished: false,
            };
            self.book.apply("spend.evt", &m);
        }
    }

    fn requested(draft_id: &str, hash: &str, expires_at: &str) -> Envelope {
        Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::service("approval"),
            format!("approval/{draft_id}"),
            EventData::ApprovalRequested(ApprovalRequested {
                draft_id: draft_id.into(),
                kind: "draft".into(),
                approved_hash: hash.into(),
                policy_version: "sha256:test".into(),
                required: 1,
                expires_at: expires_at.into(),
                timeout_action: "deny".into(),
                link_token_sha256: "ab".repeat(32),
            }),
        )
    }

    #[test]
    fn a_draft_that_needs_a_human_gets_one_request_and_expires_when_nobody_answers() {
        let mut g = Given::new();
        let proposed = payment_proposed("acme", "d1", 900);
        let hash = spend_draft::event_hash(&proposed.to_bytes());
        g.when(proposed);
        assert_eq!(g.book.due(Utc::now()), Due::default(), "undecided: nothing to ask yet");
        g.when(decided("acme", "d1", Outcome::RequireApproval));
        assert_eq!(g.book.due(Utc::now()).requests, [("acme".to_string(), "d1".to_string())]);
        g.when(requested("d1", &hash, "2099-01-01T00:00:00Z"));
        assert_eq!(g.book.due(Utc::now()), Due::default(), "one request per draft");
        assert_eq!(g.book.link(&"ab".repeat(32)), Some(&("acme".to_string(), "d1".to_string())));
        let later: DateTime<Utc> = DateTime::parse_from_rfc3339("2099-01-01T00:00:01Z").unwrap().into();
        assert_eq!(g.book.due(later).expired, [("acme".to_string(), "d1".to_string())]);
    }

    #[test]
    fn a_request_naming_other_bytes_opens_nothing_and_denied_drafts_ask_nobody() {
        let mut g = Given::new();
        g.when(payment_proposed("acme", "d1", 900));
        g.when(decided("acme", "d1", Outcome::RequireApproval));
        g.when(requested("d1", &"00".repeat(32), "2099-01-01T00:00:00Z"));
        let e = g.book.entry("acme", "d1").unwrap();
        assert!(e.draft.request().is_none(), "a request must name the draft's exact bytes");
        g.when(payment_proposed("acme", "d2", 900));
        g.when(decided("acme", "d2", Outcome::Deny));
        assert_eq!(g.book.due(Utc::now()).requests, [("acme".to_string(), "d1".to_string())]);
    }

    #[test]
    fn an_operators_rollback_gets_one_request_and_counts_only_a_verified_approval() {
        use spend_testkit::events::{Approvers, FAR_EXPIRY, rollback_requested};
        let mut g = Given::new();
        let mut humans = Approvers::new("acme", &["ada"]);
        for e in humans.trust() {
            g.when(e);
        }
        let request = rollback_requested("acme", "rb_1", &["d1"], FAR_EXPIRY);
        let hash = spend_draft::event_hash(&request.to_bytes());
        g.when(request);
        assert_eq!(g.book.due(Utc::now()).rollback_requests, [("acme".to_string(), "rb_1".to_string())]);
        let opened = Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::service("approval"),
            "approval/rb_1",
            EventData::ApprovalRequested(ApprovalRequested {
                draft_id: "rb_1".into(),
                kind: "rollback".into(),
                approved_hash: hash.clone(),
                policy_version: "sha256:test".into(),
                required: 1,
                expires_at: FAR_EXPIRY.into(),
                timeout_action: "deny".into(),
                link_token_sha256: "cd".repeat(32),
            }),
        );
        g.when(opened);
        assert!(g.book.due(Utc::now()).rollback_requests.is_empty(), "one request per rollback");
        assert_eq!(g.book.link(&"cd".repeat(32)), Some(&("acme".to_string(), "rb_1".to_string())));
        let t = g.book.target("acme", "rb_1").unwrap();
        assert_eq!((t.kind, t.waiting, t.approved_hash.as_str()), ("rollback", true, hash.as_str()));
        assert_eq!(g.book.waiting_rollbacks("acme").len(), 1);
        // An approval of the draft kind over the same bytes counts for nothing.
        g.when(humans.approved("rb_1", "ada", &hash));
        assert!(g.book.rollback("acme", "rb_1").unwrap().approved.is_none());
        // A proof that signs another expiry than the request's does not verify.
        g.when(humans.approved_rollback("rb_1", "ada", &hash, "2098-01-01T00:00:00Z"));
        assert!(g.book.rollback("acme", "rb_1").unwrap().approved.is_none());
        g.when(humans.approved_rollback("rb_1", "ada", &hash, FAR_EXPIRY));
        assert_eq!(g.book.rollback("acme", "rb_1").unwrap().approved.as_ref().map(|a| a.0.as_str()), Some("ada"));
        assert!(!g.book.target("acme", "rb_1").unwrap().waiting);
        assert!(g.book.waiting_rollbacks("acme").is_empty());
    }
}
