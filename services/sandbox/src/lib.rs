//! The sandbox platform: the project's own stand-in for a real ad and card
//! platform, which cannot exist on a test machine. It speaks HTTP + JSON
//! like a real platform API: bearer-token authentication (401 for a bad
//! token, 403 for a missing platform scope), 404 for unknown ids, 429/5xx
//! when faults are injected, and `Idempotency-Key` on writes.
//!
//! `spend dev` runs it in-process; `spend serve sandbox` runs it alone, so
//! the executor's connector is exercised over a real socket either way. It
//! is a crate of its own, apart from the executor, so that nothing in the
//! executor can reach into it: the executor's tests and the gateway's
//! benchmarks take it as a dev-dependency, and only the binary ships it.
//!
//! Access tokens come from the sandbox's own OAuth 2.0 server ([`oauth`]:
//! authorization code with PKCE, consent, refresh with rotation,
//! revocation), each bound to one account; static tokens given at start
//! (tests, benchmarks) reach every account.
//!
//! Routes (all under a bearer token):
//! - `GET  /v1/accounts`
//! - `GET  /v1/accounts/{id}/campaigns`
//! - `GET  /v1/accounts/{id}/insights?campaign_id=&from=&to=`
//! - `PATCH /v1/campaigns/{id}` `{daily_budget_minor?, bid_minor?, status?}`
//! - `GET  /v1/cards`, `GET /v1/transactions?status=&from=`
//! - `POST /v1/cards/{id}/charges` `{merchant, amount_minor, currency}`,
//!   `POST /v1/charges/{id}/refunds`, `POST /v1/cards/{id}/freeze`
//!
//! Every write takes an `Idempotency-Key`: the same key is applied once,
//! and answered with the first answer however often it is sent again —
//! a refusal as well as a success, so a refusal of a key is final. While
//! the first request of a key is still being answered, another with the
//! same key gets `409 idempotency_key_in_use` (as real platforms answer).
//! - `GET  /v1/idempotency-keys/{key}`: what the platform did with a key
//!   (`applied` with its answer, `refused` with its error; 404 when no
//!   request with it ever started), for reconciling an unknown outcome
//! - `GET  /v1/token` (the token's expiry and scopes)
//! - `GET  /v1/merchants/{domain}` (the platform's merchant data: name,
//!   category, country and whether it takes payment over HTTPS; 404 for a
//!   merchant it does not know)
//! - `GET/POST /oauth/authorize`, `POST /oauth/token`, `POST /oauth/revoke`
//! - `POST /sandbox/faults` `{"fail_next": n, "status": 503, "retry_after": s,
//!   "writes_only": bool, "delay_next": n, "delay_ms": ms, "random": {...}}`
//!   (test control; `random` disturbs keyed writes at random, see
//!   [`RandomFaults`])
//! - `GET /sandbox/applied`: writes applied per idempotency key, the total
//!   charged, the campaigns as they are (test control)
//! - `POST /sandbox/campaigns/{id}` `{daily_budget_minor?, status?}`:
//!   someone edits a campaign in the platform's own interface (test control)
//! - `POST /sandbox/revoke` `{"account_id"}`: the owner revokes every
//!   client's access in the platform's settings (test control)
//! - `GET /sandbox/oauth/issued`: every code and token it issued, so tests
//!   can search what SpendSignoff wrote for them (test control)
//!
//! The test-control routes (`/sandbox/…`) hand out write tokens and change
//! what the platform does, so they exist only where a test or `spend dev`
//! asks for them ([`Sandbox::enable_control`], `sandbox.control_token`):
//! otherwise 404. Enabled, they answer only a loopback peer (403 for any
//! other address, whatever it presents) that sends the control token in
//! [`CONTROL_HEADER`] (401 without it).

#![forbid(unsafe_code)]

mod control;
mod faults;
pub mod oauth;
mod writes;

use control::*;
use faults::*;
use writes::*;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use spend_platform::{Account, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};

