//! The platform connector: the executor's side of the read contract
//! ([`spend_platform::Reads`]), which has two implementations: [`PlatformConnector`], which holds the
//! platform token and speaks the platform's HTTP API (in `spend dev` the
//! gateway calls it in-process), and [`spend_platform::grpc::ExecutorClient`], the
//! gRPC client of a separately deployed executor (`spend serve gateway`).
//! Either way the gateway never sees a platform token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use spend_platform::{Account, Campaign, Card, Merchant, Performance, ReadError, Reads, TokenHealth, Transaction};

/// A platform access token. Its `Debug` never shows the value, so it
/// cannot leak through a log line or an error.
#[derive(Clone)]
pub struct PlatformToken(String);

impl PlatformToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for PlatformToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformToken(<redacted>)")
    }
}

/// The HTTP connector for the sandbox platform's API (and platforms
/// shaped like it).
#[derive(Debug, Clone)]
pub struct PlatformConnector {
    base: String,
    token: PlatformToken,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct DataList<T> {
    data: Vec<T>,
}

impl PlatformConnector {
    pub fn new(base_url: &str, token: PlatformToken) -> Result<Self, ReadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| ReadError::Unavailable(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, ReadError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token.0)
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
}

/// reqwest's errors include the URL; ours must not carry query strings
/// into logs, so keep only the error's kind and causes.
fn without_url(e: reqwest::Error) -> String {
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
    async fn accounts(&self) -> Result<Vec<Account>, ReadError> {
        Ok(self.get::<DataList<Account>>("/v1/accounts", &[]).await?.data)
    }

    async fn campaigns(&self, account_id: &str) -> Result<Vec<Campaign>, ReadError> {
        let path = format!("/v1/accounts/{}/campaigns", path_segment(account_id)?);
        Ok(self.get::<DataList<Campaign>>(&path, &[]).await?.data)
    }

    async fn performance(
        &self,
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
        self.get(&path, &q).await
    }

    async fn cards(&self) -> Result<Vec<Card>, ReadError> {
        Ok(self.get::<DataList<Card>>("/v1/cards", &[]).await?.data)
    }

    async fn transactions(&self, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError> {
        let mut q = Vec::new();
        if let Some(s) = status {
            q.push(("status", s.to_string()));
        }
        if let Some(f) = from {
            q.push(("from", f.to_rfc3339()));
        }
        Ok(self.get::<DataList<Transaction>>("/v1/transactions", &q).await?.data)
    }

    async fn token_health(&self) -> Result<TokenHealth, ReadError> {
        match self.get::<TokenHealth>("/v1/token", &[]).await {
            Err(ReadError::TokenRefused(m)) => Ok(TokenHealth {
                healthy: false,
                expires_at: None,
                granted_scopes: vec![],
                problem: Some(m),
            }),
            other => other,
        }
    }

    async fn merchant(&self, domain: &str) -> Result<Option<Merchant>, ReadError> {
        let Some(domain) = domain_segment(domain) else {
            return Ok(None);
        };
        let path = format!("/v1/merchants/{domain}");
        match self.get::<Merchant>(&path, &[]).await {
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
