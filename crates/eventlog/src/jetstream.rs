//! The production event log on NATS JetStream.
//!
//! The stream (`SPEND_EVENTS` by default) is created with file storage,
//! `deny_delete`, `deny_purge` and a duplicate window; an existing stream
//! without those guarantees is refused at start-up rather than silently
//! used. Publishes set `Nats-Msg-Id` (dedup) and, when asked,
//! `Nats-Expected-Last-Subject-Sequence` (optimistic concurrency). Both work
//! on nats-server 2.9, the oldest version accepted; the server version is
//! checked on connect.
//!
//! Durable consumers are pull consumers with explicit acks, one owner at a
//! time. Because the stream never deletes, its sequences have no gaps, so
//! the consumer hands messages out strictly in order. When a consumer is
//! opened with messages still unacknowledged by a previous owner (a crashed
//! process), it is recreated at its ack floor so they come back at once
//! rather than one `ack_wait` expiry at a time; a redelivery that arrives
//! ahead of a gap is held until the gap is filled.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{CreateStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::{Append, AppendAck, Consumer, EventLog, LogError, LogInfo, StartAt, StoredMessage};

/// The oldest nats-server with dedup and expected-last-subject-sequence.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 9, 0);

/// Settings of the JetStream log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct JetStreamConfig {
    pub url: String,
    pub stream: String,
    /// Subjects are `<subject_prefix>.<org>.<aggregate>.<id>`.
    pub subject_prefix: String,
    /// How long JetStream remembers message ids for dedup.
    #[serde(with = "millis")]
    pub duplicate_window: Duration,
    /// How long a durable consumer waits for an ack before redelivering.
    #[serde(with = "millis")]
    pub ack_wait: Duration,
    /// Unacknowledged messages a consumer may have out at once.
    pub max_ack_pending: i64,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "SPEND_EVENTS".into(),
            subject_prefix: "spend.evt".into(),
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 50_000,
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Parses `major.minor.patch` (ignoring any suffix) and checks it.
pub fn check_server_version(version: &str) -> Result<(u64, u64, u64), LogError> {
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u64>());
    let v = match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => (a, b, c),
        _ => return Err(LogError::Rejected(format!("cannot parse nats-server version {version:?}"))),
    };
    if v < MIN_SERVER_VERSION {
        let (a, b, c) = MIN_SERVER_VERSION;
        return Err(LogError::Rejected(format!(
            "nats-server {version} is too old: SpendSignoff needs {a}.{b}.{c} or newer (message dedup and expected-last-subject-sequence)"
        )));
    }
    Ok(v)
}

/// The stream config SpendSignoff requires.
pub fn stream_config(name: &str, subjects: Vec<String>, duplicate_window: Duration) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects,
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        duplicate_window,
        max_age: Duration::ZERO,
        num_replicas: 1,
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates the stream, or checks that an existing one keeps the append-only
/// guarantees (file storage, deny_delete, deny_purge, no age limit).
pub async fn ensure_stream(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream, LogError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(mut s) => {
            let c = &s.info().await.map_err(|e| LogError::Unavailable(format!("stream {name} info: {e}")))?.config;
            let mut problems = Vec::new();
            if !c.deny_delete {
                problems.push("deny_delete is off");
            }
            if !c.deny_purge {
                problems.push("deny_purge is off");
            }
            if c.storage != stream::StorageType::File {
                problems.push("storage is not file");
            }
            if !c.max_age.is_zero() || c.max_messages > 0 || c.max_bytes > 0 {
                problems.push("it has age or size limits that would drop events");
            }
            if !problems.is_empty() {
                return Err(LogError::Rejected(format!(
                    "existing stream {name} is not append-only: {}; fix it (deny_delete/deny_purge cannot be turned off once on, but can be turned on) or use another stream name",
                    problems.join(", ")
                )));
            }
            for subject in &config.subjects {
                if !c.subjects.contains(subject) {
                    return Err(LogError::Rejected(format!(
                        "existing stream {name} does not capture subject {subject} (it has {:?})",
                        c.subjects
                    )));
                }
            }
            Ok(s)
        }
        Err(_) => match js.create_stream(config).await {
            Ok(s) => Ok(s),
            Err(e) => match e.kind() {
                // Created concurrently by another replica: use it.
                CreateStreamErrorKind::JetStream(_) => js
                    .get_stream(&name)
                    .await
                    .map_err(|e2| LogError::Rejected(format!("creating stream {name}: {e}; then {e2}"))),
                CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                    Err(LogError::Unavailable(format!("creating stream {name}: {e}")))
                }
                _ => Err(LogError::Rejected(format!("creating stream {name}: {e}"))),
            },
        },
    }
}

