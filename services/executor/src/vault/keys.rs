//! Key services that wrap the vault's data keys: AWS KMS (production, and
//! tests on moto's server) and a local key file (`spend dev`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use aws_sdk_kms::primitives::Blob;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::VaultError;

/// Makes and unwraps data keys, bound to an encryption context.
#[async_trait::async_trait]
pub trait KeyWrap: Send + Sync {
    /// A fresh 256-bit data key: (plaintext, wrapped, id of the wrapping key).
    async fn generate(&self, context: &BTreeMap<String, String>) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, String), VaultError>;
    /// The data key `wrapped` holds, if it was wrapped by `key_id` under
    /// this `context`.
    async fn unwrap(&self, wrapped: &[u8], key_id: &str, context: &BTreeMap<String, String>) -> Result<Zeroizing<Vec<u8>>, VaultError>;
}

/// AWS KMS: `GenerateDataKey` (AES_256) and `Decrypt`, with the binding as
/// encryption context, under a symmetric key.
pub struct KmsKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsKeys {
    /// A client from the standard AWS credential chain, with an optional
    /// region and endpoint (a KMS-compatible server); checks the key.
    pub async fn connect(key_id: &str, region: Option<&str>, endpoint: Option<&str>) -> Result<Self, VaultError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(e) = endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        Self::from_client(aws_sdk_kms::Client::new(&sdk), key_id).await
    }

    /// Uses an existing client; the key must be a symmetric encryption key.
    pub async fn from_client(client: aws_sdk_kms::Client, key_id: &str) -> Result<Self, VaultError> {
        if key_id.is_empty() {
            return Err(VaultError::Unavailable(
                "no vault key configured (executor.vault_key_id / SPEND__EXECUTOR__VAULT_KEY_ID: a symmetric KMS key)".into(),
            ));
        }
        let desc = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_error("DescribeKey", key_id, e))?;
        let meta = desc
            .key_metadata()
            .ok_or_else(|| VaultError::Unavailable(format!("DescribeKey {key_id}: no metadata")))?;
        if meta.key_usage() != Some(&aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            || meta.key_spec() != Some(&aws_sdk_kms::types::KeySpec::SymmetricDefault)
        {
            return Err(VaultError::Unavailable(format!(
                "KMS key {key_id} is {:?} for {:?}; the vault needs a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT",
                meta.key_spec(),
                meta.key_usage()
            )));
        }
        let arn = meta.arn().unwrap_or(key_id).to_string();
        Ok(Self { client, key_id: arn })
    }
}

fn kms_error<E: std::error::Error + 'static>(op: &str, key_id: &str, e: aws_sdk_kms::error::SdkError<E>) -> VaultError {
    use aws_sdk_kms::error::SdkError;
    let detail = aws_sdk_kms::error::DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.raw().status().as_u16();
            let text = detail.to_lowercase();
            if text.contains("invalidciphertext") || text.contains("incorrectkey") || text.contains("invalid ciphertext") {
                VaultError::Refused(format!(
                    "KMS refused to unwrap the data key with {key_id}: it was wrapped for another account, scope or key, or altered"
                ))
            } else if code == 400 {
                VaultError::Refused(format!("KMS {op} with {key_id}: {detail}"))
            } else {
                VaultError::Unavailable(format!("KMS {op} with {key_id}: {detail}"))
            }
        }
        _ => VaultError::Unavailable(format!("KMS {op} with {key_id}: {detail}")),
    }
}

fn hash_context(context: &BTreeMap<String, String>) -> HashMap<String, String> {
    context.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[async_trait::async_trait]
impl KeyWrap for KmsKeys {
    async fn generate(&self, context: &BTreeMap<String, String>) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, String), VaultError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(hash_context(context)))
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", &self.key_id, e))?;
        let plaintext = out
            .plaintext()
            .map(|b| Zeroizing::new(b.as_ref().to_vec()))
            .ok_or_else(|| VaultError::Unavailable("GenerateDataKey returned no plaintext".into()))?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| VaultError::Unavailable("GenerateDataKey returned no ciphertext".into()))?;
        Ok((plaintext, wrapped, out.key_id().unwrap_or(&self.key_id).to_string()))
    }

    async fn unwrap(&self, wrapped: &[u8], key_id: &str, context: &BTreeMap<String, String>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        // Only under this vault's own key, whatever the row says: KMS
        // refuses a data key another key wrapped.
        if key_id != self.key_id {
            tracing::warn!(sealed_with = key_id, vault_key = %self.key_id, "a vaulted value names another KMS key");
        }
        let out = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .key_id(&self.key_id)
            .set_encryption_context(Some(hash_context(context)))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", &self.key_id, e))?;
        out.plaintext()
            .map(|b| Zeroizing::new(b.as_ref().to_vec()))
            .ok_or_else(|| VaultError::Refused("KMS Decrypt returned no plaintext".into()))
    }
}

/// A local 256-bit key in a 0600 file: `spend dev`'s key service. It wraps
/// each data key with AES-256-GCM, the context as associated data.
pub struct LocalKeys {
    key: Zeroizing<Vec<u8>>,
    id: String,
}

impl LocalKeys {
    /// Loads the key, creating it (0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, VaultError> {
        let io = |e: std::io::Error| VaultError::Unavailable(format!("the local vault key {}: {e}", path.display()));
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut()).map_err(|e| VaultError::Unavailable(format!("the random source: {e}")))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
            f.write_all(hex::encode(key.as_ref()).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        let key = Zeroizing::new(hex::decode(text.trim()).map_err(|_| VaultError::Unavailable(format!("{} is not a hex key", path.display())))?);
        if key.len() != 32 {
            return Err(VaultError::Unavailable(format!("{} does not hold a 256-bit key", path.display())));
        }
        let id = format!("local:{}", &hex::encode(Sha256::digest(&key[..]))[..16]);
        Ok(Self { key, id })
    }

    fn aad(context: &BTreeMap<String, String>) -> Vec<u8> {
        serde_json::to_vec(context).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl KeyWrap for LocalKeys {
    async fn generate(&self, context: &BTreeMap<String, String>) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, String), VaultError> {
        let mut data_key = Zeroizing::new(vec![0u8; 32]);
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut data_key[..]).map_err(|e| VaultError::Unavailable(format!("the random source: {e}")))?;
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Unavailable(format!("the random source: {e}")))?;
        let cipher = Aes256Gcm::new_from_slice(&self.key).map_err(|_| VaultError::Unavailable("a local key of the wrong size".into()))?;
        let wrapped = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: &data_key,
                    aad: &Self::aad(context),
                },
            )
            .map_err(|_| VaultError::Unavailable("AES-GCM refused to encrypt".into()))?;
        Ok((data_key, [nonce.to_vec(), wrapped].concat(), self.id.clone()))
    }

    async fn unwrap(&self, wrapped: &[u8], key_id: &str, context: &BTreeMap<String, String>) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if key_id != self.id {
            return Err(VaultError::Refused(format!("sealed under key {key_id}, not this vault's {}", self.id)));
        }
        if wrapped.len() < 12 {
            return Err(VaultError::Refused("the wrapped data key is truncated".into()));
        }
        let (nonce, ct) = wrapped.split_at(12);
        let cipher = Aes256Gcm::new_from_slice(&self.key).map_err(|_| VaultError::Unavailable("a local key of the wrong size".into()))?;
        cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &Self::aad(context),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Refused("the data key was wrapped for another account or scope, or altered".into()))
    }
}
