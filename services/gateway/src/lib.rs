//! The agents' gateway: the only surface an AI agent can reach. Agents
//! read and draft; nothing here approves, applies or pushes.
//!
//! One HTTP listener serves both protocols (HTTP/1.1 and HTTP/2 cleartext):
//! - MCP over Streamable HTTP at `/mcp` ([`mcp`]);
//! - gRPC `spendsignoff.v1.AgentGateway` ([`grpc`]) with gRPC health and
//!   reflection;
//! - `/healthz` and the OAuth protected-resource metadata ([`oauth`]),
//!   unauthenticated.
//!
//! Both protocols are adapters over one set of operations ([`ops`]),
//! behind one guard ([`security`]: API keys, client address, IP allowlist,
//! per-key rate limit, size limit, signed requests). Every refusal is a
//! `spend.security.alert.v1` event on the gateway's own security subject.
//! Reads go to the executor's connectors
//! ([`spend_platform::Reads`]). A draft is recorded here and
//! decided by the policy service ([`spend_policy::decide::Decide`]): the
//! gateway's NATS user cannot write a decision or a commitment. Each
//! replica keeps a [`view`] of the event log (API keys, drafts, audit
//! trail, breakers, approved SPEND.md versions).
#![forbid(unsafe_code)]

pub mod breaker;
use spend_credentials as credentials;
pub mod grpc;
pub mod mcp;
pub mod oauth;
pub mod ops;
pub mod security;
pub mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use spend_core::authority::Writer;
use spend_core::events::{EventData, SecurityAlert};
use spend_eventlog::{EventLog, LogError, Recorder};
use spend_platform::Reads;
use spend_policy::decide::Decide;
use spend_policy::spendmd::SpendMd;
use tokio::sync::{RwLock, watch};

use crate::breaker::{BreakerConfig, Breakers};
use crate::credentials::{AgentScope, KeyStore};
use crate::ops::OpError;
use crate::view::{Applied, View};

/// Who is calling: set by the guard.
#[derive(Debug, Clone)]
pub struct Identity {
    pub key_id: String,
    pub org: String,
    pub scopes: Vec<AgentScope>,
    /// The client's address as the guard determined it.
    pub address: String,
}

/// Gateway settings (`[gateway]` / `SPEND__GATEWAY__…`).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTP listen address (MCP at `/mcp`, gRPC on the same port).
    pub listen: String,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub breaker: BreakerConfig,
    /// This gateway's public MCP URL, for OAuth protected-resource
    /// metadata (e.g. `https://spend.example.com/mcp`).
    pub resource_url: Option<String>,
    /// The OAuth authorization servers that issue tokens for this resource.
    pub authorization_servers: Vec<String>,
    /// Access-token validation; `None` accepts API keys only.
    pub oauth: Option<oauth::OAuthConfig>,
    /// The relying party approval passkeys are made on: approvals and
    /// policy versions count only with proofs made there (from
    /// configuration, never from an event).
    pub passkey: spend_draft::proof::RelyingParty,
    /// Host names (or `host:port`) MCP answers besides loopback and the
    /// resource URL's host: the names agents reach this gateway by (an
    /// in-cluster service name, say). Any other `Host` is refused with 403
    /// (DNS rebinding); `*` accepts every host name.
    pub allowed_hosts: Vec<String>,
}

impl GatewayConfig {
    /// The `Host` values MCP accepts; empty accepts every host name.
    pub fn mcp_hosts(&self) -> Vec<String> {
        if self.allowed_hosts.iter().any(|h| h == "*") {
            return vec![];
        }
        let resource_host = self
            .resource_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()));
        let mut hosts: Vec<String> = vec![];
        for h in ["localhost", "127.0.0.1", "::1"]
            .map(String::from)
            .into_iter()
            .chain(resource_host)
            .chain(self.allowed_hosts.iter().cloned())
        {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        hosts
    }

    pub fn new(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            trusted_proxies: vec![],
            breaker: BreakerConfig::default(),
            resource_url: None,
            authorization_servers: vec![],
            oauth: None,
            passkey: spend_draft::proof::RelyingParty::default_app(),
            allowed_hosts: vec![],
        }
    }
}

