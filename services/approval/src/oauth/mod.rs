//! MCP sign-in: the OAuth 2.1 authorization server an interactive MCP
//! client (an IDE assistant, a desktop chat client) finds from the
//! gateway's 401, as the MCP authorization spec describes, next to the
//! humans' passkey sign-in it relies on.
//!
//! - `GET /.well-known/oauth-authorization-server` — RFC 8414 metadata.
//! - `POST /oauth/register` — dynamic client registration (RFC 7591) that
//!   stores nothing: the client id is the validated registration, signed
//!   ([`core::register`]), so registrations cannot flood storage; a rate
//!   limit per address besides. Or no registration at all: a client id that
//!   is an HTTPS URL is a Client ID Metadata Document, fetched under an
//!   SSRF guard ([`cimd`]).
//! - `GET /oauth/authorize` — the code flow with PKCE (S256 only), exact
//!   redirect URIs (loopback ones on any port), the `resource` of RFC 8707
//!   (one canonical MCP URL per gateway); a human signs in with a passkey
//!   and sees which client asks, for which organisation, and grants
//!   `mcp.read` and/or `mcp.draft`. `mcp.approve` is not on the page, and a
//!   request for it is refused and audited. Each grant is a
//!   `spend.client.granted.v1` carrying the code's hash.
//! - `POST /oauth/token` — the code, once (redeemed by an append expecting
//!   the grant's last sequence: once across replicas; a second use revokes
//!   the grant), and refresh tokens, rotated on each use, with reuse
//!   detection (a spent one presented again revokes the grant). Access
//!   tokens are short-lived ES256 JWTs signed by a KMS key ([`jwt`]).
//! - `GET /oauth/jwks.json` — the signing key, by `kid`.
//! - `POST /oauth/revoke` — RFC 7009; and the app's page of connected
//!   clients (`/clients`). A revocation is a `spend.client.revoked.v1`,
//!   which every gateway replica reads and applies within a second.
//!
//! What a compromised approval service could do with this is grant read
//! and draft to a client of its choosing: never approve, which no token
//! can carry and the gateway refuses besides.

pub mod cimd;
pub mod core;
pub mod grants;
pub mod jwt;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{SecondsFormat, Utc};
use maud::html;
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ClientGranted, ClientRevoked, ClientTokensIssued, EventData};
use spend_eventlog::LogError;
use spend_signer::Signer;

use self::core::{Client, Metadata, OAuthError, SCOPES};
use crate::web::{App, need_session, page, who};

/// What the authorization server issues, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub code: Duration,
    pub access: Duration,
    pub refresh: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: Duration::from_secs(60),
            access: Duration::from_secs(10 * 60),
            refresh: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The authorization server's configuration.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The gateway's canonical MCP URL (`http://localhost:7100/mcp` in
    /// `spend dev`): the one resource tokens are issued for.
    pub resource: String,
    /// Signs access tokens (a KMS key; a local key file in `spend dev`).
    pub signer: Arc<dyn Signer>,
    /// Signs dynamic registrations: the same for every replica.
    pub registration_secret: spend_core::Secret,
    /// Fetch client metadata documents from private and loopback
    /// addresses, over plain http too (tests and `spend dev` only).
    pub allow_private_metadata: bool,
    pub lifetimes: Lifetimes,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("resource", &self.resource)
            .field("signer", &self.signer.key_id())
            .field("registration_secret", &"<redacted>")
            .field("allow_private_metadata", &self.allow_private_metadata)
            .finish()
    }
}

/// Registrations per address and minute.
const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Token and revocation requests per address and minute.
const TOKEN_REQUESTS_PER_MINUTE: u32 = 120;

pub struct Server {
    app: Arc<App>,
    config: OAuthConfig,
    issuer: String,
    spki: Vec<u8>,
    kid: String,
    fetcher: cimd::Fetcher,
    registrations: Limiter,
    token_requests: Limiter,
}

type Limiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

fn per_minute(n: u32) -> Limiter {
    governor::RateLimiter::keyed(governor::Quota::per_minute(std::num::NonZeroU32::new(n).expect("a positive quota")))
}

