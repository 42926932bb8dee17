//! The approver registry: which passkeys are an organisation's approvers,
//! and whether an approval proof is one of theirs. It is a root of trust,
//! so a compromised approval service must not be able to add an approver:
//! every approver is countersigned by an already trusted admin's passkey
//! (the role inside the signed challenge, [`crate::proof::enroll_challenge`]),
//! except an organisation's first admin, who is trusted only once the
//! operator anchors that key's fingerprint (`spend approver anchor`), as
//! ../shared/DESIGN.md pins it.
//!
//! - Removal: proofs a removed approver makes afterwards do not verify; the
//!   approvers they countersigned stay trusted (the chain stays visible in
//!   [`Approver::vouched_by`]); removal never reopens the first-admin
//!   bootstrap.
//! - A proof counts once: its approval id is remembered (bounded), and the
//!   credential's sign counter must increase.
//!
//! Pure: the inputs are the facts of the pinned events
//! (`spend.approver.enrolled.v1`, `spend.approver.anchored.v1`, a removal),
//! with the log position they sit at; readers build one registry each from
//! the log, as they build the draft aggregate.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use spend_core::RawEnvelope;
use spend_core::bounded::FifoMap;
use spend_core::events::{ApproverAnchored, ApproverEnrolled, ApproverRemoved};

use crate::proof::{ApprovalProof, Assertion, ProofError, RelyingParty, enroll_challenge, fingerprint, verify_approval, verify_assertion};

/// Approval ids remembered per registry, to refuse a proof seen before.
pub const SEEN_PROOFS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Approver,
    Admin,
}

impl Role {
    /// `approver` or `admin`, as the events spell it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approver" => Some(Self::Approver),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }
}

/// An admin's assertion over a new approver's enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Countersignature {
    pub admin_id: String,
    pub credential_id: String,
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub signature_der: Vec<u8>,
}

/// The facts of an enrollment, as `spend.approver.enrolled.v1` carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub org: String,
    pub approver_id: String,
    pub role: Role,
    pub credential_id: String,
    /// DER SubjectPublicKeyInfo of the passkey.
    pub public_key_der: Vec<u8>,
    pub rp: RelyingParty,
    pub countersignature: Option<Countersignature>,
}

/// Who vouched for an approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voucher {
    /// The operator's anchor of this key's fingerprint (a first admin).
    Anchor,
    /// The admin whose passkey countersigned the enrollment.
    Admin(String),
}

/// A trusted approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub approver_id: String,
    pub role: Role,
    pub credential_id: String,
    pub public_key_der: Vec<u8>,
    pub rp: RelyingParty,
    pub vouched_by: Voucher,
    /// The log position of the removal, if removed.
    pub removed_at: Option<u64>,
    /// The credential's last sign counter.
    counter: u32,
}

/// Why an enrollment, anchor or removal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("approver {0} is enrolled already")]
    Duplicate(String),
    #[error("an approver (not an admin) needs an admin's countersignature")]
    NotVouched,
    #[error("{0} is not a trusted admin of the organisation")]
    NotAnAdmin(String),
    #[error("the countersignature does not verify: {0}")]
    Countersignature(ProofError),
    #[error("the organisation has its first admin already: a new admin needs an admin's countersignature")]
    Bootstrapped,
    #[error("no approver {0}")]
    Unknown(String),
    #[error("the event is malformed: {0}")]
    Malformed(String),
    #[error("the passkey was made on {0}, not on the relying party this verifier is configured with")]
    RelyingParty(String),
}

/// Why an approval proof does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("{0} is not an approver of the organisation")]
    NotAnApprover(String),
    #[error("{0} was removed before this approval")]
    Removed(String),
    #[error("credential {0} is not the approver's passkey")]
    Credential(String),
    #[error("approval {0} was counted already")]
    Replayed(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// What an enrollment led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Trusted,
    /// A first admin, trusted once the operator anchors its fingerprint.
    AwaitingAnchor {
        fingerprint: String,
    },
}

