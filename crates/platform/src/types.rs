//! What an ad/card platform holds, as the connectors see it. These are the
//! shapes the sandbox platform serves over HTTP and the connector returns;
//! the gateway turns them into MCP structured output and gRPC messages.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Account {
    pub id: String,
    /// The platform, e.g. `sandbox-ads` or `sandbox-cards`.
    pub platform: String,
    pub name: String,
    /// ISO 4217 code.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Campaign {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// `active` or `paused`.
    pub status: String,
    /// Daily budget in minor units.
    pub daily_budget_minor: i64,
    /// Maximum bid in minor units.
    pub bid_minor: i64,
    pub currency: String,
    /// When the platform last changed this campaign.
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Performance {
    pub account_id: String,
    pub campaign_id: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Card {
    pub id: String,
    pub last4: String,
    /// `active` or `frozen`.
    pub status: String,
    pub limit_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Transaction {
    pub id: String,
    pub card_id: String,
    /// `pending`, `settled` or `declined`.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub merchant: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenHealth {
    /// Every connection asked about is usable.
    pub healthy: bool,
    /// The earliest access token expiry (tokens are refreshed before it).
    pub expires_at: Option<DateTime<Utc>>,
    /// The scopes granted (of every connection asked about).
    pub granted_scopes: Vec<String>,
    /// Why a connection is unhealthy, when one is.
    pub problem: Option<String>,
    /// Each connected account: its scopes and the state of its tokens.
    #[serde(default)]
    pub accounts: Vec<AccountHealth>,
}

/// One connected account, as the executor holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountHealth {
    pub account_id: String,
    pub platform: String,
    /// `valid`, `expiring_soon` (a human must consent again within a week),
    /// `expired` (consent again), `revoked` (at the platform) or
    /// `disconnected`.
    pub status: String,
    /// The platform scopes granted, e.g. `ads.read`, `ads.write`.
    pub scopes: Vec<String>,
    /// When the current access token expires (it is refreshed before).
    pub access_expires_at: Option<DateTime<Utc>>,
    /// When the grant itself lapses and a human must consent again.
    pub consent_expires_at: Option<DateTime<Utc>>,
    pub problem: Option<String>,
}

/// A merchant as the platform's own merchant data knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Merchant {
    /// The merchant's domain, lower case (the key payments name it by).
    pub domain: String,
    pub name: String,
    /// The platform's category for it, e.g. `software` or `cloud`.
    pub category: String,
    /// The country it trades from (ISO 3166-1 alpha-2), when the platform
    /// knows it: what `geographic_restrictions` judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Whether it takes payment over HTTPS, when the platform knows: what
    /// `require_https` judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<bool>,
}
