//! The approval verifier: the only way to obtain a [`VerifiedApproval`], and
//! so the only way anything in SpendSignoff may count an approval (a draft's
//! approve, a policy version coming into force).
//!
//! NATS permissions are the first layer, not the last: an
//! `spend.approval.granted.v1` on the bus is a claim until it is checked.
//! [`VerifiedApproval`]'s field is private and its one constructor is private
//! to this module, so no code path can approve on an event alone.
//!
//! An approval counts when ([`verify_for_hash`]) the approval service
//! recorded it where only it writes, for a human, of exactly the event it
//! names, **and** its `data.proof` — a WebAuthn assertion over the pinned
//! challenge — verifies with the passkey of an approver the registry
//! trusts ([`crate::approvers::Registry`]: anchored first admin or
//! admin-countersigned, not removed before the approval), unexpired when
//! the stream stored it, never counted before. A compromised approval
//! service can write the event; it cannot make the proof.

use chrono::{DateTime, Utc};
use spend_core::events::{ApprovalGranted, RollbackApproved, SecurityAlert};
use spend_core::{Actor, ActorKind, RawEnvelope};

use crate::Draft;
use crate::approvers::Registry;

/// The `source` of the events the approval service records.
pub const APPROVAL_SOURCE: &str = "spendsignoff/approval";

/// The subject aggregate approvals are recorded on
/// (`<prefix>.<org>.approval.<id>`), whose one writer is the approval service.
pub const APPROVAL_AGGREGATE: &str = "approval";

/// Lower-case hex SHA-256 of `bytes`: what an approval's `approved_hash`
/// names, computed over the event's bytes exactly as stored on the log.
pub fn event_hash(bytes: &[u8]) -> String {
    spend_core::sha256_hex(bytes)
}

/// What the stream says about an approval event: where it sits, who and
/// what the envelope says produced it, and its data. The verifier judges
/// these; building them is the caller's only part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFacts {
    /// The stream subject the message was stored on, for the alert's detail.
    pub subject: String,
    /// The org of the envelope (and of the subject).
    pub org: String,
    /// The aggregate token of the stream subject
    /// (`<prefix>.<org>.<aggregate>.<id>`).
    pub aggregate: String,
    /// The id token of the stream subject.
    pub subject_id: String,
    /// The envelope's actor.
    pub actor: Actor,
    /// The envelope's `source`.
    pub source: String,
    /// Whether the message was republished from another stream (a copy
    /// carries another writer's authority, not the approval service's).
    pub republished: bool,
    /// The stream sequence it sits at (removals before it count).
    pub seq: u64,
    /// When the stream stored it (the server's clock, not the writer's):
    /// what the proof's expiry is checked against, so a replay of history
    /// judges each approval as of when it was made.
    pub stored_at: DateTime<Utc>,
    pub data: ApprovalGranted,
}

impl ApprovalFacts {
    /// The facts of a stored `spend.approval.granted.v1`, from its stream
    /// subject and parsed envelope. A subject that is not
    /// `<prefix>.<envelope org>.<aggregate>.<id>`, another event type or data
    /// that does not parse are forgeries too.
    pub fn from_stored(
        prefix: &str,
        stream_subject: &str,
        env: &RawEnvelope<'_>,
        republished: bool,
        seq: u64,
        stored_at: DateTime<Utc>,
    ) -> Result<Self, Forgery> {
        Self::stored_as(ApprovalGranted::TYPE, prefix, stream_subject, env, republished, seq, stored_at)
    }

    /// The facts of a stored `spend.rollback.approved.v1` (the fields of
    /// an approval): only this type, so an approval of a draft is never
    /// read as one of a rollback, nor the reverse.
    pub fn from_stored_rollback(
        prefix: &str,
        stream_subject: &str,
        env: &RawEnvelope<'_>,
        republished: bool,
        seq: u64,
        stored_at: DateTime<Utc>,
    ) -> Result<Self, Forgery> {
        Self::stored_as(RollbackApproved::TYPE, prefix, stream_subject, env, republished, seq, stored_at)
    }

