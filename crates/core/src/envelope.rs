//! The pinned event envelope: CloudEvents 1.0 attribute names plus the
//! extensions `org`, `actor`, `correlationid`, `causationid`, `traceparent`.
//!
//! Events are serialized once, by [`Envelope::to_bytes`], and from then on
//! the bytes are what is published, hashed, signed and exported. Readers
//! parse with [`RawEnvelope::parse`], which checks the envelope without
//! re-serializing anything.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::events::EventData;

/// CloudEvents spec version this envelope follows.
pub const SPEC_VERSION: &str = "1.0";

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Agent,
    Human,
    Service,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// Agent key id, human user id, or service name; never a secret.
    pub id: String,
}

impl Actor {
    pub fn service(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Service,
            id: name.into(),
        }
    }
    pub fn agent(key_id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Agent,
            id: key_id.into(),
        }
    }
    pub fn human(user_id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Human,
            id: user_id.into(),
        }
    }
}

/// An event as produced by a service.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub specversion: &'static str,
    /// UUIDv7: time-ordered, and the JetStream `Nats-Msg-Id` for dedup.
    pub id: Uuid,
    /// URI-reference of the producing service, e.g. `spendsignoff/ledger`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The aggregate the event belongs to, `<aggregate>/<aggregate_id>`.
    pub subject: String,
    pub time: String,
    pub datacontenttype: &'static str,
    pub data: EventData,
    pub org: String,
    pub actor: Actor,
    pub correlationid: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causationid: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Envelope {
    /// A new event with a fresh UUIDv7 id; it starts its own correlation.
    pub fn new(source: impl Into<String>, org: impl Into<String>, actor: Actor, subject: impl Into<String>, data: EventData) -> Self {
        let id = Uuid::now_v7();
        Self {
            specversion: SPEC_VERSION,
            id,
            source: source.into(),
            event_type: data.event_type(),
            subject: subject.into(),
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            datacontenttype: "application/json",
            data,
            org: org.into(),
            actor,
            correlationid: id,
            causationid: None,
            traceparent: None,
        }
    }

    /// Marks this event as caused by `cause`, continuing its correlation.
    pub fn caused_by(mut self, cause: &RawEnvelope<'_>) -> Self {
        self.correlationid = cause.correlationid;
        self.causationid = Some(cause.id);
        self
    }

    /// Continues the correlation of `cause` (an event's id and its
    /// correlation id), naming `cause.id` as the event this one follows.
    pub fn following(mut self, cause: Cause) -> Self {
        self.correlationid = cause.correlation;
        self.causationid = Some(cause.id);
        self
    }

    /// Where this event sits in its correlation, for the events it causes.
    pub fn cause(&self) -> Cause {
        Cause {
            id: self.id,
            correlation: self.correlationid,
        }
    }

    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The one serialization of this event.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }
}

/// An event that causes others: its id (their `causationid`) and its
/// correlation id (which they continue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    pub id: Uuid,
    pub correlation: Uuid,
}

impl RawEnvelope<'_> {
    pub fn cause(&self) -> Cause {
        Cause {
            id: self.id,
            correlation: self.correlationid,
        }
    }
}

/// Why bytes on the stream are not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("payload is not a JSON event envelope: {0}")]
    Json(String),
    #[error("specversion must be \"1.0\", found {0:?}")]
    SpecVersion(String),
    #[error("type {0:?} does not match spend.<noun>.<verb>.v<N>")]
    Type(String),
    #[error("field `{field}` is invalid: {reason}")]
    Field { field: &'static str, reason: String },
}

