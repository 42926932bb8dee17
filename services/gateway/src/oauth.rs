//! MCP authorization, resource-server side (OAuth 2.1 as the MCP spec
//! describes it): the protected resource metadata of RFC 9728, so that an
//! interactive client given only the server URL can discover which
//! authorization server to ask and which scopes exist. Refusals carry
//! `WWW-Authenticate: Bearer resource_metadata="…"` pointing here.
//!
//! Access tokens ([`validate`]): when `gateway.oauth_issuer` and its
//! keys are configured (a JWKS URL, whose keys are found by `kid` and
//! fetched again when a token names one not seen yet, so the issuer can
//! rotate its key without a gateway restart; or one public key file), a
//! bearer credential that is a JWT (not an `ssk_` API key) is accepted if
//! it is signed ES256 by such a key and names
//! this resource as its audience, the issuer, an organisation (`org`), a
//! subject, an expiry in the future and scopes among mcp.read and
//! mcp.draft. A token asking for mcp.approve is refused: agents never hold
//! it, however they got their token.
//!
//! A token names the grant it was issued under (`grant_id`); once the
//! approval service records that grant's `spend.client.revoked.v1`, the
//! view refuses the token (every replica follows the log).
//!
//! The authorization server itself — registration, PKCE, and the consent
//! step where a signed-in human grants mcp.read and/or mcp.draft — is MCP
//! sign-in's (`services/mcp-signin`), served on the approval app's origin.

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
    /// The authorization server's ES256 verifying keys.
    pub keys: Arc<Keys>,
}

/// The issuer's verifying keys: one configured key (any `kid`), or the
/// keys of its JWKS document, fetched when a token names a `kid` not seen
/// yet (at most once per [`REFETCH_AFTER`]).
pub struct Keys {
    fixed: Option<VerifyingKey>,
    jwks_url: Option<String>,
    interval: std::time::Duration,
    fetched: std::sync::RwLock<(std::collections::HashMap<String, VerifyingKey>, Option<std::time::Instant>)>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("fixed", &self.fixed.is_some())
            .field("jwks_url", &self.jwks_url)
            .finish()
    }
}

/// A JWKS is fetched again no sooner than this after the last fetch.
pub const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(10);
/// Keys read from one JWKS document, at most.
const MAX_KEYS: usize = 16;

impl Keys {
    /// One key, whatever `kid` a token names.
    pub fn fixed(key: VerifyingKey) -> Arc<Self> {
        Arc::new(Self {
            fixed: Some(key),
            jwks_url: None,
            interval: REFETCH_AFTER,
            fetched: Default::default(),
            fetching: Default::default(),
        })
    }

    /// The keys of the JWKS document at `url`.
    pub fn jwks(url: impl Into<String>) -> Arc<Self> {
        Self::jwks_every(url, REFETCH_AFTER)
    }

    /// [`Keys::jwks`], fetched again no sooner than `interval` apart.
    pub fn jwks_every(url: impl Into<String>, interval: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            fixed: None,
            jwks_url: Some(url.into()),
            interval,
            fetched: Default::default(),
            fetching: Default::default(),
        })
    }

    fn lookup(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        if let Some(k) = self.fixed {
            return Some(k);
        }
        let fetched = self.fetched.read().expect("the key cache lock");
        fetched.0.get(kid?).copied()
    }

    /// Fetches the JWKS again, unless it was fetched within its interval
    /// ([`REFETCH_AFTER`] by default: a flood of tokens with made-up `kid`s costs the
    /// issuer one request per interval).
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(url) = &self.jwks_url else { return Ok(()) };
        let _one = self.fetching.lock().await;
        if self.fetched.read().expect("the key cache lock").1.is_some_and(|t| t.elapsed() < self.interval) {
            return Ok(());
        }
        self.fetched.write().expect("the key cache lock").1 = Some(std::time::Instant::now());
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let doc: serde_json::Value = http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("fetching the issuer's JWKS: {}", e.without_url()))?
            .json()
            .await
            .map_err(|e| format!("the issuer's JWKS is not JSON: {}", e.without_url()))?;
        let keys = parse_jwks(&doc)?;
        self.fetched.write().expect("the key cache lock").0 = keys;
        Ok(())
    }
}

/// The P-256 signing keys of a JWKS document (RFC 7517), by `kid`.
pub fn parse_jwks(doc: &serde_json::Value) -> Result<std::collections::HashMap<String, VerifyingKey>, String> {
    let list = doc["keys"].as_array().ok_or("a JWKS document has a \"keys\" array")?;
    let mut out = std::collections::HashMap::new();
    for k in list.iter().take(MAX_KEYS) {
        if k["kty"] != "EC" || k["crv"] != "P-256" || k["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        let (Some(kid), Some(x), Some(y)) = (k["kid"].as_str(), k["x"].as_str(), k["y"].as_str()) else {
            continue;
        };
        let (Ok(x), Ok(y)) = (URL_SAFE_NO_PAD.decode(x), URL_SAFE_NO_PAD.decode(y)) else {
            continue;
        };
        if x.len() != 32 || y.len() != 32 {
            continue;
        }
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        if let Ok(key) = VerifyingKey::from_sec1_bytes(&sec1) {
            out.insert(kid.to_string(), key);
        }
    }
    Ok(out)
}