impl Server {
    pub async fn new(app: Arc<App>, config: OAuthConfig) -> anyhow::Result<Arc<Self>> {
        let spki = config
            .signer
            .public_key_der()
            .await
            .map_err(|e| anyhow::anyhow!("the access-token signing key: {e}"))?;
        jwt::jwk(&spki)?;
        Ok(Arc::new(Self {
            issuer: app.origin().to_string(),
            kid: jwt::kid_of(&spki),
            spki,
            fetcher: cimd::Fetcher::new(config.allow_private_metadata),
            registrations: per_minute(REGISTRATIONS_PER_MINUTE),
            token_requests: per_minute(TOKEN_REQUESTS_PER_MINUTE),
            app,
            config,
        }))
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A refusal the audit must show: one alert per window and kind (a
    /// flood of bad requests is counted, not recorded one by one).
    async fn audit(&self, org: &str, reason: &str, peer: SocketAddr, detail: String) {
        let address = peer.ip().to_string();
        if self.app.alerts.admit_kind(org, None, Some(&address), reason, reason).is_some() {
            self.app.alert(org, reason, Some(peer), detail).await;
        }
    }

    /// A request over `limiter`'s quota for its address: refused with 429
    /// and audited (a flood counted, not recorded one by one).
    async fn over_quota(&self, limiter: &Limiter, peer: SocketAddr, reason: &str, what: &str, per_minute: u32) -> Option<Response> {
        limiter.check_key(&peer.ip()).is_err().then_some(())?;
        self.audit(
            "unknown",
            reason,
            peer,
            format!("more than {per_minute} {what} a minute from {}: refused", peer.ip()),
        )
        .await;
        Some(error_json(
            StatusCode::TOO_MANY_REQUESTS,
            &OAuthError::new("slow_down", format!("too many {what}: wait a minute")),
        ))
    }

    /// The client a client id names: a dynamic registration of this
    /// server's, or a metadata document.
    async fn client(&self, client_id: &str) -> Result<Client, OAuthError> {
        if client_id.starts_with(core::DYNAMIC_PREFIX) {
            return core::registered(self.config.registration_secret.expose().as_bytes(), client_id)
                .ok_or_else(|| OAuthError::new("invalid_client", "this client id was not issued by this server"));
        }
        if core::is_metadata_url(client_id, self.fetcher.allows_private()) {
            return self.fetcher.client(client_id).await;
        }
        Err(OAuthError::new(
            "invalid_client",
            "unknown client: register (POST /oauth/register) or use the HTTPS URL of a client metadata document as client_id",
        ))
    }

    /// Brings the book up to the log's end (a grant recorded a moment ago
    /// by another replica).
    async fn catch_up(&self) {
        if let Ok(info) = self.app.recorder.log().info().await {
            self.app.wait_for(info.last_seq).await;
        }
    }
}

/// Routes a client calls without a human: metadata, registration, tokens,
/// revocation, keys. They sit outside the human-only gate (a client may
/// send its own `Authorization` header), and answer OAuth's JSON errors.
pub fn public_router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/jwks.json", get(jwks))
        .route("/oauth/register", post(register))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .with_state(server)
}

/// Pages a human uses: consent, and the connected clients.
pub fn pages(server: Arc<Server>) -> Router {
    Router::new()
        .route("/oauth/authorize", get(authorize_page).post(authorize_answer))
        .route("/clients", get(clients_page))
        .route("/clients/{grant_id}/revoke", post(clients_revoke))
        .route("/clients/revoke-all", post(clients_revoke_all))
        .layer(axum::middleware::from_fn(crate::web::security_headers))
        .with_state(server)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn error_json(status: StatusCode, e: &OAuthError) -> Response {
    no_store((status, Json(serde_json::json!({"error": e.error, "error_description": e.description}))).into_response())
}

async fn metadata(State(s): State<Arc<Server>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.endpoint("/oauth/authorize"),
        "token_endpoint": s.endpoint("/oauth/token"),
        "registration_endpoint": s.endpoint("/oauth/register"),
        "revocation_endpoint": s.endpoint("/oauth/revoke"),
        "jwks_uri": s.endpoint("/oauth/jwks.json"),
        "scopes_supported": SCOPES.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    }))
}

async fn jwks(State(s): State<Arc<Server>>) -> Response {
    match jwt::jwk(&s.spki) {
        Ok(k) => Json(serde_json::json!({"keys": [k]})).into_response(),
        Err(e) => error_json(StatusCode::INTERNAL_SERVER_ERROR, &OAuthError::new("server_error", e.to_string())),
    }
}