    fn stored_as(
        expected_type: &str,
        prefix: &str,
        stream_subject: &str,
        env: &RawEnvelope<'_>,
        republished: bool,
        seq: u64,
        stored_at: DateTime<Utc>,
    ) -> Result<Self, Forgery> {
        let malformed = |why: String| Forgery {
            kind: ForgeryKind::Malformed,
            detail: format!(
                "an approval on {stream_subject} by {:?} {} from {}: {why}",
                env.actor.kind, env.actor.id, env.source
            ),
        };
        if env.event_type != expected_type {
            return Err(malformed(format!("its type is {}, not {expected_type}", env.event_type)));
        }
        let Some((aggregate, subject_id)) = spend_core::subject::split_aggregate(stream_subject, prefix, &env.org) else {
            return Err(malformed(format!("the subject is not {prefix}.{}.<aggregate>.<id>", env.org)));
        };
        let data: ApprovalGranted = serde_json::from_str(env.data.get()).map_err(|e| malformed(format!("its data does not parse: {e}")))?;
        Ok(Self {
            subject: stream_subject.to_string(),
            org: env.org.to_string(),
            aggregate: aggregate.to_string(),
            subject_id: subject_id.to_string(),
            actor: env.actor.clone(),
            source: env.source.to_string(),
            republished,
            seq,
            stored_at,
            data,
        })
    }
}

/// An approval that passed the verifier. Its field is private and it has
/// no public constructor, no `Default` and no `Deserialize`: holding one is
/// proof that [`verify_for_hash`] accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApproval {
    granted: ApprovalGranted,
}

impl VerifiedApproval {
    /// Private to this module on purpose: see the module doc.
    fn new(granted: ApprovalGranted) -> Self {
        Self { granted }
    }

    /// The id of what was approved (a draft or a policy proposal).
    pub fn draft_id(&self) -> &str {
        &self.granted.draft_id
    }

    pub fn approval_id(&self) -> &str {
        &self.granted.approval_id
    }

    /// The human who approved; dual control counts distinct ones.
    pub fn approver_id(&self) -> &str {
        &self.granted.approver_id
    }

    /// Hex SHA-256 of the approved event's bytes, checked against the
    /// expected hash.
    pub fn approved_hash(&self) -> &str {
        &self.granted.approved_hash
    }

    /// The event as recorded.
    pub fn granted(&self) -> &ApprovalGranted {
        &self.granted
    }
}

/// Why an approval is refused. Every kind is a security event: the caller
/// ignores the approval and raises [`Forgery::security_alert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeryKind {
    /// Not a parseable approval on a well-formed subject.
    Malformed,
    /// Not on an `approval` subject, so not written by the approval service.
    WrongAggregate,
    /// Republished from another stream.
    Republished,
    /// The actor is an agent or a service, not a human.
    NotHuman,
    /// The source is not [`APPROVAL_SOURCE`].
    WrongSource,
    /// The subject id, the data's `draft_id` and the id checked disagree.
    IdMismatch,
    /// Another organisation's approval.
    WrongOrg,
    /// `approved_hash` names other bytes than the event being approved.
    WrongHash,
    /// The event's fields and its proof's disagree, or the proof signs
    /// another policy version or expiry than the request.
    ProofMismatch,
    /// The passkey proof does not verify: no trusted approver's key, a
    /// removed approver, a replay, an expired or a forged assertion.
    Proof,
}

/// A refused approval: [`Forgery::REASON`] plus a detail naming the draft,
/// for `spend.security.alert.v1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}", reason = Forgery::REASON)]
pub struct Forgery {
    pub kind: ForgeryKind,
    /// What was presented and why it was refused; names the draft.
    pub detail: String,
}

impl Forgery {
    /// The security alert reason code of every refused approval.
    pub const REASON: &'static str = "approval.forged";

    /// The alert to raise on the reader's own security subject.
    pub fn security_alert(&self) -> SecurityAlert {
        SecurityAlert {
            reason: Self::REASON.to_string(),
            key_id: None,
            address: None,
            detail: self.detail.clone(),
        }
    }
}

