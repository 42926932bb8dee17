//! Approvals: approval requests for drafts that need a human, Slack and
//! email notifications with links, approver identity (passkeys), the
//! two-step approve-and-push page, and timeouts (which always deny).
//! Contract: proto/spendsignoff/v1/approval.proto.
//!
//! Built so far: the human-only gate in front of the approval routes
//! ([`routes`]). An agent credential presented there is refused and
//! audited; everything else needs a signed-in human's session, which
//! arrives with passkey sign-in. Until then every request is refused with
//! 401 — the routes approve nothing.
#![forbid(unsafe_code)]

pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spend_eventlog::EventLog;

/// What the approval service needs to know.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// HTTP address of the approval pages (`127.0.0.1:0` for any port).
    pub listen: String,
}

/// What the approval service is given.
pub struct Deps {
    /// The event log, as the approval service's own NATS user.
    pub log: Arc<dyn EventLog>,
    /// The stream's subject prefix.
    pub prefix: String,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    gate: Arc<routes::Gate>,
    router: axum::Router,
}

/// How often the gate's key store is brought up to date, and counted
/// alerts of ended windows recorded.
const REFRESH: Duration = Duration::from_secs(5);

impl Application {
    pub async fn build(config: ApprovalConfig, deps: Deps) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the approval pages on {}: {e}", config.listen))?;
        let (gate, router) = routes::gated(Arc::new(routes::ApprovalState {
            log: deps.log,
            prefix: deps.prefix,
        }));
        Ok(Self { listener, gate, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting,
    /// lets in-flight requests finish, and records every alert it counted.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let gate = self.gate.clone();
        let background = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = async { let _ = stop_rx.wait_for(|s| *s).await; } => return,
                }
                // A refresh reads into a copy: stopping in the middle of a
                // long one loses nothing. A flush always runs to its end.
                tokio::select! {
                    _ = gate.refresh() => {}
                    _ = async { let _ = stop_rx.wait_for(|s| *s).await; } => return,
                }
                gate.flush(false).await;
            }
        });
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        let _ = stop_tx.send(true);
        let _ = background.await;
        self.gate.flush(true).await;
        Ok(())
    }
}
