//! Subjects on the event stream: `<prefix>.<org>.<aggregate>.<aggregate_id>`
//! (default prefix `spend.evt`). Each token is checked so an org or id can
//! never inject NATS wildcards or extra levels.

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not a valid subject token (use A-Z, a-z, 0-9, '_' and '-', at most 128 characters)")]
pub struct SubjectError {
    pub what: &'static str,
    pub value: String,
}

/// A token safe to place in a NATS subject.
pub fn is_valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The subject of one aggregate instance.
pub fn aggregate_subject(prefix: &str, org: &str, aggregate: &str, id: &str) -> Result<String, SubjectError> {
    for (what, value) in [("org", org), ("aggregate", aggregate), ("aggregate id", id)] {
        if !is_valid_token(value) {
            return Err(SubjectError {
                what,
                value: value.to_string(),
            });
        }
    }
    Ok(format!("{prefix}.{org}.{aggregate}.{id}"))
}

/// `<prefix>.<org>.<aggregate>.<id>` → `(aggregate, id)`, for the given
/// prefix and org; `None` for a subject of another org or shape.
pub fn split_aggregate<'s>(subject: &'s str, prefix: &str, org: &str) -> Option<(&'s str, &'s str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?.strip_prefix(org)?.strip_prefix('.')?;
    rest.split_once('.')
}

/// The envelope `subject` of an aggregate instance: `<aggregate>/<id>`.
pub fn envelope_subject(aggregate: &str, id: &str) -> String {
    format!("{aggregate}/{id}")
}

/// True when a stream subject `<prefix>.<org>.<aggregate>.<id>` carries an
/// event of `org` whose envelope subject is `<aggregate>/<id>`: an event
/// published on another organisation's or aggregate's subject is refused.
pub fn matches_envelope(stream_subject: &str, org: &str, envelope_subject: &str) -> bool {
    let Some((aggregate, id)) = envelope_subject.split_once('/') else {
        return false;
    };
    if ![org, aggregate, id].iter().all(|t| is_valid_token(t)) {
        return false;
    }
    let tail = format!(".{org}.{aggregate}.{id}");
    stream_subject.len() > tail.len() && stream_subject.ends_with(&tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_refuse_wildcards_and_dots() {
        assert_eq!(aggregate_subject("spend.evt", "acme", "draft", "d1").unwrap(), "spend.evt.acme.draft.d1");
        assert!(aggregate_subject("spend.evt", "acme.*", "draft", "d1").is_err());
        assert!(aggregate_subject("spend.evt", "acme", "draft", ">").is_err());
        assert!(aggregate_subject("spend.evt", "", "draft", "d1").is_err());
    }

    #[test]
    fn an_event_must_sit_on_its_own_org_and_aggregate_subject() {
        assert!(matches_envelope("spend.evt.acme.draft.d1", "acme", "draft/d1"));
        assert!(!matches_envelope("spend.evt.other.draft.d1", "acme", "draft/d1"));
        assert!(!matches_envelope("spend.evt.acme.draft.d2", "acme", "draft/d1"));
        assert!(!matches_envelope("acme.draft.d1", "acme", "draft/d1"));
        assert!(!matches_envelope("spend.evt.acme.draft.d1", "acme", "draft.d1"));
    }
}
