//! The ledger's verdict on bytes from the stream: a valid event, or a
//! rejection with its reason. The verdict is a pure function of the stream
//! subject and the payload, so an auditor's `spend ledger verify` recomputes
//! it and catches an export whose subjects or verdicts were edited.
//! Rejected payloads are kept and hashed like any other: the ledger never
//! drops bytes it was given.

use chrono::{DateTime, Utc};
use spend_core::RawEnvelope;

/// What the ledger learned from a valid event.
#[derive(Debug)]
pub struct Accepted<'a> {
    pub envelope: RawEnvelope<'a>,
}

impl Accepted<'_> {
    pub fn time(&self) -> DateTime<Utc> {
        self.envelope.time
    }
}

/// The stream subject an event must be published on:
/// `<prefix>.<org>.<aggregate>.<id>` for envelope subject `<aggregate>/<id>`.
fn own_subject(prefix: &str, org: &str, envelope_subject: &str) -> Option<String> {
    let (aggregate, id) = envelope_subject.split_once('/')?;
    spend_core::subject::aggregate_subject(prefix, org, aggregate, id).ok()
}

/// Validates `payload` as published on `subject` of a stream whose subjects
/// start with `prefix`. Reasons name the subject, so the verdict covers it.
pub fn classify<'a>(prefix: &str, subject: &str, payload: &'a [u8]) -> Result<Accepted<'a>, String> {
    let envelope = RawEnvelope::parse(payload).map_err(|e| format!("{e} (published on {subject:?})"))?;
    match own_subject(prefix, &envelope.org, &envelope.subject) {
        Some(own) if own == subject => Ok(Accepted { envelope }),
        Some(own) => Err(format!(
            "event of org {:?} was published on {subject:?}, not on its own subject {own:?}",
            envelope.org
        )),
        None => Err(format!(
            "event subject {:?} is not <aggregate>/<id> (published on {subject:?})",
            envelope.subject
        )),
    }
}

/// The cheap half of [`classify`] for auditors: checks that an event the
/// ledger accepted sits on its own subject, without a full parse (the payload
/// itself is already authenticated by the tree).
pub fn subject_consistent(prefix: &str, subject: &str, payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Min<'a> {
        #[serde(borrow)]
        org: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        subject: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Min<'_>>(payload).is_ok_and(|m| own_subject(prefix, &m.org, &m.subject).is_some_and(|own| own == subject))
}
