//! The executor: the only holder of platform tokens, and the platform
//! connectors. Contract: proto/spendsignoff/v1/executor.proto.
//!
//! - [`accounts`]: connected accounts — the platform's OAuth (read access
//!   first, write when an approved change needs it), tokens refreshed
//!   before they expire;
//! - [`vault`]: the tokens, KMS envelope-encrypted per organisation and
//!   account, decrypted only here, for the one request that uses them;
//! - [`connector`]: the read path the gateway serves to agents
//!   ([`spend_platform::Reads`]) over the platform's HTTP API with each
//!   organisation's own tokens;
//! - [`grpc`]: the internal gRPC server (reads, connections).
//!
//! The platform it speaks to on a machine that cannot reach a real one is
//! the sandbox, a crate of its own (`spend-sandbox`): the executor knows
//! it only as an HTTP API, like any platform.
//!
//! - [`push`]: approved changes pushed on a proof, exactly once, under
//!   the ceiling ([`commit`]: commitments against the envelope, whose one
//!   writer the executor is); operators' card freezes.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod commit;
pub mod connector;
pub mod grpc;
pub mod push;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use spend_platform::Reads;

/// What the executor needs to know.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// gRPC address (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// Who may call it, each by its own credential's digest (each RPC
    /// serves some of them: [`grpc::RULES`]); without any the executor
    /// refuses to listen beyond loopback.
    pub callers: Option<spend_proto::internal::Callers>,
}

/// What the executor is given.
pub struct Deps {
    /// The platform reads it serves: its connector, with each
    /// organisation's tokens.
    pub reads: Arc<dyn Reads>,
    /// Connected accounts and their vault; refreshed in the background.
    pub connections: Option<Arc<accounts::Connections>>,
    /// Pushes approved changes (following the log as the executor's NATS
    /// user); `None`: this executor only reads.
    pub pusher: Option<Arc<push::Pusher>>,
    /// Records refused internal calls on the executor's security subject;
    /// `None`: they are only logged (an executor without a log).
    pub alerts: Option<spend_eventlog::alerts::AlertSink>,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    config: ExecutorConfig,
    deps: Deps,
}

impl Application {
    /// Binds the listener; refuses an exposed listener without a token.
    pub async fn build(config: ExecutorConfig, deps: Deps) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the executor on {}: {e}", config.listen))?;
        spend_proto::internal::check_exposure("the executor", listener.local_addr()?, config.callers.as_ref()).map_err(anyhow::Error::msg)?;
        Ok(Self { listener, config, deps })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves `spendsignoff.v1.Executor` with gRPC health and reflection
    /// until `shutdown` resolves; then stops accepting and lets the calls
    /// in flight finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<spend_proto::v1::executor_server::ExecutorServer<grpc::ExecutorService>>()
            .await;
        let reflection = spend_proto::reflection(&["spendsignoff.v1.Executor"]).build_v1()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Access tokens are refreshed (and refresh tokens rotated) before
        // they expire, whether or not anything reads.
        let refresher = self
            .deps
            .connections
            .clone()
            .map(|c| tokio::spawn(c.run_refresher(std::time::Duration::from_secs(30), stopped)));
        let pusher = self.deps.pusher.clone().map(|p| tokio::spawn(p.run(stop.subscribe())));
        let connect = self.deps.connections.clone().map(|c| c as Arc<dyn spend_platform::Connect>);
        let guard = grpc::ExecutorService::new(self.deps.reads, connect, self.config.callers);
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(match self.deps.alerts {
                Some(alerts) => guard.audited_by(alerts.refuser()),
                None => guard,
            })
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(self.listener), shutdown)
            .await?;
        let _ = stop.send(true);
        if let Some(r) = refresher {
            let _ = r.await;
        }
        if let Some(p) = pusher {
            let _ = p.await;
        }
        Ok(())
    }
}
