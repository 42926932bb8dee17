//! SPEND.md versions as the event log records them, with one authority:
//! only the operator's CLI proposes a version (`spend.policy.proposed.v1`
//! on `policy.<proposal_id>`, a subject no other user may write), the
//! first proposal of an id wins (a later one reusing it is ignored and
//! audited), and a version is in force only through a human's approval
//! that names the hash of that proposal's exact bytes — checked by the
//! draft aggregate's verifier, so approving a payment can never count for
//! a policy. The version in force is the latest proposal, in log order,
//! so approved.
//!
//! Every process that decides or enforces SPEND.md (the policy service,
//! the gateway's replicas, the executor) follows the log into a
//! [`Versions`]. The approver registry the verifier checks proofs against
//! is not the versions' own: it is where approvals live, beside them in
//! each reader (`spend_draft::approvers::Registry`), built from the same
//! log in order and lent to [`Versions::apply`].
//!
//! A version needs as much as the strongest thing it enables: an admin's
//! verified approval always, and two distinct approvers (one an admin)
//! when it loosens anything against the version in force or the
//! bootstrap ([`spendmd::loosenings`]). Its proofs must sign the expiry of
//! the approval request recorded for it, and a proposal rejected or
//! expired before it had enough never comes into force.

use std::collections::HashMap;
use std::sync::Arc;

use spend_core::RawEnvelope;
use spend_core::events::{ApprovalEscalated, ApprovalExpired, ApprovalGranted, ApprovalRejected, ApprovalRequested, PolicyProposed};
use spend_draft::approvers::{Observed, Registry, Role};
use spend_draft::{ApprovalFacts, Forgery, event_hash, verify_for_hash};
use spend_eventlog::StoredMessage;

use crate::spendmd::{self, SpendMd};

/// A version in force: the proposal as recorded, and the file parsed.
#[derive(Debug, Clone)]
pub struct Active {
    pub proposal: PolicyProposed,
    pub policy: Arc<SpendMd>,
    /// Stream sequence of the proposal.
    pub seq: u64,
}

struct Proposed {
    data: PolicyProposed,
    /// Hex SHA-256 of the proposal's bytes on the log.
    hash: String,
    seq: u64,
    /// The expiry of its approval request (the first recorded), which
    /// every proof must sign.
    expires_at: Option<String>,
    /// Distinct approvers whose proofs verified, in order.
    approvers: Vec<String>,
    /// Rejected or expired before enough approved: never in force.
    closed: bool,
    /// Its request was extended once (an escalation): proofs sign the
    /// extended expiry from then on.
    escalated: bool,
}

/// What [`Versions::apply`] noticed that must be audited.
#[derive(Debug)]
pub enum Noticed {
    /// A proposal reused the id of an earlier one: ignored.
    ReusedId { org: String, detail: String },
    /// An approval of a proposal that the verifier refused.
    Forged { org: String, forgery: Forgery },
    /// A registry event the registry refused (an enrollment nobody
    /// trusted vouched for, an anchor after the bootstrap, ...).
    Untrusted { org: String, detail: String },
}

/// The alert reason of a refused registry event.
pub const UNTRUSTED: &str = "approver.untrusted";

/// The versions of every organisation, as proposed and approved.
pub struct Versions {
    /// The policy in force before an organisation approves a version of
    /// its own: what a first version is compared with.
    bootstrap: Option<Arc<SpendMd>>,
    proposals: HashMap<(String, String), Proposed>,
    active: HashMap<String, Active>,
    /// Proposals a verified approval approved.
    approved: std::collections::HashSet<(String, String)>,
}

/// What a SPEND.md version needs before it is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Distinct approvers (one of them an admin).
    pub approvers: usize,
    /// What it loosens against the version it replaces (empty: nothing).
    pub loosens: Vec<String>,
}

impl Versions {
    /// Versions compared, before an organisation has one of its own, with
    /// `bootstrap` (the operator's SPEND.md).
    pub fn new(bootstrap: Option<Arc<SpendMd>>) -> Self {
        Self {
            bootstrap,
            proposals: HashMap::new(),
            active: HashMap::new(),
            approved: std::collections::HashSet::new(),
        }
    }

