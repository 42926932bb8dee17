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
//!
//! It is a service of its own, served on the approval app's origin and
//! run in its process (it writes with the approval service's authority),
//! but it knows the app only through [`spend_pages::SignedIn`] — who is
//! signed in, a POST checked, attempts limited, an approver standing —
//! and keeps its own fold of the log ([`grants::Book`]): a grant lives no
//! longer than its grantor's place among the approvers, so the grants of
//! a removed approver are revoked here.
//!
//! - [`authorize`]: the consent page and the grant;
//! - [`token`]: codes and refresh tokens redeemed, access tokens signed;
//! - [`clients`]: revocation (RFC 7009) and the Clients page;
//! - [`core`], [`cimd`], [`jwt`]: the pure rules, client metadata
//!   documents, access tokens.

mod authorize;
pub mod cimd;
mod clients;
pub mod core;
pub mod grants;
pub mod jwt;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use spend_core::Actor;
use spend_core::alert_gate::AlertGate;
use spend_core::events::{ClientRevoked, EventData, SecurityAlert};
use spend_eventlog::{EventLog, Recorder};
use spend_pages::SignedIn;
use spend_signer::Signer;
use tokio::sync::{RwLock, watch};

use self::core::{Client, Metadata, OAuthError, SCOPES};

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
pub(crate) const TOKEN_REQUESTS_PER_MINUTE: u32 = 120;
/// How often grants of removed approvers are revoked, and counted alerts
/// of ended windows recorded.
const TICK: Duration = Duration::from_millis(250);

