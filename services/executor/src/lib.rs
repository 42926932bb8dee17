//! The executor: the only holder of platform tokens, and the platform
//! connectors. Contract: proto/spendsignoff/v1/executor.proto.
//!
//! Built so far: the read path the gateway serves to agents —
//! [`connector::PlatformConnector`] (the platform's HTTP API, token kept
//! out of every log and error), the read contract's implementation
//! ([`spend_platform::Reads`]), its gRPC server ([`grpc`]), and the [`sandbox`] platform that stands in
//! for a real ad and card platform on machines that cannot reach one.
//! Pushes of human-approved changes with idempotency keys, one-click
//! rollback, the KMS-encrypted token vault and kill switches come with the
//! executor's own work.
#![forbid(unsafe_code)]

pub mod connector;
pub mod grpc;
pub mod sandbox;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use spend_platform::Reads;

/// What the executor needs to know.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// gRPC address (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// The internal token callers (the gateway) must send; without one the
    /// executor refuses to listen beyond loopback.
    pub internal_token: Option<String>,
}

/// What the executor is given.
pub struct Deps {
    /// The platform reads it serves: its connector, holding the token.
    pub reads: Arc<dyn Reads>,
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
        spend_proto::internal::check_exposure("the executor", listener.local_addr()?, config.internal_token.as_deref()).map_err(anyhow::Error::msg)?;
        Ok(Self { listener, config, deps })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves `spendsignoff.v1.Executor` with gRPC health and reflection
    /// until `shutdown` resolves; then stops accepting and lets the calls
    /// in flight finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let token = self.config.internal_token.as_deref();
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<spend_proto::v1::executor_server::ExecutorServer<grpc::ExecutorService>>()
            .await;
        let reflection = spend_proto::reflection(&["spendsignoff.v1.Executor"]).build_v1()?;
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(grpc::ExecutorService::new(self.deps.reads, token))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(self.listener), shutdown)
            .await?;
        Ok(())
    }
}
