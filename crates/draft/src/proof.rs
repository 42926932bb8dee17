//! The approval proof, as ../shared/DESIGN.md ("Human approval") pins it,
//! and its check: a WebAuthn assertion (ES256, user verification required)
//! by an approver's passkey over a challenge that binds what is approved.
//! Pure and standard: SHA-256 and ECDSA P-256, nothing of ours, so anyone
//! holding an export and the approvers' public keys can check a proof with
//! their own tools (the suite does it with Python's `cryptography`).
//!
//! - [`approval_challenge`]: `SHA-256("spendsignoff-approval-v1\n" +
//!   approval_id + "\n" + approved_hash + "\n" + policy_version + "\n" +
//!   expires_at)`, the raw 32 bytes the authenticator signs (inside
//!   `client_data_json`, as unpadded base64url).
//! - [`enroll_challenge`]: what an admin's countersignature of a new
//!   approver signs (org, approver, role, credential, key fingerprint).
//! - [`verify_assertion`]: the signature over `authenticator_data ||
//!   SHA-256(client_data_json)`; flags UP and UV; the RP ID hash; the
//!   origin; the challenge; a sign counter that increases (0 accepted only
//!   while it has always been 0).
//! - [`verify_approval`]: all of that for an [`ApprovalProof`], plus the
//!   hash it approves and its expiry.
//!
//! Which keys are an organisation's approvers (enrollment, the first
//! admin's anchor, removal) and which proofs were seen already are the
//! caller's state; this module answers for one proof against one key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Domain separation of approval challenges.
pub const APPROVAL_DOMAIN: &str = "spendsignoff-approval-v1\n";
/// Domain separation of enrollment countersignatures.
pub const ENROLL_DOMAIN: &str = "spendsignoff-enroll-v1\n";
/// Domain separation of a sign-in to the approval app (the passkey page's
/// own formula: a sign-in assertion is never an approval or a
/// countersignature).
pub const SIGNIN_DOMAIN: &str = "spendsignoff-signin-v1\n";
/// Domain separation of the challenge a new passkey is created over.
pub const CREATE_DOMAIN: &str = "spendsignoff-create-v1\n";

/// Authenticator data flag: the user was present.
const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: the user was verified (PIN, biometrics).
const FLAG_UV: u8 = 0x04;

/// The challenge of an approval (see the module docs). `expires_at` is
/// used byte for byte, as the proof carries it.
pub fn approval_challenge(approval_id: &str, approved_hash: &str, policy_version: &str, expires_at: &str) -> [u8; 32] {
    let text = format!("{APPROVAL_DOMAIN}{approval_id}\n{approved_hash}\n{policy_version}\n{expires_at}");
    Sha256::digest(text.as_bytes()).into()
}

/// Hex SHA-256 of a public key's DER SubjectPublicKeyInfo: the fingerprint
/// an enrollment page shows and `spend approver anchor` names.
pub fn fingerprint(public_key_der: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key_der))
}

/// The challenge of an admin's countersignature of an enrollment.
pub fn enroll_challenge(org: &str, approver_id: &str, role: &str, credential_id: &str, public_key_der: &[u8]) -> [u8; 32] {
    let text = format!("{ENROLL_DOMAIN}{org}\n{approver_id}\n{role}\n{credential_id}\n{}", fingerprint(public_key_der));
    Sha256::digest(text.as_bytes()).into()
}

/// The challenge of a sign-in to the app at `app_origin`:
/// `SHA-256("spendsignoff-signin-v1\n" + app_origin + "\n" + nonce)`, the
/// nonce the app's. The passkey page computes it; the app checks it.
pub fn signin_challenge(app_origin: &str, nonce: &str) -> [u8; 32] {
    Sha256::digest(format!("{SIGNIN_DOMAIN}{app_origin}\n{nonce}").as_bytes()).into()
}

