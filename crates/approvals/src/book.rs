//! What the approval service knows, and only from the log: invitations,
//! registered passkeys, the approver registry (through the policy
//! [`Versions`], which keeps it), the drafts that need or needed a human
//! (the draft aggregate of `spend-draft`, the one place a status is
//! derived), and the approval links' token hashes.
//!
//! Any replica rebuilds it by replaying; it is the service's only state
//! beyond short-lived sign-in ceremonies and sessions. Pure: the service
//! follows the log into [`Book::apply`] and asks [`Book::due`] what to
//! append next (requests to open, requests that expired).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use spend_core::bounded::FifoMap;
use spend_core::events::{
    ApprovalGranted, ApproverEnrolled, ApproverInvited, ApproverRegistered, ChangePushed, EventData, Outcome, RollbackApproved, RollbackRequested,
};
use spend_draft::{ApprovalFacts, Draft, DraftEvent, DraftStatus, event_hash, recorded_approval, verify_rollback};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};
use spend_policy::versions::Versions;

/// Drafts the book keeps (the oldest forgotten first): pending ones and
/// the recent history the app shows.
pub const MAX_DRAFTS: usize = 100_000;

/// Invitations kept (the oldest forgotten first).
pub const MAX_INVITES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Invite {
    pub invite: ApproverInvited,
    pub expires_at: Option<DateTime<Utc>>,
    /// The registration that used it, if any (single use).
    pub used_by: Option<String>,
}

impl Invite {
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.used_by.is_none() && self.expires_at.is_some_and(|t| now < t)
    }
}

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
    pub approval: Option<spend_core::events::ApprovalRequested>,
    pub approval_seq: u64,
    /// Who approved it, when (a proof that verified).
    pub approved: Option<(String, DateTime<Utc>)>,
    pub expired: bool,
}

/// A SPEND.md proposal's approval, as the app shows it (the proposal
/// itself is in [`Versions`]).
#[derive(Debug, Clone, Default)]
pub struct PolicyEntry {
    pub request: Option<spend_core::events::ApprovalRequested>,
    pub approval_seq: u64,
    pub approvals: Vec<(String, DateTime<Utc>)>,
    pub rejection: Option<(String, String)>,
    pub expired: bool,
    /// The request escalated (and was extended) once already.
    pub escalated: bool,
}

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
    /// Each organisation's spend envelope, as its last commitment left it.
    envelopes: HashMap<String, spend_core::events::EnvelopeState>,
    /// Approvals of SPEND.md proposals, by (org, proposal id).
    policies: HashMap<(String, String), PolicyEntry>,
    /// SPEND.md versions, and the approver registry.
    pub versions: Versions,
    /// Invitations by the hash of their token (the oldest forgotten first).
    invites: FifoMap<String, Invite>,
    /// Registered passkeys (trusted or not), by (org, approver id).
    registered: HashMap<(String, String), ApproverRegistered>,
    /// Approver ids by (org, lower-case email).
    by_email: HashMap<(String, String), Vec<String>>,
    /// The email each enrollment names, by (org, approver id): where
    /// approval requests are emailed.
    emails: HashMap<(String, String), String>,
    drafts: FifoMap<(String, String), Entry>,
    rollbacks: FifoMap<(String, String), RollbackEntry>,
    /// Approval links: token hash -> (org, draft id).
    links: HashMap<String, (String, String)>,
    /// Write access the executor asked a human for, not granted yet:
    /// (org, account) -> (scope, draft ids).
    consents: FifoMap<(String, String), (String, Vec<String>)>,
    /// Pauses of an organisation's agents in force: (org, `pause` for the
    /// operator's or `kill_switch` for an admin's) -> (reason, who).
    paused: HashMap<(String, &'static str), (String, String)>,
    /// Agent keys' names, as the operator created them: (org, key id).
    key_names: FifoMap<(String, String), String>,
    /// Cards the executor froze, per organisation: (card or `all`, why).
    frozen: HashMap<String, Vec<(String, String)>>,
    /// The last stream sequence applied.
    pub seq: u64,
}

/// Frozen cards remembered per organisation.
const MAX_FROZEN: usize = 1_000;

