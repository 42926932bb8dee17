//! What the operator's commands share: opening the log they act on (a
//! `spend dev` data folder's embedded log, or JetStream), recording an
//! event as the operator, and replaying the log into the approval
//! service's book. The commands use these; none is another's library.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use spend_core::Actor;
use spend_core::authority::Writer;
use spend_core::events::EventData;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{EventLog, Recorder};

use crate::config::{DevPaths, SpendConfig};

/// The log a command acts on: a `spend dev` data folder's, or JetStream.
pub async fn open_log(config: &SpendConfig, data_dir: Option<&Path>) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(match data_dir {
        Some(dir) => {
            let log = EmbeddedLog::open(EmbeddedConfig::new(DevPaths::new(dir).events))
                .await
                .with_context(|| format!("opening the event log in {} (stop `spend dev` first: it holds the log)", dir.display()))?;
            Arc::new(log)
        }
        None => Arc::new(JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?),
    })
}

/// The operator at the CLI (a human, named by $USER).
pub fn operator() -> Actor {
    Actor::human(std::env::var("USER").unwrap_or_else(|_| "operator".into()))
}

/// Appends an event by the operator at the CLI, on an operator aggregate;
/// with `expected`, only if the subject's last sequence is that (`Some(0)`:
/// the first event of an id wins, as for a policy proposal).
pub async fn record_as_operator(
    log: Arc<dyn EventLog>,
    prefix: &str,
    org: &str,
    aggregate: &'static str,
    id: &str,
    data: EventData,
    expected: Option<u64>,
) -> anyhow::Result<spend_eventlog::Recorded> {
    let recorder = Recorder::new(log, prefix, Writer::Operator);
    let mut event = recorder.event(org, operator(), aggregate, id, data);
    if let Some(seq) = expected {
        event = event.expect_seq(seq);
    }
    Ok(event.record().await?)
}

/// The relying party approval passkeys are made on: for a `spend dev`
/// data folder, the one it last ran with; else the configured one.
fn relying_party(config: &SpendConfig, data_dir: Option<&Path>) -> anyhow::Result<spend_draft::proof::RelyingParty> {
    if let Some(dir) = data_dir {
        let path = DevPaths::new(dir).relying_party;
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            let (Some(rp_id), Some(origin)) = (v["rp_id"].as_str(), v["origin"].as_str()) else {
                anyhow::bail!("{} names no rp_id and origin", path.display());
            };
            return Ok(spend_draft::proof::RelyingParty::new(rp_id, origin));
        }
    }
    Ok(config.passkey.relying_party())
}

/// The log replayed into the approval service's book (registry,
/// registrations, invitations), up to its last message; passkeys count
/// only when made on the configured relying party.
pub async fn replay(log: Arc<dyn EventLog>, config: &SpendConfig, data_dir: Option<&Path>) -> anyhow::Result<spend_approvals::book::Book> {
    use futures::StreamExt as _;
    let prefix = config.nats.subject_prefix.as_str();
    let last = log.info().await?.last_seq;
    let rp = relying_party(config, data_dir)?;
    let mut book = spend_approvals::book::Book::new(rp, None);
    if last == 0 {
        return Ok(book);
    }
    let mut stream = Box::pin(log.subscribe(spend_eventlog::StartAt::Beginning).await?);
    while let Some(m) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .context("the event log stopped delivering while it was replayed")?
    {
        let m = m?;
        let seq = m.seq;
        book.apply(prefix, &m);
        if seq >= last {
            break;
        }
    }
    Ok(book)
}
