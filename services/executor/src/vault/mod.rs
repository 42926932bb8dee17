//! The token vault: platform tokens encrypted with envelope encryption,
//! decrypted only inside the executor, for the one request that needs
//! them, and wiped from memory after.
//!
//! Each value is sealed with a fresh 256-bit data key (AES-256-GCM, a
//! random 96-bit nonce); the data key itself is wrapped by a key service
//! ([`keys`]: AWS KMS `GenerateDataKey` / `Decrypt` in production, a local
//! key file in `spend dev`) and stored beside the ciphertext. Both layers
//! are bound to what the value is — organisation, platform, account, kind
//! (access or refresh token) and scopes — through the AEAD's associated
//! data and KMS's encryption context: a ciphertext copied to another
//! account's row, or a row whose scopes were widened, does not decrypt.
//!
//! - [`keys`]: the key services.
//! - [`store`]: connections and pending authorizations in PostgreSQL (or
//!   SQLite in `spend dev`).

pub mod keys;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

pub use keys::KeyWrap;

/// A sealed value: what the store keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The data key, wrapped by the key service.
    pub wrapped_key: Vec<u8>,
    /// The key service's key that wrapped it (a KMS key ARN, `local:…`).
    pub key_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a sealed value belongs to; it opens under this binding only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub org: String,
    pub platform: String,
    pub account_id: String,
    /// `access`, `refresh`, or `pkce` (a pending authorization's verifier).
    pub kind: String,
    /// The scopes granted, space-separated in order (for `pkce`: the
    /// authorization's state hash).
    pub scopes: String,
}

impl Binding {
    /// The AEAD's associated data.
    fn aad(&self) -> Vec<u8> {
        format!(
            "spendsignoff-vault-v1\n{}\n{}\n{}\n{}\n{}",
            self.org, self.platform, self.account_id, self.kind, self.scopes
        )
        .into_bytes()
    }

    /// KMS's encryption context (logged by CloudTrail: no secret in it).
    pub fn context(&self) -> BTreeMap<String, String> {
        [
            ("org", &self.org),
            ("platform", &self.platform),
            ("account", &self.account_id),
            ("kind", &self.kind),
            ("scopes", &self.scopes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The key service cannot be reached right now; try again.
    #[error("the vault's key service is unavailable: {0}")]
    Unavailable(String),
    /// A value that does not open: altered, bound to something else, or
    /// sealed under another key. Audited where it happens.
    #[error("a vaulted token does not decrypt: {0}")]
    Refused(String),
    #[error("the vault's store: {0}")]
    Store(String),
}

/// Seals and opens values with envelope encryption.
#[derive(Clone)]
pub struct Vault {
    keys: Arc<dyn KeyWrap>,
}

impl Vault {
    pub fn new(keys: Arc<dyn KeyWrap>) -> Self {
        Self { keys }
    }

    pub async fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let (key, wrapped_key, key_id) = self.keys.generate(&binding.context()).await?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|e| VaultError::Unavailable(format!("a data key of the wrong size: {e}")))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Unavailable(format!("the random source: {e}")))?;
        let ciphertext = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &binding.aad(),
                },
            )
            .map_err(|_| VaultError::Unavailable("AES-GCM refused to encrypt".into()))?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            wrapped_key,
            key_id,
        })
    }

    /// Opens a sealed value; the plaintext is wiped when dropped.
    pub async fn open(&self, binding: &Binding, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self.keys.unwrap(&sealed.wrapped_key, &sealed.key_id, &binding.context()).await?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| VaultError::Refused("the data key has the wrong size".into()))?;
        if sealed.nonce.len() != 12 {
            return Err(VaultError::Refused("the nonce is not 96 bits".into()));
        }
        cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &binding.aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                VaultError::Refused(format!(
                    "the ciphertext of {} {} of {} failed authentication: altered, or sealed for another account or scope",
                    binding.kind, binding.account_id, binding.org
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(account: &str, scopes: &str) -> Binding {
        Binding {
            org: "acme".into(),
            platform: "sandbox".into(),
            account_id: account.into(),
            kind: "access".into(),
            scopes: scopes.into(),
        }
    }

    fn vault(dir: &std::path::Path) -> Vault {
        Vault::new(Arc::new(keys::LocalKeys::load_or_create(&dir.join("vault.key")).unwrap()))
    }

    #[tokio::test]
    async fn a_sealed_token_opens_under_its_binding_only() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let b = binding("act_1001", "ads.read");
        let sealed = v.seal(&b, b"sbx_at_secret").await.unwrap();
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"), "encrypted");
        assert_eq!(&v.open(&b, &sealed).await.unwrap()[..], b"sbx_at_secret");
        // Another account, wider scopes: refused.
        for other in [binding("act_1002", "ads.read"), binding("act_1001", "ads.read ads.write")] {
            assert!(matches!(v.open(&other, &sealed).await, Err(VaultError::Refused(_))), "{other:?}");
        }
        // An altered ciphertext: refused.
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert!(matches!(v.open(&b, &altered).await, Err(VaultError::Refused(_))));
        // Another local key: refused, naming no secret.
        let other_dir = tempfile::tempdir().unwrap();
        let e = vault(other_dir.path()).open(&b, &sealed).await.unwrap_err();
        assert!(matches!(e, VaultError::Refused(_)), "{e}");
        assert!(!e.to_string().contains("sbx_at_"));
    }
}