#[derive(Default, Clone)]
struct Org {
    approvers: HashMap<String, Approver>,
    /// First-admin enrollments waiting for an anchor, by fingerprint.
    unanchored: HashMap<String, Enrollment>,
    /// Fingerprints the operator anchored before the enrollment arrived.
    anchors: Vec<String>,
    /// Whether a first admin was ever trusted (removals never reset it).
    bootstrapped: bool,
}

/// What [`Registry::observe`] did with a registry event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Enrolled {
        org: String,
        approver_id: String,
        trust: Trust,
    },
    Anchored {
        org: String,
        trusted: Option<String>,
    },
    Removed {
        org: String,
        approver_id: String,
    },
    /// Refused (a security event: the caller raises an alert with this).
    Refused {
        org: String,
        error: TrustError,
    },
}

#[derive(Clone)]
pub struct Registry {
    orgs: HashMap<String, Org>,
    seen: FifoMap<(String, String), ()>,
    /// The relying party (RP ID and origin) approval credentials are made
    /// on, from the verifier's own configuration: an enrollment naming
    /// another is not trusted, and every check uses this one, never what
    /// an event says.
    rp: RelyingParty,
}

impl Registry {
    /// An empty registry whose approvers' passkeys must be made on `rp`.
    pub fn new(rp: RelyingParty) -> Self {
        Self {
            orgs: HashMap::new(),
            seen: FifoMap::new(SEEN_PROOFS),
            rp,
        }
    }
}

impl Approver {
    /// The passkey's last sign counter the log showed.
    pub fn counter_value(&self) -> u32 {
        self.counter
    }
}

impl Enrollment {
    /// The facts of a `spend.approver.enrolled.v1`.
    pub fn from_event(e: &ApproverEnrolled) -> Result<Self, TrustError> {
        let bad = |what: &str| TrustError::Malformed(format!("{what} of approver {}", e.approver_id));
        let role = Role::parse(&e.role).ok_or_else(|| bad("the role"))?;
        let public_key_der = STANDARD.decode(&e.public_key_spki_b64).map_err(|_| bad("the public key"))?;
        let countersignature = match &e.countersignature {
            None => None,
            Some(c) => {
                let d = |v: &str, what: &str| URL_SAFE_NO_PAD.decode(v).map_err(|_| bad(what));
                Some(Countersignature {
                    admin_id: c.approver_id.clone(),
                    credential_id: c.credential_id.clone(),
                    authenticator_data: d(&c.authenticator_data, "the countersignature's authenticator data")?,
                    client_data_json: d(&c.client_data_json, "the countersignature's client data")?,
                    signature_der: d(&c.signature, "the countersignature's signature")?,
                })
            }
        };
        Ok(Self {
            org: e.org.clone(),
            approver_id: e.approver_id.clone(),
            role,
            credential_id: e.credential_id.clone(),
            public_key_der,
            rp: RelyingParty {
                rp_id: e.rp_id.clone(),
                origin: e.origin.clone(),
            },
            countersignature,
        })
    }
}

