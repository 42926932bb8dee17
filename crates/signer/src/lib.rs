//! Checkpoint signing: ECDSA P-256 over SHA-256 of the message bytes, DER
//! signatures, with two backends behind [`Signer`]:
//!
//! - [`KmsSigner`]: AWS KMS (`ECC_NIST_P256`, `ECDSA_SHA_256`,
//!   `MessageType=RAW`), key id or alias and endpoint from configuration.
//!   RAW, not DIGEST: KMS hashes RAW input itself, and moto's server hashes
//!   DIGEST input a second time, so DIGEST would pass tests and fail in
//!   production.
//! - [`LocalSigner`]: a PKCS#8 PEM key file for `spend dev`, created on
//!   first use.
//!
//! Both produce signatures any ECDSA P-256 verifier accepts; [`verify`] is
//! the offline check the auditor's `spend ledger verify` uses.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    #[error("KMS refused: {0}")]
    Refused(String),
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("invalid key material: {0}")]
    InvalidKey(String),
}

#[async_trait]
pub trait Signer: Send + Sync + 'static {
    /// DER-encoded ECDSA P-256 signature over SHA-256(`message`).
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// Names the key in checkpoints, so verifiers can pick the right one
    /// after a rotation.
    fn key_id(&self) -> &str;
    /// The verifying key, SPKI DER.
    async fn public_key_der(&self) -> Result<Vec<u8>, SignerError>;
}

/// Formats an SPKI DER public key as PEM.
pub fn spki_pem(der: &[u8]) -> Result<String, SignerError> {
    VerifyingKey::from_public_key_der(der)
        .and_then(|k| k.to_public_key_pem(LineEnding::LF))
        .map_err(|e| SignerError::InvalidKey(e.to_string()))
}

/// A verifying key for offline checks.
#[derive(Debug, Clone)]
pub struct Verifier(VerifyingKey);

impl Verifier {
    pub fn from_pem(pem: &str) -> Result<Self, SignerError> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(Self)
            .map_err(|e| SignerError::InvalidKey(format!("not an SPKI PEM P-256 public key: {e}")))
    }
    pub fn from_der(der: &[u8]) -> Result<Self, SignerError> {
        VerifyingKey::from_public_key_der(der)
            .map(Self)
            .map_err(|e| SignerError::InvalidKey(e.to_string()))
    }
    /// True when `der_sig` is a valid signature of `message`.
    pub fn verify(&self, message: &[u8], der_sig: &[u8]) -> bool {
        Signature::from_der(der_sig).is_ok_and(|sig| self.0.verify(message, &sig).is_ok())
    }
}

/// A local P-256 key in a PKCS#8 PEM file (development only).
pub struct LocalSigner {
    key: SigningKey,
    key_id: String,
}

impl LocalSigner {
    /// Loads the key at `path`, creating it (mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SignerError> {
        let err = |reason: String| SignerError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(format!("not a PKCS#8 PEM P-256 key: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate();
                let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                write_private(path, pem.as_bytes()).map_err(|e| err(e.to_string()))?;
                key
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let der = key.verifying_key().to_public_key_der().map_err(|e| err(e.to_string()))?;
        // The key id is a fingerprint of the public key: stable, not secret.
        let key_id = format!("local:{}", &hex_sha256(der.as_bytes())[..16]);
        Ok(Self { key, key_id })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[async_trait]
impl Signer for LocalSigner {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let sig: Signature = self.key.sign(message);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn key_id(&self) -> &str {
        &self.key_id
    }
    async fn public_key_der(&self) -> Result<Vec<u8>, SignerError> {
        Ok(self
            .key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| SignerError::InvalidKey(e.to_string()))?
            .to_vec())
    }
}

/// Where the KMS key lives.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KmsConfig {
    /// Key id, ARN or `alias/...`.
    pub key_id: String,
    pub region: Option<String>,
    /// Endpoint override (a KMS-compatible server); unset for AWS.
    pub endpoint: Option<String>,
}

/// Signs with AWS KMS.
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSigner {
    /// Builds a client from the standard AWS credential chain plus `config`,
    /// and checks the key is an ECC_NIST_P256 signing key.
    pub async fn connect(config: &KmsConfig) -> Result<Self, SignerError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        Self::from_client(aws_sdk_kms::Client::new(&sdk), &config.key_id).await
    }

    /// Uses an existing client (tests pass one with static credentials).
    pub async fn from_client(client: aws_sdk_kms::Client, key_id: &str) -> Result<Self, SignerError> {
        if key_id.is_empty() {
            return Err(SignerError::Refused("no KMS key configured (kms.key_id / SPEND__KMS__KEY_ID)".into()));
        }
        let desc = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_err("DescribeKey", key_id, e))?;
        let meta = desc
            .key_metadata()
            .ok_or_else(|| SignerError::Refused(format!("DescribeKey {key_id}: no metadata")))?;
        if meta.key_spec() != Some(&aws_sdk_kms::types::KeySpec::EccNistP256) {
            return Err(SignerError::Refused(format!("key {key_id} is {:?}, expected ECC_NIST_P256", meta.key_spec())));
        }
        // Checkpoints name the resolved key ARN, not an alias, so a verifier
        // can tell keys apart after an alias is moved to a new key.
        let resolved = meta.arn().unwrap_or(meta.key_id()).to_string();
        Ok(Self { client, key_id: resolved })
    }
}

fn kms_err<E>(op: &str, key_id: &str, e: aws_sdk_kms::error::SdkError<E>) -> SignerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_kms::error::SdkError;
    let transient = matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_));
    let msg = format!("{op} with key {key_id}: {}", aws_sdk_kms::error::DisplayErrorContext(&e));
    if transient {
        SignerError::Unavailable(msg)
    } else {
        SignerError::Refused(msg)
    }
}

#[async_trait]
impl Signer for KmsSigner {
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
        if message.len() > 4096 {
            return Err(SignerError::Refused(format!(
                "message of {} bytes exceeds KMS's 4096-byte RAW limit",
                message.len()
            )));
        }
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(aws_sdk_kms::primitives::Blob::new(message.to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_err("Sign", &self.key_id, e))?;
        out.signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignerError::Refused("Sign returned no signature".into()))
    }
    fn key_id(&self) -> &str {
        &self.key_id
    }
    async fn public_key_der(&self) -> Result<Vec<u8>, SignerError> {
        let out = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| kms_err("GetPublicKey", &self.key_id, e))?;
        out.public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignerError::Refused("GetPublicKey returned no key".into()))
    }
}
