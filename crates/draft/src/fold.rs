//! Reading the log into draft events: the one place where a stored message
//! becomes a [`DraftEvent`] that may move a draft, for every service that
//! keeps drafts (the approval app's book, the executor's, the gateway's
//! view and the ledger's projection).
//!
//! Each reader keeps its own drafts beside what only it needs (the
//! executor its commitments, the app its links, the ledger the place of
//! ended drafts), so this module does not own the map: [`read`] says what a
//! message is to drafts, [`count`] turns an approval into a move of the
//! draft the reader holds, and the reader stores. What every reader must
//! agree on is decided here once:
//! - a proposal counts on its own subject (`draft.<its id>`), with the
//!   draft's hash taken over the bytes as stored;
//! - a decision counts on its draft's decision subject, and a request,
//!   rejection, expiry or escalation on its draft's approval subject; any
//!   other placement is [`Said::Misplaced`];
//! - an approval is a claim ([`Said::Approval`]) until [`count`] verifies
//!   its proof against the exact draft the reader holds (the approval
//!   verifier, [`crate::verify`]: written by the approval service, for a
//!   human, with a proof by a trusted approver of the exact draft); one not
//!   even shaped like an approval is [`Said::Forged`] at once.
//!
//! Where the event may sit at all is `spend_eventlog::read::classify`'s
//! job, done before: this module is handed an event already in its place.

use chrono::{DateTime, Utc};
use spend_core::events::{ApprovalGranted, DraftProposed, EventData};
use spend_core::{ActorKind, RawEnvelope};

use crate::approvers::Registry;
use crate::verify::{ApprovalFacts, Forgery, recorded_approval};
use crate::{Draft, DraftEvent};

/// One stored message, as the stream gave it.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The stream's subject prefix (`spend.evt`).
    pub prefix: &'a str,
    pub subject: &'a str,
    /// The bytes as stored: a draft's hash is taken over them.
    pub payload: &'a [u8],
    pub republished: bool,
    pub seq: u64,
    /// When the stream stored it (an approval's expiry is judged by it).
    pub time: DateTime<Utc>,
}

impl<'a> Stored<'a> {
    pub fn new(prefix: &'a str, subject: &'a str, payload: &'a [u8], republished: bool, seq: u64, time: DateTime<Utc>) -> Self {
        Self {
            prefix,
            subject,
            payload,
            republished,
            seq,
            time,
        }
    }
}

/// What one event says about drafts.
#[derive(Debug)]
pub enum Said {
    /// A draft proposed on its own subject: a new draft, unless the reader
    /// already holds the place of one with that id (a second proposal on a
    /// draft's subject is not a draft). `by_agent` says whether an agent's
    /// key is its actor (the executor pushes only those).
    Proposed { draft: Box<Draft>, agent: String, by_agent: bool },
    /// An approval of a draft (or of a policy proposal): counted only
    /// through [`count`], against the draft the reader holds.
    Approval(Box<ApprovalFacts>),
    /// An approval that is not even shaped like one (its data does not
    /// parse): refused before any draft is looked at.
    Forged(Forgery),
    /// A fact of a draft's life, in its place.
    Fact(DraftEvent),
    /// A fact of a draft on another draft's subject: moves nothing.
    Misplaced(String),
    /// An event that is not about a draft's life: its data, for the
    /// reader's own fold.
    Other(EventData),
    /// A type this build does not know, or data that does not parse.
    Unreadable,
}