impl Registry {
    /// Applies a registry event at stream sequence `seq`, already placed
    /// by `spend_eventlog::read::classify` (so an enrollment sits on an
    /// `approver` subject, written by the approval service, and an anchor
    /// on an `anchor` subject, written by the operator's CLI). `None` for
    /// any other event. The event's organisation must be the envelope's.
    pub fn observe(&mut self, seq: u64, env: &RawEnvelope<'_>) -> Option<Observed> {
        let org = env.org.to_string();
        let refused = |error: TrustError| Observed::Refused { org: org.clone(), error };
        let parse = |what: &str| TrustError::Malformed(format!("a {what} that does not parse at seq {seq}"));
        match env.event_type.as_ref() {
            ApproverEnrolled::TYPE => {
                let Ok(e) = serde_json::from_str::<ApproverEnrolled>(env.data.get()) else {
                    return Some(refused(parse("spend.approver.enrolled.v1")));
                };
                if e.org != org {
                    return Some(refused(TrustError::Malformed(format!(
                        "an enrollment of {} into {} on {org}'s subject",
                        e.approver_id, e.org
                    ))));
                }
                let enrollment = match Enrollment::from_event(&e) {
                    Ok(x) => x,
                    Err(error) => return Some(refused(error)),
                };
                Some(match self.enroll(enrollment) {
                    Ok(trust) => Observed::Enrolled {
                        org,
                        approver_id: e.approver_id,
                        trust,
                    },
                    Err(error) => refused(error),
                })
            }
            ApproverAnchored::TYPE => {
                let Ok(a) = serde_json::from_str::<ApproverAnchored>(env.data.get()) else {
                    return Some(refused(parse("spend.approver.anchored.v1")));
                };
                if a.org != org {
                    return Some(refused(TrustError::Malformed(format!("an anchor for {} on {org}'s subject", a.org))));
                }
                Some(match self.anchor(&org, &a.fingerprint) {
                    Ok(trusted) => Observed::Anchored { org, trusted },
                    Err(error) => refused(error),
                })
            }
            ApproverRemoved::TYPE => {
                let Ok(r) = serde_json::from_str::<ApproverRemoved>(env.data.get()) else {
                    return Some(refused(parse("spend.approver.removed.v1")));
                };
                if r.org != org {
                    return Some(refused(TrustError::Malformed(format!("a removal from {} on {org}'s subject", r.org))));
                }
                Some(match self.remove(&org, &r.approver_id, seq) {
                    Ok(()) => Observed::Removed {
                        org,
                        approver_id: r.approver_id,
                    },
                    Err(error) => refused(error),
                })
            }
            _ => None,
        }
    }

    /// The organisation's approvers, trusted ones first by id, removed
    /// ones included (with their removal).
    pub fn approvers(&self, org: &str) -> Vec<&Approver> {
        let mut v: Vec<&Approver> = self.orgs.get(org).map(|o| o.approvers.values().collect()).unwrap_or_default();
        v.sort_by(|a, b| (a.removed_at.is_some(), &a.approver_id).cmp(&(b.removed_at.is_some(), &b.approver_id)));
        v
    }

