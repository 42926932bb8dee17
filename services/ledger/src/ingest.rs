//! The ingest loop: consume every event in stream order, hash it into the
//! tree, project it (rows and position in one transaction), acknowledge it,
//! and cover it with a signed checkpoint within the configured delay.
//!
//! Failure handling, in the order things can go wrong:
//! - the event log or the database is down: wait and retry with backoff,
//!   logging once per outage, then catch up; nothing is acknowledged before
//!   it is committed;
//! - a crash anywhere: on restart the tree is rebuilt from the projection,
//!   redelivered events at or below the committed position are skipped, and
//!   checkpoints are recomputed from the same leaves, so roots are identical
//!   to an uninterrupted run;
//! - a malformed payload: projected as rejected with its reason, and still
//!   a leaf of the tree.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use spend_core::events::EventData;
use spend_core::{Actor, Envelope};
use spend_eventlog::{Append, EventLog, StartAt, StoredMessage};
use spend_signer::Signer;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::drafts::{DraftBook, MAX_OPEN, OPEN_STATUSES};
use crate::export::checkpoint_body;
use crate::merkle::{CompactRange, leaf_hash};
use crate::store::{CheckpointRow, EventRow, Store, TxRow};
use crate::{LedgerConfig, SharedState, validate};

/// A batch whose commit is under way.
struct InFlight {
    task: tokio::task::JoinHandle<Result<Option<()>, crate::store::StoreError>>,
    leaves: Vec<crate::merkle::Hash>,
    /// The stream sequence the batch reaches.
    through: u64,
}

pub(crate) struct Ingest {
    pub config: LedgerConfig,
    pub events: Arc<dyn EventLog>,
    pub checkpoints: Arc<dyn EventLog>,
    pub store: Arc<dyn Store>,
    pub signer: Arc<dyn Signer>,
    pub state: Arc<SharedState>,
}

