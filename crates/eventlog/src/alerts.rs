//! Refusals audited off the request path. A service that refuses a call
//! in a synchronous guard (an internal gRPC caller reaching past its
//! rules) cannot await an append there; it hands the refusal to an
//! [`AlertSink`], which admits it through an [`AlertGate`] (so a flood makes
//! a handful of events, every repeat counted) and records it on the
//! writer's own security subject from a task of its own. The queue is
//! bounded (the gate lets at most three of a kind through per window, so
//! only a flood from hundreds of addresses at once fills it); an alert
//! that finds it full is logged as an error instead.

use std::sync::Arc;
use std::time::Duration;

use spend_core::alert_gate::AlertGate;
use spend_core::events::SecurityAlert;
use tokio::sync::mpsc;

use crate::Recorder;

/// Alerts waiting to be recorded at most.
const QUEUE: usize = 256;
/// How often windows that ended are recorded with their repeats.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Hands refusals to the task that records them; cheap to clone.
#[derive(Clone)]
pub struct AlertSink {
    tx: mpsc::Sender<(String, SecurityAlert)>,
    gate: Arc<AlertGate>,
}

impl AlertSink {
    /// Starts the recording task (it ends, recording every counted repeat,
    /// once every sink is dropped).
    pub fn spawn(recorder: Recorder) -> Self {
        let (tx, mut rx) = mpsc::channel::<(String, SecurityAlert)>(QUEUE);
        let gate = Arc::new(AlertGate::default());
        let g = gate.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some((org, alert)) => record(&recorder, &org, alert).await,
                        None => break,
                    },
                    _ = tick.tick() => {
                        for r in g.due() {
                            record(&recorder, &r.org, r.alert()).await;
                        }
                    }
                }
            }
            for r in g.drain() {
                record(&recorder, &r.org, r.alert()).await;
            }
        });
        Self { tx, gate }
    }

    /// Audits one refusal of `org` (`"unknown"` when the call named none).
    pub fn raise(&self, org: Option<&str>, alert: SecurityAlert) {
        let org = org.unwrap_or("unknown");
        if self.gate.admit(org, alert.key_id.as_deref(), alert.address.as_deref(), &alert.reason).is_none() {
            return;
        }
        if self.tx.try_send((org.to_string(), alert)).is_err() {
            tracing::error!("the security alert queue is full: an alert was dropped");
        }
    }
}

impl AlertSink {
    /// [`AlertSink::refused`] as a function of its own, for a guard that
    /// audits through it (`spend_proto::internal::Guard::audited_by`).
    pub fn refuser(self) -> impl Fn(Option<&str>, &str, Option<&str>, Option<String>, String) + Send + Sync + 'static {
        move |org, reason, key_id, address, detail| self.refused(org, reason, key_id, address, detail)
    }

    /// [`AlertSink::raise`] for a refused caller: `key_id` names who it
    /// was (a caller's or key's id, never its credential).
    pub fn refused(&self, org: Option<&str>, reason: &str, key_id: Option<&str>, address: Option<String>, detail: String) {
        self.raise(
            org,
            SecurityAlert {
                reason: reason.to_string(),
                key_id: key_id.map(str::to_string),
                address,
                detail,
            },
        );
    }
}

async fn record(recorder: &Recorder, org: &str, alert: SecurityAlert) {
    let reason = alert.reason.clone();
    match recorder.alert(org, alert).record().await {
        Ok(_) => tracing::warn!(%reason, org, "security alert"),
        Err(e) => tracing::error!(error = %e, %reason, "could not record a security alert"),
    }
}