    /// First-admin enrollments waiting for the operator's anchor:
    /// (approver id, fingerprint).
    pub fn awaiting_anchor(&self, org: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .orgs
            .get(org)
            .map(|o| o.unanchored.iter().map(|(fp, e)| (e.approver_id.clone(), fp.clone())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether the organisation's first admin was ever trusted.
    pub fn bootstrapped(&self, org: &str) -> bool {
        self.orgs.get(org).is_some_and(|o| o.bootstrapped)
    }

    /// The trusted, not removed approver with this credential.
    pub fn by_credential(&self, org: &str, credential_id: &str) -> Option<&Approver> {
        self.orgs
            .get(org)?
            .approvers
            .values()
            .find(|a| a.credential_id == credential_id && a.removed_at.is_none())
    }

    /// The last sign counter seen of an approver's passkey.
    pub fn counter(&self, org: &str, approver_id: &str) -> Option<u32> {
        self.approver(org, approver_id).map(|a| a.counter)
    }

    /// Applies an enrollment.
    pub fn enroll(&mut self, e: Enrollment) -> Result<Trust, TrustError> {
        if e.rp != self.rp {
            return Err(TrustError::RelyingParty(format!("RP ID {:?} and origin {:?}", e.rp.rp_id, e.rp.origin)));
        }
        let org = self.orgs.entry(e.org.clone()).or_default();
        if org.approvers.contains_key(&e.approver_id) {
            return Err(TrustError::Duplicate(e.approver_id));
        }
        let Some(cs) = &e.countersignature else {
            if e.role != Role::Admin {
                return Err(TrustError::NotVouched);
            }
            if org.bootstrapped {
                return Err(TrustError::Bootstrapped);
            }
            let fp = fingerprint(&e.public_key_der);
            if org.anchors.contains(&fp) {
                org.trust(e, Voucher::Anchor);
                return Ok(Trust::Trusted);
            }
            org.unanchored.insert(fp.clone(), e);
            return Ok(Trust::AwaitingAnchor { fingerprint: fp });
        };
        let admin = org
            .approvers
            .get_mut(&cs.admin_id)
            .filter(|a| a.role == Role::Admin && a.removed_at.is_none() && a.credential_id == cs.credential_id)
            .ok_or_else(|| TrustError::NotAnAdmin(cs.admin_id.clone()))?;
        let challenge = enroll_challenge(&e.org, &e.approver_id, e.role.as_str(), &e.credential_id, &e.public_key_der);
        let assertion = Assertion {
            authenticator_data: &cs.authenticator_data,
            client_data_json: &cs.client_data_json,
            signature_der: &cs.signature_der,
        };
        admin.counter = verify_assertion(&admin.public_key_der, &admin.rp, &challenge, assertion, admin.counter).map_err(TrustError::Countersignature)?;
        let voucher = Voucher::Admin(cs.admin_id.clone());
        org.trust(e, voucher);
        Ok(Trust::Trusted)
    }

    /// Applies the operator's anchor of `fingerprint` as `org`'s first
    /// admin; returns the approver it trusted, if the enrollment is here.
    pub fn anchor(&mut self, org: &str, fingerprint: &str) -> Result<Option<String>, TrustError> {
        let o = self.orgs.entry(org.to_string()).or_default();
        if o.bootstrapped {
            return Err(TrustError::Bootstrapped);
        }
        match o.unanchored.remove(fingerprint) {
            Some(e) => {
                let id = e.approver_id.clone();
                o.trust(e, Voucher::Anchor);
                Ok(Some(id))
            }
            None => {
                o.anchors.push(fingerprint.to_string());
                Ok(None)
            }
        }
    }

    /// Applies a removal at log position `at`.
    pub fn remove(&mut self, org: &str, approver_id: &str, at: u64) -> Result<(), TrustError> {
        let a = self
            .orgs
            .get_mut(org)
            .and_then(|o| o.approvers.get_mut(approver_id))
            .ok_or_else(|| TrustError::Unknown(approver_id.to_string()))?;
        a.removed_at.get_or_insert(at);
        Ok(())
    }

    pub fn approver(&self, org: &str, approver_id: &str) -> Option<&Approver> {
        self.orgs.get(org).and_then(|o| o.approvers.get(approver_id))
    }

    /// Checks an approval proof that sits at log position `at`: by a
    /// trusted approver of `org` not removed before it, with that
    /// approver's passkey, of `expected_hash`, unexpired at `now`, never
    /// counted before. Counts it (the counter and the approval id are
    /// remembered).
    pub fn verify(&mut self, org: &str, proof: &ApprovalProof, expected_hash: &str, now: DateTime<Utc>, at: u64) -> Result<(), ApprovalError> {
        let seen_key = (org.to_string(), proof.approval_id.clone());
        if self.seen.contains_key(&seen_key) {
            return Err(ApprovalError::Replayed(proof.approval_id.clone()));
        }
        let a = self
            .orgs
            .get_mut(org)
            .and_then(|o| o.approvers.get_mut(&proof.approver_id))
            .ok_or_else(|| ApprovalError::NotAnApprover(proof.approver_id.clone()))?;
        if a.removed_at.is_some_and(|r| r < at) {
            return Err(ApprovalError::Removed(proof.approver_id.clone()));
        }
        if a.credential_id != proof.credential_id {
            return Err(ApprovalError::Credential(proof.credential_id.clone()));
        }
        a.counter = verify_approval(proof, &a.public_key_der, &a.rp, expected_hash, now, a.counter)?;
        self.seen.insert_new(seen_key, ());
        Ok(())
    }
}

impl Org {
    fn trust(&mut self, e: Enrollment, vouched_by: Voucher) {
        if e.role == Role::Admin && vouched_by == Voucher::Anchor {
            self.bootstrapped = true;
            // One first admin: other first-admin enrollments wait in vain.
            self.unanchored.clear();
            self.anchors.clear();
        }
        self.approvers.insert(
            e.approver_id.clone(),
            Approver {
                approver_id: e.approver_id,
                role: e.role,
                credential_id: e.credential_id,
                public_key_der: e.public_key_der,
                rp: e.rp,
                vouched_by,
                removed_at: None,
                counter: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::soft::Authenticator;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const LATER: &str = "2099-01-01T00:00:00Z";

    fn rp() -> RelyingParty {
        RelyingParty {
            rp_id: "localhost".into(),
            origin: "http://localhost:7200".into(),
        }
    }

    fn enrollment(id: &str, role: Role, key: &Authenticator, countersigned_by: Option<(&str, &mut Authenticator)>) -> Enrollment {
        let credential_id = format!("cred-{id}");
        let countersignature = countersigned_by.map(|(admin, a)| {
            let challenge = enroll_challenge("acme", id, role.as_str(), &credential_id, &key.public_key_der());
            let (ad, cdj, sig) = a.assert(&challenge);
            Countersignature {
                admin_id: admin.into(),
                credential_id: format!("cred-{admin}"),
                authenticator_data: ad,
                client_data_json: cdj,
                signature_der: sig,
            }
        });
        Enrollment {
            org: "acme".into(),
            approver_id: id.into(),
            role,
            credential_id,
            public_key_der: key.public_key_der(),
            rp: rp(),
            countersignature,
        }
    }

    fn proof(a: &mut Authenticator, approver: &str, approval_id: &str) -> ApprovalProof {
        let mut p = a.approve(approval_id, "d_1", HASH, "v1", LATER, approver);
        p.credential_id = format!("cred-{approver}");
        p
    }

    /// A registry with a first admin (anchored) and an approver she vouched for.
    fn given_an_anchored_admin_and_her_approver() -> (Registry, Authenticator, Authenticator) {
        let mut r = Registry::new(rp());
        let mut ada = Authenticator::new(rp());
        let first = enrollment("ada", Role::Admin, &ada, None);
        let fp = fingerprint(&ada.public_key_der());
        assert_eq!(r.enroll(first), Ok(Trust::AwaitingAnchor { fingerprint: fp.clone() }));
        assert_eq!(r.anchor("acme", &fp), Ok(Some("ada".into())));
        let bob = Authenticator::new(rp());
        let e = enrollment("bob", Role::Approver, &bob, Some(("ada", &mut ada)));
        assert_eq!(r.enroll(e), Ok(Trust::Trusted));
        (r, ada, bob)
    }

    #[test]
    fn a_passkey_made_on_another_relying_party_is_never_trusted_whatever_the_event_says() {
        // An enrollment, countersigned by the real admin, of a key made on
        // the app's own domain (or any RP other than the configured one):
        // the registry pins its RP from configuration, not from the event.
        let (mut r, mut ada, _) = given_an_anchored_admin_and_her_approver();
        let elsewhere = RelyingParty::new("app.example.com", "https://app.example.com");
        let carol = Authenticator::new(elsewhere.clone());
        let mut e = enrollment("carol", Role::Approver, &carol, Some(("ada", &mut ada)));
        e.rp = elsewhere;
        assert!(matches!(r.enroll(e), Err(TrustError::RelyingParty(_))));
        assert!(r.approver("acme", "carol").is_none());
        // And a registry configured with another RP trusts none of these.
        let mut other = Registry::new(RelyingParty::new("passkey.example.com", "https://passkey.example.com"));
        let ada2 = Authenticator::new(rp());
        assert!(matches!(
            other.enroll(enrollment("ada", Role::Admin, &ada2, None)),
            Err(TrustError::RelyingParty(_))
        ));
    }

    #[test]
    fn only_an_anchored_first_admin_and_those_an_admin_countersigns_are_trusted() {
        let (mut r, mut ada, mut bob) = given_an_anchored_admin_and_her_approver();
        assert_eq!(r.approver("acme", "bob").unwrap().vouched_by, Voucher::Admin("ada".into()));
        assert_eq!(r.verify("acme", &proof(&mut bob, "bob", "ap_1"), HASH, Utc::now(), 10), Ok(()));
        assert_eq!(r.verify("acme", &proof(&mut ada, "ada", "ap_2"), HASH, Utc::now(), 11), Ok(()));

        // A compromised approval service enrolls a key of its own: no
        // countersignature, or one by a non-admin, or a forged one.
        let mallory = Authenticator::new(rp());
        assert_eq!(r.enroll(enrollment("mallory", Role::Approver, &mallory, None)), Err(TrustError::NotVouched));
        assert_eq!(r.enroll(enrollment("mallory", Role::Admin, &mallory, None)), Err(TrustError::Bootstrapped));
        let mut own = Authenticator::new(rp());
        let by_bob = enrollment("mallory", Role::Approver, &mallory, Some(("bob", &mut own)));
        assert_eq!(r.enroll(by_bob), Err(TrustError::NotAnAdmin("bob".into())));
        let forged = enrollment("mallory", Role::Admin, &mallory, Some(("ada", &mut own)));
        assert!(matches!(r.enroll(forged), Err(TrustError::Countersignature(_))));
        // The role is inside the signed challenge: an approver's
        // countersignature cannot make an admin.
        let mut as_approver = enrollment("carol", Role::Approver, &mallory, Some(("ada", &mut ada)));
        as_approver.role = Role::Admin;
        assert!(matches!(r.enroll(as_approver), Err(TrustError::Countersignature(_))));
        assert!(r.approver("acme", "mallory").is_none() && r.approver("acme", "carol").is_none());
    }

    #[test]
    fn a_removed_approver_proves_nothing_afterwards_and_the_bootstrap_stays_closed() {
        let (mut r, _ada, mut bob) = given_an_anchored_admin_and_her_approver();
        r.remove("acme", "ada", 20).unwrap();
        assert_eq!(r.approver("acme", "bob").unwrap().vouched_by, Voucher::Admin("ada".into()), "bob stays trusted");
        assert_eq!(r.verify("acme", &proof(&mut bob, "bob", "ap_1"), HASH, Utc::now(), 21), Ok(()));
        r.remove("acme", "bob", 30).unwrap();
        assert_eq!(
            r.verify("acme", &proof(&mut bob, "bob", "ap_2"), HASH, Utc::now(), 31),
            Err(ApprovalError::Removed("bob".into()))
        );
        // Every admin gone: still no second first admin.
        let eve = Authenticator::new(rp());
        assert_eq!(r.enroll(enrollment("eve", Role::Admin, &eve, None)), Err(TrustError::Bootstrapped));
        assert_eq!(r.anchor("acme", &fingerprint(&eve.public_key_der())), Err(TrustError::Bootstrapped));
    }

    #[test]
    fn a_proof_counts_once_and_only_with_the_approvers_own_passkey() {
        let (mut r, _ada, mut bob) = given_an_anchored_admin_and_her_approver();
        let p = proof(&mut bob, "bob", "ap_1");
        assert_eq!(r.verify("acme", &p, HASH, Utc::now(), 10), Ok(()));
        assert_eq!(r.verify("acme", &p, HASH, Utc::now(), 11), Err(ApprovalError::Replayed("ap_1".into())));
        let mut other = proof(&mut bob, "bob", "ap_2");
        other.credential_id = "cred-other".into();
        assert_eq!(
            r.verify("acme", &other, HASH, Utc::now(), 12),
            Err(ApprovalError::Credential("cred-other".into()))
        );
        let mut stolen_name = Authenticator::new(rp());
        let p = proof(&mut stolen_name, "bob", "ap_3");
        assert_eq!(r.verify("acme", &p, HASH, Utc::now(), 13), Err(ApprovalError::Proof(ProofError::Signature)));
        assert!(matches!(
            r.verify("globex", &proof(&mut bob, "bob", "ap_4"), HASH, Utc::now(), 14),
            Err(ApprovalError::NotAnApprover(_))
        ));
    }

    #[test]
    fn an_anchor_may_come_before_the_enrollment() {
        let mut r = Registry::new(rp());
        let ada = Authenticator::new(rp());
        assert_eq!(r.anchor("acme", &fingerprint(&ada.public_key_der())), Ok(None));
        assert_eq!(r.enroll(enrollment("ada", Role::Admin, &ada, None)), Ok(Trust::Trusted));
        assert_eq!(r.approver("acme", "ada").unwrap().vouched_by, Voucher::Anchor);
    }
}