/// What every request handler shares.
pub struct GatewayState {
    pub log: Arc<dyn EventLog>,
    /// The event stream's subject prefix.
    pub prefix: String,
    pub config: GatewayConfig,
    /// The SPEND.md the gateway started with, used for an organisation
    /// until a human approves a version of its own.
    bootstrap: Arc<SpendMd>,
    /// Whether that file counts as human-approved (a standing mandate for
    /// `auto_approve_under`).
    bootstrap_approved: bool,
    /// Records the gateway's events (drafts, reads, nonces, breaker trips,
    /// its alerts).
    pub recorder: Recorder,
    /// The policy service: it decides every draft recorded here.
    pub decider: Arc<dyn Decide>,
    pub reads: Arc<dyn Reads>,
    /// Each organisation's connected account ids and when they were read
    /// (see `ops::account_exists`).
    accounts: tokio::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Vec<String>)>>,
    /// Merchant categories from the platform's merchant data, by domain,
    /// with when they were read (see `ops::merchant_category`).
    merchants: tokio::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<spend_platform::Merchant>)>>,
    pub keys: RwLock<KeyStore>,
    pub view: RwLock<View>,
    /// The last log sequence the view applied.
    seen: watch::Sender<u64>,
    pub rate: security::RateLimiter,
    /// Aggregates floods of the same refusal into counted alerts.
    pub alerts: security::AlertGate,
    pub breakers: Breakers,
}

impl GatewayState {
    fn new(
        log: Arc<dyn EventLog>,
        prefix: impl Into<String>,
        policy: SpendMd,
        policy_approved_by_human: bool,
        reads: Arc<dyn Reads>,
        decider: Arc<dyn Decide>,
        config: GatewayConfig,
    ) -> Self {
        let prefix = prefix.into();
        let bootstrap = Arc::new(policy);
        let view = View::new(config.passkey.clone(), Some(bootstrap.clone()));
        Self {
            recorder: Recorder::new(log.clone(), prefix.clone(), Writer::Gateway),
            decider,
            log,
            prefix,
            config,
            bootstrap,
            bootstrap_approved: policy_approved_by_human,
            reads,
            accounts: tokio::sync::Mutex::default(),
            merchants: tokio::sync::Mutex::default(),
            keys: RwLock::new(KeyStore::default()),
            view: RwLock::new(view),
            seen: watch::channel(0).0,
            rate: security::RateLimiter::default(),
            alerts: security::AlertGate::default(),
            breakers: Breakers::default(),
        }
    }

    pub fn bootstrap_policy(&self) -> (Arc<SpendMd>, bool) {
        (self.bootstrap.clone(), self.bootstrap_approved)
    }

    /// The SPEND.md in force for `org` and whether a human approved it:
    /// the last version a human approved (proposed as
    /// `spend.policy.proposed.v1`), else the bootstrap file.
    pub async fn active_policy(&self, org: &str) -> (Arc<SpendMd>, bool) {
        match self.view.read().await.versions.active(org) {
            Some(a) => (a.policy.clone(), true),
            None => self.bootstrap_policy(),
        }
    }

