//! The ledger service: a Merkle tree over the event stream, KMS-signed
//! checkpoints, the append-only projection, and the proofs and exports
//! auditors need.
//!
//! Layout:
//! - [`merkle`]: RFC 6962 hashing, roots and proofs (pure);
//! - [`validate`]: the verdict on each payload (pure, shared with verify);
//! - [`store`]: the PostgreSQL / SQLite projection;
//! - `ingest`: the consumer loop that hashes, projects and checkpoints;
//! - [`export`] and [`verify`]: the export format and its offline check;
//! - `grpc`: the `spendsignoff.v1.Ledger` service, with health and
//!   reflection.
//!
//! [`Application::build`] binds the listener (port 0 in tests) and loads
//! nothing else; [`Application::run_until_stopped`] runs ingest and gRPC
//! until the shutdown future resolves, then drains and checkpoints.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spend_eventlog::EventLog;
use spend_signer::Signer;
use tokio::sync::RwLock;

pub mod drafts;
pub mod export;
mod grpc;
mod ingest;
pub mod merkle;
pub mod store;
pub mod validate;
pub mod verify;

/// Ledger settings (`[ledger]` / `SPEND__LEDGER__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Checkpoint origin line; choose once and never change it (it names
    /// the log in every signed checkpoint).
    pub origin: String,
    /// Sign a checkpoint at least every this many events...
    pub checkpoint_max_events: u64,
    /// ...and so that no event waits longer than this to be covered.
    pub checkpoint_max_delay_ms: u64,
    /// Events fetched and projected per database transaction.
    pub batch_size: usize,
    /// Subject prefix of the event stream; an event counts as valid only on
    /// `<prefix>.<org>.<aggregate>.<id>` (set from `nats.subject_prefix`).
    pub subject_prefix: String,
    /// Durable consumer name on the event stream.
    pub consumer: String,
    /// The stream checkpoints are published to.
    pub stream: String,
    /// Subject prefix on that stream.
    pub ledger_subject_prefix: String,
    /// Who may call the gRPC service, each by its own credential's digest
    /// (from `SPEND__INTERNAL__CALLERS__…`; each RPC serves some of them:
    /// [`grpc::RULES`]); without any it listens on loopback only.
    #[serde(skip)]
    pub callers: Option<spend_proto::internal::Callers>,
    /// The relying party approval passkeys are made on: approvals in the
    /// projection count only with proofs made there (set by `spend` from
    /// the approval settings; never taken from an event).
    #[serde(skip, default = "spend_draft::proof::RelyingParty::default_app")]
    pub passkey: spend_draft::proof::RelyingParty,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7105".into(),
            origin: "spendsignoff.local/ledger".into(),
            checkpoint_max_events: 10_000,
            checkpoint_max_delay_ms: 1_000,
            batch_size: 2_000,
            subject_prefix: "spend.evt".into(),
            consumer: "ledger".into(),
            stream: "SPEND_LEDGER".into(),
            ledger_subject_prefix: "spend.ledger".into(),
            callers: None,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        }
    }
}

impl LedgerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err("ledger.origin must be one non-empty line".into());
        }
        if self.checkpoint_max_events == 0 || self.checkpoint_max_delay_ms == 0 || self.batch_size == 0 {
            return Err("ledger.checkpoint_max_events, checkpoint_max_delay_ms and batch_size must be positive".into());
        }
        self.listen.parse::<SocketAddr>().map_err(|e| format!("ledger.listen {:?}: {e}", self.listen))?;
        Ok(())
    }
}

/// The parts the ledger runs on; production and `spend dev` pass different
/// backends.
pub struct Deps {
    pub events: Arc<dyn EventLog>,
    /// Where checkpoints are published (`SPEND_LEDGER`).
    pub checkpoints: Arc<dyn EventLog>,
    pub store: Arc<dyn store::Store>,
    pub signer: Arc<dyn Signer>,
}

#[derive(Default)]
pub(crate) struct Tree {
    pub leaves: Vec<merkle::Hash>,
    pub position: u64,
    pub checkpoint: Option<store::CheckpointRow>,
}

/// State shared by ingest (writer) and gRPC (readers).
#[derive(Default)]
pub struct SharedState {
    pub(crate) tree: RwLock<Tree>,
}

impl SharedState {
    /// (stream position projected, leaves, latest checkpoint size).
    pub async fn progress(&self) -> (u64, u64, u64) {
        let t = self.tree.read().await;
        (t.position, t.leaves.len() as u64, t.checkpoint.as_ref().map(|c| c.tree_size).unwrap_or(0))
    }
}

pub struct Application {
    listener: tokio::net::TcpListener,
    config: LedgerConfig,
    deps: Deps,
    state: Arc<SharedState>,
}

impl Application {
    pub async fn build(config: LedgerConfig, deps: Deps) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the ledger's gRPC listener on {}: {e}", config.listen))?;
        Ok(Self {
            listener,
            config,
            deps,
            state: Arc::new(SharedState::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> Arc<SharedState> {
        self.state.clone()
    }

    /// Serves gRPC and runs ingest until `shutdown` resolves or ingest
    /// fails; on shutdown, stops accepting, finishes the batch in hand and
    /// signs a last checkpoint.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ingest = ingest::Ingest {
            config: self.config.clone(),
            events: self.deps.events.clone(),
            checkpoints: self.deps.checkpoints.clone(),
            store: self.deps.store.clone(),
            signer: self.deps.signer.clone(),
            state: self.state.clone(),
        };
        let mut ingest_task = tokio::spawn(ingest.run(stop_rx.clone()));
        let mut grpc_stop = stop_rx.clone();
        let grpc = grpc::serve(
            self.listener,
            self.deps.store.clone(),
            self.config.subject_prefix.clone(),
            self.state.clone(),
            self.config.callers.clone(),
            spend_eventlog::alerts::AlertSink::spawn(spend_eventlog::Recorder::new(
                self.deps.events.clone(),
                self.config.subject_prefix.clone(),
                spend_core::authority::Writer::Ledger,
            )),
            async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            },
        );
        let mut grpc_task = tokio::spawn(grpc);
        tokio::pin!(shutdown);
        let result = tokio::select! {
            _ = &mut shutdown => Ok(()),
            r = &mut ingest_task => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.context("ledger ingest failed")),
                Err(e) => Err(anyhow::anyhow!("ledger ingest panicked: {e}")),
            },
            r = &mut grpc_task => Err(match r { Ok(Ok(())) => anyhow::anyhow!("gRPC server stopped"), Ok(Err(e)) => e, Err(e) => anyhow::anyhow!("gRPC server panicked: {e}") }),
        };
        let _ = stop_tx.send(true);
        if !ingest_task.is_finished() {
            match ingest_task.await {
                Ok(Err(e)) => tracing::error!(error = %e, "ledger ingest failed while stopping"),
                Err(e) => tracing::error!(error = %e, "ledger ingest panicked while stopping"),
                Ok(Ok(())) => {}
            }
        }
        if !grpc_task.is_finished() {
            let _ = grpc_task.await;
        }
        result
    }
}
