//! Test humans (feature `soft-authenticator`, never in a service's build):
//! approvers with software passkeys, the registry events that make them
//! trusted, and approvals whose proofs verify — exactly the bytes a browser
//! and the approval service would produce, so tests of consumers exercise
//! the real verifier instead of a shortcut.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use spend_core::events::{ApprovalGranted, ApproverAnchored, ApproverEnrolled, Countersignature};

use crate::approvers::Role;
use crate::proof::soft::Authenticator;
use crate::proof::{RelyingParty, enroll_challenge, fingerprint};

/// The relying party of test passkeys.
pub fn test_rp() -> RelyingParty {
    RelyingParty {
        rp_id: "localhost".into(),
        origin: "http://localhost:7200".into(),
    }
}

pub struct Human {
    pub approver_id: String,
    pub role: Role,
    pub credential_id: String,
    pub key: Authenticator,
    approvals: u32,
}

impl Human {
    pub fn new(approver_id: &str, role: Role) -> Self {
        Self::on(approver_id, role, test_rp())
    }

    /// A human whose passkey was made on `rp` (a passkey page's).
    pub fn on(approver_id: &str, role: Role, rp: RelyingParty) -> Self {
        Self {
            approver_id: approver_id.into(),
            role,
            credential_id: URL_SAFE_NO_PAD.encode(format!("cred-{approver_id}")),
            key: Authenticator::new(rp),
            approvals: 0,
        }
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.public_key_der())
    }

    /// This human's `spend.approver.enrolled.v1`, countersigned by `by`
    /// (an admin), or without a countersignature (a first admin).
    pub fn enrolled(&self, org: &str, by: Option<&mut Human>) -> ApproverEnrolled {
        let der = self.key.public_key_der();
        let countersignature = by.map(|admin| {
            let challenge = enroll_challenge(org, &self.approver_id, self.role.as_str(), &self.credential_id, &der);
            let (ad, cdj, sig) = admin.key.assert(&challenge);
            Countersignature {
                approver_id: admin.approver_id.clone(),
                credential_id: admin.credential_id.clone(),
                authenticator_data: URL_SAFE_NO_PAD.encode(ad),
                client_data_json: URL_SAFE_NO_PAD.encode(cdj),
                signature: URL_SAFE_NO_PAD.encode(sig),
            }
        });
        ApproverEnrolled {
            approver_id: self.approver_id.clone(),
            org: org.into(),
            role: self.role.as_str().into(),
            credential_id: self.credential_id.clone(),
            public_key_spki_b64: STANDARD.encode(&der),
            rp_id: self.key.rp.rp_id.clone(),
            origin: self.key.rp.origin.clone(),
            countersignature,
            email: None,
        }
    }

    /// The operator's anchor of this human as `org`'s first admin.
    pub fn anchored(&self, org: &str) -> ApproverAnchored {
        ApproverAnchored {
            org: org.into(),
            fingerprint: self.fingerprint(),
        }
    }

    /// A genuine approval of the event hashing to `approved_hash`, as
    /// step `step`, under `policy_version`, expiring at `expires_at`.
    pub fn grant(&mut self, draft_id: &str, approved_hash: &str, policy_version: &str, expires_at: &str, step: u32) -> ApprovalGranted {
        self.approvals += 1;
        let approval_id = format!("ap_{}_{}_{}", draft_id, self.approver_id, self.approvals);
        let mut proof = self
            .key
            .approve(&approval_id, draft_id, approved_hash, policy_version, expires_at, &self.approver_id);
        proof.credential_id = self.credential_id.clone();
        ApprovalGranted {
            draft_id: draft_id.into(),
            approval_id,
            step,
            credential_id: self.credential_id.clone(),
            approver_id: self.approver_id.clone(),
            approved_hash: approved_hash.into(),
            proof,
        }
    }
}