async fn register(State(s): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::body::Bytes) -> Response {
    if let Some(refused) = s
        .over_quota(
            &s.registrations,
            peer,
            "oauth.registration_flood",
            "client registrations",
            REGISTRATIONS_PER_MINUTE,
        )
        .await
    {
        return refused;
    }
    if body.len() > cimd::MAX_DOCUMENT {
        return error_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &OAuthError::new("invalid_client_metadata", format!("client metadata is at most {} bytes", cimd::MAX_DOCUMENT)),
        );
    }
    let m: Metadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                &OAuthError::new("invalid_client_metadata", format!("not a JSON client metadata object: {e}")),
            );
        }
    };
    match core::register(s.config.registration_secret.expose().as_bytes(), &m) {
        Ok(c) => {
            tracing::info!(client_name = %c.client_name, "an MCP client registered");
            no_store(
                (
                    StatusCode::CREATED,
                    Json(serde_json::json!({
                        "client_id": c.client_id,
                        "client_id_issued_at": Utc::now().timestamp(),
                        "client_name": c.client_name,
                        "redirect_uris": c.redirect_uris,
                        "grant_types": ["authorization_code", "refresh_token"],
                        "response_types": ["code"],
                        "token_endpoint_auth_method": "none",
                        "scope": "mcp.read mcp.draft",
                    })),
                )
                    .into_response(),
            )
        }
        Err(e) => error_json(StatusCode::BAD_REQUEST, &e),
    }
}

/// An authorization request, as the client sends it (the consent form
/// posts the same fields back, with the human's answer).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    resource: Option<String>,
}

/// An authorization request that passed every check.
struct Checked {
    client: Client,
    redirect_uri: String,
    challenge: String,
    scopes: BTreeSet<String>,
}

/// Why an authorization request fails: on a page of ours when the client
/// or its redirect URI cannot be trusted (never redirect there), else back
/// to the client with an OAuth error.
enum Failed {
    Page(String),
    Back { redirect_uri: String, error: OAuthError },
}

async fn check(s: &Server, q: &AuthorizeRequest, peer: SocketAddr, org: &str) -> Result<Checked, Failed> {
    let Some(client_id) = q.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Failed::Page("the client sent no client_id".into()));
    };
    let client = match s.client(client_id).await {
        Ok(c) => c,
        Err(e) => {
            s.audit(
                org,
                "oauth.client_refused",
                peer,
                format!("an authorization request from an unusable client: {}", e.description),
            )
            .await;
            return Err(Failed::Page(e.description));
        }
    };
    let Some(redirect_uri) = q.redirect_uri.clone() else {
        return Err(Failed::Page("the client sent no redirect_uri".into()));
    };
    if !core::redirect_matches(&client.redirect_uris, &redirect_uri) {
        s.audit(
            org,
            "oauth.redirect_refused",
            peer,
            format!(
                "an authorization request for client {:?} named a redirect URI it did not register",
                client.client_name
            ),
        )
        .await;
        return Err(Failed::Page(format!("the redirect URI {redirect_uri:?} is not one this client registered")));
    }
    let back = |error: OAuthError| Failed::Back {
        redirect_uri: redirect_uri.clone(),
        error,
    };
    if q.response_type.as_deref() != Some("code") {
        return Err(back(OAuthError::new("unsupported_response_type", "only response_type=code is offered")));
    }
    let challenge = match (q.code_challenge.as_deref(), q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if core::valid_challenge(c) => c.to_string(),
        (Some(_), Some("S256")) => return Err(back(OAuthError::new("invalid_request", "code_challenge must be 43 characters of base64url"))),
        (Some(_), _) => return Err(back(OAuthError::new("invalid_request", "code_challenge_method must be S256"))),
        (None, _) => {
            return Err(back(OAuthError::new(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            )));
        }
    };
    let scopes = match core::requested_scopes(q.scope.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let reason = core::scope_refusal(q.scope.as_deref().unwrap_or_default());
            s.audit(
                org,
                reason,
                peer,
                format!(
                    "client {:?} asked for {:?}: refused",
                    client.client_name,
                    q.scope.as_deref().unwrap_or_default()
                ),
            )
            .await;
            return Err(back(e));
        }
    };
    if let Err(e) = core::check_resource(q.resource.as_deref(), &s.config.resource) {
        s.audit(
            org,
            "oauth.resource_refused",
            peer,
            format!("client {:?}: {}", client.client_name, e.description),
        )
        .await;
        return Err(back(e));
    }
    Ok(Checked {
        client,
        redirect_uri,
        challenge,
        scopes,
    })
}

fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match reqwest::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            no_store(Redirect::to(u.as_str()).into_response())
        }
        Err(_) => error_page("the client's redirect URI is not a URL"),
    }
}

