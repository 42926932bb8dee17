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

/// Validates `payload` as published on `subject`.
pub fn classify<'a>(subject: &str, payload: &'a [u8]) -> Result<Accepted<'a>, String> {
    let envelope = RawEnvelope::parse(payload).map_err(|e| e.to_string())?;
    if !spend_core::subject::matches_envelope(subject, &envelope.org, &envelope.subject) {
        return Err(format!(
            "event of org {:?} with subject {:?} was published on stream subject {subject:?}, which is not its own",
            envelope.org, envelope.subject
        ));
    }
    Ok(Accepted { envelope })
}

/// The cheap half of [`classify`] for auditors: checks that an event the
/// ledger accepted sits on its own subject, without a full parse (the payload
/// itself is already authenticated by the tree).
pub fn subject_consistent(subject: &str, payload: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Min<'a> {
        #[serde(borrow)]
        org: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        subject: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Min<'_>>(payload).is_ok_and(|m| spend_core::subject::matches_envelope(subject, &m.org, &m.subject))
}
