//! The platform's write API, as the push uses it: a campaign's live state,
//! a campaign write, a charge on a card and its refund, a card freeze — each write with
//! the draft's id as `Idempotency-Key`, so a write sent again (a retry, a
//! replica resuming after a crash) is applied once. Errors say whether
//! trying again can help.

use std::time::Duration;

use spend_platform::{Campaign, Card, Merchant, ReadError};

use crate::connector::{PlatformToken, get_with, without_url};

/// The longest `Retry-After` a platform may ask for: longer waits are cut
/// to it (the push's own deadline still decides whether to wait at all).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// Why a write did not happen (as far as this request knows: whether a
/// write with its idempotency key applied is the platform's to say, see
/// [`Platform::key_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Worth trying again (after `after`, when the platform said): a 429,
    /// a 5xx, a timeout, no answer at all.
    Retry { after: Option<Duration>, reason: String },
    /// The platform refused this request.
    Refused(String),
    /// Refused here, before anything was sent (a card an operator froze).
    NotSent(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Retry { reason, .. } | WriteError::Refused(reason) | WriteError::NotSent(reason) => f.write_str(reason),
        }
    }
}

/// What the platform did with an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// A write with the key applied; its answer.
    Applied(serde_json::Value),
    /// The platform refused the key for good; why.
    Refused(String),
    /// No request with the key ever started at the platform.
    Unknown,
}

/// The platform's API at `base`.
#[derive(Clone)]
pub struct Platform {
    base: String,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct DataList<T> {
    data: Vec<T>,
}

impl Platform {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// A campaign as the platform holds it now.
    pub async fn campaign(&self, token: &PlatformToken, account_id: &str, campaign_id: &str) -> Result<Campaign, ReadError> {
        let list: DataList<Campaign> = get_with(&self.http, &self.base, token, &format!("/v1/accounts/{account_id}/campaigns"), &[]).await?;
        list.data
            .into_iter()
            .find(|c| c.id == campaign_id)
            .ok_or_else(|| ReadError::NotFound(format!("no campaign {campaign_id} in {account_id}")))
    }

    /// What the platform's merchant data says of `domain` (`None`: it
    /// knows nothing of it).
    pub async fn merchant(&self, token: &PlatformToken, domain: &str) -> Result<Option<Merchant>, ReadError> {
        match get_with::<Merchant>(&self.http, &self.base, token, &format!("/v1/merchants/{}", path_segment(domain)), &[]).await {
            Ok(m) => Ok(Some(m)),
            Err(ReadError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account's cards.
    pub async fn cards(&self, token: &PlatformToken) -> Result<Vec<Card>, ReadError> {
        Ok(get_with::<DataList<Card>>(&self.http, &self.base, token, "/v1/cards", &[]).await?.data)
    }

    async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &PlatformToken,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, WriteError> {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token.expose());
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let answer = match r.send().await {
            Ok(a) => a,
            Err(e) => {
                return Err(WriteError::Retry {
                    after: None,
                    reason: format!("{path}: {}", without_url(e)),
                });
            }
        };
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| spend_core::retry::retry_after(v, std::time::SystemTime::now(), RETRY_AFTER_MAX));
        let body: serde_json::Value = match answer.json().await {
            Ok(b) => b,
            // The write may have applied; only its answer was lost.
            Err(e) if status.is_success() => {
                return Err(WriteError::Retry {
                    after: None,
                    reason: format!("{path}: the answer was cut short: {}", without_url(e)),
                });
            }
            Err(_) => serde_json::Value::Null,
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = error_message(status, &body);
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(WriteError::Retry {
                after: retry_after,
                reason: message,
            })
        } else {
            Err(WriteError::Refused(message))
        }
    }

    /// What the platform did with the idempotency key `key`: the answer to
    /// ask for when a write's outcome is unknown (no answer, an answer that
    /// is not about the key).
    pub async fn key_state(&self, token: &PlatformToken, key: &str) -> Result<KeyState, WriteError> {
        let retry = |reason: String| WriteError::Retry { after: None, reason };
        let answer = self
            .http
            .get(format!("{}/v1/idempotency-keys/{}", self.base, path_segment(key)))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| retry(format!("asking the platform about key {key}: {}", without_url(e))))?;
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        match (status.as_u16(), body["state"].as_str(), body["error"]["code"].as_str()) {
            (200, Some("applied"), _) => Ok(KeyState::Applied(body["answer"].clone())),
            (200, Some("refused"), _) => Ok(KeyState::Refused(error_message(
                reqwest::StatusCode::from_u16(body["status"].as_u64().unwrap_or(400) as u16).unwrap_or(reqwest::StatusCode::BAD_REQUEST),
                &body["answer"],
            ))),
            (404, _, Some("unknown_key")) => Ok(KeyState::Unknown),
            _ => Err(retry(format!("asking the platform about key {key}: {}", error_message(status, &body)))),
        }
    }

    /// Writes a campaign's fields (`daily_budget_minor`, `bid_minor`,
    /// `status`).
    pub async fn update_campaign(
        &self,
        token: &PlatformToken,
        campaign_id: &str,
        fields: serde_json::Value,
        key: &str,
    ) -> Result<serde_json::Value, WriteError> {
        self.write(reqwest::Method::PATCH, &format!("/v1/campaigns/{campaign_id}"), token, Some(key), Some(fields))
            .await
    }

    /// Charges a card.
    pub async fn charge(
        &self,
        token: &PlatformToken,
        card_id: &str,
        merchant: &str,
        amount_minor: i64,
        currency: &str,
        key: &str,
    ) -> Result<serde_json::Value, WriteError> {
        let body = serde_json::json!({"merchant": merchant, "amount_minor": amount_minor, "currency": currency, "description": format!("SpendSignoff {key}")});
        self.write(reqwest::Method::POST, &format!("/v1/cards/{card_id}/charges"), token, Some(key), Some(body))
            .await
    }

    /// Refunds a charge in full.
    pub async fn refund(&self, token: &PlatformToken, charge_id: &str, key: &str) -> Result<serde_json::Value, WriteError> {
        self.write(reqwest::Method::POST, &format!("/v1/charges/{charge_id}/refunds"), token, Some(key), None)
            .await
    }

    /// Freezes a card at the platform.
    pub async fn freeze(&self, token: &PlatformToken, card_id: &str) -> Result<serde_json::Value, WriteError> {
        self.write(reqwest::Method::POST, &format!("/v1/cards/{card_id}/freeze"), token, None, None)
            .await
    }
}

/// A platform's error answer in words (never a token: the platform's own
/// code and message).
fn error_message(status: reqwest::StatusCode, body: &serde_json::Value) -> String {
    format!(
        "the platform answered {} ({}): {}",
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("no code"),
        body["error"]["message"].as_str().unwrap_or("no detail")
    )
}

/// `s` as one path segment: anything but unreserved characters
/// percent-encoded, so a value from a draft never reaches another route.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
