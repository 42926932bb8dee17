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
            return Err(SubjectError { what, value: value.to_string() });
        }
    }
    Ok(format!("{prefix}.{org}.{aggregate}.{id}"))
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
}
