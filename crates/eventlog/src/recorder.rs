//! One way to record an event: the [`Recorder`] builds the envelope and
//! its subject (`<prefix>.<org>.<aggregate>.<id>`), sets `correlationid`
//! (the cause's, so everything about a draft shares the draft's),
//! `causationid` (the event it follows) and `traceparent` (see
//! [`spend_core::trace`]), and appends — with an expected last subject
//! sequence when a state transition races. Every producer records through
//! it, so no envelope is assembled by hand anywhere else.
//!
//! A recorder belongs to one [`Writer`]: its `source`, and the subject of
//! its own security alerts, come from the authority table.

use std::sync::Arc;

use bytes::Bytes;
use spend_core::authority::Writer;
use spend_core::events::{EventData, SecurityAlert};
use spend_core::subject::{aggregate_subject, envelope_subject};
use spend_core::trace::TraceParent;
use spend_core::{Actor, Cause, Envelope};

use crate::{Append, EventLog, LogError};

/// Records the events of one writer.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<dyn EventLog>,
    prefix: String,
    writer: Writer,
}

/// An event recorded: where it went and what it was.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: u64,
    /// The log had it already (same event id inside the duplicate window).
    pub duplicate: bool,
    pub subject: String,
    /// For the events this one causes.
    pub cause: Cause,
    /// The bytes as appended: what is hashed, signed and approved.
    pub bytes: Bytes,
}

/// An event about to be recorded; see [`Recorder::event`].
#[must_use = "an event is recorded only by .record()"]
pub struct Pending<'r> {
    recorder: &'r Recorder,
    org: String,
    actor: Actor,
    aggregate: &'static str,
    id: String,
    data: EventData,
    cause: Option<Cause>,
    trace: Option<TraceParent>,
    expected: Option<u64>,
}

impl Recorder {
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>, writer: Writer) -> Self {
        Self {
            log,
            prefix: prefix.into(),
            writer,
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn writer(&self) -> Writer {
        self.writer
    }

    /// The stream subject of an aggregate instance.
    pub fn subject(&self, org: &str, aggregate: &str, id: &str) -> Result<String, LogError> {
        aggregate_subject(&self.prefix, org, aggregate, id).map_err(|e| LogError::Rejected(e.to_string()))
    }

    /// An event of `org` on `<aggregate>.<id>`; it starts a correlation of
    /// its own unless [`Pending::following`] names its cause.
    pub fn event(&self, org: &str, actor: Actor, aggregate: &'static str, id: &str, data: EventData) -> Pending<'_> {
        Pending {
            recorder: self,
            org: org.to_string(),
            actor,
            aggregate,
            id: id.to_string(),
            data,
            cause: None,
            trace: None,
            expected: None,
        }
    }

    /// A `spend.security.alert.v1` on this writer's own security subject
    /// (`security_<writer>.<key id or "anonymous">`). Never carries a secret.
    pub fn alert(&self, org: &str, alert: SecurityAlert) -> Pending<'_> {
        let id = alert.key_id.clone().unwrap_or_else(|| "anonymous".into());
        let id = if spend_core::subject::is_valid_token(&id) {
            id
        } else {
            "invalid-key-id".into()
        };
        self.event(
            org,
            Actor::service(self.writer.user()),
            self.writer.security_aggregate(),
            &id,
            EventData::SecurityAlert(alert),
        )
    }
}

impl Pending<'_> {
    /// Continues `cause`'s correlation, naming it as the event this follows.
    pub fn following(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Continues a trace the caller received.
    pub fn traced(mut self, trace: Option<TraceParent>) -> Self {
        self.trace = trace;
        self
    }

    /// Appends only if the subject's last sequence is `seq` (0: empty).
    pub fn expect_seq(mut self, seq: u64) -> Self {
        self.expected = Some(seq);
        self
    }

    /// Puts the event on its own subject instead (e.g. an alert raised
    /// once per forgery: `forged-<seq>`, with `expect_seq(0)`).
    pub fn on_id(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// The envelope and its subject, without appending.
    pub fn build(&self) -> Result<(String, Envelope), LogError> {
        let subject = self.recorder.subject(&self.org, self.aggregate, &self.id)?;
        let mut env = Envelope::new(
            self.recorder.writer.source(),
            &self.org,
            self.actor.clone(),
            envelope_subject(self.aggregate, &self.id),
            self.data.clone(),
        );
        if let Some(c) = self.cause {
            env = env.following(c);
        }
        let trace = match self.trace {
            Some(t) => t.child(),
            None => TraceParent::for_correlation(env.correlationid),
        };
        Ok((subject, env.with_traceparent(Some(trace.to_string()))))
    }

    pub async fn record(self) -> Result<Recorded, LogError> {
        let (subject, env) = self.build()?;
        let bytes = Bytes::from(env.to_bytes());
        let mut append = Append::new(subject.clone(), env.id.to_string(), bytes.clone());
        append.expected_last_subject_seq = self.expected;
        let ack = self.recorder.log.append(append).await?;
        Ok(Recorded {
            seq: ack.seq,
            duplicate: ack.duplicate,
            subject,
            cause: env.cause(),
            bytes,
        })
    }
}