pub struct Server {
    /// The humans signed in on the approval app.
    humans: Arc<dyn SignedIn>,
    /// Appends with the approval service's authority (`client.<id>`).
    recorder: Recorder,
    book: RwLock<grants::Book>,
    /// Floods of refusals counted into a few alerts per window.
    alerts: AlertGate,
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
    /// The server for humans signed in through `humans`, at `issuer` (the
    /// approval app's origin), recording with `recorder`.
    pub async fn new(humans: Arc<dyn SignedIn>, issuer: &str, recorder: Recorder, config: OAuthConfig) -> anyhow::Result<Arc<Self>> {
        let spki = config
            .signer
            .public_key_der()
            .await
            .map_err(|e| anyhow::anyhow!("the access-token signing key: {e}"))?;
        jwt::jwk(&spki)?;
        Ok(Arc::new(Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            kid: jwt::kid_of(&spki),
            spki,
            fetcher: cimd::Fetcher::new(config.allow_private_metadata),
            registrations: per_minute(REGISTRATIONS_PER_MINUTE),
            token_requests: per_minute(TOKEN_REQUESTS_PER_MINUTE),
            humans,
            recorder,
            book: RwLock::new(grants::Book::default()),
            alerts: AlertGate::default(),
            config,
        }))
    }

    /// Follows the log into the server's book, revokes the grants of
    /// removed approvers and records counted alerts, until `stop`; then
    /// records every alert still counted.
    pub async fn run(self: Arc<Self>, log: Arc<dyn EventLog>, stop: watch::Receiver<bool>) {
        let prefix = self.recorder.prefix().to_string();
        let me = self.clone();
        let follower = tokio::spawn(spend_eventlog::follow_until(log.clone(), 1, stop.clone(), move |m| {
            let (me, prefix) = (me.clone(), prefix.clone());
            async move { me.book.write().await.apply(&prefix, &m) }
        }));
        self.tick_until(log, stop).await;
        let _ = follower.await;
        self.flush_alerts(true).await;
    }

    /// [`Server::run`] as a task the approval app runs beside its own
    /// (`Application::with_companion`).
    pub fn runner(self: &Arc<Self>, log: Arc<dyn EventLog>) -> impl FnOnce(watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send + 'static {
        let me = self.clone();
        move |stop| Box::pin(me.run(log, stop))
    }

    async fn tick_until(&self, log: Arc<dyn EventLog>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        // Grants another replica revoked already, asked once.
        let mut settled: spend_core::bounded::FifoMap<(String, String), ()> = spend_core::bounded::FifoMap::new(100_000);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
            self.flush_alerts(false).await;
            let Ok(info) = log.info().await else { continue };
            let orphaned = {
                let book = self.book.read().await;
                if book.seq < info.last_seq {
                    continue;
                }
                book.orphaned().to_vec()
            };
            for (org, grant_id) in orphaned {
                let key = (org.clone(), grant_id.clone());
                if settled.contains_key(&key) {
                    continue;
                }
                if self.revoke_recorded(&org, &grant_id, "the approver who granted it was removed").await {
                    settled.insert_new(key, ());
                }
            }
        }
    }

    async fn flush_alerts(&self, all: bool) {
        let repeats = if all { self.alerts.drain() } else { self.alerts.due() };
        for r in repeats {
            if let Err(e) = self.recorder.alert(&r.org, r.alert()).record().await {
                tracing::error!(error = %e, "could not record aggregated security alerts");
            }
        }
    }

    /// Waits (briefly) until the book has applied the log up to `seq`, so
    /// the next answer knows what was just recorded.
    async fn wait_for(&self, seq: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.book.read().await.seq < seq && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records the revocation of a grant (`spend.client.revoked.v1`;
    /// revoking one already revoked is harmless).
    pub(crate) async fn revoke_recorded(&self, org: &str, grant_id: &str, reason: &str) -> bool {
        let r = self
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
                self.wait_for(r.seq).await;
                tracing::info!(org, grant_id, reason, "an MCP client grant was revoked");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, org, grant_id, "could not record a grant's revocation");
                false
            }
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A refusal the audit must show: one alert per window and kind (a
    /// flood of bad requests is counted, not recorded one by one).
    async fn audit(&self, org: &str, reason: &str, peer: SocketAddr, detail: String) {
        let address = peer.ip().to_string();
        if self.alerts.admit_kind(org, None, Some(&address), reason, reason).is_some() {
            let alert = SecurityAlert {
                reason: reason.into(),
                key_id: None,
                address: Some(address),
                detail,
            };
            if let Err(e) = self.recorder.alert(org, alert).record().await {
                tracing::error!(error = %e, org, reason, "could not record a security alert");
            }
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
        if let Ok(info) = self.recorder.log().info().await {
            self.wait_for(info.last_seq).await;
        }
    }
}

/// MCP sign-in, ready for its host app to serve and run: [`Server::new`]
/// recording with the approval service's authority on `log`.
pub struct Mounted {
    pub server: Arc<Server>,
    /// The human's pages (consent, Clients), for behind the app's gate.
    pub pages: Router,
    /// A client's own calls, outside it.
    pub public: Router,
}

impl Mounted {
    /// The server's follower, for the host to run until it stops.
    pub fn runner(&self, log: Arc<dyn EventLog>) -> impl FnOnce(watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send + 'static {
        self.server.runner(log)
    }
}

/// Builds MCP sign-in for the humans of `humans`, at `issuer`.
pub async fn mount(humans: Arc<dyn SignedIn>, issuer: &str, log: Arc<dyn EventLog>, prefix: &str, config: OAuthConfig) -> anyhow::Result<Mounted> {
    let recorder = Recorder::new(log, prefix, spend_core::authority::Writer::Approval);
    let server = Server::new(humans, issuer, recorder, config).await?;
    Ok(Mounted {
        pages: pages(server.clone()),
        public: public_router(server.clone()),
        server,
    })
}

/// Routes a client calls without a human: metadata, registration, tokens,
/// revocation, keys. They sit outside the human-only gate (a client may
/// send its own `Authorization` header), and answer OAuth's JSON errors.
pub fn public_router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/jwks.json", get(jwks))
        .route("/oauth/register", post(register))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(clients::revoke))
        .layer(axum::middleware::from_fn(spend_pages::security_headers))
        .with_state(server)
}

/// Pages a human uses: consent, and the connected clients.
pub fn pages(server: Arc<Server>) -> Router {
    Router::new()
        .route("/oauth/authorize", get(authorize::authorize_page).post(authorize::authorize_answer))
        .route("/clients", get(clients::clients_page))
        .route("/clients/{grant_id}/revoke", post(clients::clients_revoke))
        .route("/clients/revoke-all", post(clients::clients_revoke_all))
        .layer(axum::middleware::from_fn(spend_pages::security_headers))
        .with_state(server)
}

pub(crate) fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub(crate) fn error_json(status: StatusCode, e: &OAuthError) -> Response {
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