/// The challenge a passkey is created over for the app at `app_origin`:
/// `SHA-256("spendsignoff-create-v1\n" + app_origin + "\n" + nonce)`.
pub fn create_challenge(app_origin: &str, nonce: &str) -> [u8; 32] {
    Sha256::digest(format!("{CREATE_DOMAIN}{app_origin}\n{nonce}").as_bytes()).into()
}

pub use spend_core::events::ApprovalProof;

/// The relying party a passkey was created for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// e.g. `approvals.example.com`, `localhost` in `spend dev`.
    pub rp_id: String,
    /// e.g. `https://approvals.example.com`.
    pub origin: String,
}

impl RelyingParty {
    /// The approval app at its default address (`spend dev`'s: RP ID
    /// `localhost`, origin `http://localhost:7200`). `spend` gives every
    /// service the configured one; this is the default of a service's own
    /// configuration.
    pub fn default_app() -> Self {
        Self::new("localhost", "http://localhost:7200")
    }

    pub fn new(rp_id: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            rp_id: rp_id.into(),
            origin: origin.into().trim_end_matches('/').to_string(),
        }
    }
}

/// One assertion's raw parts.
#[derive(Debug, Clone, Copy)]
pub struct Assertion<'a> {
    pub authenticator_data: &'a [u8],
    pub client_data_json: &'a [u8],
    pub signature_der: &'a [u8],
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("{0} is not unpadded base64url")]
    Encoding(&'static str),
    #[error("the approver's public key is not a P-256 SubjectPublicKeyInfo")]
    Key,
    #[error("the authenticator data is {0} bytes; at least 37 are needed")]
    AuthenticatorData(usize),
    #[error("the authenticator data is for another relying party")]
    RpId,
    #[error("the user was not present (UP flag)")]
    UserPresence,
    #[error("the user was not verified (UV flag): a presence-only tap is refused")]
    UserVerification,
    #[error("the client data is not WebAuthn client data: {0}")]
    ClientData(String),
    #[error("the client data is of type {0:?}, not webauthn.get")]
    ClientDataType(String),
    #[error("the assertion was made on origin {0:?}")]
    Origin(String),
    #[error("the assertion signs another challenge")]
    Challenge,
    #[error("the signature does not verify with the approver's key")]
    Signature,
    #[error("the sign counter went from {last} to {now}: a cloned authenticator or a replay")]
    Counter { last: u32, now: u32 },
    #[error("the proof approves {proved}, not {expected}")]
    WrongHash { proved: String, expected: String },
    #[error("expires_at {0:?} is not an RFC 3339 time")]
    Expiry(String),
    #[error("the proof expired at {0}")]
    Expired(String),
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
}

/// Checks one WebAuthn assertion by the key `public_key_der` (DER SPKI)
/// over `challenge`, for `rp`, after a last known sign counter of
/// `last_counter`; returns the assertion's counter (to keep for the next).
pub fn verify_assertion(public_key_der: &[u8], rp: &RelyingParty, challenge: &[u8; 32], a: Assertion<'_>, last_counter: u32) -> Result<u32, ProofError> {
    let key = VerifyingKey::from_public_key_der(public_key_der).map_err(|_| ProofError::Key)?;
    let ad = a.authenticator_data;
    if ad.len() < 37 {
        return Err(ProofError::AuthenticatorData(ad.len()));
    }
    if ad[..32] != Sha256::digest(rp.rp_id.as_bytes())[..] {
        return Err(ProofError::RpId);
    }
    let flags = ad[32];
    if flags & FLAG_UP == 0 {
        return Err(ProofError::UserPresence);
    }
    if flags & FLAG_UV == 0 {
        return Err(ProofError::UserVerification);
    }
    let counter = u32::from_be_bytes([ad[33], ad[34], ad[35], ad[36]]);
    let client: ClientData = serde_json::from_slice(a.client_data_json).map_err(|e| ProofError::ClientData(e.to_string()))?;
    if client.kind != "webauthn.get" {
        return Err(ProofError::ClientDataType(client.kind));
    }
    if client.origin != rp.origin {
        return Err(ProofError::Origin(client.origin));
    }
    if client.challenge != URL_SAFE_NO_PAD.encode(challenge) {
        return Err(ProofError::Challenge);
    }
    let signature = Signature::from_der(a.signature_der).map_err(|_| ProofError::Signature)?;
    let mut signed = ad.to_vec();
    signed.extend_from_slice(&Sha256::digest(a.client_data_json));
    key.verify(&signed, &signature).map_err(|_| ProofError::Signature)?;
    let increasing = counter > last_counter || (counter == 0 && last_counter == 0);
    if !increasing {
        return Err(ProofError::Counter {
            last: last_counter,
            now: counter,
        });
    }
    Ok(counter)
}