/// A token the sandbox accepts.
#[derive(Clone)]
pub struct SandboxToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for SandboxToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What the platform did with an idempotency key: the first answer, a
/// success or a refusal, kept for every later request with the key.
struct KeyRecord {
    status: StatusCode,
    body: serde_json::Value,
    /// The first request is still being answered (a slow answer).
    answering: bool,
    /// Times a write with the key was applied: 1 (or 0 for a refusal).
    applied: u32,
    /// The account the write was for: only its tokens may ask about it.
    account: Option<String>,
}

/// What the platform applied, by idempotency key: the answer it gave, and
/// how many times a write with that key was applied (1, however often it
/// was sent).
#[derive(Default)]
struct Applied {
    /// Every charge, refunds deducted, in minor units.
    charged_minor: i64,
    charges: Vec<serde_json::Value>,
    /// Writes applied in all.
    writes: u64,
}

/// The header the test-control routes take their token in.
pub const CONTROL_HEADER: &str = "x-sandbox-control";

struct Inner {
    /// The test-control token, once enabled (never logged or returned).
    control: std::sync::OnceLock<String>,
    tokens: Vec<SandboxToken>,
    accounts: Vec<Account>,
    campaigns: Mutex<Vec<Campaign>>,
    transactions: Vec<Transaction>,
    merchants: Vec<Merchant>,
    cards_state: Mutex<Vec<Card>>,
    /// Idempotency key -> what was done with it. Held while a keyed
    /// write applies, so two sends of one key apply once.
    keys: Mutex<HashMap<String, KeyRecord>>,
    applied: Mutex<Applied>,
    faults: Mutex<Faults>,
    oauth: Mutex<oauth::OAuth>,
}

/// The sandbox's state: seeded deterministically, campaigns writable.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

