//! The platform connector: the executor's side of the read contract
//! ([`spend_platform::Reads`]), which has two implementations: [`PlatformConnector`], which speaks
//! the platform's HTTP API with each organisation's own tokens (in `spend
//! dev` the gateway calls it in-process), and [`spend_platform::grpc::ExecutorClient`], the
//! gRPC client of a separately deployed executor (`spend serve gateway`).
//! Either way the gateway never sees a platform token.
//!
//! Where a token comes from is [`Tokens`]: the connected accounts' vault
//! ([`crate::accounts::Connections`]: one token per organisation and
//! account, decrypted for the one request), or one [`StaticToken`] that
//! reaches every account (the sandbox's, for benchmarks and tests of the
//! gateway alone).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use spend_platform::{Account, Campaign, Card, Merchant, Performance, ReadError, Reads, TokenHealth, Transaction};

/// A platform access token. Its `Debug` never shows the value, so it
/// cannot leak through a log line or an error; it is wiped from memory
/// when dropped.
#[derive(Clone)]
pub struct PlatformToken(zeroize::Zeroizing<String>);

impl PlatformToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(token.into()))
    }

    /// The token itself, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlatformToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformToken(<redacted>)")
    }
}

/// Which connection a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want<'a> {
    /// This account's.
    Account(&'a str),
    /// The organisation's card account's (cards, transactions, merchants).
    Cards,
}

/// Where the connector gets the token of one read.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    /// The access token for `want` in `org`, holding `scope` (any read
    /// scope when `None`).
    async fn token(&self, org: &str, want: Want<'_>, scope: Option<&str>) -> Result<PlatformToken, ReadError>;
    /// The organisation's connected accounts; `None` when one token
    /// reaches every account.
    async fn connected(&self, org: &str) -> Result<Option<Vec<String>>, ReadError>;
    /// The health of the organisation's connections; `None`: ask the
    /// platform about the one token.
    async fn health(&self, org: &str, account_id: Option<&str>) -> Result<Option<TokenHealth>, ReadError>;
    /// The platform refused a token this source gave (expired, revoked):
    /// so it can say so from now on.
    async fn refused(&self, _org: &str, _want: Want<'_>, _problem: &str) {}
}

/// One token for every account and organisation: the sandbox's static
/// token, for benchmarks and tests of the gateway alone.
#[derive(Debug, Clone)]
pub struct StaticToken(pub PlatformToken);

#[async_trait::async_trait]
impl Tokens for StaticToken {
    async fn token(&self, _: &str, _: Want<'_>, _: Option<&str>) -> Result<PlatformToken, ReadError> {
        Ok(self.0.clone())
    }
    async fn connected(&self, _: &str) -> Result<Option<Vec<String>>, ReadError> {
        Ok(None)
    }
    async fn health(&self, _: &str, _: Option<&str>) -> Result<Option<TokenHealth>, ReadError> {
        Ok(None)
    }
}

/// The HTTP connector for the sandbox platform's API (and platforms
/// shaped like it).
#[derive(Clone)]
pub struct PlatformConnector {
    base: String,
    tokens: std::sync::Arc<dyn Tokens>,
    http: reqwest::Client,
}

impl std::fmt::Debug for PlatformConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformConnector").field("base", &self.base).finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct DataList<T> {
    data: Vec<T>,
}

impl PlatformConnector {
    pub fn new(base_url: &str, tokens: std::sync::Arc<dyn Tokens>) -> Result<Self, ReadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| ReadError::Unavailable(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            tokens,
            http,
        })
    }

    /// The platform API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET with the token of `want` in `org`; a refusal of the token is
    /// told to its source.
    async fn get<T: DeserializeOwned>(&self, org: &str, want: Want<'_>, scope: Option<&str>, path: &str, query: &[(&str, String)]) -> Result<T, ReadError> {
        let token = self.tokens.token(org, want, scope).await?;
        let r = get_with(&self.http, &self.base, &token, path, query).await;
        if let Err(ReadError::TokenRefused(problem)) = &r {
            self.tokens.refused(org, want, problem).await;
        }
        r
    }
}