/// A parsed, validated view of stored event bytes. `data` stays raw, so the
/// bytes are never re-serialized.
#[derive(Debug, Deserialize)]
pub struct RawEnvelope<'a> {
    pub specversion: &'a str,
    pub id: Uuid,
    #[serde(borrow)]
    pub source: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub subject: std::borrow::Cow<'a, str>,
    pub time: DateTime<Utc>,
    #[serde(borrow)]
    pub datacontenttype: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub data: &'a RawValue,
    #[serde(borrow)]
    pub org: std::borrow::Cow<'a, str>,
    pub actor: Actor,
    pub correlationid: Uuid,
    pub causationid: Option<Uuid>,
    pub traceparent: Option<String>,
}

impl<'a> RawEnvelope<'a> {
    /// Parses and checks an envelope; the error says what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let env: RawEnvelope<'a> = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        if env.specversion != SPEC_VERSION {
            return Err(EnvelopeError::SpecVersion(env.specversion.to_string()));
        }
        if !is_valid_type(&env.event_type) {
            return Err(EnvelopeError::Type(env.event_type.to_string()));
        }
        if env.id.get_version_num() != 7 {
            return Err(EnvelopeError::Field {
                field: "id",
                reason: "must be a UUIDv7".into(),
            });
        }
        if env.source.is_empty() {
            return Err(EnvelopeError::Field {
                field: "source",
                reason: "must not be empty".into(),
            });
        }
        if !crate::subject::is_valid_token(&env.org) {
            return Err(EnvelopeError::Field {
                field: "org",
                reason: "must be a non-empty token of [A-Za-z0-9_-]".into(),
            });
        }
        if env.subject.is_empty() {
            return Err(EnvelopeError::Field {
                field: "subject",
                reason: "must not be empty".into(),
            });
        }
        if env.actor.id.is_empty() {
            return Err(EnvelopeError::Field {
                field: "actor.id",
                reason: "must not be empty".into(),
            });
        }
        Ok(env)
    }
}

/// `spend.<noun>.<verb>.v<N>`, lowercase words with underscores.
pub fn is_valid_type(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    parts.len() == 4
        && parts[0] == "spend"
        && word(parts[1])
        && word(parts[2])
        && parts[3].len() > 1
        && parts[3].starts_with('v')
        && parts[3][1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventData, SecurityAlert};

    fn sample() -> Envelope {
        Envelope::new(
            "spendsignoff/gateway",
            "acme",
            Actor::agent("key_1"),
            "apikey/key_1",
            EventData::SecurityAlert(SecurityAlert {
                reason: "ip_not_allowed".into(),
                key_id: Some("key_1".into()),
                address: Some("192.0.2.1".into()),
                detail: "address outside ip_allowlist".into(),
            }),
        )
    }

    #[test]
    fn an_envelope_round_trips_through_its_bytes_without_reserializing() {
        let env = sample();
        let bytes = env.to_bytes();
        let raw = RawEnvelope::parse(&bytes).unwrap();
        assert_eq!(raw.id, env.id);
        assert_eq!(raw.event_type, "spend.security.alert.v1");
        assert_eq!(raw.org, "acme");
        assert!(raw.data.get().contains("ip_not_allowed"));
    }

    #[test]
    fn a_malformed_payload_is_rejected_with_a_reason() {
        assert!(matches!(RawEnvelope::parse(b"not json"), Err(EnvelopeError::Json(_))));
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["type"] = "spend.nope".into();
        let bytes = serde_json::to_vec(&v).unwrap();
        assert_eq!(RawEnvelope::parse(&bytes).unwrap_err(), EnvelopeError::Type("spend.nope".into()));
        v["type"] = "spend.draft.proposed.v1".into();
        v["specversion"] = "0.3".into();
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(matches!(RawEnvelope::parse(&bytes), Err(EnvelopeError::SpecVersion(_))));
    }

    #[test]
    fn event_types_follow_the_pinned_pattern() {
        assert!(is_valid_type("spend.change.rolled_back.v1"));
        assert!(!is_valid_type("spend.change.rolled_back"));
        assert!(!is_valid_type("other.change.pushed.v1"));
        assert!(!is_valid_type("spend.Change.pushed.v1"));
    }
}
