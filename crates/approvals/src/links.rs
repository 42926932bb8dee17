//! Approval links. The link in a notice opens one approval request; its
//! token is derived, not stored, so the app (which records the token's
//! hash in the request) and the notifier (which sends the link) agree on
//! every replica and after a restart.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spend_core::Secret;

/// Approval links. A link's token is derived from a secret of the approval
/// service (HMAC-SHA256 over the organisation and the id), so any replica,
/// or the same one after a restart, can deliver the link of a request it
/// did not open; the request records only the token's SHA-256.
pub struct Links {
    origin: String,
    secret: Secret,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl Links {
    pub fn new(origin: impl Into<String>, secret: Secret) -> Self {
        Self { origin: origin.into(), secret }
    }

    /// The link token of the approval of `id` in `org`.
    pub fn token(&self, org: &str, id: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.expose().as_bytes()).expect("HMAC takes a key of any length");
        mac.update(format!("spendsignoff-approval-link-v1\n{org}\n{id}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The approval link of `id` in `org`.
    pub fn approval(&self, org: &str, id: &str) -> String {
        format!("{}/a/{}", self.origin, self.token(org, id))
    }

    /// A draft's page (sign-in required).
    pub fn draft(&self, id: &str) -> String {
        format!("{}/approvals/{id}", self.origin)
    }

    /// The queue (sign-in required).
    pub fn queue(&self) -> String {
        format!("{}/approvals", self.origin)
    }
}
