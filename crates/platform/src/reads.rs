//! The read contract: what the gateway may ask of a platform, through the
//! executor. Reads only — nothing here can write.

use chrono::{DateTime, Utc};

use crate::types::{Account, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The platform refused the vaulted token (expired, revoked, missing a scope).
    #[error("the platform refused the connection's token: {0}")]
    TokenRefused(String),
    /// No connected account serves the read: a human connects it first
    /// (`spend account connect`, or the approval app's Accounts page).
    #[error("not connected: {0}")]
    NotConnected(String),
    #[error("the platform is rate limiting; try again later")]
    Throttled,
    /// The platform or the executor could not be reached or failed.
    #[error("the platform is unavailable: {0}")]
    Unavailable(String),
}

/// Reads the gateway serves to agents, each for one organisation (the
/// agent key's): the executor answers with that organisation's own
/// connected accounts and tokens, never another's. Nothing here writes.
#[async_trait::async_trait]
pub trait Reads: Send + Sync {
    /// The organisation's connected accounts.
    async fn accounts(&self, org: &str) -> Result<Vec<Account>, ReadError>;
    async fn campaigns(&self, org: &str, account_id: &str) -> Result<Vec<Campaign>, ReadError>;
    async fn performance(
        &self,
        org: &str,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, ReadError>;
    async fn cards(&self, org: &str) -> Result<Vec<Card>, ReadError>;
    async fn transactions(&self, org: &str, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError>;
    /// The health of the organisation's connections (one account's when
    /// `account_id` is given): scopes, expiry, revoked or not.
    async fn token_health(&self, org: &str, account_id: Option<&str>) -> Result<TokenHealth, ReadError>;
    /// What the platform knows of the merchant at `domain` (its category
    /// above all), or `None` when it knows nothing of it. Policies judge
    /// this category, never the one an agent states.
    async fn merchant(&self, org: &str, domain: &str) -> Result<Option<Merchant>, ReadError>;
}