fn unit(seed: &str) -> u64 {
    let h = Sha256::digest(seed.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

impl Sandbox {
    /// A sandbox with two ad accounts (`act_1001`, `act_1002`), a card
    /// account (`card_1`), five campaigns, three cards and a month of card
    /// transactions, accepting `tokens`.
    pub fn seeded(tokens: Vec<SandboxToken>) -> Self {
        Self::with_oauth(tokens, Vec::new(), oauth::Lifetimes::default())
    }

    /// [`Sandbox::seeded`], with OAuth clients that may connect accounts.
    pub fn with_oauth(tokens: Vec<SandboxToken>, clients: Vec<oauth::OAuthClient>, lifetimes: oauth::Lifetimes) -> Self {
        let epoch: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("a valid time");
        let accounts = vec![
            account("act_1001", "sandbox-ads", "Search ads"),
            account("act_1002", "sandbox-ads", "Social ads"),
            account("card_1", "sandbox-cards", "Team cards"),
        ];
        let campaigns = vec![
            campaign("cmp_1", "act_1001", "Brand search", "active", 5_000, 120, epoch),
            campaign("cmp_2", "act_1001", "Competitor terms", "active", 12_000, 250, epoch),
            campaign("cmp_3", "act_1001", "Retargeting", "paused", 3_000, 90, epoch),
            campaign("cmp_4", "act_1002", "Launch video", "active", 20_000, 40, epoch),
            campaign("cmp_5", "act_1002", "Lookalikes", "active", 7_500, 60, epoch),
        ];
        let cards = vec![card("crd_1", "4242", 100_000), card("crd_2", "1881", 50_000), card("crd_3", "0005", 25_000)];
        let merchant_data = vec![
            merchant("openai.com", "OpenAI", "software", "US", true),
            merchant("api.openai.com", "OpenAI", "software", "US", true),
            merchant("anthropic.com", "Anthropic", "software", "US", true),
            merchant("aws.amazon.com", "Amazon Web Services", "cloud", "US", true),
            merchant("github.com", "GitHub", "software", "US", true),
            merchant("figma.com", "Figma", "software", "US", true),
            merchant("slack.com", "Slack", "software", "US", true),
            merchant("ads.example-network.com", "Example Ad Network", "advertising", "US", true),
            merchant("casino.example.com", "Example Casino", "gambling", "MT", true),
            merchant("tools.example.fr", "Outils Exemple", "software", "FR", true),
            merchant("plain.example.com", "Plain HTTP Shop", "software", "US", false),
        ];
        let merchants = ["api.openai.com", "aws.amazon.com", "github.com", "figma.com", "slack.com"];
        let now = Utc::now();
        let transactions = (0..40)
            .map(|i| {
                let r = unit(&format!("txn{i}"));
                Transaction {
                    id: format!("txn_{:04}", i + 1),
                    card_id: format!("crd_{}", 1 + r % 3),
                    status: if i < 3 {
                        "pending"
                    } else if r.is_multiple_of(17) {
                        "declined"
                    } else {
                        "settled"
                    }
                    .into(),
                    amount_minor: 500 + (r % 20_000) as i64,
                    currency: "USD".into(),
                    merchant: merchants[(r % merchants.len() as u64) as usize].into(),
                    time: now - Duration::hours(i * 18),
                }
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                control: std::sync::OnceLock::new(),
                tokens,
                accounts,
                campaigns: Mutex::new(campaigns),
                cards_state: Mutex::new(cards),
                keys: Mutex::default(),
                applied: Mutex::default(),
                transactions,
                merchants: merchant_data,
                faults: Mutex::default(),
                oauth: Mutex::new(oauth::OAuth::new(clients, lifetimes)),
            }),
        }
    }

    /// The routes, ready to serve.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/accounts", get(accounts))
            .route("/v1/accounts/{id}/campaigns", get(campaigns))
            .route("/v1/accounts/{id}/insights", get(insights))
            .route("/v1/campaigns/{id}", patch(update_campaign))
            .route("/v1/cards", get(cards))
            .route("/v1/cards/{id}/charges", post(charge))
            .route("/v1/cards/{id}/freeze", post(freeze_card))
            .route("/v1/charges/{id}/refunds", post(refund))
            .route("/v1/transactions", get(transactions))
            .route("/v1/idempotency-keys/{key}", get(idempotency_key_state))
            .route("/v1/token", get(token))
            .route("/v1/merchants/{domain}", get(merchant_by_domain))
            .route("/oauth/authorize", get(oauth::authorize).post(oauth::decide))
            .route("/oauth/token", post(oauth::token))
            .route("/oauth/revoke", post(oauth::revoke))
            .merge(
                Router::new()
                    .route("/sandbox/faults", post(faults))
                    .route("/sandbox/revoke", post(revoke_account))
                    .route("/sandbox/oauth/issued", get(issued))
                    .route("/sandbox/applied", get(applied))
                    .route("/sandbox/campaigns/{id}", post(edit_campaign))
                    .route_layer(axum::middleware::from_fn_with_state(self.clone(), control_guard)),
            )
            .with_state(self.clone())
    }

    /// Opens the test-control routes to loopback callers that present
    /// `token` in [`CONTROL_HEADER`]. Once per sandbox: a second call
    /// changes nothing and returns false.
    pub fn enable_control(&self, token: impl Into<String>) -> bool {
        let token = token.into();
        !token.is_empty() && self.inner.control.set(token).is_ok()
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(listener, self.router().into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Every code and token the OAuth server issued (tests search for leaks).
    pub fn issued(&self) -> Vec<String> {
        self.inner.oauth.lock().expect("oauth lock").issued()
    }

    /// A campaign as the platform holds it now (tests and `spend dev`).
    pub fn campaign(&self, id: &str) -> Option<Campaign> {
        self.inner.campaigns.lock().expect("campaign lock").iter().find(|c| c.id == id).cloned()
    }
}

fn account(id: &str, platform: &str, name: &str) -> Account {
    Account {
        id: id.into(),
        platform: platform.into(),
        name: name.into(),
        currency: "USD".into(),
    }
}

fn campaign(id: &str, account_id: &str, name: &str, status: &str, budget: i64, bid: i64, at: DateTime<Utc>) -> Campaign {
    Campaign {
        id: id.into(),
        account_id: account_id.into(),
        name: name.into(),
        status: status.into(),
        daily_budget_minor: budget,
        bid_minor: bid,
        currency: "USD".into(),
        updated_at: at,
    }
}

fn merchant(domain: &str, name: &str, category: &str, country: &str, https: bool) -> Merchant {
    Merchant {
        domain: domain.into(),
        name: name.into(),
        category: category.into(),
        country: Some(country.into()),
        https: Some(https),
    }
}

fn card(id: &str, last4: &str, limit: i64) -> Card {
    Card {
        id: id.into(),
        last4: last4.into(),
        status: "active".into(),
        limit_minor: limit,
        currency: "USD".into(),
    }
}

/// A platform-style error: `{"error": {"code", "message"}}`.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(serde_json::json!({"error": {"code": self.code, "message": self.message}}))).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = s.to_string().parse()
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

/// Who a request's token speaks for: one account (an OAuth token), or
/// every account (a static token given at start).
struct Principal {
    account: Option<String>,
}

impl Principal {
    /// Refuses a token bound to another account.
    fn may(&self, account_id: &str) -> Result<(), ApiError> {
        match &self.account {
            Some(a) if a != account_id => Err(error(
                StatusCode::FORBIDDEN,
                "wrong_account",
                format!("this token is for account {a}, not {account_id}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Bearer-token check plus injected faults: who the token speaks for.
fn admit(sb: &Sandbox, headers: &HeaderMap, scope: &str) -> Result<Principal, ApiError> {
    {
        let mut f = sb.inner.faults.lock().expect("fault lock");
        if f.fail_next > 0 && (!f.writes_only || scope.ends_with(".write")) {
            f.fail_next -= 1;
            let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(ApiError {
                retry_after: f.retry_after,
                ..error(status, "injected_fault", "the sandbox was told to fail this request")
            });
        }
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "missing_token", "Authorization: Bearer <token> is required"))?;
    let insufficient = || error(StatusCode::FORBIDDEN, "insufficient_scope", format!("the token lacks the {scope} scope"));
    if let Some(t) = sb.inner.tokens.iter().find(|t| t.token == presented) {
        if t.expires_at <= Utc::now() {
            return Err(error(StatusCode::UNAUTHORIZED, "token_expired", "the access token has expired"));
        }
        if !t.scopes.iter().any(|s| s == scope) {
            return Err(insufficient());
        }
        return Ok(Principal { account: None });
    }
    match sb.inner.oauth.lock().expect("oauth lock").bound(presented) {
        Ok(b) if b.scopes.contains(scope) => Ok(Principal { account: Some(b.account_id) }),
        Ok(_) => Err(insufficient()),
        Err(oauth::Refused::Expired) => Err(error(StatusCode::UNAUTHORIZED, "token_expired", "the access token has expired")),
        Err(oauth::Refused::Revoked) => Err(error(StatusCode::UNAUTHORIZED, "token_revoked", "the access token was revoked")),
        Err(oauth::Refused::Unknown) => Err(error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is not valid")),
    }
}

/// Cards and transactions belong to the card account.
const CARD_ACCOUNT: &str = "card_1";

async fn accounts(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    // Either read scope lists the accounts a token reaches.
    let who = match admit(&sb, &headers, "ads.read").or_else(|_| admit(&sb, &headers, "cards.read")) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let list: Vec<&Account> = sb.inner.accounts.iter().filter(|a| who.may(&a.id).is_ok()).collect();
    Json(serde_json::json!({"data": list})).into_response()
}

fn known_account(sb: &Sandbox, id: &str) -> Result<(), ApiError> {
    if sb.inner.accounts.iter().any(|a| a.id == id) {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "not_found", format!("no account {id}")))
    }
}

async fn campaigns(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&sb, &headers, "ads.read").and_then(|p| p.may(&id)).and_then(|_| known_account(&sb, &id)) {
        return r.into_response();
    }
    let list: Vec<Campaign> = sb
        .inner
        .campaigns
        .lock()
        .expect("campaign lock")
        .iter()
        .filter(|c| c.account_id == id)
        .cloned()
        .collect();
    Json(serde_json::json!({"data": list})).into_response()
}

#[derive(Deserialize)]
struct InsightsQuery {
    campaign_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

async fn insights(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<InsightsQuery>) -> Response {
    if let Err(r) = admit(&sb, &headers, "ads.read").and_then(|p| p.may(&id)).and_then(|_| known_account(&sb, &id)) {
        return r.into_response();
    }
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(7));
    if from > to {
        return error(StatusCode::BAD_REQUEST, "invalid_range", "from is after to").into_response();
    }
    let campaigns: Vec<Campaign> = sb
        .inner
        .campaigns
        .lock()
        .expect("campaign lock")
        .iter()
        .filter(|c| c.account_id == id && q.campaign_id.as_ref().is_none_or(|want| &c.id == want))
        .cloned()
        .collect();
    if let Some(want) = &q.campaign_id
        && campaigns.is_empty()
    {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no campaign {want} in account {id}")).into_response();
    }
    // Deterministic figures: per campaign and day, derived from a hash.
    let (mut impressions, mut clicks, mut conversions, mut spend) = (0u64, 0u64, 0u64, 0i64);
    let days = (to - from).num_days().clamp(0, 366);
    for c in &campaigns {
        for d in 0..days {
            let day = (from + Duration::days(d)).date_naive();
            let r = unit(&format!("{}{day}", c.id));
            let imp = 1_000 + r % 9_000;
            impressions += imp;
            clicks += imp / 50 + r % 20;
            conversions += (r >> 8) % 7;
            spend += c.daily_budget_minor * (60 + (r >> 16) % 40) as i64 / 100;
        }
    }
    Json(Performance {
        account_id: id,
        campaign_id: q.campaign_id,
        from,
        to,
        impressions,
        clicks,
        conversions,
        spend_minor: spend,
        currency: "USD".into(),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignUpdate {
    daily_budget_minor: Option<i64>,
    bid_minor: Option<i64>,
    status: Option<String>,
}

async fn update_campaign(State(sb): State<Sandbox>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let who = match admit(&sb, &headers, "ads.write") {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let owner = sb.campaign(&id).map(|c| c.account_id);
    if let Some(owner) = &owner
        && let Err(r) = who.may(owner)
    {
        return r.into_response();
    }
    let update: CampaignUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()).into_response(),
    };
    let key = idempotency_key(&headers);
    // Refusals of a keyed write are the key's answer too: validated inside.
    sb.keyed(key, owner.clone(), || {
        if update.daily_budget_minor.is_some_and(|b| b < 0) || update.bid_minor.is_some_and(|b| b < 0) {
            return Err(error(StatusCode::BAD_REQUEST, "invalid_amount", "amounts must not be negative"));
        }
        if let Some(s) = &update.status
            && s != "active"
            && s != "paused"
        {
            return Err(error(StatusCode::BAD_REQUEST, "invalid_status", "status is active or paused"));
        }
        let mut all = sb.inner.campaigns.lock().expect("campaign lock");
        let Some(c) = all.iter_mut().find(|c| c.id == id) else {
            return Err(error(StatusCode::NOT_FOUND, "not_found", format!("no campaign {id}")));
        };
        if let Some(b) = update.daily_budget_minor {
            c.daily_budget_minor = b;
        }
        if let Some(b) = update.bid_minor {
            c.bid_minor = b;
        }
        if let Some(s) = &update.status {
            c.status = s.clone();
        }
        c.updated_at = Utc::now();
        Ok((StatusCode::OK, serde_json::to_value(&*c).unwrap_or_default()))
    })
    .await
}

async fn cards(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.read").and_then(|p| p.may(CARD_ACCOUNT)) {
        return r.into_response();
    }
    let cards = sb.inner.cards_state.lock().expect("cards lock").clone();
    Json(serde_json::json!({"data": cards})).into_response()
}

#[derive(Deserialize)]
struct TransactionsQuery {
    status: Option<String>,
    from: Option<DateTime<Utc>>,
}

async fn transactions(State(sb): State<Sandbox>, headers: HeaderMap, Query(q): Query<TransactionsQuery>) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.read").and_then(|p| p.may(CARD_ACCOUNT)) {
        return r.into_response();
    }
    let list: Vec<&Transaction> = sb
        .inner
        .transactions
        .iter()
        .filter(|t| q.status.as_ref().is_none_or(|s| &t.status == s) && q.from.is_none_or(|f| t.time >= f))
        .collect();
    Json(serde_json::json!({"data": list})).into_response()
}

async fn merchant_by_domain(State(sb): State<Sandbox>, headers: HeaderMap, Path(domain): Path<String>) -> Response {
    if let Err(r) = admit(&sb, &headers, "cards.read") {
        return r.into_response();
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    match sb.inner.merchants.iter().find(|m| m.domain == domain) {
        Some(m) => Json(m).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", format!("no merchant {domain}")).into_response(),
    }
}

async fn token(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if let Some(t) = sb.inner.tokens.iter().find(|t| t.token == presented) {
        return Json(TokenHealth {
            healthy: t.expires_at > Utc::now(),
            expires_at: Some(t.expires_at),
            granted_scopes: t.scopes.clone(),
            problem: (t.expires_at <= Utc::now()).then(|| "the access token has expired".into()),
            accounts: vec![],
        })
        .into_response();
    }
    match sb.inner.oauth.lock().expect("oauth lock").bound(presented) {
        Ok(b) => Json(TokenHealth {
            healthy: true,
            expires_at: Some(b.expires_at),
            granted_scopes: b.scopes.into_iter().collect(),
            problem: None,
            accounts: vec![],
        })
        .into_response(),
        Err(oauth::Refused::Expired) => error(StatusCode::UNAUTHORIZED, "token_expired", "the access token has expired").into_response(),
        Err(oauth::Refused::Revoked) => error(StatusCode::UNAUTHORIZED, "token_revoked", "the access token was revoked").into_response(),
        Err(oauth::Refused::Unknown) => error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is not valid").into_response(),
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn ask(sb: &Sandbox, from: &str, token: Option<&str>) -> StatusCode {
        let mut req = axum::http::Request::get("/sandbox/oauth/issued").body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(from.parse::<SocketAddr>().unwrap()));
        if let Some(t) = token {
            req.headers_mut().insert(CONTROL_HEADER, t.parse().unwrap());
        }
        sb.router().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn test_control_is_absent_unless_enabled_then_loopback_and_token_only() {
        let sb = Sandbox::seeded(vec![]);
        // As docker-compose runs it: no such routes, from anywhere.
        assert_eq!(ask(&sb, "127.0.0.1:5000", Some("t0k3n-0123456789")).await, StatusCode::NOT_FOUND);
        assert_eq!(ask(&sb, "172.18.0.7:5000", None).await, StatusCode::NOT_FOUND);
        assert!(sb.enable_control("t0k3n-0123456789"));
        assert!(!sb.enable_control("another"), "enabled once");
        // Another container, another host: refused, whatever it presents.
        assert_eq!(ask(&sb, "172.18.0.7:5000", Some("t0k3n-0123456789")).await, StatusCode::FORBIDDEN);
        assert_eq!(ask(&sb, "[2001:db8::1]:5000", Some("t0k3n-0123456789")).await, StatusCode::FORBIDDEN);
        // This machine, without the token or with another: refused.
        assert_eq!(ask(&sb, "127.0.0.1:5000", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(&sb, "127.0.0.1:5000", Some("guess")).await, StatusCode::UNAUTHORIZED);
        // With it, from loopback (IPv4, IPv6, IPv4-mapped): answered.
        for from in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert_eq!(ask(&sb, from, Some("t0k3n-0123456789")).await, StatusCode::OK, "{from}");
        }
    }
}
