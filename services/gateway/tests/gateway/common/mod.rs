//! A gateway under test: the sandbox platform on a real socket, the
//! executor's connector reading it, the gateway serving MCP and gRPC on
//! another socket, and agent keys recorded on the log the way
//! `spend api-key create` records them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use spend_credentials::{AgentScope, NewKey, generate};
use spend_eventlog::{Append, EventLog};
use spend_executor::connector::{PlatformConnector, PlatformToken, StaticToken};
use spend_gateway::{Application, Deps, GatewayConfig, GatewayState, Identity};
use spend_sandbox::{Sandbox, SandboxToken};

pub const PREFIX: &str = "spend.evt";

pub struct Gateway {
    pub state: Arc<GatewayState>,
    pub log: Arc<dyn EventLog>,
    pub addr: std::net::SocketAddr,
    pub sandbox: Sandbox,
    pub sandbox_url: String,
    /// mcp.read + mcp.draft
    pub key: NewKey,
    /// mcp.read only
    pub read_key: NewKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn record_key(log: &Arc<dyn EventLog>, prefix: &str, org: &str, name: &str, scopes: &[AgentScope]) -> NewKey {
    let key = generate(org, name, scopes, chrono::Utc::now()).unwrap();
    let env = spend_core::Envelope::new(
        "spendsignoff/cli",
        org,
        spend_core::Actor::human("ops"),
        format!("apikey/{}", key.created.key_id),
        spend_core::events::EventData::ApiKeyCreated(key.created.clone()),
    );
    log.append(Append::new(
        format!("{prefix}.{org}.apikey.{}", key.created.key_id),
        env.id.to_string(),
        env.to_bytes(),
    ))
    .await
    .unwrap();
    key
}

/// Starts a sandbox platform alone (for tests that run several gateways).
pub async fn sandbox() -> (Sandbox, String, PlatformConnector) {
    let token = "sandbox-test-token".to_string();
    let sandbox = Sandbox::seeded(vec![SandboxToken {
        token: token.clone(),
        expires_at: chrono::Utc::now() + chrono::Duration::days(30),
        scopes: vec!["ads.read".into(), "ads.write".into(), "cards.read".into()],
    }]);
    sandbox.enable_control(spend_testkit::sandbox_control::token());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sandbox.clone().serve(listener, std::future::pending()));
    let connector = PlatformConnector::new(&url, Arc::new(StaticToken(PlatformToken::new(token)))).unwrap();
    (sandbox, url, connector)
}

impl Gateway {
    pub async fn start(log: Arc<dyn EventLog>, policy: &str, config: GatewayConfig) -> Self {
        Self::start_with(log, PREFIX, policy, config).await
    }

    pub async fn start_with(log: Arc<dyn EventLog>, prefix: &str, policy: &str, config: GatewayConfig) -> Self {
        Self::start_full(log.clone(), &log, prefix, policy, config, None).await
    }

    /// `key_log` records the agent keys (the operator's connection, where
    /// the gateway's own may not publish them); `policy_log`, when given,
    /// is the policy service's own connection.
    pub async fn start_full(
        log: Arc<dyn EventLog>,
        key_log: &Arc<dyn EventLog>,
        prefix: &str,
        policy: &str,
        mut config: GatewayConfig,
        policy_log: Option<Arc<dyn EventLog>>,
    ) -> Self {
        let (sandbox, sandbox_url, connector) = sandbox().await;
        let source = policy.to_string();
        let policy = spend_policy::spendmd::parse(policy).unwrap();
        config.listen = "127.0.0.1:0".into();
        // The policy service, in this process (as in `spend dev`).
        let decider = spend_policy_service::decide::Decider::start(
            policy_log.unwrap_or_else(|| log.clone()),
            prefix,
            spend_policy_service::decide::Bootstrap {
                policy: Arc::new(policy.clone()),
                source,
                approved_by_human: true,
                passkey: spend_draft::proof::RelyingParty::default_app(),
            },
        );
        let deps = Deps {
            log: log.clone(),
            prefix: prefix.into(),
            policy,
            policy_approved_by_human: true,
            reads: Arc::new(connector),
            decider: Arc::new(decider),
        };
        let key = record_key(key_log, prefix, "acme", "agent", &[AgentScope::Read, AgentScope::Draft]).await;
        let read_key = record_key(key_log, prefix, "acme", "reader", &[AgentScope::Read]).await;
        let app = Application::build(config, deps).await.unwrap();
        let state = app.state();
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        state.caught_up().await.unwrap();
        Self {
            state,
            log,
            addr,
            sandbox,
            sandbox_url,
            key,
            read_key,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The identity the guard would give `key`'s requests.
    pub fn identity(&self, key: &NewKey) -> Identity {
        Identity {
            key_id: key.created.key_id.clone(),
            org: key.created.org.clone(),
            scopes: key.created.scopes.iter().map(|s| s.parse().unwrap()).collect(),
            address: "127.0.0.1".into(),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// Every event on the log, parsed.
pub async fn events(log: &Arc<dyn EventLog>) -> Vec<serde_json::Value> {
    spend_testkit::events::on_log(log.as_ref()).await.into_iter().map(|(_, e)| e).collect()
}

/// The security alerts on the log, waiting up to 5 s for at least `n`.
pub async fn alerts(log: &Arc<dyn EventLog>, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<serde_json::Value> = events(log).await.into_iter().filter(|e| e["type"] == "spend.security.alert.v1").collect();
        if found.len() >= n || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn embedded_log(dir: &std::path::Path) -> Arc<dyn EventLog> {
    Arc::new(
        spend_eventlog::embedded::EmbeddedLog::open(spend_eventlog::embedded::EmbeddedConfig::new(dir))
            .await
            .unwrap(),
    )
}