/// A validated access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The human who granted the scopes.
    pub subject: String,
    pub client_id: String,
    pub org: String,
    pub scopes: Vec<AgentScope>,
    /// The grant it was issued under, which can be revoked.
    pub grant_id: Option<String>,
    /// `iat` (unix seconds; 0 when absent): a token issued before its
    /// organisation's credentials were all revoked is refused.
    pub issued_at: i64,
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
    #[error("the access token is signed by a key the issuer does not publish (kid {0:?})")]
    UnknownKey(String),
    #[error("the access token's grant was revoked")]
    Revoked,
}

impl TokenError {
    /// The `spend.security.alert.v1` reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Scope(ScopeError::ApproveNeverGranted) => "oauth.approve_requested",
            Self::Expired => "oauth.expired",
            Self::Revoked => "oauth.revoked",
            Self::Signature | Self::Algorithm(_) | Self::UnknownKey(_) => "oauth.signature",
            _ => "oauth.invalid",
        }
    }
}

impl TokenClaims {
    /// A subject-safe id for the token's caller, used where an API key's
    /// id would be (audit subjects, rate-limit buckets): one per
    /// organisation and grant, so that two organisations (or two people)
    /// using the same MCP client never share a bucket or an audit trail.
    /// A token without a grant counts as its organisation, client and
    /// granting human.
    pub fn caller_id(&self) -> String {
        use sha2::Digest;
        let who = match &self.grant_id {
            Some(grant) => format!("{}\ngrant\n{grant}", self.org),
            None => format!("{}\nclient\n{}\n{}", self.org, self.client_id, self.subject),
        };
        format!("oauth_{}", &hex::encode(sha2::Sha256::digest(who.as_bytes()))[..12])
    }
}

use spend_credentials::access_token::AccessClaims;
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
    let kid = header["kid"].as_str();
    let key = config
        .keys
        .lookup(kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.unwrap_or_default().chars().take(64).collect()))?;
    key.verify(format!("{h}.{p}").as_bytes(), &signature).map_err(|_| TokenError::Signature)?;
    let claims: AccessClaims = serde_json::from_slice(&decode(p, "payload")?).map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    if claims.iss != config.issuer {
        return Err(TokenError::Issuer(claims.iss));
    }
    if !claims.aud.contains(&config.audience) {
        return Err(TokenError::Audience(claims.aud.to_string()));
    }
    let exp = claims.exp.ok_or(TokenError::Missing("expiry (exp)"))?;
    if now >= exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    let text = |v: String, what: &'static str| if v.is_empty() { Err(TokenError::Missing(what)) } else { Ok(v) };
    let scope = claims.scope.split_whitespace().collect::<Vec<_>>().join(",");
    Ok(TokenClaims {
        subject: text(claims.sub, "subject (sub)")?,
        client_id: text(claims.client_id, "client (client_id)")?,
        org: text(claims.org, "organisation (org)")?,
        scopes: parse_scopes(&scope)?,
        grant_id: claims.grant_id.filter(|g| !g.is_empty()),
        issued_at: claims.iat.unwrap_or(0),
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
        // RFC 9728's resource_documentation must be an absolute URL: none
        // is served here, so none is named (clients refuse a relative one).
        "resource_name": "SpendSignoff agents' gateway",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(org: &str, client_id: &str, grant: Option<&str>, subject: &str) -> TokenClaims {
        TokenClaims {
            subject: subject.into(),
            client_id: client_id.into(),
            org: org.into(),
            scopes: vec![],
            grant_id: grant.map(Into::into),
            issued_at: 0,
        }
    }

    #[test]
    fn each_organisation_and_grant_has_a_bucket_of_its_own() {
        let client = "https://ide.example/client.json";
        let acme = claims("acme", client, Some("g_1"), "ada");
        let evil = claims("evil", client, Some("g_1"), "ada");
        let acme_other_grant = claims("acme", client, Some("g_2"), "bob");
        assert_ne!(acme.caller_id(), evil.caller_id(), "one client, two organisations");
        assert_ne!(acme.caller_id(), acme_other_grant.caller_id(), "one client, two grants");
        assert_eq!(acme.caller_id(), claims("acme", client, Some("g_1"), "ada").caller_id(), "stable");
        let ungranted = |org: &str, who: &str| claims(org, client, None, who).caller_id();
        assert_ne!(ungranted("acme", "ada"), ungranted("evil", "ada"));
        assert_ne!(ungranted("acme", "ada"), ungranted("acme", "bob"));
        let id = acme.caller_id();
        assert!(id.starts_with("oauth_") && spend_core::subject::is_valid_token(&id), "{id}");
    }
}
