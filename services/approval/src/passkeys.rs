//! Passkey ceremonies.
//!
//! - **Enrollment** is webauthn-rs's passkey registration of a passkey
//!   created on the passkey page (its RP ID and origin, over the challenge
//!   that page computes): it checks the attestation object, the client
//!   data (type, challenge, origin), the RP ID hash and the flags, with
//!   user verification *required*. We keep
//!   only what the registry needs — the credential id and the public key
//!   as DER SubjectPublicKeyInfo — and refuse anything but ES256 (COSE -7)
//!   on P-256, as ../shared/DESIGN.md pins it.
//! - **Sign-in and approvals** are assertions checked with
//!   [`spend_draft::proof::verify_assertion`] against the key the registry
//!   holds (the root of trust is the log's registry, not this service's
//!   memory): sign-in over the passkey page's sign-in challenge of a nonce
//!   of ours, an approval over the pinned challenge. It is the check the executor and any auditor run.
//!   (webauthn-rs's authentication would need its own credential record,
//!   which it only lets a caller build behind a "danger" feature.)

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::EncodePublicKey as _;
use spend_draft::proof::{Assertion, ProofError, RelyingParty, verify_assertion};
use webauthn_rs::prelude::{COSEAlgorithm, COSEKeyType, ECDSACurve, PasskeyRegistration, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder};

/// How long a ceremony's challenge is good for.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the relying party is misconfigured: {0}")]
    Config(String),
    #[error("the passkey could not be registered: {0}")]
    Registration(String),
    #[error("only ES256 passkeys on P-256 are accepted; this authenticator offered another algorithm")]
    Algorithm,
    #[error("the assertion is not valid base64url")]
    Encoding,
    #[error(transparent)]
    Assertion(#[from] ProofError),
}

/// The relying party and webauthn-rs's ceremonies for it.
pub struct Passkeys {
    pub rp: RelyingParty,
    webauthn: Webauthn,
}

/// A passkey that was just created, as the registry will hold it.
#[derive(Debug, Clone)]
pub struct Created {
    /// Unpadded base64url of the raw credential id.
    pub credential_id: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

impl Passkeys {
    pub fn new(rp: RelyingParty) -> Result<Self, PasskeyError> {
        let origin = Url::parse(&rp.origin).map_err(|e| PasskeyError::Config(format!("origin {:?}: {e}", rp.origin)))?;
        let webauthn = WebauthnBuilder::new(&rp.rp_id, &origin)
            .map_err(|e| PasskeyError::Config(format!("RP ID {:?} for origin {}: {e}", rp.rp_id, rp.origin)))?
            .rp_name("SpendSignoff")
            .build()
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Self { rp, webauthn })
    }

    /// Starts enrolling `email`, over `challenge`: the one the passkey page
    /// computes itself ([`spend_draft::proof::create_challenge`]), never a
    /// random one of ours that the page would have to be handed.
    /// webauthn-rs draws its own; its registration state is plain data
    /// (serialisable by the feature of that name), so the challenge it will
    /// check is set there, and everything else it checks stays its own.
    pub fn start_registration(&self, email: &str, challenge: &[u8; 32]) -> Result<PasskeyRegistration, PasskeyError> {
        let (_, state) = self
            .webauthn
            .start_passkey_registration(Uuid::new_v4(), email, email, None)
            .map_err(|e| PasskeyError::Registration(e.to_string()))?;
        let mut value = serde_json::to_value(&state).map_err(|e| PasskeyError::Registration(e.to_string()))?;
        let slot = value
            .get_mut("rs")
            .and_then(|rs| rs.get_mut("challenge"))
            .ok_or_else(|| PasskeyError::Registration("webauthn-rs's registration state has no challenge".into()))?;
        *slot = serde_json::Value::String(URL_SAFE_NO_PAD.encode(challenge));
        serde_json::from_value(value).map_err(|e| PasskeyError::Registration(e.to_string()))
    }

    /// Finishes a registration: the credential id and the public key.
    pub fn finish_registration(&self, response: &RegisterPublicKeyCredential, state: &PasskeyRegistration) -> Result<Created, PasskeyError> {
        let passkey = self
            .webauthn
            .finish_passkey_registration(response, state)
            .map_err(|e| PasskeyError::Registration(e.to_string()))?;
        let key = passkey.get_public_key();
        if key.type_ != COSEAlgorithm::ES256 {
            return Err(PasskeyError::Algorithm);
        }
        let COSEKeyType::EC_EC2(ec) = &key.key else {
            return Err(PasskeyError::Algorithm);
        };
        if ec.curve != ECDSACurve::SECP256R1 {
            return Err(PasskeyError::Algorithm);
        }
        let mut sec1 = vec![0x04];
        sec1.extend_from_slice(&ec.x);
        sec1.extend_from_slice(&ec.y);
        let public = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| PasskeyError::Algorithm)?;
        let der = public.to_public_key_der().map_err(|_| PasskeyError::Algorithm)?;
        let raw_id: &[u8] = passkey.cred_id().as_ref();
        Ok(Created {
            credential_id: URL_SAFE_NO_PAD.encode(raw_id),
            public_key_der: der.as_bytes().to_vec(),
        })
    }
}

/// An assertion as the browser posts it (unpadded base64url fields).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PostedAssertion {
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

impl PostedAssertion {
    /// The same assertion with every field unpadded, as proofs and
    /// countersignatures carry them (a browser may pad base64url).
    pub fn unpadded(&self) -> Self {
        let u = |v: &str| v.trim_end_matches('=').to_string();
        Self {
            credential_id: u(&self.credential_id),
            authenticator_data: u(&self.authenticator_data),
            client_data_json: u(&self.client_data_json),
            signature: u(&self.signature),
        }
    }

    /// Checks it by `public_key_der` over `challenge` for `rp`, after the
    /// last known counter; returns the new counter.
    pub fn verify(&self, public_key_der: &[u8], rp: &RelyingParty, challenge: &[u8; 32], last_counter: u32) -> Result<u32, PasskeyError> {
        let d = |v: &str| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).map_err(|_| PasskeyError::Encoding);
        let (ad, cdj, sig) = (d(&self.authenticator_data)?, d(&self.client_data_json)?, d(&self.signature)?);
        Ok(verify_assertion(
            public_key_der,
            rp,
            challenge,
            Assertion {
                authenticator_data: &ad,
                client_data_json: &cdj,
                signature_der: &sig,
            },
            last_counter,
        )?)
    }
}
