//! What the policy service's follower saw lately that deciding a draft
//! needs: drafts not yet decided, and each organisation's envelope with its
//! subject sequence. With it, deciding a draft that was just recorded reads
//! nothing from the log — the follower already delivered the draft, and it
//! must reach the draft anyway (the versions in force are the follower's).
//!
//! A fast path only, never a source of truth it cannot check:
//! - a draft is taken from the log by the follower, never from a caller,
//!   and only the first agent-written `spend.draft.proposed.v1` of its
//!   subject (a later one on the same subject is not a draft);
//! - a decision is still appended with expected subject sequence 0, so a
//!   draft another replica decided meanwhile keeps that decision;
//! - a commitment is still appended with the envelope's expected subject
//!   sequence, so a stale envelope loses the race and is read again from
//!   the log.
//!
//! Bounded: at most [`MAX_DRAFTS`] drafts (oldest dropped first; a dropped
//! draft is decided from the log as before), one envelope per
//! organisation.

use std::collections::HashMap;

use spend_core::Cause;
use spend_core::bounded::FifoMap;
use spend_core::events::{DraftProposed, EnvelopeState};

/// Undecided drafts remembered at once.
pub const MAX_DRAFTS: usize = 10_000;

/// A draft as the log holds it: its data, its envelope's id and
/// correlation (for causation), and its stream sequence.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub data: DraftProposed,
    pub cause: Cause,
    pub seq: u64,
}

type Key = (String, String);

pub struct Recent {
    /// `None`: the first event on the draft's subject was not an agent's
    /// draft, so the subject holds no draft (as the log path finds too).
    drafts: FifoMap<Key, Option<Recorded>>,
    envelopes: HashMap<String, (EnvelopeState, u64)>,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            drafts: FifoMap::new(MAX_DRAFTS),
            envelopes: HashMap::new(),
        }
    }
}

impl Recent {
    /// The follower saw an event on `draft.<draft_id>`: `Some` when it is
    /// an agent's `spend.draft.proposed.v1` naming that id.
    pub fn draft_event(&mut self, org: &str, draft_id: &str, recorded: Option<Recorded>) {
        // Only the first event on its subject: a later one is never a
        // draft of its own.
        self.drafts.insert_new((org.to_string(), draft_id.to_string()), recorded);
    }

    /// The follower saw a decision of `draft_id`: it is no longer a draft
    /// to decide. Its place is kept (as no draft), so a later draft event
    /// on its subject is not taken for a first one.
    pub fn decided(&mut self, org: &str, draft_id: &str) {
        if let Some(entry) = self.drafts.get_mut(&(org.to_string(), draft_id.to_string())) {
            *entry = None;
        }
    }

    /// The follower saw a commitment: the envelope after it, at `seq`.
    pub fn envelope_seen(&mut self, org: &str, envelope: EnvelopeState, seq: u64) {
        self.envelopes.insert(org.to_string(), (envelope, seq));
    }

    /// Whether the follower saw the draft's subject and it holds no draft
    /// to decide (decided, or its first event was no draft): the log path
    /// answers at once, without waiting for the follower.
    pub fn settled(&self, org: &str, draft_id: &str) -> bool {
        matches!(self.drafts.get(&(org.to_string(), draft_id.to_string())), Some(None))
    }

    /// An undecided draft the follower delivered.
    pub fn draft(&self, org: &str, draft_id: &str) -> Option<Recorded> {
        self.drafts.get(&(org.to_string(), draft_id.to_string())).cloned().flatten()
    }

    /// The envelope as of the follower's position, and the sequence of the
    /// commitment that left it so (0: none yet).
    pub fn envelope(&self, org: &str) -> (EnvelopeState, u64) {
        self.envelopes.get(org).cloned().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.drafts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drafts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::Money;
    use spend_core::events::DraftChange;

    fn draft(id: &str, seq: u64, minor: i64) -> Recorded {
        let amount = Money::new(minor, "USD").unwrap();
        Recorded {
            data: spend_draft::display::proposed(
                id,
                "card_1",
                "r",
                None,
                DraftChange::Payment {
                    amount,
                    merchant: "openai.com".into(),
                    category: None,
                    country: None,
                    url: None,
                    https: None,
                    card_id: Some("crd_1".into()),
                    stated_category: None,
                    stated_country: None,
                },
            )
            .expect("a consistent draft"),
            cause: Cause {
                id: uuid::Uuid::nil(),
                correlation: uuid::Uuid::nil(),
            },
            seq,
        }
    }

    #[test]
    fn only_the_first_draft_event_of_a_subject_is_the_draft() {
        let mut r = Recent::default();
        r.draft_event("acme", "d1", Some(draft("d1", 1, 100)));
        r.draft_event("acme", "d1", Some(draft("d1", 5, 999_999)));
        assert_eq!(r.draft("acme", "d1").unwrap().seq, 1);
        r.draft_event("acme", "d2", None);
        r.draft_event("acme", "d2", Some(draft("d2", 7, 1)));
        assert!(r.draft("acme", "d2").is_none(), "a subject whose first event is not a draft holds none");
        assert!(r.settled("acme", "d2") && !r.settled("acme", "d1") && !r.settled("acme", "d9"));
        assert!(r.draft("globex", "d1").is_none(), "per organisation");
        r.decided("acme", "d1");
        assert!(r.draft("acme", "d1").is_none(), "a decided draft is not served");
        assert!(r.settled("acme", "d1"), "and is settled: no wait for the follower");
        r.draft_event("acme", "d1", Some(draft("d1", 9, 1)));
        assert!(r.draft("acme", "d1").is_none(), "nor is a later draft event on its subject");
    }

    #[test]
    fn it_stays_bounded_however_many_drafts_arrive_and_are_decided() {
        let mut r = Recent::default();
        for i in 0..(3 * MAX_DRAFTS as u64) {
            let id = format!("d{i}");
            r.draft_event("acme", &id, Some(draft(&id, i + 1, 1)));
            if i % 2 == 0 {
                r.decided("acme", &id);
            }
            assert!(r.len() <= MAX_DRAFTS);
        }
        assert!(r.len() <= MAX_DRAFTS);
        let last = format!("d{}", 3 * MAX_DRAFTS - 1);
        assert!(r.draft("acme", &last).is_some(), "the newest are kept");
        assert!(r.draft("acme", "d1").is_none(), "the oldest are dropped");
    }
}