    /// What proposal `id` of `org` needs, against the version in force now.
    pub fn needs(&self, org: &str, id: &str) -> Option<Needs> {
        let p = self.proposals.get(&(org.to_string(), id.to_string()))?;
        Some(self.needs_of(org, &p.data))
    }

    fn needs_of(&self, org: &str, proposal: &PolicyProposed) -> Needs {
        let loosens = match spendmd::parse(&proposal.source) {
            Ok(new) => {
                let old = self.active.get(org).map(|a| a.policy.clone()).or_else(|| self.bootstrap.clone());
                // With nothing to compare with, what a version enables
                // (a mandate) still counts.
                spendmd::loosenings(old.as_deref().unwrap_or(&SpendMd::default()), &new)
            }
            Err(_) => Vec::new(),
        };
        Needs {
            approvers: if loosens.is_empty() { 1 } else { 2 },
            loosens,
        }
    }

    /// The approvers whose proofs of proposal `id` verified so far.
    pub fn approvals(&self, org: &str, id: &str) -> &[String] {
        self.proposals.get(&(org.to_string(), id.to_string())).map_or(&[], |p| p.approvers.as_slice())
    }

    /// Applies one event already placed by [`spend_eventlog::read::classify`]
    /// (so a proposal sits on a `policy` subject and an approval on an
    /// `approval` subject), with `env` parsed from `m`. `approvers` is the
    /// reader's registry: it learns the registry's events here, in log
    /// order, and a policy approval counts only with a proof by one of them.
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>, approvers: &mut Registry) -> Option<Noticed> {
        let (subject, seq) = (m.subject.as_str(), m.seq);
        if let Some(observed) = approvers.observe(seq, env) {
            if let Observed::Refused { org, error } = observed {
                return Some(Noticed::Untrusted {
                    org,
                    detail: format!("a {} at seq {seq} on {subject} was refused: {error}", env.event_type),
                });
            }
            return None;
        }
        match env.event_type.as_ref() {
            PolicyProposed::TYPE => self.propose(prefix, m, env),
            ApprovalRequested::TYPE | ApprovalEscalated::TYPE | ApprovalRejected::TYPE | ApprovalExpired::TYPE => {
                self.request_moved(prefix, m, env);
                None
            }
            ApprovalGranted::TYPE => self.grant(prefix, m, env, approvers),
            _ => None,
        }
    }

    /// A proposal on its `policy` subject: the first of an id counts.
    fn propose(&mut self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>) -> Option<Noticed> {
        let (subject, seq, payload) = (m.subject.as_str(), m.seq, &m.payload[..]);
        let org = env.org.to_string();
        let data: PolicyProposed = serde_json::from_str(env.data.get()).ok()?;
        let (_, id) = spend_core::subject::split_aggregate(subject, prefix, &org)?;
        if id != data.draft_id {
            return Some(Noticed::ReusedId {
                detail: format!("a policy proposal at seq {seq} on {subject} names id {}: ignored", data.draft_id),
                org,
            });
        }
        let key = (org.clone(), data.draft_id.clone());
        if let Some(first) = self.proposals.get(&key) {
            return Some(Noticed::ReusedId {
                detail: format!(
                    "a policy proposal at seq {seq} reuses id {} of the proposal at seq {}: the first proposal of an id wins; ignored",
                    data.draft_id, first.seq
                ),
                org,
            });
        }
        self.proposals.insert(
            key,
            Proposed {
                data,
                hash: event_hash(payload),
                seq,
                expires_at: None,
                approvers: Vec::new(),
                closed: false,
                escalated: false,
            },
        );
        None
    }

    /// A proposal's approval request opened, escalated, rejected or
    /// expired (on its `approval` subject, until it is approved).
    fn request_moved(&mut self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>) -> Option<()> {
        let org = env.org.to_string();
        let (aggregate, id) = spend_core::subject::split_aggregate(&m.subject, prefix, &org)?;
        let approved = self.approved.contains(&(org.clone(), id.to_string()));
        let p = self.proposals.get_mut(&(org.clone(), id.to_string()))?;
        if aggregate != "approval" || approved {
            return None;
        }
        match env.event_type.as_ref() {
            ApprovalRequested::TYPE => {
                if let Ok(r) = serde_json::from_str::<ApprovalRequested>(env.data.get())
                    && r.kind == "policy"
                    && p.expires_at.is_none()
                {
                    p.expires_at = Some(r.expires_at);
                }
            }
            // Once, later, from the expiry in force (as the app and
            // the draft aggregate take an escalation).
            ApprovalEscalated::TYPE => {
                if let Ok(x) = serde_json::from_str::<ApprovalEscalated>(env.data.get())
                    && !p.escalated
                    && p.expires_at.as_deref() == Some(x.previous_expires_at.as_str())
                    && chrono::DateTime::parse_from_rfc3339(&x.expires_at).ok()
                        > p.expires_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                {
                    p.expires_at = Some(x.expires_at);
                    p.escalated = true;
                }
            }
            _ => p.closed = true,
        }
        Some(())
    }

    /// A human's approval of a proposal: counted when its proof verifies
    /// against the proposal's bytes, version and request expiry; the
    /// version comes into force once enough distinct approvers, one an
    /// admin, approved it.
    fn grant(&mut self, prefix: &str, m: &StoredMessage, env: &RawEnvelope<'_>, approvers: &mut Registry) -> Option<Noticed> {
        let (subject, seq) = (m.subject.as_str(), m.seq);
        let org = env.org.to_string();
        let facts = match ApprovalFacts::from_stored(prefix, subject, env, m.republished, seq, m.time) {
            Ok(f) => f,
            Err(forgery) => return Some(Noticed::Forged { org, forgery }),
        };
        let key = (org.clone(), facts.data.draft_id.clone());
        let proposed = self.proposals.get(&key)?;
        if self.approved.contains(&key) || proposed.closed {
            tracing::info!(org, proposal = %key.1, "an approval of a proposal already approved, rejected or expired: it changes nothing");
            return None;
        }
        if proposed.expires_at.as_deref() != Some(facts.data.proof.expires_at.as_str()) {
            let detail = format!(
                "approval {} of policy proposal {} at seq {seq}: its proof signs expiry {}, the request's is {}",
                facts.data.approval_id,
                proposed.data.draft_id,
                facts.data.proof.expires_at,
                proposed.expires_at.as_deref().unwrap_or("(no request recorded)")
            );
            return Some(Noticed::Forged {
                org,
                forgery: Forgery {
                    kind: spend_draft::ForgeryKind::ProofMismatch,
                    detail,
                },
            });
        }
        if facts.data.proof.policy_version != proposed.data.version {
            let detail = format!(
                "approval {} of policy proposal {} at seq {seq}: its proof signs version {}, the proposal is {}",
                facts.data.approval_id, proposed.data.draft_id, facts.data.proof.policy_version, proposed.data.version
            );
            return Some(Noticed::Forged {
                org,
                forgery: Forgery {
                    kind: spend_draft::ForgeryKind::ProofMismatch,
                    detail,
                },
            });
        }
        if let Err(forgery) = verify_for_hash(&facts, &proposed.hash, &proposed.data.draft_id, approvers) {
            return Some(Noticed::Forged { org, forgery });
        }
        let needs = self.needs_of(&org, &proposed.data);
        let approver = facts.data.approver_id.clone();
        let p = self.proposals.get_mut(&key)?;
        if !p.approvers.contains(&approver) {
            p.approvers.push(approver);
        }
        let admins = p
            .approvers
            .iter()
            .filter(|a| approvers.approver(&org, a).is_some_and(|x| x.role == Role::Admin))
            .count();
        if p.approvers.len() < needs.approvers || admins == 0 {
            tracing::info!(
                org,
                proposal = %key.1,
                approvers = p.approvers.len(),
                needed = needs.approvers,
                admins,
                "a verified approval of a SPEND.md version; it needs more before it is in force"
            );
            return None;
        }
        let proposed = self.proposals.get(&key)?;
        self.approved.insert(key.clone());
        let newer = self.active.get(&org).is_none_or(|a| proposed.seq > a.seq);
        if !newer {
            tracing::info!(org, version = %proposed.data.version, "an older policy version was approved after a newer one; the newer stays in force");
            return None;
        }
        match spendmd::parse(&proposed.data.source) {
            Ok(md) => {
                let active = Active {
                    proposal: proposed.data.clone(),
                    policy: Arc::new(md),
                    seq: proposed.seq,
                };
                self.active.insert(org, active);
            }
            Err(errors) => tracing::error!(
                org,
                version = %proposed.data.version,
                errors = errors.len(),
                "an approved SPEND.md does not parse; the previous version stays in force"
            ),
        }
        None
    }

    /// The version in force for `org`, if a human approved one.
    pub fn active(&self, org: &str) -> Option<&Active> {
        self.active.get(org)
    }

    /// Whether a verified approval approved proposal `id`.
    pub fn is_approved(&self, org: &str, id: &str) -> bool {
        self.approved.contains(&(org.to_string(), id.to_string()))
    }

    /// The proposals of `org` that no verified approval approved yet and
    /// that are newer than the version in force: (proposal, hash, seq).
    pub fn waiting(&self, org: &str) -> Vec<(&PolicyProposed, &str, u64)> {
        let in_force = self.active.get(org).map(|a| a.seq).unwrap_or(0);
        let mut v: Vec<_> = self
            .proposals
            .iter()
            .filter(|((o, id), p)| o == org && p.seq > in_force && !self.approved.contains(&(o.clone(), id.clone())))
            .map(|(_, p)| (&p.data, p.hash.as_str(), p.seq))
            .collect();
        v.sort_by_key(|x| x.2);
        v
    }

    /// Every organisation with a proposal.
    pub fn orgs_with_proposals(&self) -> Vec<String> {
        let mut v: Vec<String> = self.proposals.keys().map(|(o, _)| o.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The proposal of `id` and the hash an approval of it must name.
    pub fn proposal(&self, org: &str, id: &str) -> Option<(&PolicyProposed, &str)> {
        self.proposals.get(&(org.to_string(), id.to_string())).map(|p| (&p.data, p.hash.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::{Actor, Envelope, events::EventData};
    use spend_testkit::events::Approvers;

    const LOOSER: &str = "spend:\n  daily_limit: 500 USD\napproval:\n  auto_approve_under: 5 USD\n";
    const TIGHTER: &str = "spend:\n  daily_limit: 100 USD\n";

    struct World {
        versions: Versions,
        approvers: Registry,
        humans: Approvers,
        seq: u64,
    }

    impl World {
        fn new() -> Self {
            let bootstrap = Arc::new(spendmd::parse("spend:\n  daily_limit: 200 USD\n").unwrap());
            let mut w = Self {
                versions: Versions::new(Some(bootstrap)),
                approvers: Registry::new(spend_draft::humans::test_rp()),
                humans: Approvers::new("acme", &["ada", "bob"]),
                seq: 0,
            };
            for e in w.humans.trust() {
                w.put(e);
            }
            w
        }

        fn put(&mut self, env: Envelope) -> Option<Noticed> {
            self.seq += 1;
            let m = spend_testkit::events::stored("spend.evt", self.seq, &env);
            let parsed = RawEnvelope::parse(&m.payload).unwrap();
            self.versions.apply("spend.evt", &m, &parsed, &mut self.approvers)
        }

        /// Proposes `source` as `id`; returns the hash approvals name.
        fn propose(&mut self, id: &str, source: &str) -> String {
            let env = Envelope::new(
                "spendsignoff/cli",
                "acme",
                Actor::human("operator"),
                format!("policy/{id}"),
                EventData::PolicyProposed(PolicyProposed {
                    draft_id: id.into(),
                    version: spendmd::version_of(source),
                    source: source.into(),
                    previous_version: None,
                    enables_auto_approve: source.contains("auto_approve_under"),
                }),
            );
            let hash = event_hash(&env.to_bytes());
            self.put(env);
            hash
        }
    }

    #[test]
    fn a_version_that_loosens_needs_two_approvers_and_one_that_tightens_one_admin() {
        let mut w = World::new();
        let hash = w.propose("p1", LOOSER);
        let needs = w.versions.needs("acme", "p1").unwrap();
        assert_eq!(needs.approvers, 2, "{needs:?}");
        let mut events = w.humans.approved_policy("p1", &["ada", "bob"], &hash, &spendmd::version_of(LOOSER));
        let bob = events.pop().unwrap();
        for e in events {
            assert!(w.put(e).is_none());
        }
        assert!(w.versions.active("acme").is_none(), "one approver does not enable a mandate");
        assert!(w.put(bob).is_none());
        assert_eq!(w.versions.active("acme").unwrap().proposal.draft_id, "p1");

        let hash = w.propose("p2", TIGHTER);
        assert_eq!(w.versions.needs("acme", "p2").unwrap().approvers, 1);
        for e in w.humans.approved_policy("p2", &["ada"], &hash, &spendmd::version_of(TIGHTER)) {
            w.put(e);
        }
        assert_eq!(w.versions.active("acme").unwrap().proposal.draft_id, "p2");
    }

    #[test]
    fn a_proof_must_sign_the_requests_expiry_and_a_rejected_proposal_never_comes_into_force() {
        let mut w = World::new();
        let hash = w.propose("p1", TIGHTER);
        let version = spendmd::version_of(TIGHTER);
        // No request on the record: a proof with any expiry is refused.
        let early = w.humans.approved_under("p1", "ada", &hash, &version);
        assert!(matches!(w.put(early), Some(Noticed::Forged { .. })));
        let mut events = w.humans.approved_policy("p1", &["ada"], &hash, &version);
        let ada = events.pop().unwrap();
        let request = events.pop().unwrap();
        w.put(request);
        // Rejected before it had its approval: never in force.
        w.put(Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::human("bob"),
            "approval/p1",
            EventData::ApprovalRejected(spend_core::events::ApprovalRejected {
                draft_id: "p1".into(),
                approval_id: "apr_x".into(),
                approver_id: "bob".into(),
                reason: "not now".into(),
            }),
        ));
        assert!(w.put(ada).is_none());
        assert!(w.versions.active("acme").is_none(), "a rejected proposal never comes into force");
    }

    #[test]
    fn after_one_escalation_proofs_sign_the_extended_expiry() {
        let mut w = World::new();
        let hash = w.propose("p1", TIGHTER);
        let version = spendmd::version_of(TIGHTER);
        let mut events = w.humans.approved_policy("p1", &["ada"], &hash, &version);
        events.pop();
        let request = events.pop().unwrap();
        let EventData::ApprovalRequested(r) = &request.data else { unreachable!() };
        let (before, later) = (r.expires_at.clone(), "2099-12-31T23:00:00Z".to_string());
        w.put(request);
        w.put(Envelope::new(
            "spendsignoff/approval",
            "acme",
            Actor::service("approval"),
            "approval/p1",
            EventData::ApprovalEscalated(ApprovalEscalated {
                draft_id: "p1".into(),
                previous_expires_at: before.clone(),
                expires_at: later.clone(),
                channel: "email".into(),
            }),
        ));
        let stale = w.humans.approved_until("p1", "ada", &hash, &version, &before);
        assert!(matches!(w.put(stale), Some(Noticed::Forged { .. })), "the old expiry no longer counts");
        let fresh = w.humans.approved_until("p1", "ada", &hash, &version, &later);
        assert!(w.put(fresh).is_none());
        assert_eq!(w.versions.active("acme").unwrap().proposal.draft_id, "p1");
    }
}
