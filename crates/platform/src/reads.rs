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
    #[error("the platform is rate limiting; try again later")]
    Throttled,
    /// The platform or the executor could not be reached or failed.
    #[error("the platform is unavailable: {0}")]
    Unavailable(String),
}

/// Reads the gateway serves to agents. Nothing here writes.
#[async_trait::async_trait]
pub trait Reads: Send + Sync {
    async fn accounts(&self) -> Result<Vec<Account>, ReadError>;
    async fn campaigns(&self, account_id: &str) -> Result<Vec<Campaign>, ReadError>;
    async fn performance(
        &self,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, ReadError>;
    async fn cards(&self) -> Result<Vec<Card>, ReadError>;
    async fn transactions(&self, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError>;
    async fn token_health(&self) -> Result<TokenHealth, ReadError>;
    /// What the platform knows of the merchant at `domain` (its category
    /// above all), or `None` when it knows nothing of it. Policies judge
    /// this category, never the one an agent states.
    async fn merchant(&self, domain: &str) -> Result<Option<Merchant>, ReadError>;
}
