//! Connecting accounts: what the operator's CLI and the approval app may
//! ask of the executor — the platform's consent page for an account (read
//! access first; write later, keeping read), the callback that completes
//! it, the list, and a disconnect. Never offered to agents. The tokens
//! stay in the executor: nothing here carries one.

use chrono::{DateTime, Utc};

use crate::types::AccountHealth;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Invalid(String),
    /// The platform refused: `access_denied` (the human said no),
    /// `invalid_grant` (the code expired, was used, or the verifier did not
    /// match), ...
    #[error("the platform refused ({error}): {description}")]
    Platform { error: String, description: String },
    #[error("{0}")]
    Unavailable(String),
}

/// An authorization to send a human to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    /// The platform's consent page.
    pub authorize_url: String,
    pub expires_at: DateTime<Utc>,
}

#[async_trait::async_trait]
pub trait Connect: Send + Sync {
    /// The platform's consent page for `org`: read scopes, or (`write`,
    /// for the approved draft `draft_id` waiting for it) the write scope of
    /// `account_id`, returning to `redirect_uri`.
    async fn begin(&self, org: &str, account_id: Option<&str>, write: Option<&str>, redirect_uri: &str, purpose: &str) -> Result<Begun, ConnectError>;
    /// The platform's callback: the code, or the error it sent.
    async fn complete(&self, state: &str, outcome: Result<&str, (&str, &str)>) -> Result<AccountHealth, ConnectError>;
    /// A callback refused before it was completed (it came back in a
    /// browser that did not begin it): the authorization `state` names is
    /// used up, nothing is connected, and the refusal is audited under the
    /// organisation that began it.
    async fn abandon(&self, state: &str, reason: &str) -> Result<(), ConnectError>;
    /// The organisation's connections.
    async fn list(&self, org: &str) -> Result<Vec<AccountHealth>, ConnectError>;
    /// Revokes the account's grant at the platform and stops using it.
    async fn disconnect(&self, org: &str, account_id: &str, by: &str) -> Result<AccountHealth, ConnectError>;
}