/// What the event `env`, stored as `m` on `<prefix>.<org>.<aggregate>.<id>`,
/// says about drafts.
pub fn read(m: &Stored<'_>, env: &RawEnvelope<'_>, aggregate: &str, id: &str) -> Said {
    if env.event_type == ApprovalGranted::TYPE {
        return match ApprovalFacts::from_stored(m.prefix, m.subject, env, m.republished, m.seq, m.time) {
            Ok(facts) => Said::Approval(Box::new(facts)),
            Err(forgery) => Said::Forged(forgery),
        };
    }
    if env.event_type == DraftProposed::TYPE {
        // Its data is parsed once, here, with its hash over the stored bytes.
        let Some(DraftEvent::Proposed { data, at, hash, .. }) = DraftEvent::from_stored_proposal(m.payload) else {
            return Said::Unreadable;
        };
        if aggregate != "draft" || data.draft_id != id {
            return Said::Misplaced(format!(
                "a proposal at seq {} on {} that is not its draft's own subject: ignored",
                m.seq, m.subject
            ));
        }
        return Said::Proposed {
            draft: Box::new(Draft::from_proposed(env.org.as_ref(), &data, at, hash)),
            agent: env.actor.id.to_string(),
            by_agent: env.actor.kind == ActorKind::Agent,
        };
    }
    let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
        return Said::Unreadable;
    };
    let event = match DraftEvent::from_fact_or_data(data) {
        Ok(event) => event,
        Err(data) => return Said::Other(data),
    };
    if matches!(aggregate, "decision" | "approval") && event.draft_id() != id {
        return Said::Misplaced(format!(
            "a {} of draft {} at seq {} on {}: ignored",
            event.event_type(),
            event.draft_id(),
            m.seq,
            m.subject
        ));
    }
    Said::Fact(event)
}