/// Retries an operation while it fails transiently (logging once per
/// outage), until the shutdown signal fires. Evaluates to
/// `Result<Option<T>, E>`: `Ok(None)` means shutdown came first. A macro
/// rather than a function taking a closure, because the futures must stay
/// `Send` for the spawned task.
macro_rules! retry {
    ($what:expr, $shutdown:expr, $transient:expr, $op:expr) => {{
        let mut waits = spend_core::retry::backoff(Duration::from_millis(100), Duration::from_secs(2));
        let mut failing_since: Option<Instant> = None;
        loop {
            match $op {
                Ok(v) => {
                    if let Some(since) = failing_since {
                        tracing::info!(what = $what, after_s = since.elapsed().as_secs_f64(), "recovered");
                    }
                    break Ok(Some(v));
                }
                Err(e) if ($transient)(&e) => {
                    if failing_since.is_none() {
                        tracing::warn!(what = $what, error = %e, "unavailable; retrying until it is back");
                        failing_since = Some(Instant::now());
                    } else {
                        tracing::debug!(what = $what, error = %e, "still unavailable");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(waits.wait()) => {}
                        _ = $shutdown.changed() => break Ok(None),
                    }
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// A projected event as the stream delivered it (for rebuilding the draft
/// book; an event the book applied was never a republished one).
fn stored(e: &EventRow) -> StoredMessage {
    StoredMessage {
        seq: e.seq,
        subject: e.subject.clone(),
        payload: e.payload.clone().into(),
        time: e.stored_at,
        msg_id: e.msg_id.clone(),
        republished: false,
    }
}

fn db_transient(e: &crate::store::StoreError) -> bool {
    e.is_transient()
}

/// Turns a delivered message into its projected row, and the transaction
/// row of the draft it moves, if it moves one (`book`: the drafts that can
/// still move).
pub(crate) fn project(prefix: &str, idx: u64, m: &StoredMessage, book: &mut DraftBook) -> (EventRow, Option<TxRow>) {
    let leaf = leaf_hash(&m.payload);
    let mut row = EventRow {
        idx,
        seq: m.seq,
        subject: m.subject.clone(),
        msg_id: m.msg_id.clone(),
        payload: m.payload.to_vec(),
        leaf_hash: leaf,
        stored_at: m.time,
        event_id: None,
        event_type: None,
        org: None,
        event_time: None,
        reject_reason: None,
    };
    match validate::classify(prefix, &m.subject, &m.payload) {
        Ok(acc) => {
            row.event_id = Some(acc.envelope.id.to_string());
            row.event_type = Some(acc.envelope.event_type.to_string());
            row.org = Some(acc.envelope.org.to_string());
            row.event_time = Some(acc.time());
            let tx = book.apply(prefix, m).map(|mv| TxRow {
                idx,
                draft_id: mv.draft_id,
                status: mv.status.as_str().to_string(),
                org: acc.envelope.org.to_string(),
                account_id: mv.account_id,
                amount_minor: mv.amount.as_ref().map(|a| a.minor_units),
                currency: mv.amount.map(|a| a.currency),
                event_time: acc.time(),
            });
            (row, tx)
        }
        Err(reason) => {
            tracing::warn!(seq = m.seq, subject = %m.subject, %reason, "malformed payload recorded as rejected");
            row.reject_reason = Some(reason);
            (row, None)
        }
    }
}

/// Where the time went since the last checkpoint: fetch, project, wait
/// for the commit, ack, sign.
fn log_timings(tree_size: u64, timings: [Duration; 5]) {
    let [f, p, c, a, k] = timings.map(|d| d.as_millis() as u64);
    tracing::debug!(
        tree_size,
        fetch_ms = f,
        project_ms = p,
        commit_wait_ms = c,
        ack_ms = a,
        sign_ms = k,
        "checkpoint signed; time spent since the last one"
    );
}

/// How long a fetch waits for events: briefly while a commit is finishing,
/// else until the uncovered events are due a checkpoint (`sign_after`
/// after the first of them), within 5 to 250 ms.
fn fetch_wait(committing: bool, uncovered_since: Option<Instant>, sign_after: Duration) -> Duration {
    match (committing, uncovered_since) {
        (true, _) => Duration::from_millis(2),
        (false, Some(t)) => sign_after
            .saturating_sub(t.elapsed())
            .clamp(Duration::from_millis(5), Duration::from_millis(250)),
        (false, None) => Duration::from_millis(250),
    }
}

impl Ingest {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let store = self.store.clone();
        let Some((position, mut range, latest, mut book)) = self.load(&mut shutdown).await? else {
            return Ok(());
        };
        let mut checkpointed = latest.as_ref().map(|c| c.tree_size).unwrap_or(0);
        let mut published = 0u64;
        let Some(mut consumer) = self.consumer(&mut shutdown).await? else {
            return Ok(());
        };
        let max_delay = Duration::from_millis(self.config.checkpoint_max_delay_ms);
        // Sign at half the allowed delay, leaving the other half for the
        // signer, the database and a slow batch.
        let sign_after = max_delay / 2;
        let mut uncovered_since: Option<Instant> = (range.size() > checkpointed).then(Instant::now);
        // Committed position, and the position/leaf count including the
        // batch whose commit is in flight.
        let mut position = position;
        let (mut last, mut next_idx) = (position, range.size());
        // One commit runs while the next batch is fetched and hashed.
        let mut inflight: Option<InFlight> = None;
        let refetch = || spend_core::retry::backoff(Duration::from_millis(100), Duration::from_secs(2));
        let mut fetch_backoff = refetch();
        // Time spent per phase since the last checkpoint: fetch, project,
        // wait for the commit, ack, sign (logged at debug level).
        let mut timings = [Duration::ZERO; 5];
        let max_events = self.config.checkpoint_max_events;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wait = fetch_wait(inflight.is_some(), uncovered_since, sign_after);
            // A batch never crosses a checkpoint boundary, so checkpoints land
            // exactly every `checkpoint_max_events` under load. (Batches never
            // cross one, so `pending` is at most `max_events`.)
            let pending = next_idx - checkpointed;
            let room = if pending >= max_events { max_events } else { max_events - pending };
            let max = self.config.batch_size.min(room as usize);
            let t_fetch = Instant::now();
            let batch = tokio::select! {
                b = consumer.fetch(max, wait) => b,
                _ = shutdown.changed() => break,
            };
            let batch = match batch {
                Ok(b) => {
                    fetch_backoff = refetch();
                    b
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fetching from the event log failed; retrying");
                    tokio::time::sleep(fetch_backoff.wait()).await;
                    Vec::new()
                }
            };
            timings[0] += t_fetch.elapsed();
            let t_project = Instant::now();
            let (rows, txs) = self.project_batch(&batch, &mut last, next_idx, &mut book)?;
            next_idx += rows.len() as u64;
            timings[1] += t_project.elapsed();

            // The previous batch's commit: once done, its events join the
            // tree and are acknowledged.
            if let Some(done) = inflight.take() {
                let Some(committed) = self.land(done, &mut range, consumer.as_mut(), &mut timings).await? else {
                    break;
                };
                position = committed;
                uncovered_since.get_or_insert_with(Instant::now);
            } else if let Some(m) = batch.last()
                && m.seq <= position
            {
                // Only redeliveries: acknowledge them again.
                let _ = consumer.ack_through(position).await;
            }

            let due = range.size() > checkpointed && (range.size() - checkpointed >= max_events || uncovered_since.is_some_and(|t| t.elapsed() >= sign_after));
            if due {
                let t_sign = Instant::now();
                let Some(cp) = self.checkpoint(&range, &mut shutdown).await? else { break };
                timings[4] += t_sign.elapsed();
                log_timings(cp.tree_size, std::mem::take(&mut timings));
                checkpointed = cp.tree_size;
                uncovered_since = None;
                self.state.tree.write().await.checkpoint = Some(cp.clone());
                if self.publish(&cp).await {
                    published = cp.tree_size;
                }
            } else if checkpointed > published
                && let Some(cp) = self.state.tree.read().await.checkpoint.clone()
                && self.publish(&cp).await
            {
                published = cp.tree_size;
            }

            if !rows.is_empty() {
                let leaves: Vec<_> = rows.iter().map(|r| r.leaf_hash).collect();
                let (store, mut stop) = (store.clone(), shutdown.clone());
                let through = last;
                let task = tokio::spawn(async move { retry!("database", stop, db_transient, store.commit(&rows, &txs, through).await) });
                inflight = Some(InFlight { task, leaves, through });
            }
        }
        // Whatever was being committed when asked to stop.
        if let Some(done) = inflight.take()
            && let Some(committed) = self.finish(done, &mut range).await?
        {
            position = committed;
            let _ = consumer.ack_through(position).await;
        }
        if range.size() > checkpointed {
            self.cover_before_leaving(&range).await;
        }
        tracing::info!(position, leaves = range.size(), "ledger ingest stopped");
        Ok(())
    }

    /// The state the ledger resumes from, as its projection holds it: the
    /// committed position, the tree of the leaves so far, the last
    /// checkpoint, and the open drafts rebuilt. `None` when asked to stop
    /// while the database was unreachable.
    async fn load(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<Option<(u64, CompactRange, Option<CheckpointRow>, DraftBook)>> {
        let store = self.store.clone();
        let Some(()) = retry!("database", *shutdown, db_transient, store.migrate().await)? else {
            return Ok(None);
        };
        let Some(position) = retry!("database", *shutdown, db_transient, store.position().await)? else {
            return Ok(None);
        };
        let Some(leaves) = retry!("database", *shutdown, db_transient, store.leaf_hashes().await)? else {
            return Ok(None);
        };
        let Some(latest) = retry!("database", *shutdown, db_transient, store.latest_checkpoint().await)? else {
            return Ok(None);
        };
        let open: Vec<&str> = OPEN_STATUSES.iter().map(|s| s.as_str()).collect();
        let Some(open_events) = retry!("database", *shutdown, db_transient, store.draft_events(&open, MAX_OPEN).await)? else {
            return Ok(None);
        };
        let mut book = DraftBook::new(self.config.passkey.clone());
        for e in &open_events {
            book.apply(&self.config.subject_prefix, &stored(e));
        }
        tracing::info!(open = book.open_count(), events = open_events.len(), "open drafts rebuilt from the projection");
        drop(open_events);
        let mut range = CompactRange::new();
        leaves.iter().for_each(|h| range.push(*h));
        tracing::info!(position, leaves = leaves.len(), "ledger state loaded");
        {
            let mut tree = self.state.tree.write().await;
            tree.leaves = leaves;
            tree.position = position;
            tree.checkpoint = latest.clone();
        }
        Ok(Some((position, range, latest, book)))
    }

    /// The rows of a fetched batch, from index `next_idx`, skipping what
    /// was projected already (`last`: the last sequence projected). A gap
    /// in the stream's sequence stops the ledger: events are missing.
    fn project_batch(&self, batch: &[StoredMessage], last: &mut u64, next_idx: u64, book: &mut DraftBook) -> anyhow::Result<(Vec<EventRow>, Vec<TxRow>)> {
        let mut rows = Vec::with_capacity(batch.len());
        let mut txs = Vec::new();
        for m in batch {
            if m.seq <= *last {
                continue; // redelivered: already projected
            }
            if m.seq != *last + 1 {
                anyhow::bail!(
                    "stream sequence jumped from {last} to {}: events are missing from the stream, refusing to continue",
                    m.seq
                );
            }
            let (row, tx) = project(&self.config.subject_prefix, next_idx + rows.len() as u64, m, book);
            rows.push(row);
            txs.extend(tx);
            *last = m.seq;
        }
        Ok((rows, txs))
    }

    /// Graceful stop: covers what was ingested with a checkpoint before
    /// leaving (for at most 5 s).
    async fn cover_before_leaving(&self, range: &CompactRange) {
        let (_tx, mut never) = watch::channel(false);
        if let Ok(Some(cp)) = tokio::time::timeout(Duration::from_secs(5), self.checkpoint(range, &mut never))
            .await
            .unwrap_or(Ok(None))
        {
            self.publish(&cp).await;
        }
    }

    /// The previous batch's commit, once done: its events join the tree and
    /// are acknowledged (timed into `timings`' commit and ack phases).
    async fn land(
        &self,
        done: InFlight,
        range: &mut CompactRange,
        consumer: &mut dyn spend_eventlog::Consumer,
        timings: &mut [Duration; 5],
    ) -> anyhow::Result<Option<u64>> {
        let t_commit = Instant::now();
        let Some(committed) = self.finish(done, range).await? else {
            return Ok(None);
        };
        timings[2] += t_commit.elapsed();
        let t_ack = Instant::now();
        if let Err(e) = consumer.ack_through(committed).await {
            // Unacknowledged events come back and are skipped.
            tracing::warn!(error = %e, "acknowledging failed; the events will be redelivered and skipped");
        }
        timings[3] += t_ack.elapsed();
        Ok(Some(committed))
    }

    /// The ledger's durable consumer of the event stream (`None`: asked to
    /// stop while the log was unreachable).
    async fn consumer(&self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<Option<Box<dyn spend_eventlog::Consumer>>> {
        let (events, name) = (self.events.clone(), self.config.consumer.clone());
        Ok(retry!(
            "event log",
            *shutdown,
            |e: &spend_eventlog::LogError| e.is_transient(),
            events.durable_consumer(&name, StartAt::Beginning).await
        )?)
    }

    /// Waits for a batch's commit; then its leaves join the tree. `None`
    /// when shutdown interrupted the retries (nothing was committed).
    async fn finish(&self, done: InFlight, range: &mut CompactRange) -> anyhow::Result<Option<u64>> {
        let committed = done.task.await.map_err(|e| anyhow::anyhow!("commit task failed: {e}"))??;
        if committed.is_none() {
            return Ok(None);
        }
        let mut tree = self.state.tree.write().await;
        for leaf in &done.leaves {
            range.push(*leaf);
            tree.leaves.push(*leaf);
        }
        tree.position = done.through;
        Ok(Some(done.through))
    }

    async fn checkpoint(&self, range: &CompactRange, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<Option<CheckpointRow>> {
        let root = range.root();
        let body = checkpoint_body(&self.config.origin, range.size(), &root);
        let signer = self.signer.clone();
        let Some(signature) = retry!(
            "signer",
            shutdown,
            |e: &spend_signer::SignerError| matches!(e, spend_signer::SignerError::Unavailable(_)),
            signer.sign(body.as_bytes()).await
        )?
        else {
            return Ok(None);
        };
        let cp = CheckpointRow {
            tree_size: range.size(),
            origin: self.config.origin.clone(),
            root_hash: root,
            body,
            signature,
            key_id: self.signer.key_id().to_string(),
            signed_at: Utc::now(),
        };
        let store = self.store.clone();
        let Some(()) = retry!("database", shutdown, db_transient, store.insert_checkpoint(&cp).await)? else {
            return Ok(None);
        };
        tracing::debug!(tree_size = cp.tree_size, "checkpoint signed");
        Ok(Some(cp))
    }

    /// Publishes a checkpoint to the ledger stream; false if it must be
    /// retried later (the database copy is the record either way).
    async fn publish(&self, cp: &CheckpointRow) -> bool {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let id = cp.tree_size.to_string();
        let env = Envelope::new(
            "spendsignoff/ledger",
            "spendsignoff",
            Actor::service("ledger"),
            spend_core::subject::envelope_subject("checkpoint", &id),
            EventData::LedgerCheckpointed(spend_core::events::LedgerCheckpointed {
                origin: cp.origin.clone(),
                tree_size: cp.tree_size,
                root_hash_b64: b64.encode(cp.root_hash),
                body: cp.body.clone(),
                signature_b64: b64.encode(&cp.signature),
                key_id: cp.key_id.clone(),
            }),
        );
        let subject = format!("{}.spendsignoff.checkpoint.{id}", self.config.ledger_subject_prefix);
        match self
            .checkpoints
            .append(Append::new(
                subject,
                format!("checkpoint-{}-{id}", self.config.origin.replace(['/', '.', ' '], "_")),
                env.to_bytes(),
            ))
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, tree_size = cp.tree_size, "publishing the checkpoint to the ledger stream failed; will retry");
                false
            }
        }
    }
}