fn error_page(message: &str) -> Response {
    let mut r = page(
        "Sign-in refused",
        None,
        None,
        html! {
            p role="alert" { (message) }
            p { "Nothing was granted. Return to the application that sent you here." }
        },
    );
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

fn failed(s: &Server, f: Failed, state: Option<&str>) -> Response {
    match f {
        Failed::Page(m) => error_page(&m),
        Failed::Back { redirect_uri, error } => {
            let mut p = vec![
                ("error", error.error),
                ("error_description", error.description.as_str()),
                ("iss", s.issuer.as_str()),
            ];
            if let Some(st) = state {
                p.push(("state", st));
            }
            back_to(&redirect_uri, &p)
        }
    }
}

async fn authorize_page(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    Query(q): Query<AuthorizeRequest>,
) -> Response {
    // Attempts are limited per address, and nothing is checked, fetched
    // or redirected for a visitor without a session: they sign in first.
    // So an anonymous caller can neither make this server fetch client
    // metadata documents nor bounce a browser to a redirect URI that
    // anyone registered.
    if let Err(refused) = s.app.throttle(peer, "authorization").await {
        return refused.into_response();
    }
    let Some(session) = s.app.session(&headers).await else {
        return need_session(&uri.to_string());
    };
    let checked = match check(&s, &q, peer, &session.org).await {
        Ok(c) => c,
        Err(f) => return failed(&s, f, q.state.as_deref()),
    };
    let host = reqwest::Url::parse(&checked.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let name = if checked.client.client_name.is_empty() {
        "An unnamed client"
    } else {
        checked.client.client_name.as_str()
    };
    let form_action = form_action(&checked.redirect_uri);
    let hidden = |k: &'static str, v: Option<&str>| html! { @if let Some(v) = v { input type="hidden" name=(k) value=(v); } };
    let mut r = page(
        "Connect an MCP client",
        Some(&session.csrf),
        Some(&who(&session)),
        html! {
            p { strong { (name) } " asks to act for " strong { (session.org) } " as an agent, on your authority." }
            dl {
                dt { "Client" }
                dd {
                    @if checked.client.client_id.starts_with(core::DYNAMIC_PREFIX) {
                        "registered itself: its name is its own claim"
                    } @else {
                        "described at " code { (checked.client.client_id) }
                    }
                }
                dt { "Returns to" } dd { code { (host) } }
                dt { "Gateway" } dd { code { (s.config.resource) } }
            }
            form method="post" action="/oauth/authorize" {
                input type="hidden" name="csrf" value=(session.csrf);
                (hidden("response_type", q.response_type.as_deref()))
                (hidden("client_id", q.client_id.as_deref()))
                (hidden("redirect_uri", q.redirect_uri.as_deref()))
                (hidden("code_challenge", q.code_challenge.as_deref()))
                (hidden("code_challenge_method", q.code_challenge_method.as_deref()))
                (hidden("scope", q.scope.as_deref()))
                (hidden("state", q.state.as_deref()))
                (hidden("resource", q.resource.as_deref()))
                fieldset {
                    legend { "It may" }
                    @for (scope, what) in SCOPES {
                        @if checked.scopes.contains(*scope) {
                            @let field = if *scope == "mcp.read" { "grant_read" } else { "grant_draft" };
                            label { input type="checkbox" name=(field) value="on" checked; " " (what) " (" code { (scope) } ")" }
                            br;
                        }
                    }
                }
                p { "It can never approve or push a change: only a signed-in human does, with a passkey. You can revoke it at any time under Clients." }
                button type="submit" name="decision" value="allow" { "Allow" }
                " "
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    );
    // The answer redirects to the client: the page's form may go there.
    if let Ok(v) = HeaderValue::from_str(&crate::web::CSP.replace("form-action 'self'", &format!("form-action 'self' {form_action}"))) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The CSP source of a redirect URI: its origin, or its scheme for a
/// native app's private-use scheme.
fn form_action(redirect_uri: &str) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
struct Answer {
    csrf: String,
    decision: String,
    #[serde(default)]
    grant_read: Option<String>,
    #[serde(default)]
    grant_draft: Option<String>,
    #[serde(flatten)]
    request: AuthorizeRequest,
}

async fn authorize_answer(State(s): State<Arc<Server>>, headers: HeaderMap, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(a): Form<Answer>) -> Response {
    let session = match s.app.checked(&headers, peer, Some(&a.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let q = a.request;
    let checked = match check(&s, &q, peer, &session.org).await {
        Ok(c) => c,
        Err(f) => return failed(&s, f, q.state.as_deref()),
    };
    let state = q.state.as_deref();
    let mut params = vec![("iss", s.issuer.clone())];
    if let Some(st) = state {
        params.push(("state", st.to_string()));
    }
    let mut chosen = BTreeSet::new();
    if a.grant_read.is_some() {
        chosen.insert("mcp.read".to_string());
    }
    if a.grant_draft.is_some() {
        chosen.insert("mcp.draft".to_string());
    }
    let chosen: BTreeSet<String> = chosen.intersection(&checked.scopes).cloned().collect();
    if a.decision != "allow" || chosen.is_empty() {
        tracing::info!(org = %session.org, by = %session.approver_id, client = %checked.client.client_name, "an MCP client was denied");
        params.push(("error", "access_denied".into()));
        let why = if a.decision != "allow" {
            "the human denied the request"
        } else {
            "no scope was granted"
        };
        params.push(("error_description", why.into()));
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return back_to(&checked.redirect_uri, &p);
    }
    let code = core::random_secret("src_");
    let grant_id = format!("gr_{}", spend_credentials::random_hex(12).expect("the operating system's random source"));
    let code_expires_at = (Utc::now() + s.config.lifetimes.code).to_rfc3339_opts(SecondsFormat::Secs, true);
    let granted = ClientGranted {
        grant_id: grant_id.clone(),
        client_id: checked.client.client_id.clone(),
        client_name: checked.client.client_name.clone(),
        approver_id: session.approver_id.clone(),
        scopes: chosen.iter().cloned().collect(),
        resource: s.config.resource.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.challenge.clone(),
        code_sha256: core::sha256_hex(&code),
        code_expires_at,
    };
    let recorded = s
        .app
        .recorder
        .event(
            &session.org,
            Actor::human(&session.approver_id),
            "client",
            &grant_id,
            EventData::ClientGranted(granted),
        )
        .expect_seq(0)
        .record()
        .await;
    match recorded {
        Ok(r) => s.app.wait_for(r.seq).await,
        Err(e) => {
            tracing::error!(error = %e, "could not record an MCP client grant");
            return error_page("the grant could not be recorded: try again in a moment");
        }
    }
    tracing::info!(org = %session.org, by = %session.approver_id, grant_id, client = %checked.client.client_name, scopes = ?chosen, "an MCP client was granted access");
    params.push(("code", code));
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    back_to(&checked.redirect_uri, &p)
}

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

fn bad(error: &'static str, description: impl Into<String>) -> Response {
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    error_json(status, &OAuthError::new(error, description))
}

async fn token(State(s): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(t): Form<TokenRequest>) -> Response {
    if let Some(refused) = s
        .over_quota(&s.token_requests, peer, "oauth.rate_limited", "token requests", TOKEN_REQUESTS_PER_MINUTE)
        .await
    {
        return refused;
    }
    let Some(client_id) = t.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return bad("invalid_client", "client_id is required (clients are public and prove themselves with PKCE)");
    };
    match t.grant_type.as_deref() {
        Some("authorization_code") => redeem(&s, peer, client_id, &t).await,
        Some("refresh_token") => refresh(&s, peer, client_id, &t).await,
        Some(other) => bad(
            "unsupported_grant_type",
            format!("grant_type {other:?} is not offered: authorization_code or refresh_token"),
        ),
        None => bad("invalid_request", "grant_type is required"),
    }
}

async fn redeem(s: &Server, peer: SocketAddr, client_id: &str, t: &TokenRequest) -> Response {
    let (Some(code), Some(verifier)) = (t.code.as_deref(), t.code_verifier.as_deref()) else {
        return bad("invalid_request", "code and code_verifier are required");
    };
    let sha = core::sha256_hex(code);
    let mut grant = s.app.book.read().await.clients.by_code(&sha).cloned();
    if grant.is_none() {
        s.catch_up().await;
        grant = s.app.book.read().await.clients.by_code(&sha).cloned();
    }
    let Some(g) = grant else {
        s.audit("unknown", "oauth.code_refused", peer, "an unknown authorization code was presented".into())
            .await;
        return bad("invalid_grant", "unknown authorization code");
    };
    let org = g.org.clone();
    if g.granted.client_id != client_id {
        s.audit(
            &org,
            "oauth.code_refused",
            peer,
            format!("grant {}'s code was presented by another client", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "this code was issued to another client");
    }
    if g.revoked.is_some() {
        return bad("invalid_grant", "this grant was revoked");
    }
    if g.generation > 0 {
        revoke_grant(s, &org, &g.granted.grant_id, "its authorization code was presented a second time").await;
        s.audit(
            &org,
            "oauth.code_reused",
            peer,
            format!("grant {}'s authorization code was used twice: the grant is revoked", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "this code was used already; the tokens issued for it are revoked");
    }
    if g.code_expired(Utc::now()) {
        return bad("invalid_grant", "this code expired: authorize again");
    }
    if t.redirect_uri.as_deref() != Some(g.granted.redirect_uri.as_str()) {
        s.audit(
            &org,
            "oauth.code_refused",
            peer,
            format!("grant {}'s code was presented with another redirect URI", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "redirect_uri does not match the authorization request's");
    }
    if !core::verifier_matches(verifier, &g.granted.code_challenge) {
        s.audit(
            &org,
            "oauth.pkce_refused",
            peer,
            format!("grant {}'s code was presented with a code_verifier that does not match", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "the code_verifier does not match the code_challenge");
    }
    if let Err(e) = core::check_resource(t.resource.as_deref(), &g.granted.resource) {
        s.audit(&org, "oauth.resource_refused", peer, format!("grant {}: {}", g.granted.grant_id, e.description))
            .await;
        return error_json(StatusCode::BAD_REQUEST, &e);
    }
    let scopes: BTreeSet<String> = g.granted.scopes.iter().cloned().collect();
    issue(s, &g, 1, &scopes).await
}

async fn refresh(s: &Server, peer: SocketAddr, client_id: &str, t: &TokenRequest) -> Response {
    let Some(presented) = t.refresh_token.as_deref() else {
        return bad("invalid_request", "refresh_token is required");
    };
    let sha = core::sha256_hex(presented);
    let what = s.app.book.read().await.clients.by_refresh(&sha);
    let (org, grant_id, spent) = match what {
        Some(grants::Presented::Current(o, g)) => (o, g, false),
        Some(grants::Presented::Spent(o, g)) => (o, g, true),
        None => {
            s.audit("unknown", "oauth.refresh_refused", peer, "an unknown refresh token was presented".into())
                .await;
            return bad("invalid_grant", "unknown refresh token");
        }
    };
    let Some(g) = s.app.book.read().await.clients.get(&org, &grant_id).cloned() else {
        return bad("invalid_grant", "unknown refresh token");
    };
    if g.granted.client_id != client_id {
        s.audit(
            &org,
            "oauth.refresh_refused",
            peer,
            format!("grant {grant_id}'s refresh token was presented by another client"),
        )
        .await;
        return bad("invalid_grant", "this refresh token was issued to another client");
    }
    if g.revoked.is_some() {
        return bad("invalid_grant", "this grant was revoked");
    }
    // A grant lives no longer than its grantor's place among the approvers.
    let grantor_stands = s
        .app
        .book
        .read()
        .await
        .versions
        .approvers
        .approver(&org, &g.granted.approver_id)
        .is_some_and(|a| a.removed_at.is_none());
    if !grantor_stands {
        revoke_grant(s, &org, &grant_id, "the approver who granted it is no longer an approver").await;
        s.audit(
            &org,
            "oauth.grantor_removed",
            peer,
            format!(
                "grant {grant_id}'s approver {} is no longer an approver: refreshed no more, revoked",
                g.granted.approver_id
            ),
        )
        .await;
        return bad("invalid_grant", "the approver who granted this is no longer an approver; the grant is revoked");
    }
    if spent {
        revoke_grant(s, &org, &grant_id, "a rotated refresh token was presented again").await;
        s.audit(
            &org,
            "oauth.refresh_reused",
            peer,
            format!("grant {grant_id}'s spent refresh token was presented again: the grant is revoked"),
        )
        .await;
        return bad("invalid_grant", "this refresh token was used already; the grant is revoked");
    }
    if g.refresh_expires_at.is_none_or(|t| Utc::now() >= t) {
        return bad("invalid_grant", "this refresh token expired: authorize again");
    }
    let granted: BTreeSet<String> = g.granted.scopes.iter().cloned().collect();
    let scopes = match t.scope.as_deref() {
        None => granted,
        Some(asked) => match core::requested_scopes(Some(asked)) {
            Ok(a) if a.is_subset(&granted) => a,
            Ok(_) => return bad("invalid_scope", "a refresh can only narrow the scopes granted"),
            Err(e) => {
                let reason = core::scope_refusal(asked);
                s.audit(&org, reason, peer, format!("grant {grant_id}'s client asked for {asked:?} on refresh: refused"))
                    .await;
                return error_json(StatusCode::BAD_REQUEST, &e);
            }
        },
    };
    if let Err(e) = core::check_resource(t.resource.as_deref(), &g.granted.resource) {
        s.audit(&org, "oauth.resource_refused", peer, format!("grant {grant_id}: {}", e.description))
            .await;
        return error_json(StatusCode::BAD_REQUEST, &e);
    }
    issue(s, &g, g.generation + 1, &scopes).await
}

/// Signs an access token and records the next refresh token's hash,
/// expecting the grant's last sequence: if another request spent the code
/// or the refresh token first, this one gets nothing.
async fn issue(s: &Server, g: &grants::Grant, generation: u32, scopes: &BTreeSet<String>) -> Response {
    let now = Utc::now();
    let access_expires = now + s.config.lifetimes.access;
    let refresh_expires = now + s.config.lifetimes.refresh;
    let scope = scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let claims = jwt::AccessClaims {
        iss: s.issuer.clone(),
        aud: g.granted.resource.clone(),
        sub: g.granted.approver_id.clone(),
        client_id: g.granted.client_id.clone(),
        org: g.org.clone(),
        scope: scope.clone(),
        grant_id: g.granted.grant_id.clone(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        exp: access_expires.timestamp(),
        jti: spend_credentials::random_hex(12).expect("the operating system's random source"),
    };
    let access = match jwt::sign(s.config.signer.as_ref(), &s.kid, &claims).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not sign an access token");
            return error_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &OAuthError::new("temporarily_unavailable", "the token signing key is unavailable: try again"),
            );
        }
    };
    let refresh = core::random_secret("srt_");
    let issued = ClientTokensIssued {
        grant_id: g.granted.grant_id.clone(),
        generation,
        refresh_sha256: core::sha256_hex(&refresh),
        refresh_expires_at: refresh_expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        access_expires_at: access_expires.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let recorded = s
        .app
        .recorder
        .event(
            &g.org,
            Actor::service("approval"),
            "client",
            &g.granted.grant_id,
            EventData::ClientTokensIssued(issued),
        )
        .expect_seq(g.last_seq)
        .record()
        .await;
    match recorded {
        Ok(r) => s.app.wait_for(r.seq).await,
        Err(LogError::WrongLastSequence { .. }) => {
            return bad("invalid_grant", "this code or refresh token was just used by another request");
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record issued tokens");
            return error_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &OAuthError::new("temporarily_unavailable", "the event log is unavailable: try again"),
            );
        }
    }
    no_store(
        Json(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": s.config.lifetimes.access.as_secs(),
            "refresh_token": refresh,
            "scope": scope,
        }))
        .into_response(),
    )
}

/// Records a grant's revocation (once it is revoked, again is harmless).
async fn revoke_grant(s: &Server, org: &str, grant_id: &str, reason: &str) -> bool {
    revoke_recorded(&s.app, org, grant_id, reason).await
}

/// Records the revocation of an MCP client's grant (`spend.client.revoked.v1`).
pub(crate) async fn revoke_recorded(app: &crate::web::App, org: &str, grant_id: &str, reason: &str) -> bool {
    let r = app
        .recorder
        .event(
            org,
            Actor::service("approval"),
            "client",
            grant_id,
            EventData::ClientRevoked(ClientRevoked {
                grant_id: grant_id.to_string(),
                reason: reason.to_string(),
            }),
        )
        .record()
        .await;
    match r {
        Ok(r) => {
            app.wait_for(r.seq).await;
            tracing::info!(org, grant_id, reason, "an MCP client grant was revoked");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, org, grant_id, "could not record a grant's revocation");
            false
        }
    }
}

#[derive(Deserialize)]
struct RevokeRequest {
    token: Option<String>,
    client_id: Option<String>,
    // `token_type_hint` is not read: the token's own shape says what it is.
}

/// RFC 7009: revokes the grant a refresh or access token belongs to. An
/// unknown token is answered 200 as the RFC asks (nothing to revoke).
async fn revoke(State(s): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(r): Form<RevokeRequest>) -> Response {
    if let Some(refused) = s
        .over_quota(&s.token_requests, peer, "oauth.rate_limited", "token requests", TOKEN_REQUESTS_PER_MINUTE)
        .await
    {
        return refused;
    }
    let Some(token) = r.token.as_deref().filter(|t| !t.is_empty()) else {
        return bad("invalid_request", "token is required");
    };
    let found = if token.starts_with("srt_") {
        match s.app.book.read().await.clients.by_refresh(&core::sha256_hex(token)) {
            Some(grants::Presented::Current(o, g) | grants::Presented::Spent(o, g)) => Some((o, g)),
            None => None,
        }
    } else {
        jwt::verify(&s.spki, token).and_then(|c| Some((c["org"].as_str()?.to_string(), c["grant_id"].as_str()?.to_string())))
    };
    let Some((org, grant_id)) = found else {
        return no_store(StatusCode::OK.into_response());
    };
    let owner = s
        .app
        .book
        .read()
        .await
        .clients
        .get(&org, &grant_id)
        .map(|g| (g.granted.client_id.clone(), g.revoked.is_some()));
    let Some((client_id, already)) = owner else {
        return no_store(StatusCode::OK.into_response());
    };
    if r.client_id.as_deref().is_some_and(|c| c != client_id) {
        return bad("invalid_client", "this token was issued to another client");
    }
    if !already && !revoke_grant(&s, &org, &grant_id, "revoked by the client").await {
        return error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &OAuthError::new("temporarily_unavailable", "the event log is unavailable: try again"),
        );
    }
    no_store(StatusCode::OK.into_response())
}

async fn clients_page(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let Some(session) = s.app.session(&headers).await else {
        return need_session("/clients");
    };
    let book = s.app.book.read().await;
    let grants = book.clients.of_org(&session.org);
    let admin = session.role.as_str() == "admin";
    page(
        "Connected clients",
        Some(&session.csrf),
        Some(&who(&session)),
        html! {
            p { "MCP clients a human of " strong { (session.org) } " connected with their sign-in. Each acts as an agent: it reads and drafts, never approves. Revoking one stops it at every gateway within a second." }
            @if grants.is_empty() {
                p { "No client is connected." }
            } @else {
                table {
                    thead { tr { th { "Client" } th { "Granted by" } th { "Scopes" } th { "Since" } th { "Last token" } th { "Action" } } }
                    tbody {
                        @for g in &grants {
                            tr {
                                td { (if g.granted.client_name.is_empty() { "(unnamed)" } else { g.granted.client_name.as_str() }) }
                                td { (g.granted.approver_id) }
                                td { (g.granted.scopes.join(", ")) }
                                td { (g.granted_at.to_rfc3339_opts(SecondsFormat::Secs, true)) }
                                td { (g.refreshed_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "not redeemed".into())) }
                                td {
                                    @if admin || g.granted.approver_id == session.approver_id {
                                        form.inline method="post" action={"/clients/" (g.granted.grant_id) "/revoke"} {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" aria-label={"Revoke " (g.granted.client_name)} { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if admin {
                    form method="post" action="/clients/revoke-all" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Revoke every client" }
                    }
                }
            }
        },
    )
}

async fn clients_revoke(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(grant_id): Path<String>,
    Form(f): Form<crate::web::CsrfForm>,
) -> Response {
    let session = match s.app.checked(&headers, peer, Some(&f.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let grant = s.app.book.read().await.clients.get(&session.org, &grant_id).cloned();
    let Some(g) = grant.filter(|g| g.revoked.is_none()) else {
        return Redirect::to("/clients").into_response();
    };
    if session.role.as_str() != "admin" && g.granted.approver_id != session.approver_id {
        s.audit(
            &session.org,
            "oauth.revoke_refused",
            peer,
            format!("{} tried to revoke {}'s grant {grant_id}", session.approver_id, g.granted.approver_id),
        )
        .await;
        return error_page("only an admin or the human who granted it can revoke this client");
    }
    revoke_grant(
        &s,
        &session.org,
        &grant_id,
        &format!("revoked by {} on the connected clients page", session.approver_id),
    )
    .await;
    Redirect::to("/clients").into_response()
}

async fn clients_revoke_all(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<crate::web::CsrfForm>,
) -> Response {
    let session = match s.app.checked(&headers, peer, Some(&f.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if session.role.as_str() != "admin" {
        return error_page("only an admin can revoke every client");
    }
    let ids: Vec<String> = s
        .app
        .book
        .read()
        .await
        .clients
        .of_org(&session.org)
        .iter()
        .map(|g| g.granted.grant_id.clone())
        .collect();
    for id in ids {
        revoke_grant(&s, &session.org, &id, &format!("every client revoked by {}", session.approver_id)).await;
    }
    Redirect::to("/clients").into_response()
}