/// The JetStream event log. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    config: JetStreamConfig,
    server_version: String,
}

impl JetStreamLog {
    /// Connects, checks the server version, and creates or checks the stream.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, LogError> {
        let client = async_nats::ConnectOptions::new()
            .name("spendsignoff")
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(&config.url)
            .await
            .map_err(|e| LogError::Unavailable(format!("connecting to NATS at {}: {e}", config.url)))?;
        Self::with_client(client, config).await
    }

    pub async fn with_client(client: async_nats::Client, config: JetStreamConfig) -> Result<Self, LogError> {
        // With retry_on_initial_connect the info arrives once connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let info = loop {
            if let Some(info) = client.try_server_info() {
                break info;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(LogError::Unavailable(format!("no answer from NATS at {} within 10 s", config.url)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        check_server_version(&info.version)?;
        if !info.jetstream {
            return Err(LogError::Rejected(format!(
                "nats-server {} at {} runs without JetStream (start it with -js)",
                info.version, config.url
            )));
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(4096)
            .build(client.clone());
        let stream = ensure_stream(
            &js,
            stream_config(&config.stream, vec![format!("{}.>", config.subject_prefix)], config.duplicate_window),
        )
        .await?;
        tracing::info!(server = %info.version, stream = %config.stream, "event log on JetStream");
        Ok(Self {
            client,
            js,
            stream,
            config,
            server_version: info.version,
        })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn config(&self) -> &JetStreamConfig {
        &self.config
    }

    async fn info_first_seq(&self) -> Result<u64, LogError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| LogError::Unavailable(format!("stream {} info: {e}", self.config.stream)))?;
        Ok(info.state.first_sequence.max(1))
    }

    async fn send(&self, m: &Append) -> Result<jetstream::context::PublishAckFuture, LogError> {
        let mut p = PublishMessage::build().payload(m.payload.clone()).message_id(&m.msg_id);
        if let Some(seq) = m.expected_last_subject_seq {
            p = p.expected_last_subject_sequence(seq);
        }
        self.js
            .send_publish(m.subject.clone(), p)
            .await
            .map_err(|e| LogError::Unavailable(format!("publishing to {}: {e}", m.subject)))
    }

    /// After a publish timed out, the message may be stored. Retrying with
    /// the same id is answered `duplicate` on 2.9, but error 10071 on newer
    /// servers when an expected sequence was set: then look at the subject's
    /// last message to see whether it is ours.
    async fn resolve_wrong_sequence(&self, m: &Append, retried: bool) -> Result<AppendAck, LogError> {
        let current = self.last_subject_seq(&m.subject).await?;
        if retried
            && current > 0
            && let Ok(last) = self.stream.get_raw_message(current).await
        {
            let id = last.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_string());
            if id.as_deref() == Some(m.msg_id.as_str()) {
                return Ok(AppendAck { seq: current, duplicate: true });
            }
        }
        Err(LogError::WrongLastSequence {
            subject: m.subject.clone(),
            expected: m.expected_last_subject_seq.unwrap_or(0),
            actual: current,
        })
    }

    async fn append_one(&self, m: &Append, first: jetstream::context::PublishAckFuture) -> Result<AppendAck, LogError> {
        let mut fut = first;
        let mut retried = false;
        for attempt in 0..3 {
            match fut.await {
                Ok(ack) => {
                    return Ok(AppendAck {
                        seq: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(e) => match e.kind() {
                    PublishErrorKind::WrongLastSequence => return self.resolve_wrong_sequence(m, retried).await,
                    PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe if attempt < 2 => {
                        tracing::warn!(subject = %m.subject, msg_id = %m.msg_id, "publish ack timed out; retrying with the same message id");
                        retried = true;
                        fut = self.send(m).await?;
                    }
                    PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                        return Err(LogError::Unavailable(format!("publishing to {}: {e}", m.subject)));
                    }
                    PublishErrorKind::StreamNotFound => return Err(LogError::Rejected(format!("no stream captures subject {}", m.subject))),
                    PublishErrorKind::MaxPayloadExceeded => {
                        return Err(LogError::Rejected(format!(
                            "payload of {} bytes is larger than the server allows",
                            m.payload.len()
                        )));
                    }
                    _ => return Err(LogError::Rejected(format!("publishing to {}: {e}", m.subject))),
                },
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

fn check_subject(subject: &str) -> Result<(), LogError> {
    if subject.is_empty() || subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">") || subject.contains(char::is_whitespace) {
        return Err(LogError::Rejected(format!("subject {subject:?} is not a valid literal subject")));
    }
    Ok(())
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

fn deliver_policy(start: StartAt) -> DeliverPolicy {
    match start {
        StartAt::Beginning => DeliverPolicy::All,
        StartAt::Sequence(s) => DeliverPolicy::ByStartSequence { start_sequence: s.max(1) },
        StartAt::Time(t) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(t.timestamp_nanos_opt().unwrap_or(0) as i128)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        },
    }
}

fn stored(m: &jetstream::Message) -> Result<StoredMessage, LogError> {
    let info = m.info().map_err(|e| LogError::Internal(format!("message without JetStream metadata: {e}")))?;
    Ok(StoredMessage {
        seq: info.stream_sequence,
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        time: to_chrono(info.published),
        msg_id: m
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string()),
    })
}

#[async_trait]
impl EventLog for JetStreamLog {
    async fn append(&self, msg: Append) -> Result<AppendAck, LogError> {
        check_subject(&msg.subject)?;
        let fut = self.send(&msg).await?;
        self.append_one(&msg, fut).await
    }

    async fn append_many(&self, msgs: Vec<Append>) -> Vec<Result<AppendAck, LogError>> {
        let mut futs = Vec::with_capacity(msgs.len());
        for m in &msgs {
            let sent = match check_subject(&m.subject) {
                Ok(()) => self.send(m).await,
                Err(e) => Err(e),
            };
            futs.push(sent);
        }
        let mut out = Vec::with_capacity(msgs.len());
        for (m, f) in msgs.iter().zip(futs) {
            out.push(match f {
                Ok(f) => self.append_one(m, f).await,
                Err(e) => Err(e),
            });
        }
        out
    }

    async fn info(&self) -> Result<LogInfo, LogError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| LogError::Unavailable(format!("stream {} info: {e}", self.config.stream)))?;
        Ok(LogInfo {
            last_seq: info.state.last_sequence,
            messages: info.state.messages,
            backend: format!("nats-server {}", self.server_version),
        })
    }

    async fn last_subject_seq(&self, subject: &str) -> Result<u64, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(LogError::Unavailable(format!("last message on {subject}: {e}"))),
        }
    }

    async fn last_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(Some(StoredMessage {
                seq: m.sequence,
                subject: m.subject.to_string(),
                payload: m.payload.clone(),
                time: to_chrono(m.time),
                msg_id: m.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_string()),
            })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(LogError::Unavailable(format!("last message on {subject}: {e}"))),
        }
    }

    async fn durable_consumer(&self, name: &str, start: StartAt) -> Result<Box<dyn Consumer>, LogError> {
        let config = |deliver_policy| pull::Config {
            durable_name: Some(name.to_string()),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            max_ack_pending: self.config.max_ack_pending,
            ..Default::default()
        };
        let unavailable = |e: &dyn std::fmt::Display| LogError::Unavailable(format!("consumer {name} on {}: {e}", self.config.stream));
        let mut consumer: PullConsumer = self
            .stream
            .get_or_create_consumer(name, config(deliver_policy(start)))
            .await
            .map_err(|e| unavailable(&e))?;
        let info = consumer.info().await.map_err(|e| unavailable(&e))?.clone();
        if info.num_ack_pending > 0 {
            // A previous owner (a crashed process) left messages delivered but
            // unacknowledged. JetStream would only redeliver them after
            // ack_wait, one expiry at a time; recreate the consumer at its ack
            // floor instead, so they come back at once and in order. A durable
            // consumer has one owner at a time.
            let floor = info.ack_floor.stream_sequence;
            let policy = if floor > 0 {
                DeliverPolicy::ByStartSequence { start_sequence: floor + 1 }
            } else {
                info.config.deliver_policy
            };
            tracing::info!(
                consumer = name,
                pending = info.num_ack_pending,
                resume_at = floor + 1,
                "resuming a consumer left with unacknowledged messages"
            );
            self.stream.delete_consumer(name).await.map_err(|e| unavailable(&e))?;
            consumer = self.stream.get_or_create_consumer(name, config(policy)).await.map_err(|e| unavailable(&e))?;
        }
        // Everything up to the ack floor is done; delivery resumes after it
        // (for a new consumer, at its start position).
        let floor = info.ack_floor.stream_sequence;
        let next = if floor > 0 {
            floor + 1
        } else {
            match start {
                StartAt::Sequence(s) => s.max(1),
                // The stream never deletes, so its first sequence stays put.
                StartAt::Beginning => self.info_first_seq().await?,
                // Unknown until the first message arrives.
                StartAt::Time(_) => 0,
            }
        };
        Ok(Box::new(JetStreamConsumer {
            consumer,
            next,
            held: BTreeMap::new(),
            delivered: VecDeque::new(),
            name: name.to_string(),
        }))
    }

    async fn subscribe(&self, start: StartAt) -> Result<BoxStream<'static, Result<StoredMessage, LogError>>, LogError> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: deliver_policy(start),
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::Unavailable(format!("ordered consumer on {}: {e}", self.config.stream)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::Unavailable(format!("ordered consumer on {}: {e}", self.config.stream)))?;
        Ok(messages
            .map(|m| match m {
                Ok(m) => stored(&m),
                Err(e) => Err(LogError::Unavailable(format!("replay: {e}"))),
            })
            .boxed())
    }
}

