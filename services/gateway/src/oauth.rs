//! MCP authorization, resource-server side (OAuth 2.1 as the MCP spec
//! describes it): the protected resource metadata of RFC 9728, so that an
//! interactive client given only the server URL can discover which
//! authorization server to ask and which scopes exist. Refusals carry
//! `WWW-Authenticate: Bearer resource_metadata="…"` pointing here.
//!
//! Access tokens ([`validate`]): when `gateway.oauth_issuer` and its
//! public key are configured, a bearer credential that is a JWT (not an
//! `ssk_` API key) is accepted if it is signed ES256 by that key and names
//! this resource as its audience, the issuer, an organisation (`org`), a
//! subject, an expiry in the future and scopes among mcp.read and
//! mcp.draft. A token asking for mcp.approve is refused: agents never hold
//! it, however they got their token.
//!
//! The authorization server itself — dynamic client registration, PKCE,
//! and the consent step where a signed-in human grants mcp.read and/or
//! mcp.draft — belongs with the approval service's human sign-in.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::GatewayState;
use crate::credentials::{AgentScope, ScopeError, parse_scopes};

/// Which tokens this resource server accepts.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `iss` the tokens must carry.
    pub issuer: String,
    /// `aud` the tokens must carry: this gateway's resource URL.
    pub audience: String,
    /// The authorization server's ES256 verifying key.
    pub key: VerifyingKey,
}

/// A validated access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The human who granted the scopes.
    pub subject: String,
    pub client_id: String,
    pub org: String,
    pub scopes: Vec<AgentScope>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the access token is signed with {0}; only ES256 is accepted")]
    Algorithm(String),
    #[error("the access token's signature does not verify")]
    Signature,
    #[error("the access token was issued by {0:?}, not by this gateway's authorization server")]
    Issuer(String),
    #[error("the access token is for {0:?}, not for this resource")]
    Audience(String),
    #[error("the access token expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token names no {0}")]
    Missing(&'static str),
    #[error("{0}")]
    Scope(#[from] ScopeError),
    #[error("OAuth access tokens are not accepted by this gateway (no authorization server configured)")]
    NotConfigured,
}

impl TokenError {
    /// The `spend.security.alert.v1` reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Scope(ScopeError::ApproveNeverGranted) => "oauth.approve_requested",
            Self::Expired => "oauth.expired",
            Self::Signature | Self::Algorithm(_) => "oauth.signature",
            _ => "oauth.invalid",
        }
    }
}

impl TokenClaims {
    /// A subject-safe id for the token's client, used where an API key's
    /// id would be (audit subjects, rate-limit buckets).
    pub fn caller_id(&self) -> String {
        use sha2::Digest;
        format!("oauth_{}", &hex::encode(sha2::Sha256::digest(self.client_id.as_bytes()))[..12])
    }
}

pub use spend_credentials::looks_like_jwt;

/// Validates an access token at `now` (unix seconds).
pub fn validate(config: &OAuthConfig, token: &str, now: i64) -> Result<TokenClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("expected header.payload.signature".into()));
    };
    let decode = |part: &str, what: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| TokenError::Malformed(format!("{what}: {e}")));
    let header: serde_json::Value = serde_json::from_slice(&decode(h, "header")?).map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let alg = header["alg"].as_str().unwrap_or_default();
    if alg != "ES256" {
        return Err(TokenError::Algorithm(alg.to_string()));
    }
    let signature = Signature::from_slice(&decode(sig, "signature")?).map_err(|_| TokenError::Signature)?;
    config
        .key
        .verify(format!("{h}.{p}").as_bytes(), &signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: serde_json::Value = serde_json::from_slice(&decode(p, "payload")?).map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    let iss = claims["iss"].as_str().unwrap_or_default();
    if iss != config.issuer {
        return Err(TokenError::Issuer(iss.to_string()));
    }
    let audience_ok = match &claims["aud"] {
        serde_json::Value::String(a) => *a == config.audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(config.audience.as_str())),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::Audience(claims["aud"].to_string()));
    }
    let exp = claims["exp"].as_i64().ok_or(TokenError::Missing("expiry (exp)"))?;
    if now >= exp {
        return Err(TokenError::Expired);
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    let text = |k: &str, what: &'static str| {
        claims[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(TokenError::Missing(what))
    };
    let scope = claims["scope"].as_str().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(",");
    Ok(TokenClaims {
        subject: text("sub", "subject (sub)")?,
        client_id: text("client_id", "client (client_id)")?,
        org: text("org", "organisation (org)")?,
        scopes: parse_scopes(&scope)?,
    })
}

pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The scopes an agent can be granted. `mcp.approve` is not one of them.
pub const SCOPES: &[&str] = &["mcp.read", "mcp.draft"];

async fn metadata(State(state): State<Arc<GatewayState>>) -> Json<serde_json::Value> {
    let resource = state
        .config
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/mcp", state.config.listen));
    Json(serde_json::json!({
        "resource": resource,
        "authorization_servers": state.config.authorization_servers,
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "resource_name": "SpendSignoff agents' gateway",
        "resource_documentation": "docs/gateway.md",
    }))
}

/// The metadata, at the root path and at the path of the MCP endpoint
/// (RFC 9728 §3.1 inserts the resource's path after the well-known part).
pub fn router(state: Arc<GatewayState>) -> axum::Router {
    axum::Router::new()
        .route(METADATA_PATH, get(metadata))
        .route(&format!("{METADATA_PATH}/mcp"), get(metadata))
        .with_state(state)
}

/// The `WWW-Authenticate` value of a 401.
pub fn challenge(state: &GatewayState) -> String {
    match &state.config.resource_url {
        Some(url) => {
            let origin = url.trim_end_matches("/mcp");
            format!("Bearer resource_metadata=\"{origin}{METADATA_PATH}\", scope=\"{}\"", SCOPES.join(" "))
        }
        None => format!("Bearer resource_metadata=\"{METADATA_PATH}\", scope=\"{}\"", SCOPES.join(" ")),
    }
}