impl Book {
    /// A book whose approvals count only with passkeys made on `rp`, and
    /// whose SPEND.md versions are compared with `bootstrap` until one is
    /// approved.
    pub fn new(rp: spend_draft::proof::RelyingParty, bootstrap: Option<std::sync::Arc<spend_policy::spendmd::SpendMd>>) -> Self {
        Self {
            envelopes: HashMap::new(),
            policies: HashMap::new(),
            versions: Versions::new(rp, bootstrap),
            invites: FifoMap::new(MAX_INVITES),
            registered: HashMap::new(),
            by_email: HashMap::new(),
            emails: HashMap::new(),
            drafts: FifoMap::new(MAX_DRAFTS),
            rollbacks: FifoMap::new(MAX_ROLLBACKS),
            links: HashMap::new(),
            consents: FifoMap::new(MAX_INVITES),
            paused: HashMap::new(),
            key_names: FifoMap::new(MAX_INVITES),
            frozen: HashMap::new(),
            seq: 0,
        }
    }
}

impl Book {
    /// Applies one message from the log.
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) {
        self.seq = self.seq.max(m.seq);
        let Read::Event { env, aggregate, id } = classify(prefix, m) else {
            return;
        };
        let org = env.org.to_string();
        if aggregate == "apikey"
            && env.event_type == spend_core::events::ApiKeyCreated::TYPE
            && let Ok(k) = serde_json::from_str::<spend_core::events::ApiKeyCreated>(env.data.get())
            && k.org == org
        {
            self.key_names.insert_new((org, k.key_id), k.name);
            return;
        }
        // Policy versions and the registry (enrollments, anchors, removals,
        // approvals of policy proposals).
        let _ = self.versions.apply(prefix, m, &env);
        if env.event_type == spend_core::events::ApproverRemoved::TYPE
            && let Ok(r) = serde_json::from_str::<spend_core::events::ApproverRemoved>(env.data.get())
            && r.org == org
        {
            // Their approvals of drafts still waiting lapse.
            for e in self.drafts.values_mut().filter(|e| e.draft.org() == org) {
                if e.draft.lapse_approvals_of(&r.approver_id) {
                    e.approvals.retain(|(a, _)| *a != r.approver_id);
                }
            }
        }
        if aggregate == "approval" && self.versions.proposal(&org, id).is_some() {
            self.apply_policy_approval(&org, id, m, &env);
            return;
        }
        if env.event_type == RollbackRequested::TYPE || (aggregate == "approval" && self.rollbacks.contains_key(&(org.clone(), id.to_string()))) {
            self.apply_rollback(prefix, &org, aggregate, id, m, &env);
            return;
        }
        if env.event_type == ApprovalGranted::TYPE {
            let Ok(facts) = ApprovalFacts::from_stored(prefix, &m.subject, &env, m.republished, m.seq, m.time) else {
                return;
            };
            let key = (org, facts.data.draft_id.clone());
            let registry = &mut self.versions.approvers;
            let Some(entry) = self.drafts.get_mut(&key) else {
                return;
            };
            entry.approval_seq = m.seq;
            if let Ok(verified) = recorded_approval(&facts, &entry.draft, registry)
                && entry.draft.apply(&DraftEvent::Approved(verified))
            {
                entry.approvals.push((facts.data.approver_id.clone(), m.time));
            }
            return;
        }
        let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
            return;
        };
        match data {
            EventData::ApproverInvited(i) if i.org == org => {
                let expires_at = DateTime::parse_from_rfc3339(&i.expires_at).ok().map(|t| t.with_timezone(&Utc));
                let hash = i.token_sha256.clone();
                self.invites.insert_new(
                    hash,
                    Invite {
                        invite: i,
                        expires_at,
                        used_by: None,
                    },
                );
            }
            EventData::ApproverRegistered(r) if r.org == org => {
                if let Some(inv) = self.invites.values_mut().find(|i| i.invite.invite_id == r.invite_id && i.invite.org == org) {
                    inv.used_by.get_or_insert(r.approver_id.clone());
                }
                let ids = self.by_email.entry((org.clone(), r.email.to_lowercase())).or_default();
                if !ids.contains(&r.approver_id) {
                    ids.push(r.approver_id.clone());
                }
                self.registered.entry((org, r.approver_id.clone())).or_insert(r);
            }
            EventData::ApproverEnrolled(ApproverEnrolled {
                org: o,
                approver_id,
                email: Some(email),
                ..
            }) if o == org => {
                // Sign-in finds an approver by it (the passkey proves who).
                let ids = self.by_email.entry((org.clone(), email.to_lowercase())).or_default();
                if !ids.contains(&approver_id) {
                    ids.push(approver_id.clone());
                }
                self.emails.insert((org, approver_id), email);
            }
            EventData::AccountConsentRequested(c) if aggregate == "account" => {
                let key = (org, c.account_id.clone());
                if !self.consents.contains_key(&key) {
                    self.consents.insert_new(key.clone(), (c.scope.clone(), Vec::new()));
                }
                let entry = self.consents.get_mut(&key).expect("inserted");
                if !entry.1.contains(&c.draft_id) && entry.1.len() < 100 {
                    entry.1.push(c.draft_id);
                }
            }
            EventData::AccountConnected(c) if aggregate == "account" => {
                // A grant is for the draft it names: the others on the
                // account still wait for theirs (as the executor pushes).
                let key = (org, c.account_id.clone());
                if let Some(draft_id) = &c.draft_id
                    && let Some((scope, drafts)) = self.consents.get_mut(&key)
                    && c.scopes.contains(scope)
                {
                    drafts.retain(|d| d != draft_id);
                    if drafts.is_empty() {
                        self.consents.remove(&key);
                    }
                }
            }
            EventData::BudgetCommitted(c) if aggregate == "budget" => {
                self.envelopes.insert(org, c.envelope);
            }
            EventData::BudgetReleased(c) if aggregate == "budget" => {
                self.envelopes.insert(org, c.envelope);
            }
            EventData::AgentsPaused(p) => {
                let by = if aggregate == "pause" { "pause" } else { "kill_switch" };
                self.paused.insert((org, by), (p.reason, env.actor.id.to_string()));
            }
            EventData::AgentsResumed(_) => {
                self.paused.remove(&(org.clone(), "kill_switch"));
                if aggregate == "pause" {
                    self.paused.remove(&(org, "pause"));
                }
            }
            EventData::CardFrozen(c) if aggregate == "card" => {
                let cards = self.frozen.entry(org).or_default();
                if !cards.iter().any(|(id, _)| *id == c.card_id) && cards.len() < MAX_FROZEN {
                    cards.push((c.card_id, c.reason));
                }
            }
            EventData::RollbackRefused(r) if aggregate == "rollback" => {
                if let Some(e) = self.drafts.get_mut(&(org, r.draft_id)) {
                    e.rollback_refused = Some(r.reason);
                }
            }
            EventData::DraftProposed(_) => {
                if aggregate != "draft" {
                    return;
                }
                if let Some(DraftEvent::Proposed { data, at, hash, .. }) = DraftEvent::from_stored_proposal(&m.payload)
                    && data.draft_id == id
                {
                    let key = (org.clone(), data.draft_id.clone());
                    let agent = env.actor.id.to_string();
                    let drafts = &mut self.drafts;
                    if !drafts.contains_key(&key) {
                        drafts.insert_new(
                            key,
                            Entry {
                                draft: Draft::from_proposed(&org, &data, at, hash),
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
                }
            }
            other => {
                let Some(event) = DraftEvent::from_fact(other) else {
                    return;
                };
                if aggregate == "decision" && event.draft_id() != id {
                    return;
                }
                let key = (org, event.draft_id().to_string());
                let on_approval = aggregate == "approval";
                let Some(entry) = self.drafts.get_mut(&key) else {
                    return;
                };
                if on_approval {
                    entry.approval_seq = m.seq;
                }
                if entry.draft.apply(&event) {
                    match &event {
                        DraftEvent::Requested(r) => {
                            self.links.insert(r.link_token_sha256.clone(), key);
                        }
                        DraftEvent::Rejected(r) => entry.rejection = Some((r.approver_id.clone(), r.reason.clone())),
                        DraftEvent::PushStarted(s) => entry.before = s.before.clone(),
                        DraftEvent::Pushed(p) => {
                            entry.pushed = Some(p.clone());
                            entry.pushed_at = Some(m.time);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// A rollback request (from the app, on its approval subject, or an
    /// operator's), and what happens on its approval subject: the request
    /// opened, a human's approval (counted only when its proof verifies
    /// against the request's bytes), its expiry.
    fn apply_rollback(&mut self, prefix: &str, org: &str, aggregate: &str, id: &str, m: &StoredMessage, env: &spend_core::RawEnvelope<'_>) {
        let key = (org.to_string(), id.to_string());
        if env.event_type == RollbackApproved::TYPE {
            let Ok(facts) = ApprovalFacts::from_stored_rollback(prefix, &m.subject, env, m.republished, m.seq, m.time) else {
                return;
            };
            let registry = &mut self.versions.approvers;
            let Some(e) = self.rollbacks.get_mut(&key) else { return };
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
            EventData::RollbackRequested(r)
                if matches!(aggregate, "approval" | "rollback_request") && r.rollback_id == id && !self.rollbacks.contains_key(&key) =>
            {
                self.rollbacks.insert_new(
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
                let Some(e) = self.rollbacks.get_mut(&key) else { return };
                e.approval_seq = m.seq;
                match other {
                    EventData::ApprovalRequested(r) if r.kind == "rollback" && e.approval.is_none() && r.approved_hash == e.hash => {
                        self.links.insert(r.link_token_sha256.clone(), key);
                        e.approval = Some(r);
                    }
                    EventData::ApprovalExpired(_) if e.approved.is_none() => e.expired = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Pauses of `org`'s agents in force: (by `pause` or `kill_switch`,
    /// reason, who).
    pub fn pauses(&self, org: &str) -> Vec<(&'static str, &str, &str)> {
        ["pause", "kill_switch"]
            .into_iter()
            .filter_map(|by| self.paused.get(&(org.to_string(), by)).map(|(r, who)| (by, r.as_str(), who.as_str())))
            .collect()
    }

    /// Cards the executor froze: (card or `all`, why).
    pub fn frozen(&self, org: &str) -> &[(String, String)] {
        self.frozen.get(org).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn rollback(&self, org: &str, id: &str) -> Option<&RollbackEntry> {
        self.rollbacks.get(&(org.to_string(), id.to_string()))
    }

    /// The organisation's pushed changes, newest first (at most `max`).
    pub fn pushed(&self, org: &str, max: usize) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.drafts.values().filter(|e| e.draft.org() == org && e.pushed.is_some()).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.draft.proposed_at()));
        v.truncate(max);
        v
    }

    /// The organisation's rollback requests waiting for a human.
    pub fn waiting_rollbacks(&self, org: &str) -> Vec<&RollbackEntry> {
        self.rollbacks
            .iter()
            .filter(|((o, _), e)| o == org && e.approval.is_some() && e.approved.is_none() && !e.expired)
            .map(|(_, e)| e)
            .collect()
    }

    fn apply_policy_approval(&mut self, org: &str, id: &str, m: &StoredMessage, env: &spend_core::RawEnvelope<'_>) {
        // What the versions counted (verified, distinct approvers).
        let counted = self.versions.approvals(org, id).to_vec();
        let approved = self.versions.is_approved(org, id);
        let e = self.policies.entry((org.to_string(), id.to_string())).or_default();
        e.approval_seq = m.seq;
        let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
            return;
        };
        let open = e.rejection.is_none() && !e.expired && !approved;
        match data {
            EventData::ApprovalRequested(r) if r.kind == "policy" && e.request.is_none() => {
                self.links.insert(r.link_token_sha256.clone(), (org.to_string(), id.to_string()));
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

    /// Write access the executor asked for and nobody granted yet:
    /// (account, scope, drafts waiting for it).
    pub fn consents(&self, org: &str) -> Vec<(String, String, Vec<String>)> {
        let mut v: Vec<(String, String, Vec<String>)> = Vec::new();
        for ((o, account), (scope, drafts)) in self.consents.iter() {
            if o == org {
                v.push((account.clone(), scope.clone(), drafts.clone()));
            }
        }
        v.sort();
        v
    }

    /// The organisation's envelope as its last commitment left it.
    pub fn envelope(&self, org: &str) -> Option<&spend_core::events::EnvelopeState> {
        self.envelopes.get(org)
    }

    /// An agent as people know it: its key's name and id ("nightly
    /// optimiser (k_1a2b)"), or the key id when no name is known.
    pub fn agent_name(&self, org: &str, key_id: &str) -> String {
        match self.key_names.get(&(org.to_string(), key_id.to_string())) {
            Some(name) if !name.is_empty() => format!("{name} ({key_id})"),
            _ => key_id.to_string(),
        }
    }

    pub fn policy_entry(&self, org: &str, id: &str) -> Option<&PolicyEntry> {
        self.policies.get(&(org.to_string(), id.to_string()))
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

    /// Policy proposals of `org` waiting for a human: (id, version).
    pub fn waiting_policies(&self, org: &str) -> Vec<(String, String)> {
        self.versions
            .waiting(org)
            .into_iter()
            .filter(|(p, _, _)| self.policy_entry(org, &p.draft_id).is_none_or(|e| e.rejection.is_none() && !e.expired))
            .map(|(p, _, _)| (p.draft_id.clone(), p.version.clone()))
            .collect()
    }

    pub fn invite(&self, token_sha256: &str) -> Option<&Invite> {
        self.invites.get(&token_sha256.to_string())
    }

    pub fn registered(&self, org: &str, approver_id: &str) -> Option<&ApproverRegistered> {
        self.registered.get(&(org.to_string(), approver_id.to_string()))
    }

    /// The email an approver enrolled (or registered) with.
    pub fn email(&self, org: &str, approver_id: &str) -> Option<&str> {
        let key = (org.to_string(), approver_id.to_string());
        self.emails
            .get(&key)
            .map(String::as_str)
            .or_else(|| self.registered.get(&key).map(|r| r.email.as_str()))
    }

    /// Every registration of `org`, by approver id.
    pub fn registrations(&self, org: &str) -> Vec<&ApproverRegistered> {
        let mut v: Vec<_> = self.registered.iter().filter(|((o, _), _)| o == org).map(|(_, r)| r).collect();
        v.sort_by(|a, b| a.approver_id.cmp(&b.approver_id));
        v
    }

    /// The approver ids registered with `email` in any organisation:
    /// (org, approver id).
    pub fn by_email(&self, email: &str) -> Vec<(String, String)> {
        let email = email.trim().to_lowercase();
        let mut v: Vec<(String, String)> = self
            .by_email
            .iter()
            .filter(|((_, e), _)| *e == email)
            .flat_map(|((o, _), ids)| ids.iter().map(move |id| (o.clone(), id.clone())))
            .collect();
        v.sort();
        v
    }

    pub fn entry(&self, org: &str, draft_id: &str) -> Option<&Entry> {
        self.drafts.get(&(org.to_string(), draft_id.to_string()))
    }

    /// The draft an approval link's token (hashed) names.
    pub fn link(&self, token_sha256: &str) -> Option<&(String, String)> {
        self.links.get(token_sha256)
    }

    /// The organisation's drafts, newest first: those waiting for a human
    /// and the `history` most recent others.
    pub fn queue(&self, org: &str, history: usize) -> (Vec<&Entry>, Vec<&Entry>) {
        let mut all: Vec<&Entry> = self.drafts.values().filter(|e| e.draft.org() == org).collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.draft.proposed_at()));
        let (waiting, done): (Vec<&Entry>, Vec<&Entry>) = all.into_iter().partition(|e| waits_for_a_human(e.draft.status()));
        (waiting, done.into_iter().take(history).collect())
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
        for ((org, id), e) in self.rollbacks.iter() {
            match &e.approval {
                None if e.approved.is_none() && !e.expired => due.rollback_requests.push((org.clone(), id.clone())),
                Some(r) if e.approved.is_none() && !e.expired && DateTime::parse_from_rfc3339(&r.expires_at).is_ok_and(|t| t.with_timezone(&Utc) <= now) => {
                    due.expired.push((org.clone(), id.clone()));
                }
                _ => {}
            }
        }
        for e in self.drafts.values() {
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

/// Whether a draft in `status` waits for a human.
pub fn waits_for_a_human(status: DraftStatus) -> bool {
    matches!(status, DraftStatus::PendingApproval | DraftStatus::AwaitingSecondApproval)
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