/// Verifies an approval of draft `draft`: [`verify_for_hash`] against the
/// draft's id and `proposed_hash`, and the draft's organisation; the proof
/// must sign the policy version that decided the draft and the expiry of
/// its approval request, as the page showed them.
pub fn recorded_approval(facts: &ApprovalFacts, draft: &Draft, registry: &mut Registry) -> Result<VerifiedApproval, Forgery> {
    if facts.org != draft.org() {
        return Err(forgery(
            facts,
            draft.id(),
            ForgeryKind::WrongOrg,
            format!("it is {}'s, the draft is {}'s", facts.org, draft.org()),
        ));
    }
    let proof = &facts.data.proof;
    if let Some(version) = draft.decided_version()
        && proof.policy_version != version
    {
        return Err(forgery(
            facts,
            draft.id(),
            ForgeryKind::ProofMismatch,
            format!("its proof signs policy version {}, the draft was decided under {version}", proof.policy_version),
        ));
    }
    if let Some(expires_at) = draft.approval_expires_at()
        && proof.expires_at != expires_at
    {
        return Err(forgery(
            facts,
            draft.id(),
            ForgeryKind::ProofMismatch,
            format!("its proof signs expiry {}, the approval request expires at {expires_at}", proof.expires_at),
        ));
    }
    verify_for_hash(facts, draft.proposed_hash(), draft.id(), registry)
}

/// Verifies an approval of the event with id `id` whose stored bytes hash
/// to `expected_hash` (a draft's `spend.draft.proposed.v1`, a policy
/// version's `spend.policy.proposed.v1`). Genuine only when it sits on an
/// `approval.<id>` subject, was not republished, has a human actor and the
/// approval service as source, names `id` in its data, and its
/// `approved_hash` is `expected_hash` exactly. The hashed bytes include the
/// envelope (type, org, subject), so one kind or organisation cannot pass
/// for another.
pub fn verify_for_hash(facts: &ApprovalFacts, expected_hash: &str, id: &str, registry: &mut Registry) -> Result<VerifiedApproval, Forgery> {
    let refuse = |kind, why: String| Err(forgery(facts, id, kind, why));
    if facts.aggregate != APPROVAL_AGGREGATE {
        return refuse(
            ForgeryKind::WrongAggregate,
            format!(
                "it sits on a {} subject; only the approval service records approvals, on an approval subject",
                facts.aggregate
            ),
        );
    }
    if facts.republished {
        return refuse(ForgeryKind::Republished, "it was republished from another stream".into());
    }
    if facts.actor.kind != ActorKind::Human {
        return refuse(
            ForgeryKind::NotHuman,
            format!("its actor is {:?}, and only a signed-in human approves", facts.actor.kind),
        );
    }
    if facts.source != APPROVAL_SOURCE {
        return refuse(ForgeryKind::WrongSource, format!("its source is {}, not {APPROVAL_SOURCE}", facts.source));
    }
    if facts.subject_id != id || facts.data.draft_id != id {
        return refuse(
            ForgeryKind::IdMismatch,
            format!(
                "its subject names {} and its data {}, but it was checked for {id}",
                facts.subject_id, facts.data.draft_id
            ),
        );
    }
    if facts.data.approved_hash != expected_hash {
        return refuse(
            ForgeryKind::WrongHash,
            format!("it approves the event hashing to {}, not {expected_hash}", facts.data.approved_hash),
        );
    }
    let (d, p) = (&facts.data, &facts.data.proof);
    if p.approval_id != d.approval_id
        || p.draft_id != d.draft_id
        || p.approved_hash != d.approved_hash
        || p.approver_id != d.approver_id
        || p.credential_id != d.credential_id
    {
        return refuse(
            ForgeryKind::ProofMismatch,
            format!(
                "its proof is approval {} of {} by {} with credential {}, not what the event says",
                p.approval_id, p.draft_id, p.approver_id, p.credential_id
            ),
        );
    }
    if let Err(e) = registry.verify(&facts.org, p, expected_hash, facts.stored_at, facts.seq) {
        return refuse(ForgeryKind::Proof, format!("its passkey proof by {} does not verify: {e}", p.approver_id));
    }
    Ok(VerifiedApproval::new(facts.data.clone()))
}