struct JetStreamConsumer {
    consumer: PullConsumer,
    /// Next sequence to hand out; 0 until known.
    next: u64,
    /// Fetched ahead of a gap (sequence → message), waiting for the gap.
    held: BTreeMap<u64, jetstream::Message>,
    /// Handed out, not yet acknowledged.
    delivered: VecDeque<(u64, jetstream::Message)>,
    name: String,
}

#[async_trait]
impl Consumer for JetStreamConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredMessage>, LogError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Hand out what is contiguous.
            let mut out = Vec::new();
            while out.len() < max {
                let Some((&seq, _)) = self.held.first_key_value() else { break };
                if self.next == 0 {
                    self.next = seq;
                }
                if seq < self.next {
                    // A redelivery of something already handed out.
                    let (_, m) = self.held.pop_first().expect("non-empty");
                    let _ = m.ack().await;
                    continue;
                }
                if seq != self.next {
                    break;
                }
                let (_, m) = self.held.pop_first().expect("non-empty");
                out.push(stored(&m)?);
                self.delivered.push_back((seq, m));
                self.next += 1;
            }
            if !out.is_empty() {
                return Ok(out);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left < Duration::from_millis(10) {
                return Ok(Vec::new());
            }
            // Normally nothing is held; a few redeliveries may be. Keep the
            // held set bounded all the same.
            let want = if self.held.len() >= 4 * max { 1 } else { max };
            let mut batch = self
                .consumer
                .batch()
                .max_messages(want)
                .expires(left.max(Duration::from_millis(100)))
                .messages()
                .await
                .map_err(|e| LogError::Unavailable(format!("consumer {}: {e}", self.name)))?;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| LogError::Unavailable(format!("consumer {}: {e}", self.name)))?;
                let seq = m.info().map_err(|e| LogError::Internal(e.to_string()))?.stream_sequence;
                self.held.insert(seq, m);
            }
        }
    }

    async fn ack_through(&mut self, seq: u64) -> Result<(), LogError> {
        while let Some((s, _)) = self.delivered.front() {
            if *s > seq {
                break;
            }
            let (_, m) = self.delivered.pop_front().expect("non-empty");
            m.ack()
                .await
                .map_err(|e| LogError::Unavailable(format!("ack on consumer {}: {e}", self.name)))?;
        }
        Ok(())
    }
}