/// GET `path` with `token`: the platform's errors as [`ReadError`]s.
pub async fn get_with<T: DeserializeOwned>(
    http: &reqwest::Client,
    base: &str,
    token: &PlatformToken,
    path: &str,
    query: &[(&str, String)],
) -> Result<T, ReadError> {
    let url = format!("{base}{path}");
    let resp = http
        .get(&url)
        .bearer_auth(token.expose())
        .query(query)
        .send()
        .await
        .map_err(|e| ReadError::Unavailable(format!("GET {path}: {}", without_url(e))))?;
    let status = resp.status();
    if status.is_success() {
        return resp
            .json::<T>()
            .await
            .map_err(|e| ReadError::Unavailable(format!("GET {path}: bad response: {e}")));
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no detail").to_string();
    Err(match status {
        StatusCode::NOT_FOUND => ReadError::NotFound(message),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ReadError::Invalid(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ReadError::TokenRefused(message),
        StatusCode::TOO_MANY_REQUESTS => ReadError::Throttled,
        s => ReadError::Unavailable(format!("GET {path}: HTTP {s}: {message}")),
    })
}

/// reqwest's errors include the URL; ours must not carry query strings
/// into logs, so keep only the error's kind and causes.
pub fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[async_trait::async_trait]
impl Reads for PlatformConnector {
    async fn accounts(&self, org: &str) -> Result<Vec<Account>, ReadError> {
        let Some(ids) = self.tokens.connected(org).await? else {
            // One token reaches every account: the platform lists them.
            return Ok(self.get::<DataList<Account>>(org, Want::Cards, None, "/v1/accounts", &[]).await?.data);
        };
        let mut out = Vec::new();
        for id in ids {
            // Each connection's own token sees its own account.
            match self.get::<DataList<Account>>(org, Want::Account(&id), None, "/v1/accounts", &[]).await {
                Ok(list) => out.extend(list.data.into_iter().filter(|a| a.id == id)),
                // A connection whose token is refused is reported by
                // check_token_health; the others still list.
                Err(ReadError::TokenRefused(_) | ReadError::NotConnected(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn campaigns(&self, org: &str, account_id: &str) -> Result<Vec<Campaign>, ReadError> {
        let path = format!("/v1/accounts/{}/campaigns", path_segment(account_id)?);
        Ok(self
            .get::<DataList<Campaign>>(org, Want::Account(account_id), Some("ads.read"), &path, &[])
            .await?
            .data)
    }

    async fn performance(
        &self,
        org: &str,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, ReadError> {
        let path = format!("/v1/accounts/{}/insights", path_segment(account_id)?);
        let mut q = Vec::new();
        if let Some(c) = campaign_id {
            q.push(("campaign_id", c.to_string()));
        }
        if let Some(f) = from {
            q.push(("from", f.to_rfc3339()));
        }
        if let Some(t) = to {
            q.push(("to", t.to_rfc3339()));
        }
        self.get(org, Want::Account(account_id), Some("ads.read"), &path, &q).await
    }

    async fn cards(&self, org: &str) -> Result<Vec<Card>, ReadError> {
        Ok(self.get::<DataList<Card>>(org, Want::Cards, Some("cards.read"), "/v1/cards", &[]).await?.data)
    }

    async fn transactions(&self, org: &str, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError> {
        let mut q = Vec::new();
        if let Some(s) = status {
            q.push(("status", s.to_string()));
        }
        if let Some(f) = from {
            q.push(("from", f.to_rfc3339()));
        }
        Ok(self
            .get::<DataList<Transaction>>(org, Want::Cards, Some("cards.read"), "/v1/transactions", &q)
            .await?
            .data)
    }

    async fn token_health(&self, org: &str, account_id: Option<&str>) -> Result<TokenHealth, ReadError> {
        if let Some(h) = self.tokens.health(org, account_id).await? {
            return Ok(h);
        }
        let want = account_id.map(Want::Account).unwrap_or(Want::Cards);
        match self.get::<TokenHealth>(org, want, None, "/v1/token", &[]).await {
            Err(ReadError::TokenRefused(m)) => Ok(TokenHealth {
                healthy: false,
                expires_at: None,
                granted_scopes: vec![],
                problem: Some(m),
                accounts: vec![],
            }),
            other => other,
        }
    }

    async fn merchant(&self, org: &str, domain: &str) -> Result<Option<Merchant>, ReadError> {
        let Some(domain) = domain_segment(domain) else {
            return Ok(None);
        };
        let path = format!("/v1/merchants/{domain}");
        match self.get::<Merchant>(org, Want::Cards, Some("cards.read"), &path, &[]).await {
            Ok(m) => Ok(Some(m)),
            Err(ReadError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Domains go into URL paths: only host names are looked up. A merchant
/// named otherwise (no dot, other characters) is one the platform's
/// merchant data cannot know.
fn domain_segment(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let host_name = d.len() <= 253 && d.contains('.') && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (host_name && !d.starts_with('.') && !d.contains("..")).then_some(d)
}

/// Ids go into URL paths: only plain id characters are accepted.
fn path_segment(id: &str) -> Result<&str, ReadError> {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(id)
    } else {
        Err(ReadError::Invalid(format!("{id:?} is not an id (letters, digits, _ and -)")))
    }
}