    /// Waits until the view has applied everything on the log as of now,
    /// so that a caller reads its own writes.
    pub async fn caught_up(&self) -> Result<(), OpError> {
        let target = self.log.info().await?.last_seq;
        let mut rx = self.seen.subscribe();
        match tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s >= target)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(OpError::Unavailable(format!(
                "the gateway's view of the event log is behind (at {}, log at {target})",
                *self.seen.borrow()
            ))),
        }
    }

    /// Refuses (and audits) an operation the caller's scopes do not allow.
    pub async fn require(&self, who: &Identity, scope: AgentScope, operation: &str) -> Result<(), String> {
        // An operator's kill switch: no reads or drafts until resumed.
        let paused = self.view.read().await.paused(&who.org).map(str::to_string);
        if let Some(reason) = paused {
            let detail = format!(
                "{operation} refused: organisation {}'s agents are paused ({reason}); no reads or drafts until resumed",
                who.org
            );
            self.alert(Some(&who.org), Some(&who.key_id), Some(&who.address), "agents.paused", &detail)
                .await;
            return Err(format!("refused: {detail}"));
        }
        if who.scopes.contains(&scope) {
            return Ok(());
        }
        let detail = format!(
            "{operation} needs {scope}; key {} has {:?}",
            who.key_id,
            who.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>()
        );
        self.alert(Some(&who.org), Some(&who.key_id), Some(&who.address), "scope.denied", &detail).await;
        Err(format!("refused: {detail}"))
    }

    /// Appends a `spend.security.alert.v1` on the gateway's security
    /// subject of `org` (the key's own organisation); never carries a
    /// secret. Floods are aggregated ([`security::AlertGate`]).
    pub async fn alert(&self, org: Option<&str>, key_id: Option<&str>, address: Option<&str>, reason: &str, detail: &str) {
        let org = org.unwrap_or("unknown");
        if self.alerts.admit(org, key_id, address, reason).is_none() {
            return;
        }
        let alert = SecurityAlert {
            reason: reason.into(),
            key_id: key_id.map(Into::into),
            address: address.map(Into::into),
            detail: detail.into(),
        };
        match self.recorder.alert(org, alert).record().await {
            Ok(_) => tracing::warn!(reason, key_id = key_id.unwrap_or("-"), address = address.unwrap_or("-"), "security alert"),
            Err(e) => tracing::error!(error = %e, reason, "could not record a security alert"),
        }
    }

    /// Records the repeats counted in alert windows that have ended.
    pub async fn flush_alerts(&self) {
        self.record_repeats(self.alerts.due()).await;
    }

    /// Records every counted repeat, ended window or not (at shutdown).
    pub async fn drain_alerts(&self) {
        self.record_repeats(self.alerts.drain()).await;
    }

    async fn record_repeats(&self, repeats: Vec<security::Repeats>) {
        for r in repeats {
            if let Err(e) = self.recorder.alert(&r.org, r.alert()).record().await {
                tracing::error!(error = %e, reason = %r.reason, "could not record aggregated security alerts");
            }
        }
    }

    /// An alert recorded once however many replicas (or replays) see its
    /// cause: on its own subject id, appended only while that is empty.
    async fn alert_once(&self, org: &str, id: &str, reason: &str, detail: &str) {
        let alert = SecurityAlert {
            reason: reason.into(),
            key_id: None,
            address: None,
            detail: detail.into(),
        };
        match self.recorder.alert(org, alert).on_id(id).expect_seq(0).record().await {
            Ok(_) => tracing::warn!(reason, "security alert"),
            Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(error = %e, reason, "could not record a security alert"),
        }
    }
}

/// Follows the whole log into the view and the key store (resuming after
/// the last event applied if the subscription fails, so a replica never
/// silently stops learning of revocations).
async fn follow(state: Arc<GatewayState>, stop: watch::Receiver<bool>) {
    let log = state.log.clone();
    spend_eventlog::follow_until(log, 1, stop, |m| {
        let state = state.clone();
        async move { apply(&state, &m).await }
    })
    .await;
}

async fn apply(state: &GatewayState, m: &spend_eventlog::StoredMessage) {
    let applied = state.view.write().await.apply(&state.prefix, m);
    match applied {
        // Keys are applied as every key reader applies them (the same
        // placement and organisation checks as the CLI and approval gate).
        Applied::Event(EventData::ApiKeyCreated(_) | EventData::ApiKeyRevoked(_)) => {
            if let Err(e) = state.keys.write().await.apply_message(&state.prefix, m) {
                tracing::warn!(seq = m.seq, error = %e, "ignoring an invalid API key event");
            }
        }
        // Every replica sees it; one alert per message.
        Applied::Audit { org, id, reason, detail } => state.alert_once(&org, &id, &reason, &detail).await,
        // The platform kept failing a push: breaker input, as failed reads
        // are (only failures recent enough to count, not a replay's).
        Applied::Event(EventData::ChangeFailed(f)) if platform_failure(&f.reason) && chrono::Utc::now() - m.time < chrono::Duration::minutes(5) => {
            if let Ok(env) = spend_core::RawEnvelope::parse(&m.payload) {
                let account = state.view.read().await.account_of(&env.org, &f.draft_id);
                if let Some(a) = account {
                    state.platform_error(&env.org, &a).await;
                }
            }
        }
        _ => {}
    }
    state.seen.send_replace(m.seq);
}

/// Whether a push failed because of the platform (its errors, its
/// silence), not because it was refused on purpose.
fn platform_failure(reason: &str) -> bool {
    reason.starts_with("gave up after") || reason.starts_with("the platform answered")
}