/// Verifies a human's approval of a rollback request: [`verify_for_hash`]
/// against the request's id and the hash of its bytes, in the request's
/// organisation, and the proof must sign the request's own expiry.
pub fn verify_rollback(
    facts: &ApprovalFacts,
    org: &str,
    rollback_id: &str,
    request_hash: &str,
    expires_at: &str,
    registry: &mut Registry,
) -> Result<VerifiedApproval, Forgery> {
    if facts.org != org {
        return Err(forgery(
            facts,
            rollback_id,
            ForgeryKind::WrongOrg,
            format!("it is {}'s, the rollback request is {org}'s", facts.org),
        ));
    }
    if facts.data.proof.expires_at != expires_at {
        return Err(forgery(
            facts,
            rollback_id,
            ForgeryKind::ProofMismatch,
            format!(
                "its proof signs expiry {}, the rollback request expires at {expires_at}",
                facts.data.proof.expires_at
            ),
        ));
    }
    verify_for_hash(facts, request_hash, rollback_id, registry)
}

fn forgery(facts: &ApprovalFacts, id: &str, kind: ForgeryKind, why: String) -> Forgery {
    let named = if facts.data.draft_id == id {
        format!("draft {id}")
    } else {
        format!("draft {} (checked for draft {id})", facts.data.draft_id)
    };
    Forgery {
        kind,
        detail: format!(
            "approval {} of {named} on {} by {:?} {} from {}: {why}",
            facts.data.approval_id, facts.subject, facts.actor.kind, facts.actor.id, facts.source
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvers::{Enrollment, Role};
    use crate::humans::Human;
    use spend_core::events::EventData;
    use spend_core::{Actor, Envelope};

    /// A change to genuine approval facts.
    type Forge = fn(&mut ApprovalFacts);

    const HASH: &str = "5f1ac6c1b1e2ac4d2ba7a6d1e7b6a9e0c8e7f4a1b2c3d4e5f60718293a4b5c6d";
    const LATER: &str = "2099-01-01T00:00:00Z";

    /// A registry in which ada is acme's anchored first admin.
    fn trusted() -> (Registry, Human) {
        let mut r = Registry::new(crate::humans::test_rp());
        let ada = Human::new("u_ada", Role::Admin);
        r.enroll(Enrollment::from_event(&ada.enrolled("acme", None)).unwrap()).unwrap();
        r.anchor("acme", &ada.fingerprint()).unwrap();
        (r, ada)
    }

    fn facts(data: ApprovalGranted) -> ApprovalFacts {
        ApprovalFacts {
            subject: "spend.evt.acme.approval.p1".into(),
            org: "acme".into(),
            aggregate: "approval".into(),
            subject_id: "p1".into(),
            actor: Actor::human("ada@example.com"),
            source: APPROVAL_SOURCE.into(),
            republished: false,
            seq: 10,
            stored_at: Utc::now(),
            data,
        }
    }

    fn genuine(ada: &mut Human) -> ApprovalFacts {
        facts(ada.grant("p1", HASH, "sha256:v1", LATER, 1))
    }

    #[test]
    fn the_hash_of_an_event_is_lower_case_hex_sha256_of_its_bytes() {
        assert_eq!(event_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_recorded_human_approval_with_a_trusted_passkey_proof_verifies() {
        let (mut r, mut ada) = trusted();
        let f = genuine(&mut ada);
        let v = verify_for_hash(&f, HASH, "p1", &mut r).unwrap();
        assert_eq!((v.draft_id(), v.approver_id(), v.approved_hash()), ("p1", "u_ada", HASH));
        // The same proof again is a replay.
        let e = verify_for_hash(&f, HASH, "p1", &mut r).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::Proof, "{e}");
    }

    #[test]
    fn an_approval_of_other_bytes_is_refused_for_a_policy_proposal() {
        let (mut r, mut ada) = trusted();
        let e = verify_for_hash(&genuine(&mut ada), &event_hash(b"another proposal"), "p1", &mut r).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::WrongHash);
        assert!(
            verify_for_hash(&genuine(&mut ada), &HASH.to_uppercase(), "p1", &mut r).is_err(),
            "the hash is compared as pinned: lower-case"
        );
    }

    #[test]
    fn each_forged_claim_is_refused_with_its_kind_and_a_detail_naming_the_draft() {
        let cases: Vec<(Forge, ForgeryKind)> = vec![
            (|f| f.aggregate = "draft".into(), ForgeryKind::WrongAggregate),
            (|f| f.republished = true, ForgeryKind::Republished),
            (|f| f.actor = Actor::agent("key_1"), ForgeryKind::NotHuman),
            (|f| f.actor = Actor::service("gateway"), ForgeryKind::NotHuman),
            (|f| f.source = "spendsignoff/gateway".into(), ForgeryKind::WrongSource),
            (|f| f.subject_id = "p2".into(), ForgeryKind::IdMismatch),
            (|f| f.data.draft_id = "p2".into(), ForgeryKind::IdMismatch),
            // The event says bob approved; the proof is ada's.
            (|f| f.data.approver_id = "u_bob".into(), ForgeryKind::ProofMismatch),
            // A proof of another approval, pasted into this one.
            (|f| f.data.proof.approval_id = "ap_other".into(), ForgeryKind::ProofMismatch),
            // Recorded after its expiry (the stream's clock decides).
            (
                |f| f.stored_at = DateTime::parse_from_rfc3339("2099-01-02T00:00:00Z").unwrap().into(),
                ForgeryKind::Proof,
            ),
            // The signature of another challenge.
            (|f| f.data.proof.signature = f.data.proof.signature.chars().rev().collect(), ForgeryKind::Proof),
        ];
        for (forge, kind) in cases {
            let (mut r, mut ada) = trusted();
            let mut f = genuine(&mut ada);
            forge(&mut f);
            let e = verify_for_hash(&f, HASH, "p1", &mut r).unwrap_err();
            assert_eq!(e.kind, kind, "{e}");
            assert!(e.detail.contains("draft p1"), "{e}");
            let alert = e.security_alert();
            assert_eq!(alert.reason, "approval.forged");
            assert_eq!(alert.detail, e.detail);
        }
    }

    #[test]
    fn a_proof_by_a_passkey_the_registry_does_not_trust_is_refused() {
        let (mut r, _ada) = trusted();
        // Enrolled by a compromised approval service without a
        // countersignature: never trusted.
        let mut mallory = Human::new("u_mallory", Role::Approver);
        assert!(r.enroll(Enrollment::from_event(&mallory.enrolled("acme", None)).unwrap()).is_err());
        let e = verify_for_hash(&genuine(&mut mallory), HASH, "p1", &mut r).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::Proof, "{e}");
        // A first admin without an anchor proves nothing either.
        let mut fresh = Registry::new(crate::humans::test_rp());
        let mut ada = Human::new("u_ada", Role::Admin);
        fresh.enroll(Enrollment::from_event(&ada.enrolled("acme", None)).unwrap()).unwrap();
        let e = verify_for_hash(&genuine(&mut ada), HASH, "p1", &mut fresh).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::Proof, "{e}");
    }

    #[test]
    fn facts_are_read_from_the_stored_subject_and_envelope() {
        let (_, mut ada) = trusted();
        let g = genuine(&mut ada);
        let env = Envelope::new(
            APPROVAL_SOURCE,
            "acme",
            Actor::human("ada@example.com"),
            "approval/p1",
            EventData::ApprovalGranted(g.data.clone()),
        );
        let bytes = env.to_bytes();
        let raw = RawEnvelope::parse(&bytes).unwrap();
        let facts = ApprovalFacts::from_stored("spend.evt", "spend.evt.acme.approval.p1", &raw, false, 10, g.stored_at).unwrap();
        assert_eq!(facts, g);
        let e = ApprovalFacts::from_stored("spend.evt", "spend.evt.other.approval.p1", &raw, false, 10, g.stored_at).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::Malformed);
    }

    #[test]
    fn an_event_of_another_type_does_not_pass_for_an_approval() {
        let env = Envelope::new(
            APPROVAL_SOURCE,
            "acme",
            Actor::human("alice@example.com"),
            "approval/p1",
            EventData::SecurityAlert(SecurityAlert {
                reason: "x".into(),
                key_id: None,
                address: None,
                detail: "y".into(),
            }),
        );
        let bytes = env.to_bytes();
        let raw = RawEnvelope::parse(&bytes).unwrap();
        let e = ApprovalFacts::from_stored("spend.evt", "spend.evt.acme.approval.p1", &raw, false, 1, Utc::now()).unwrap_err();
        assert_eq!(e.kind, ForgeryKind::Malformed);
    }
}
