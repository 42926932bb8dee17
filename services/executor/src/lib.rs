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
use std::sync::Arc;

use spend_platform::Reads;

/// Serves `spendsignoff.v1.Executor` with gRPC health and reflection on
/// `listener` until `shutdown` resolves; with `token`, only callers that
/// send it (see [`spend_proto::internal`]), and never beyond loopback
/// without one.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    reads: Arc<dyn Reads>,
    token: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    spend_proto::internal::check_exposure("the executor", listener.local_addr()?, token).map_err(anyhow::Error::msg)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<spend_proto::v1::executor_server::ExecutorServer<grpc::ExecutorService>>()
        .await;
    let reflection = spend_proto::reflection(&["spendsignoff.v1.Executor"]).build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(grpc::ExecutorService::new(reads, token))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
