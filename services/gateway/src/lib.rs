//! The agents' gateway: the only surface an AI agent can reach. Built so
//! far: the MCP server over Streamable HTTP at `/mcp` ([`mcp`]) with
//! `propose_change` and `get_draft_status`, agent API keys and scopes
//! ([`credentials`]), and the audit of every refusal as a
//! `spend.security.alert.v1` event. The gRPC `AgentGateway`
//! (proto/spendsignoff/v1/gateway.proto), the read tools (served by the
//! executor's connectors), the IP allowlist, signed requests and rate
//! limits come next.
//!
//! Layers in front of the MCP service, outermost first: authentication
//! (an agent API key as `Authorization: Bearer`; refused with 401 and
//! audited), then rmcp's Host check and session handling.
#![forbid(unsafe_code)]

pub mod credentials;
pub mod mcp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use spend_core::events::{EventData, SecurityAlert};
use spend_core::{Actor, Envelope};
use spend_eventlog::{Append, EventLog, StartAt};
use spend_policy::service::PolicyService;
use spend_policy::spendmd::SpendMd;
use tokio::sync::RwLock;

use crate::credentials::{AgentScope, KeyStore};

/// Who is calling: set by the authentication layer.
#[derive(Debug, Clone)]
pub struct Identity {
    pub key_id: String,
    pub org: String,
    pub scopes: Vec<AgentScope>,
    pub address: String,
}

/// What every request handler shares.
pub struct GatewayState {
    pub log: Arc<dyn EventLog>,
    /// The event stream's subject prefix.
    pub prefix: String,
    /// The organisation's SPEND.md in force.
    pub policy: SpendMd,
    /// Whether that version was approved by a human (a standing mandate
    /// for `auto_approve_under`).
    pub policy_approved_by_human: bool,
    pub policy_service: PolicyService,
    pub keys: RwLock<KeyStore>,
}

impl GatewayState {
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>, policy: SpendMd, policy_approved_by_human: bool) -> Self {
        let prefix = prefix.into();
        Self {
            policy_service: PolicyService::new(log.clone(), prefix.clone()),
            log,
            prefix,
            policy,
            policy_approved_by_human,
            keys: RwLock::new(KeyStore::default()),
        }
    }

    /// Refuses (and audits) an operation the caller's scopes do not allow.
    pub async fn require(&self, who: &Identity, scope: AgentScope, operation: &str) -> Result<(), String> {
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

    /// Appends a `spend.security.alert.v1`; never carries a secret.
    pub async fn alert(&self, org: Option<&str>, key_id: Option<&str>, address: Option<&str>, reason: &str, detail: &str) {
        let org = org.unwrap_or("unknown");
        let subject_id = key_id.unwrap_or("anonymous");
        let Ok(subject) = spend_core::subject::aggregate_subject(&self.prefix, org, "security", subject_id) else {
            return;
        };
        let env = Envelope::new(
            "spendsignoff/gateway",
            org,
            Actor::service("gateway"),
            spend_core::subject::envelope_subject("security", subject_id),
            EventData::SecurityAlert(SecurityAlert {
                reason: reason.into(),
                key_id: key_id.map(Into::into),
                address: address.map(Into::into),
                detail: detail.into(),
            }),
        );
        tracing::warn!(reason, key_id = key_id.unwrap_or("-"), address = address.unwrap_or("-"), "security alert");
        if let Err(e) = self.log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await {
            tracing::error!(error = %e, "could not record a security alert");
        }
    }
}

/// Authentication: a valid, unrevoked agent key, or 401 (audited).
async fn authenticate(State(state): State<Arc<GatewayState>>, ConnectInfo(addr): ConnectInfo<SocketAddr>, mut req: Request, next: Next) -> Response {
    let address = addr.ip().to_string();
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let Some(secret) = secret else {
        state
            .alert(None, None, Some(&address), "apikey.missing", "request without an Authorization: Bearer API key")
            .await;
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "an agent API key is required (Authorization: Bearer ssk_…)",
        )
            .into_response();
    };
    let rotation = state.policy.security.api_key_rotation_days;
    let result = state
        .keys
        .read()
        .await
        .authenticate(&secret, rotation, chrono::Utc::now())
        .map(|k| (k.key_id.clone(), k.org.clone(), k.scopes.clone()));
    match result {
        Ok((key_id, org, scopes)) => {
            req.extensions_mut().insert(Identity { key_id, org, scopes, address });
            next.run(req).await
        }
        Err(refusal) => {
            let key_id = credentials::key_id_of(&secret).map(str::to_string);
            state.alert(None, key_id.as_deref(), Some(&address), refusal.code(), &refusal.to_string()).await;
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], refusal.to_string()).into_response()
        }
    }
}

/// Keeps the key store current from `spend.apikey.*` events on the log.
async fn follow_keys(state: Arc<GatewayState>) {
    let mut stream = match state.log.subscribe(StartAt::Beginning).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow API key events");
            return;
        }
    };
    while let Some(m) = stream.next().await {
        let Ok(m) = m else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) else {
            continue;
        };
        let t = v["type"].as_str().unwrap_or_default();
        if !t.starts_with("spend.apikey.") {
            continue;
        }
        let data = v["data"].to_string();
        match EventData::from_json(t, &data) {
            Ok(EventData::ApiKeyCreated(c)) => {
                if let Err(e) = state.keys.write().await.apply_created(&c) {
                    tracing::warn!(seq = m.seq, error = %e, "ignoring an invalid API key event");
                }
            }
            Ok(EventData::ApiKeyRevoked(r)) => state.keys.write().await.apply_revoked(&r),
            _ => {}
        }
    }
}

/// Gateway settings (`[gateway]` / `SPEND__GATEWAY__…`).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTP listen address (MCP at `/mcp`).
    pub listen: String,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    state: Arc<GatewayState>,
}

impl Application {
    pub async fn build(config: GatewayConfig, state: Arc<GatewayState>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the gateway on {}: {e}", config.listen))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let follower = tokio::spawn(follow_keys(self.state.clone()));
        let ct = tokio_util::sync::CancellationToken::new();
        let state = self.state.clone();
        let service = StreamableHttpService::new(
            move || Ok(mcp::SpendMcp::new(state.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(ct.child_token()),
        );
        let app = axum::Router::new()
            .nest_service("/mcp", service)
            // Outermost: nobody reaches MCP without an agent key.
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), authenticate))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        tracing::info!(addr = %self.listener.local_addr()?, "gateway MCP listening at /mcp");
        let stop = ct.clone();
        axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                stop.cancel();
            })
            .await?;
        follower.abort();
        Ok(())
    }
}