/// Checks an approval proof: that it approves `expected_hash`, has not
/// expired at `now`, and is an assertion by the approver's key
/// (`public_key_der`) over the pinned challenge; returns the sign counter.
/// Whether the key is a trusted approver's, and whether this proof was
/// seen before, the caller knows.
pub fn verify_approval(
    proof: &ApprovalProof,
    public_key_der: &[u8],
    rp: &RelyingParty,
    expected_hash: &str,
    now: DateTime<Utc>,
    last_counter: u32,
) -> Result<u32, ProofError> {
    if proof.approved_hash != expected_hash {
        return Err(ProofError::WrongHash {
            proved: proof.approved_hash.clone(),
            expected: expected_hash.to_string(),
        });
    }
    let expires = DateTime::parse_from_rfc3339(&proof.expires_at).map_err(|_| ProofError::Expiry(proof.expires_at.clone()))?;
    if expires.with_timezone(&Utc) <= now {
        return Err(ProofError::Expired(proof.expires_at.clone()));
    }
    let decode = |field: &'static str, v: &str| URL_SAFE_NO_PAD.decode(v).map_err(|_| ProofError::Encoding(field));
    let authenticator_data = decode("authenticator_data", &proof.authenticator_data)?;
    let client_data_json = decode("client_data_json", &proof.client_data_json)?;
    let signature_der = decode("signature", &proof.signature)?;
    let challenge = approval_challenge(&proof.approval_id, &proof.approved_hash, &proof.policy_version, &proof.expires_at);
    verify_assertion(
        public_key_der,
        rp,
        &challenge,
        Assertion {
            authenticator_data: &authenticator_data,
            client_data_json: &client_data_json,
            signature_der: &signature_der,
        },
        last_counter,
    )
}

/// A software authenticator for tests (feature `soft-authenticator`): it
/// signs assertions exactly as a platform authenticator does. No build of
/// a service enables it.
#[cfg(any(test, feature = "soft-authenticator"))]
pub mod soft {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;

    pub struct Authenticator {
        key: SigningKey,
        pub rp: RelyingParty,
        pub counter: u32,
        /// Authenticator flags to set (UP | UV by default).
        pub flags: u8,
    }

    impl Authenticator {
        pub fn new(rp: RelyingParty) -> Self {
            use p256::elliptic_curve::Generate as _;
            Self {
                key: SigningKey::generate(),
                rp,
                counter: 0,
                flags: FLAG_UP | FLAG_UV,
            }
        }

        /// The credential's private key, PKCS#8 DER: for loading this
        /// passkey into a browser's virtual authenticator.
        pub fn private_key_pkcs8_der(&self) -> Vec<u8> {
            use p256::pkcs8::EncodePrivateKey as _;
            self.key.to_pkcs8_der().expect("a P-256 key encodes").as_bytes().to_vec()
        }

        /// The credential's public key, DER SubjectPublicKeyInfo.
        pub fn public_key_der(&self) -> Vec<u8> {
            self.key.verifying_key().to_public_key_der().expect("a P-256 key encodes").as_bytes().to_vec()
        }

