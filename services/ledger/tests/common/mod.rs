//! Shared helpers of the ledger's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spend_eventlog::{Append, EventLog};
use spend_ledger::{Application, Deps, LedgerConfig, SharedState};
use tokio::sync::oneshot;

pub use spend_testkit::events::draft_event as event;

/// Publishes events `from..to`, pipelined in chunks.
pub async fn publish(log: &dyn EventLog, prefix: &str, org: &str, from: u64, to: u64) {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let batch: Vec<Append> = (i..end).map(|j| event(prefix, org, j)).collect();
        for r in log.append_many(batch).await {
            r.expect("publish");
        }
        i = end;
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<SharedState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }

    /// Waits until `n` events are projected and covered by a checkpoint.
    pub async fn wait_covered(&self, n: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (pos, leaves, signed) = self.state.progress().await;
            if leaves >= n && signed >= n {
                assert_eq!((pos, leaves, signed), (n, n, n), "more events than published");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {leaves} of {n} events projected and {signed} signed after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn config() -> LedgerConfig {
    LedgerConfig {
        listen: "127.0.0.1:0".into(),
        origin: "spendsignoff.test/ledger".into(),
        ..LedgerConfig::default()
    }
}

pub async fn start(config: LedgerConfig, deps: Deps) -> Running {
    let app = Application::build(config, deps).await.unwrap();
    let addr = app.local_addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        state,
        stop: Some(tx),
        task,
    }
}
