//! Reading the log as every consumer must: an event counts only where its
//! writer could have put it. [`classify`] parses a stored message and
//! checks it against the authority table — an event type on an aggregate
//! it does not belong to, or a message JetStream republished from another
//! stream, is [`Read::Misplaced`]: the reader ignores it and raises a
//! `spend.security.alert.v1` (once per message: see [`misplaced_alert`]).

use spend_core::RawEnvelope;
use spend_core::authority;
use spend_core::events::SecurityAlert;

use crate::StoredMessage;

/// A stored message as a reader sees it.
#[allow(clippy::large_enum_variant)] // built and matched once per message, never stored
pub enum Read<'m> {
    /// A valid event on a subject its type belongs to.
    Event { env: RawEnvelope<'m>, aggregate: &'m str, id: &'m str },
    /// A valid event where it does not belong: to be ignored and audited.
    Misplaced { org: String, detail: String },
    /// Not an event of this prefix (the ledger records it as rejected).
    NotAnEvent,
}

pub fn classify<'m>(prefix: &str, m: &'m StoredMessage) -> Read<'m> {
    let Ok(env) = RawEnvelope::parse(&m.payload) else {
        return Read::NotAnEvent;
    };
    let org = env.org.to_string();
    let Some((aggregate, id)) = spend_core::subject::split_aggregate(&m.subject, prefix, &org) else {
        return Read::NotAnEvent;
    };
    if m.republished {
        return Read::Misplaced {
            detail: format!(
                "a {} at seq {} on {} was republished into the stream from another stream: ignored",
                env.event_type, m.seq, m.subject
            ),
            org,
        };
    }
    if !authority::type_allowed_on(&env.event_type, aggregate) {
        return Read::Misplaced {
            detail: format!(
                "a {} at seq {} on {} ({:?} {} from {}): that type is never written on a `{aggregate}` subject; ignored",
                env.event_type, m.seq, m.subject, env.actor.kind, env.actor.id, env.source
            ),
            org,
        };
    }
    Read::Event { env, aggregate, id }
}

/// The alert for a misplaced message, and the subject id that makes it
/// unique (`misplaced-<seq>`, appended with expected sequence 0, so every
/// replica and every replay records it once).
pub fn misplaced_alert(seq: u64, detail: String) -> (String, SecurityAlert) {
    (
        format!("misplaced-{seq}"),
        SecurityAlert {
            reason: "event.misplaced".into(),
            key_id: None,
            address: None,
            detail,
        },
    )
}
