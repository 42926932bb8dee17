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
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use spend_core::Secret;
use spend_core::secret::{redact_url, split_credentials};

use crate::{Append, AppendAck, Consumer, EventLog, LogError, LogInfo, StartAt, StoredMessage};

mod streams;

pub use streams::{check_server_version, ensure_stream, existing_stream, stream_config};

/// The oldest nats-server with dedup and expected-last-subject-sequence.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 9, 0);

/// Settings of the JetStream log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStreamConfig {
    /// Server URL. Credentials written into it are taken out and passed
    /// through the connect options (async-nats ignores them in a URL), and
    /// the URL is redacted wherever it is printed.
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
    /// The NATS user this service logs in as (k8s/nats/auth.conf has one
    /// per service); with `password`.
    pub user: Option<String>,
    /// From the environment (`SPEND__NATS__PASSWORD`); never serialized.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    /// An nkey seed instead of a password (`SPEND__NATS__NKEY_SEED`).
    #[serde(skip_serializing)]
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (JWT + nkey) instead of either.
    pub credentials_file: Option<String>,
    /// The subject prefix of this connection's reply inboxes. auth.conf
    /// lets each user subscribe only under its own (`_INBOX_<user>`), so
    /// no service can read another's replies.
    pub inbox_prefix: Option<String>,
    /// Whether this process may create the streams and consumers it uses
    /// when they are missing (development and tests, as an unrestricted
    /// user). Production services run without: `spend nats init`, as the
    /// NATS admin, creates everything, and service users have no right to
    /// create a stream or a consumer.
    pub manage: bool,
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
            user: None,
            password: None,
            nkey_seed: None,
            credentials_file: None,
            inbox_prefix: None,
            manage: false,
        }
    }
}