/// Counts the approval `facts` on `draft`, the draft the reader holds of
/// that id: `Ok(true)` when it verified and moved the draft, `Ok(false)`
/// when it verified but the draft was past approving (or had counted that
/// approver), `Err` when its proof does not hold.
pub fn count(facts: &ApprovalFacts, draft: &mut Draft, registry: &mut Registry) -> Result<bool, Forgery> {
    let verified = recorded_approval(facts, draft, registry)?;
    Ok(draft.apply(&DraftEvent::Approved(verified)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvers::{Enrollment, Role};
    use crate::humans::Human;
    use crate::verify::APPROVAL_SOURCE;
    use spend_core::events::{ApprovalRejected, Outcome, PolicyEvaluated};
    use spend_core::{Actor, Envelope};

    const PREFIX: &str = "spend.evt";

    fn bytes(actor: Actor, source: &str, data: EventData) -> Vec<u8> {
        Envelope::new(source, "acme", actor, "x", data).to_bytes()
    }

    /// core's sample proposal, as draft d1, in the bytes the gateway stores.
    fn proposal() -> Vec<u8> {
        let sample = spend_core::events::samples()
            .into_iter()
            .find_map(|e| match e {
                EventData::DraftProposed(p) => Some(p),
                _ => None,
            })
            .unwrap();
        let data = DraftProposed {
            draft_id: "d1".into(),
            ..sample
        };
        bytes(Actor::agent("key_1"), "spendsignoff/gateway", EventData::DraftProposed(data))
    }

    /// The policy service's decision that d1 needs a human, under `version`.
    fn decided(version: &str) -> Vec<u8> {
        bytes(
            Actor::service("policy"),
            "spendsignoff/policy",
            EventData::PolicyEvaluated(PolicyEvaluated {
                draft_id: "d1".into(),
                outcome: Outcome::RequireApproval,
                reasons: Vec::new(),
                policy_version: version.into(),
            }),
        )
    }

    fn said(subject: &str, bytes: &[u8]) -> Said {
        let env = RawEnvelope::parse(bytes).unwrap();
        let (aggregate, id) = spend_core::subject::split_aggregate(subject, PREFIX, &env.org).unwrap();
        let m = Stored {
            prefix: PREFIX,
            subject,
            payload: bytes,
            republished: false,
            seq: 7,
            time: env.time,
        };
        read(&m, &env, aggregate, id)
    }

    fn draft() -> Draft {
        let Said::Proposed { draft, .. } = said("spend.evt.acme.draft.d1", &proposal()) else {
            panic!("not a proposal");
        };
        *draft
    }

    #[test]
    fn a_proposal_counts_on_its_own_subject_with_the_hash_of_its_stored_bytes() {
        let bytes = proposal();
        let Said::Proposed { draft, agent, by_agent } = said("spend.evt.acme.draft.d1", &bytes) else {
            panic!("not a proposal");
        };
        assert!(by_agent);
        assert_eq!(agent, "key_1");
        assert_eq!(draft.id(), "d1");
        assert_eq!(draft.proposed_hash(), crate::event_hash(&bytes));
        // The same bytes on another draft's subject propose nothing.
        assert!(matches!(said("spend.evt.acme.draft.d2", &bytes), Said::Misplaced(_)));
    }

    #[test]
    fn a_decision_or_a_rejection_on_another_drafts_subject_is_misplaced() {
        let decided = decided("sha256:00");
        assert!(matches!(said("spend.evt.acme.decision.d1", &decided), Said::Fact(DraftEvent::Decided(_))));
        assert!(matches!(said("spend.evt.acme.decision.d9", &decided), Said::Misplaced(_)));
        let rejected = bytes(
            Actor::human("ap1"),
            APPROVAL_SOURCE,
            EventData::ApprovalRejected(ApprovalRejected {
                draft_id: "d1".into(),
                approval_id: "a1".into(),
                approver_id: "ap1".into(),
                reason: "no".into(),
            }),
        );
        assert!(matches!(said("spend.evt.acme.approval.d1", &rejected), Said::Fact(DraftEvent::Rejected(_))));
        assert!(matches!(said("spend.evt.acme.approval.d9", &rejected), Said::Misplaced(_)));
    }

    #[test]
    fn an_approval_counts_only_through_its_proof_and_only_as_the_approval_service_wrote_it() {
        let mut registry = Registry::new(crate::humans::test_rp());
        let mut ada = Human::new("u_ada", Role::Admin);
        registry.enroll(Enrollment::from_event(&ada.enrolled("acme", None)).unwrap()).unwrap();
        registry.anchor("acme", &ada.fingerprint()).unwrap();
        let mut d = draft();
        let Said::Fact(decision) = said("spend.evt.acme.decision.d1", &decided("sha256:v1")) else {
            panic!("not a fact");
        };
        assert!(d.apply(&decision));
        let grant = ada.grant("d1", d.proposed_hash(), "sha256:v1", "2099-01-01T00:00:00Z", 1);

        // Not shaped like an approval: forged at once.
        let mut shapeless: serde_json::Value =
            serde_json::from_slice(&bytes(Actor::human("u_ada"), APPROVAL_SOURCE, EventData::ApprovalGranted(grant.clone()))).unwrap();
        shapeless["data"]["draft_id"] = serde_json::json!(7);
        assert!(matches!(
            said("spend.evt.acme.approval.d1", &serde_json::to_vec(&shapeless).unwrap()),
            Said::Forged(_)
        ));

        // The genuine proof, but written by the gateway: refused by count.
        let by_gateway = bytes(Actor::human("u_ada"), "spendsignoff/gateway", EventData::ApprovalGranted(grant.clone()));
        let Said::Approval(facts) = said("spend.evt.acme.approval.d1", &by_gateway) else {
            panic!("not an approval");
        };
        assert!(count(&facts, &mut d, &mut registry).is_err());

        // Written by the approval service, with a proof of another draft's bytes: refused by count.
        let mut other = grant.clone();
        other.approved_hash = "00".repeat(32);
        let wrong = bytes(Actor::human("u_ada"), APPROVAL_SOURCE, EventData::ApprovalGranted(other));
        let Said::Approval(facts) = said("spend.evt.acme.approval.d1", &wrong) else {
            panic!("not an approval");
        };
        assert!(count(&facts, &mut d, &mut registry).is_err());
        assert_eq!(d.status(), crate::DraftStatus::PendingApproval);

        // The genuine one moves the draft.
        let genuine = bytes(Actor::human("u_ada"), APPROVAL_SOURCE, EventData::ApprovalGranted(grant));
        let Said::Approval(facts) = said("spend.evt.acme.approval.d1", &genuine) else {
            panic!("not an approval");
        };
        assert_eq!(count(&facts, &mut d, &mut registry), Ok(true));
        assert_eq!(d.status(), crate::DraftStatus::Approved);
    }
}