        /// An assertion over `challenge`: (authenticator data, client data
        /// JSON, DER signature). The counter advances first when non-zero.
        pub fn assert(&mut self, challenge: &[u8; 32]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
            if self.counter > 0 {
                self.counter += 1;
            }
            let mut ad = Sha256::digest(self.rp.rp_id.as_bytes()).to_vec();
            ad.push(self.flags);
            ad.extend_from_slice(&self.counter.to_be_bytes());
            let cdj = serde_json::json!({
                "type": "webauthn.get",
                "challenge": URL_SAFE_NO_PAD.encode(challenge),
                "origin": self.rp.origin,
                "crossOrigin": false,
            })
            .to_string()
            .into_bytes();
            let mut signed = ad.clone();
            signed.extend_from_slice(&Sha256::digest(&cdj));
            let signature: Signature = self.key.sign(&signed);
            (ad, cdj, signature.to_der().as_bytes().to_vec())
        }

        /// A complete proof of an approval of `approved_hash`.
        pub fn approve(
            &mut self,
            approval_id: &str,
            draft_id: &str,
            approved_hash: &str,
            policy_version: &str,
            expires_at: &str,
            approver_id: &str,
        ) -> ApprovalProof {
            let challenge = approval_challenge(approval_id, approved_hash, policy_version, expires_at);
            let (ad, cdj, sig) = self.assert(&challenge);
            ApprovalProof {
                approval_id: approval_id.into(),
                draft_id: draft_id.into(),
                approved_hash: approved_hash.into(),
                policy_version: policy_version.into(),
                expires_at: expires_at.into(),
                approver_id: approver_id.into(),
                credential_id: "cred-1".into(),
                authenticator_data: URL_SAFE_NO_PAD.encode(ad),
                client_data_json: URL_SAFE_NO_PAD.encode(cdj),
                signature: URL_SAFE_NO_PAD.encode(sig),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::soft::Authenticator;
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty {
            rp_id: "localhost".into(),
            origin: "http://localhost:7200".into(),
        }
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const LATER: &str = "2099-01-01T00:00:00Z";

    fn check(a: &Authenticator, p: &ApprovalProof, last: u32) -> Result<u32, ProofError> {
        verify_approval(p, &a.public_key_der(), &a.rp, HASH, Utc::now(), last)
    }

    #[test]
    fn a_genuine_proof_verifies_and_every_field_is_bound() {
        let mut a = Authenticator::new(rp());
        let p = a.approve("ap_1", "d_1", HASH, "sha256:v1", LATER, "alice");
        assert_eq!(check(&a, &p, 0), Ok(0));
        // Whatever part is changed, the proof no longer verifies.
        let mut other = p.clone();
        other.policy_version = "sha256:v2".into();
        assert_eq!(check(&a, &other, 0), Err(ProofError::Challenge));
        let mut other = p.clone();
        other.expires_at = "2099-01-01T00:00:00.000Z".into();
        assert_eq!(check(&a, &other, 0), Err(ProofError::Challenge), "expires_at is used byte for byte");
        let mut other = p.clone();
        other.approval_id = "ap_2".into();
        assert_eq!(check(&a, &other, 0), Err(ProofError::Challenge));
        assert!(matches!(
            verify_approval(&p, &a.public_key_der(), &a.rp, &"0".repeat(64), Utc::now(), 0),
            Err(ProofError::WrongHash { .. })
        ));
        let stranger = Authenticator::new(rp());
        assert_eq!(
            verify_approval(&p, &stranger.public_key_der(), &a.rp, HASH, Utc::now(), 0),
            Err(ProofError::Signature)
        );
    }

    #[test]
    fn presence_alone_another_origin_or_relying_party_and_expiry_are_refused() {
        let mut a = Authenticator::new(rp());
        a.flags = FLAG_UP;
        let p = a.approve("ap_1", "d_1", HASH, "v1", LATER, "alice");
        assert_eq!(check(&a, &p, 0), Err(ProofError::UserVerification));

        let mut phished = Authenticator::new(RelyingParty {
            rp_id: "localhost".into(),
            origin: "http://evil.example".into(),
        });
        let p = phished.approve("ap_1", "d_1", HASH, "v1", LATER, "alice");
        let r = verify_approval(&p, &phished.public_key_der(), &rp(), HASH, Utc::now(), 0);
        assert_eq!(r, Err(ProofError::Origin("http://evil.example".into())));

        let mut elsewhere = Authenticator::new(RelyingParty {
            rp_id: "evil.example".into(),
            origin: "http://localhost:7200".into(),
        });
        let p = elsewhere.approve("ap_1", "d_1", HASH, "v1", LATER, "alice");
        assert_eq!(
            verify_approval(&p, &elsewhere.public_key_der(), &rp(), HASH, Utc::now(), 0),
            Err(ProofError::RpId)
        );

        let mut a = Authenticator::new(rp());
        let p = a.approve("ap_1", "d_1", HASH, "v1", "2020-01-01T00:00:00Z", "alice");
        assert!(matches!(check(&a, &p, 0), Err(ProofError::Expired(_))));
    }

    #[test]
    fn the_sign_counter_must_increase_once_it_has_moved() {
        let mut a = Authenticator::new(rp());
        a.counter = 5;
        let p = a.approve("ap_1", "d_1", HASH, "v1", LATER, "alice");
        assert_eq!(check(&a, &p, 5), Ok(6));
        assert_eq!(check(&a, &p, 6), Err(ProofError::Counter { last: 6, now: 6 }), "a replay");
        let mut zero = Authenticator::new(rp());
        let p = zero.approve("ap_1", "d_1", HASH, "v1", LATER, "alice");
        assert_eq!(check(&zero, &p, 0), Ok(0), "0 while it has always been 0");
        assert_eq!(check(&zero, &p, 3), Err(ProofError::Counter { last: 3, now: 0 }));
    }

    #[test]
    fn the_challenges_are_the_pinned_digests() {
        let c = approval_challenge("ap_1", HASH, "v1", LATER);
        let expected = Sha256::digest(format!("spendsignoff-approval-v1\nap_1\n{HASH}\nv1\n{LATER}").as_bytes());
        assert_eq!(&c[..], &expected[..]);
        let key = b"not really a key";
        let e = enroll_challenge("acme", "bob", "approver", "cred-9", key);
        let expected = Sha256::digest(format!("spendsignoff-enroll-v1\nacme\nbob\napprover\ncred-9\n{}", hex::encode(Sha256::digest(key))).as_bytes());
        assert_eq!(&e[..], &expected[..]);
    }

    /// Anyone can check a proof with standard crypto: an independent
    /// checker in Python (tests/scripts/verify_proof.py: hashlib and
    /// `cryptography`, none of this code) accepts a genuine proof and
    /// refuses one with a changed field.
    #[test]
    fn an_independent_checker_in_python_agrees() {
        use base64::engine::general_purpose::STANDARD;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scripts/verify_proof.py");
        let mut a = Authenticator::new(rp());
        let p = a.approve("ap_1", "d_1", HASH, "sha256:v1", LATER, "alice");
        let dir = tempfile::tempdir().unwrap();
        let run = |proof: &ApprovalProof| {
            let case = serde_json::json!({
                "proof": proof,
                "public_key_spki_b64": STANDARD.encode(a.public_key_der()),
                "rp_id": a.rp.rp_id,
                "origin": a.rp.origin,
                "approved_hash": HASH,
            });
            let path = dir.path().join("case.json");
            std::fs::write(&path, case.to_string()).unwrap();
            let out = std::process::Command::new("python3").arg(script).arg(&path).output().expect("python3 runs");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        };
        let (ok, said, err) = run(&p);
        assert!(ok, "{said} {err}");
        assert_eq!(said, "OK");
        let mut changed = p.clone();
        changed.policy_version = "sha256:v2".into();
        let (ok, said, _) = run(&changed);
        assert!(!ok);
        assert_eq!(said, "another challenge");
    }
}