impl JetStreamConfig {
    /// The server URL without credentials, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Connect options carrying this config's credentials and inbox.
    pub async fn connect_options(&self) -> Result<(String, async_nats::ConnectOptions), LogError> {
        let (url, in_url) = split_credentials(&self.url);
        let mut opts = if let Some(path) = &self.credentials_file {
            async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| LogError::Rejected(format!("reading NATS credentials file {path}: {e}")))?
        } else if let Some(seed) = &self.nkey_seed {
            async_nats::ConnectOptions::with_nkey(seed.expose().to_string())
        } else if let Some(user) = &self.user {
            let password = self.password.clone().or(in_url.map(|(_, p)| p)).unwrap_or_default();
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.expose().to_string())
        } else if let Some((user, password)) = in_url {
            async_nats::ConnectOptions::with_user_and_password(user, password.expose().to_string())
        } else {
            async_nats::ConnectOptions::new()
        };
        if let Some(prefix) = &self.inbox_prefix {
            opts = opts.custom_inbox_prefix(prefix);
        }
        Ok((url, opts))
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
        let client = connect_client(&config).await?;
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
                return Err(LogError::Unavailable(format!(
                    "no answer from NATS at {} within 10 s (wrong credentials are refused without an answer here: nats-server logs \"authentication error\" for the user)",
                    config.display_url()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        check_server_version(&info.version)?;
        if !info.jetstream {
            return Err(LogError::Rejected(format!(
                "nats-server {} at {} runs without JetStream (start it with -js)",
                info.version,
                config.display_url()
            )));
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(4096)
            .build(client.clone());
        let wanted = stream_config(&config.stream, vec![format!("{}.>", config.subject_prefix)], config.duplicate_window);
        let stream = if config.manage {
            ensure_stream(&js, wanted).await?
        } else {
            existing_stream(&js, &wanted).await?
        };
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

/// The durable pull consumer SpendSignoff uses: explicit acks, in order.
/// `spend nats init` creates every one with this config.
pub fn durable_config(name: &str, deliver_policy: DeliverPolicy, config: &JetStreamConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_ack_pending: config.max_ack_pending,
        ..Default::default()
    }
}

/// Reads in flight at once when a sequential reader is behind.
const READ_AHEAD: usize = 64;

impl JetStreamLog {
    /// Every message from `start` on, then live ones, read by sequence with
    /// `$JS.API.STREAM.MSG.GET` — the one read right a service user has, so
    /// followers need no consumer of their own (no consumer create right,
    /// and nothing to clean up when a replica goes away). Behind the tail,
    /// up to [`READ_AHEAD`] reads are in flight; at the tail it wakes on
    /// any message published under the prefix (a core subscription) or
    /// every 250 ms.
    async fn read_by_sequence(&self, start: StartAt) -> Result<BoxStream<'static, Result<StoredMessage, LogError>>, LogError> {
        let first = match start {
            StartAt::Beginning => self.info_first_seq().await?,
            StartAt::Sequence(s) => s.max(1),
            StartAt::Time(t) => self.first_seq_at_or_after(t).await?,
        };
        let wake = self
            .client
            .subscribe(format!("{}.>", self.config.subject_prefix))
            .await
            .map_err(|e| LogError::Unavailable(format!("subscribing to {}.>: {e}", self.config.subject_prefix)))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<StoredMessage, LogError>>(1024);
        let log = self.clone();
        tokio::spawn(async move {
            let mut wake = wake;
            let mut next = first;
            loop {
                let last = match log.info().await {
                    Ok(i) => i.last_seq,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if next > last {
                    tokio::select! {
                        _ = wake.next() => {}
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                let upto = last.min(next + 4 * READ_AHEAD as u64);
                let mut reads = futures::stream::iter(next..=upto)
                    .map(|seq| {
                        let stream = log.stream.clone();
                        async move { (seq, stream.get_raw_message(seq).await) }
                    })
                    .buffered(READ_AHEAD);
                while let Some((seq, r)) = reads.next().await {
                    let item = r
                        .map(|m| stored_raw(&m))
                        .map_err(|e| LogError::Unavailable(format!("reading message {seq} of {}: {e}", log.config.stream)));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                    next = seq + 1;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    /// The first sequence stored at or after `t` (messages are stored in
    /// time order): a binary search with reads by sequence.
    async fn first_seq_at_or_after(&self, t: DateTime<Utc>) -> Result<u64, LogError> {
        let (mut lo, mut hi) = (self.info_first_seq().await?, self.info().await?.last_seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let m = self
                .stream
                .get_raw_message(mid)
                .await
                .map_err(|e| LogError::Unavailable(format!("reading message {mid} of {}: {e}", self.config.stream)))?;
            if to_chrono(m.time) < t { lo = mid + 1 } else { hi = mid }
        }
        Ok(lo)
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

/// Headers JetStream adds when it republishes a message from a stream.
fn is_republished(h: &async_nats::HeaderMap) -> bool {
    h.get("Nats-Stream").is_some() || h.get("Nats-Sequence").is_some() || h.get("Nats-Last-Sequence").is_some()
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
        republished: m.headers.as_ref().is_some_and(is_republished),
    })
}

/// A message read with `$JS.API.STREAM.MSG.GET`: its headers as stored.
fn stored_raw(m: &async_nats::jetstream::message::StreamMessage) -> StoredMessage {
    StoredMessage {
        seq: m.sequence,
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        time: to_chrono(m.time),
        msg_id: m.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_string()),
        republished: is_republished(&m.headers),
    }
}

/// Connects with the config's credentials and inbox prefix; errors name
/// the server without its credentials.
pub async fn connect_client(config: &JetStreamConfig) -> Result<async_nats::Client, LogError> {
    let (url, opts) = config.connect_options().await?;
    opts.name("spendsignoff")
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(&url)
        .await
        .map_err(|e| LogError::Unavailable(format!("connecting to NATS at {}: {e}", redact_url(&url))))
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

    async fn first_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError> {
        use async_nats::jetstream::stream::RawMessageErrorKind;
        match self.stream.get_first_raw_message_by_subject(subject, 1).await {
            Ok(m) => Ok(Some(stored_raw(&m))),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(LogError::Unavailable(format!("first message on {subject}: {e}"))),
        }
    }

    async fn last_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(Some(stored_raw(&m))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(LogError::Unavailable(format!("last message on {subject}: {e}"))),
        }
    }

    async fn durable_consumer(&self, name: &str, start: StartAt) -> Result<Box<dyn Consumer>, LogError> {
        let config = |deliver_policy| durable_config(name, deliver_policy, &self.config);
        let unavailable = |e: &dyn std::fmt::Display| LogError::Unavailable(format!("consumer {name} on {}: {e}", self.config.stream));
        let mut consumer: PullConsumer = if self.config.manage {
            self.stream
                .get_or_create_consumer(name, config(deliver_policy(start)))
                .await
                .map_err(|e| unavailable(&e))?
        } else {
            // A service user may read its own consumers, never create one
            // (a push consumer's deliver subject would be published past
            // its permissions): `spend nats init` made it.
            self.stream.get_consumer(name).await.map_err(|e| {
                LogError::Rejected(format!(
                    "consumer {name} on stream {}: {e} (service users cannot create consumers: create it with `spend nats init` as the NATS admin user)",
                    self.config.stream
                ))
            })?
        };
        let info = consumer.info().await.map_err(|e| unavailable(&e))?.clone();
        if info.num_ack_pending > 0 && !self.config.manage {
            // Without the right to recreate it, what a crashed owner left
            // unacknowledged comes back after ack_wait; messages after it
            // are held until then, so the order is kept.
            tracing::info!(
                consumer = name,
                pending = info.num_ack_pending,
                ack_wait_ms = self.config.ack_wait.as_millis() as u64,
                "consumer left with unacknowledged messages: they are redelivered after ack_wait"
            );
        } else if info.num_ack_pending > 0 {
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
        if !self.config.manage {
            return self.read_by_sequence(start).await;
        }
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
