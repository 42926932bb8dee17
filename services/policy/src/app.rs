//! The policy service as a process runs it: bind, then serve until told
//! to stop, then drain. `spend serve policy` and `spend dev` wire it the
//! same way; only the dependencies differ (JetStream or the embedded log).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use spend_eventlog::EventLog;

use crate::decide::{Bootstrap, Decider, PolicyState};

/// What the policy service needs to know.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// gRPC address (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// The durable consumer that finds undecided drafts (`spend nats init`
    /// creates it on JetStream).
    pub consumer: String,
    /// Who may call it, each by its own credential's digest (each RPC
    /// serves some of them: [`crate::grpc::RULES`]); without any the
    /// service refuses to listen beyond loopback.
    pub callers: Option<spend_proto::internal::Callers>,
}

/// What the policy service is given.
pub struct Deps {
    /// The event log, as the policy service's own NATS user.
    pub log: Arc<dyn EventLog>,
    /// The stream's subject prefix.
    pub prefix: String,
    /// The SPEND.md in force until a human approves a version of its own.
    pub bootstrap: Bootstrap,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    config: PolicyConfig,
    decider: Decider,
}

impl Application {
    /// Binds the listener; refuses an exposed listener without a token.
    pub async fn build(config: PolicyConfig, deps: Deps) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the policy service on {}: {e}", config.listen))?;
        spend_proto::internal::check_exposure("the policy service", listener.local_addr()?, config.callers.as_ref()).map_err(anyhow::Error::msg)?;
        let decider = Decider::new(deps.log, deps.prefix, PolicyState::new(deps.bootstrap));
        Ok(Self { listener, config, decider })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The decider this service runs, for a gateway in the same process
    /// (`spend dev`): the same state, so a version put in force is seen by
    /// both at once.
    pub fn decider(&self) -> Decider {
        self.decider.clone()
    }

    /// Serves until `shutdown` resolves, then drains (see
    /// [`crate::grpc`]'s `serve`).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        crate::grpc::serve(self.listener, self.decider, self.config.consumer, self.config.callers, shutdown).await
    }
}
