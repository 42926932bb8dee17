//! Who may act: agent API keys, MCP clients' grants and tokens, platform
//! accounts and their consents, pauses of agents, circuit breakers, nonces
//! and reads.

use serde::{Deserialize, Serialize};

/// A signed-in human granted an MCP client access for their organisation
/// on the consent page (MCP sign-in, `client.<grant_id>`, first): which
/// client, which scopes (never `mcp.approve`), for which resource, and
/// the authorization code it answered with — its SHA-256 only, with the
/// PKCE challenge and redirect URI its redemption must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGranted {
    pub grant_id: String,
    pub client_id: String,
    pub client_name: String,
    /// The human who consented; the tokens' subject.
    pub approver_id: String,
    /// Among `mcp.read` and `mcp.draft`.
    pub scopes: Vec<String>,
    /// The gateway's canonical MCP URL the tokens are bound to (RFC 8707).
    pub resource: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub code_sha256: String,
    pub code_expires_at: String,
}

/// Tokens issued for a grant: generation 1 redeems its code, each refresh
/// the next (`client.<grant_id>`, appended expecting the grant's last
/// sequence, so a code or a refresh token is spent once across replicas).
/// The refresh token's SHA-256 only; access tokens are short-lived JWTs
/// that are never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTokensIssued {
    pub grant_id: String,
    pub generation: u32,
    pub refresh_sha256: String,
    pub refresh_expires_at: String,
    pub access_expires_at: String,
}

/// A grant revoked (`client.<grant_id>`): by a human on the app's page of
/// connected clients, by the client (RFC 7009), or by the authorization
/// server when a spent code or refresh token is presented again. Every
/// gateway refuses its access tokens from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRevoked {
    pub grant_id: String,
    pub reason: String,
}

/// An account was connected over the platform's OAuth (or its scopes
/// changed: a human consented to more). On `account.<platform>-<account>`,
/// by the executor. The tokens are in the executor's vault, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConnected {
    pub platform: String,
    pub account_id: String,
    /// `ads` or `cards`.
    pub kind: String,
    /// The platform scopes granted, e.g. `ads.read`.
    pub scopes: Vec<String>,
    /// When the access token expires (it is refreshed before).
    pub access_expires_at: String,
    /// When the grant lapses and a human must consent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_expires_at: Option<String>,
    /// Why it was connected, in words.
    pub purpose: String,
    /// With a write scope: the approved draft it was granted for; only
    /// that draft's push, waiting for the scope, goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
}

/// An account's access token was refreshed (the refresh token rotated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRefreshed {
    pub platform: String,
    pub account_id: String,
    pub access_expires_at: String,
}

/// An account's connection ended: disconnected by a human (revoked at the
/// platform), or found revoked or expired there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDisconnected {
    pub platform: String,
    pub account_id: String,
    /// `disconnected`, `revoked` or `expired`.
    pub status: String,
    pub reason: String,
}

/// An approved change needs a scope the account has not granted (write,
/// after a read-first connection): a human consents on the platform's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConsentRequested {
    pub platform: String,
    pub account_id: String,
    /// The scope needed, e.g. `ads.write`.
    pub scope: String,
    /// The draft that needs it.
    pub draft_id: String,
}

/// An operator paused the organisation's agents (`spend agents pause`): no
/// reads or drafts until resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsPaused {
    pub reason: String,
}

/// An operator resumed the organisation's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsResumed {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadPerformed {
    /// The tool or RPC, e.g. `list_campaigns`.
    pub operation: String,
    pub account_id: Option<String>,
    pub result_count: u64,
}

/// An agent API key was created (or a key rotated: `replaces` names the old
/// key, which keeps working until `overlap_until`). Only the SHA-256 of the
/// 256-bit secret is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreated {
    pub key_id: String,
    pub org: String,
    pub name: String,
    /// `mcp.read` and/or `mcp.draft`; never `mcp.approve`.
    pub scopes: Vec<String>,
    pub hash_sha256: String,
    pub created_at: String,
    pub replaces: Option<String>,
    pub overlap_until: Option<String>,
}

/// A key was revoked; `key_id` `*` revokes every key of `org`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRevoked {
    pub key_id: String,
    pub org: String,
    pub reason: String,
}

/// A signed request's nonce, recorded once per key so that a replay is
/// refused by every gateway replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceUsed {
    pub key_id: String,
    pub nonce: String,
    pub method: String,
    pub path: String,
}

/// A circuit breaker paused new drafts on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerTripped {
    pub account_id: String,
    /// `spend_spike`, `pacing_anomaly` or `platform_errors`.
    pub reason: String,
    pub detail: String,
}

/// A human reset an account's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerReset {
    pub account_id: String,
    pub note: String,
}