/// Requests that reach no route: an agent probing for an approve or push
/// method is refused and audited like any other overreach.
async fn unknown_route(state: Arc<GatewayState>, req: Request) -> Response {
    let who = req.extensions().get::<Identity>().cloned();
    let path = req.uri().path().to_string();
    let grpc = path.starts_with("/spendsignoff.") || path.starts_with("/grpc.");
    let detail = format!(
        "{} {path}: no such operation for agents (agents read and draft; only a signed-in human approves)",
        req.method()
    );
    if let Some(who) = &who {
        state
            .alert(Some(&who.org), Some(&who.key_id), Some(&who.address), "operation.unknown", &detail)
            .await;
    }
    if grpc {
        tonic::Status::unimplemented(detail).into_http()
    } else {
        axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_FOUND, detail))
    }
}

/// The MCP session DELETE: rmcp answers 202, which the official Python
/// SDK reports as "Session termination failed: 202" on every exit; the
/// session is ended, so answer 204 No Content, which it accepts.
async fn session_delete_status(req: Request, next: Next) -> Response {
    let delete = req.method() == axum::http::Method::DELETE;
    let mut resp = next.run(req).await;
    if delete && resp.status() == axum::http::StatusCode::ACCEPTED {
        *resp.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    resp
}

async fn request_log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    tracing::debug!(%method, path, status = resp.status().as_u16(), "request");
    resp
}

/// What the gateway is given besides its [`GatewayConfig`].
pub struct Deps {
    /// The event log, as the gateway's own NATS user.
    pub log: Arc<dyn EventLog>,
    /// The stream's subject prefix.
    pub prefix: String,
    /// The SPEND.md used for an organisation until a human approves a
    /// version of its own (its limits shape what the gateway refuses early).
    pub policy: SpendMd,
    /// Whether that file counts as human-approved.
    pub policy_approved_by_human: bool,
    /// Platform reads: the executor (over gRPC, or in-process in `spend dev`).
    pub reads: Arc<dyn Reads>,
    /// The policy service, which decides every draft recorded here.
    pub decider: Arc<dyn Decide>,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    state: Arc<GatewayState>,
}

impl Application {
    /// Binds `config.listen` and builds the shared state.
    pub async fn build(config: GatewayConfig, deps: Deps) -> anyhow::Result<Self> {
        let listen = config.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the gateway on {listen}: {e}"))?;
        let state = Arc::new(GatewayState::new(
            deps.log,
            deps.prefix,
            deps.policy,
            deps.policy_approved_by_human,
            deps.reads,
            deps.decider,
            config,
        ));
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The state every handler shares (tests and benches drive operations
    /// on it directly).
    pub fn state(&self) -> Arc<GatewayState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting,
    /// lets in-flight requests finish, records every counted alert, and
    /// stops the view's follower after the message in hand.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let follower = tokio::spawn(follow(self.state.clone(), stop_rx.clone()));
        let flusher_state = self.state.clone();
        let mut flusher_stop = stop_rx;
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => flusher_state.flush_alerts().await,
                    _ = async { let _ = flusher_stop.wait_for(|s| *s).await; } => return,
                }
            }
        });
        let ct = tokio_util::sync::CancellationToken::new();
        let state = self.state.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(mcp::SpendMcp::new(state.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default()
                .with_allowed_hosts(self.state.config.mcp_hosts())
                .with_cancellation_token(ct.child_token()),
        );
        let fallback_state = self.state.clone();
        // The gRPC router brings its own fallback; ours replaces it, so
        // that unknown methods are audited too.
        let agents = grpc::guarded(self.state.clone())?
            .nest(
                "/mcp",
                axum::Router::new()
                    .fallback_service(mcp)
                    .layer(axum::middleware::from_fn(session_delete_status)),
            )
            .fallback(move |req: Request| unknown_route(fallback_state.clone(), req))
            // Nobody reaches an agent operation without passing the guard.
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), security::guard));
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .merge(oauth::router(self.state.clone()))
            .merge(grpc::health().await)
            .merge(agents)
            .layer(axum::middleware::from_fn(request_log));
        tracing::info!(addr = %self.listener.local_addr()?, "gateway listening: MCP at /mcp, gRPC AgentGateway");
        let stop = ct.clone();
        // Small writes (SSE frames, gRPC trailers) must not wait on Nagle's
        // algorithm and the client's delayed ACK: that alone costs ~40 ms.
        use axum::serve::ListenerExt as _;
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                stop.cancel();
            })
            .await?;
        // Drained: in-flight requests have finished. Record the counted
        // repeats, then stop following.
        let _ = stop_tx.send(true);
        let _ = flusher.await;
        self.state.drain_alerts().await;
        let _ = follower.await;
        Ok(())
    }
}
