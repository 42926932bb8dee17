//! The event log: one interface ([`EventLog`]) over two backends with the
//! same semantics, checked by one conformance suite (`conformance`, behind
//! the `test-util` feature) that runs against both.
//!
//! - [`jetstream::JetStreamLog`] (production): the `SPEND_EVENTS` stream with
//!   file storage, `deny_delete`, `deny_purge` and a duplicate window.
//! - [`embedded::EmbeddedLog`] (`spend dev`): a durable single-file log.
//!
//! Semantics both keep: one global order (sequence numbers from 1), dedup by
//! message id within the duplicate window, optimistic concurrency per
//! subject (`expected_last_subject_seq`, where `Some(0)` means "no message
//! on this subject yet"), durable consumers that redeliver anything not
//! acknowledged, replay from a sequence or a time, and live subscription.
#![forbid(unsafe_code)]

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub mod alerts;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod embedded;
pub mod jetstream;
pub mod read;
pub mod recorder;

pub use recorder::{Recorded, Recorder};

/// One message to append.
#[derive(Debug, Clone)]
pub struct Append {
    pub subject: String,
    pub payload: Bytes,
    /// Dedup key (the event id); a second append with the same id inside
    /// the duplicate window is acknowledged as a duplicate and not stored.
    pub msg_id: String,
    /// Optimistic concurrency: the append fails with
    /// [`LogError::WrongLastSequence`] unless the subject's last sequence is
    /// this value (`Some(0)`: the subject has no message yet).
    pub expected_last_subject_seq: Option<u64>,
}

impl Append {
    pub fn new(subject: impl Into<String>, msg_id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            subject: subject.into(),
            payload: payload.into(),
            msg_id: msg_id.into(),
            expected_last_subject_seq: None,
        }
    }

    pub fn expect_last_subject_seq(mut self, seq: u64) -> Self {
        self.expected_last_subject_seq = Some(seq);
        self
    }
}

/// The log's answer to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub seq: u64,
    /// True when the message id was seen inside the duplicate window; `seq`
    /// is then the sequence of the original.
    pub duplicate: bool,
}

/// A message as stored: the payload bytes are exactly the appended bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    pub time: DateTime<Utc>,
    pub msg_id: Option<String>,
    /// The message was republished into this stream from another one (it
    /// carries JetStream's `Nats-Stream` / `Nats-Sequence` headers, which no
    /// SpendSignoff writer sets): whoever made that stream wrote past its
    /// own publish permissions. Readers ignore it and raise an alert.
    pub republished: bool,
}

/// Where a consumer, subscription or replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    /// The first message with a sequence ≥ this.
    Sequence(u64),
    /// The first message stored at or after this time.
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("subject {subject}: expected last sequence {expected}, but it is {actual}")]
    WrongLastSequence { subject: String, expected: u64, actual: u64 },
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("event log refused the request: {0}")]
    Rejected(String),
    #[error("event log data is corrupt: {0}")]
    Corrupt(String),
    #[error("event log error: {0}")]
    Internal(String),
}

impl LogError {
    /// Worth retrying later (a dead or slow dependency), as opposed to a
    /// request that will never succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }
}

/// What a log reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    /// Highest sequence stored (0 when empty).
    pub last_seq: u64,
    pub messages: u64,
    /// e.g. `nats-server 2.9.10` or `embedded`.
    pub backend: String,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one message and waits until it is durable.
    async fn append(&self, msg: Append) -> Result<AppendAck, LogError>;

    /// Appends many messages with their acknowledgements in flight together;
    /// results are in input order. Order on the log follows input order.
    async fn append_many(&self, msgs: Vec<Append>) -> Vec<Result<AppendAck, LogError>>;

    async fn info(&self) -> Result<LogInfo, LogError>;

    /// The last sequence stored on `subject`, 0 when it has none.
    async fn last_subject_seq(&self, subject: &str) -> Result<u64, LogError>;

    /// The last message stored on `subject`: the current state of an
    /// aggregate whose events carry it. Pair its `seq` with
    /// `expected_last_subject_seq` to update the aggregate safely.
    async fn last_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError>;

    /// The first message stored on `subject`: an aggregate's opening event
    /// (a draft's proposal), whatever was appended after it.
    async fn first_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError>;

    /// A durable consumer: its position survives restarts of this process
    /// and of the log; anything delivered but not acknowledged is delivered
    /// again. `start` applies only when the consumer is first created.
    async fn durable_consumer(&self, name: &str, start: StartAt) -> Result<Box<dyn Consumer>, LogError>;

    /// Every message from `start` on, then live ones as they arrive; the
    /// stream never ends on its own. For replay, stop at `info().last_seq`.
    async fn subscribe(&self, start: StartAt) -> Result<BoxStream<'static, Result<StoredMessage, LogError>>, LogError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` messages in order; waits up to `wait` for the first.
    /// An empty batch means nothing arrived in time.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredMessage>, LogError>;

    /// Acknowledges every delivered message with a sequence ≤ `seq`.
    async fn ack_through(&mut self, seq: u64) -> Result<(), LogError>;
}

/// Follows `log` forever from sequence `from`, handing each message to
/// `apply` in order. When the subscription fails or ends (the server
/// restarted under it, say), it resubscribes after the last message handed
/// over, backing off up to 5 s between attempts — so a follower never
/// silently stops, and never sees a message twice or out of order.
pub async fn follow<F, Fut>(log: std::sync::Arc<dyn EventLog>, from: u64, apply: F)
where
    F: FnMut(StoredMessage) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_keep, never) = tokio::sync::watch::channel(false);
    follow_until(log, from, never, apply).await;
}

/// [`follow`] until `stop` turns true: a message being applied is applied
/// to the end first (a follower drains; it is never cut off mid-update).
/// Returns the sequence of the next message it would have applied.
pub async fn follow_until<F, Fut>(log: std::sync::Arc<dyn EventLog>, from: u64, mut stop: tokio::sync::watch::Receiver<bool>, mut apply: F) -> u64
where
    F: FnMut(StoredMessage) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt as _;
    let mut next = from.max(1);
    let resubscribe = || spend_core::retry::backoff(Duration::from_millis(200), Duration::from_secs(5));
    let mut backoff = resubscribe();
    let stopped = |stop: &tokio::sync::watch::Receiver<bool>| *stop.borrow();
    while !stopped(&stop) {
        match log.subscribe(StartAt::Sequence(next)).await {
            Ok(mut stream) => loop {
                let item = tokio::select! {
                    biased;
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return next,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(m)) if m.seq < next => {}
                    Some(Ok(m)) => {
                        next = m.seq + 1;
                        apply(m).await;
                        backoff = resubscribe();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, next, "event log subscription failed; resubscribing");
                        break;
                    }
                    None => {
                        tracing::warn!(next, "event log subscription ended; resubscribing");
                        break;
                    }
                }
            },
            Err(e) => tracing::error!(error = %e, next, "cannot follow the event log; retrying"),
        }
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return next,
            _ = tokio::time::sleep(backoff.wait()) => {}
        }
    }
    next
}
