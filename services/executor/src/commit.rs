//! Commitments against the policy's envelope (`budget.envelope`), whose
//! one writer is the executor: it commits a change right before it pushes
//! it, and releases the commitment if the change fails for good.
//!
//! A commitment re-judges the draft with the pure policy core against the
//! SPEND.md given and the envelope as it is now, and is appended with the
//! subject's expected last sequence: two pushes racing for the last of the
//! ceiling read the same state, one append wins, the other reads again and
//! judges again — so no schedule and no concurrency, across every account
//! and both rails, takes the organisation over `daily_limit` or
//! `monthly_limit` (docs/spend-windows.md).

use chrono::{DateTime, Utc};
use spend_core::events::{BudgetCommitted, BudgetReleased, DraftChange, DraftProposed, EnvelopeState, EventData};
use spend_core::{Actor, Cause, Money, RawEnvelope};
use spend_eventlog::{LogError, Recorder};
use spend_policy::envelope::EnvelopeExt;
use spend_policy::evaluate::{Decision, evaluate};
use spend_policy::judge::Judged;
use spend_policy::spendmd::SpendMd;

/// The aggregate id of the envelope: `budget.envelope`.
pub const ENVELOPE_ID: &str = "envelope";
/// Attempts at a contended commitment before giving up for now.
const MAX_ATTEMPTS: usize = 64;

/// Why the policy in force refuses a draft now, and the security alert
/// it is worth (a decision that disagrees with the rules, audited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub why: String,
    pub alert: Option<&'static str>,
}

/// What a commitment came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Committed now: what it counted against the ceiling, and when.
    Now { counted: i64, at: DateTime<Utc> },
    /// The envelope holds this draft already (a push resumed after a
    /// crash), committed at `at` when that is known.
    Already { at: Option<DateTime<Utc>> },
    /// The policy in force refuses it now.
    Refused(Refusal),
}

/// The envelope's state and its subject's last sequence.
pub async fn envelope(recorder: &Recorder, org: &str) -> Result<(EnvelopeState, u64), LogError> {
    let subject = recorder.subject(org, "budget", ENVELOPE_ID)?;
    let Some(m) = recorder.log().last_on_subject(&subject).await? else {
        return Ok((EnvelopeState::default(), 0));
    };
    let state = RawEnvelope::parse(&m.payload).ok().and_then(|env| match env.event_type.as_ref() {
        BudgetCommitted::TYPE => serde_json::from_str::<BudgetCommitted>(env.data.get()).ok().map(|c| c.envelope),
        BudgetReleased::TYPE => serde_json::from_str::<BudgetReleased>(env.data.get()).ok().map(|c| c.envelope),
        _ => None,
    });
    match state {
        Some(s) => Ok((s, m.seq)),
        None => Err(LogError::Corrupt(format!("the last event on {subject} (seq {}) is not an envelope", m.seq))),
    }
}

/// Commits `draft` against the envelope if the policy in force allows it
/// now: `gate` is given the draft's decision under it (an auto-approval
/// must still be one, a human-approved draft must not be denied and must
/// have as many approvers as the rules ask now).
pub async fn commit(
    recorder: &Recorder,
    org: &str,
    draft: &DraftProposed,
    policy: &SpendMd,
    mandate: bool,
    gate: impl Fn(&Decision) -> Result<(), Refusal>,
    cause: Option<Cause>,
) -> Result<Committed, LogError> {
    for _ in 0..MAX_ATTEMPTS {
        let (state, seq) = envelope(recorder, org).await?;
        if state.has_committed(&draft.draft_id) {
            return Ok(Committed::Already { at: None });
        }
        let now = Utc::now();
        let judged = Judged::new(draft, &state, now);
        let decision = evaluate(policy, mandate, &judged.windows, &judged.draft, now);
        if let Err(refusal) = gate(&decision) {
            return Ok(Committed::Refused(refusal));
        }
        let mut after = judged.commitment.after.clone();
        if after.currency.is_empty() {
            after.currency = judged.currency.clone();
        }
        let mut event = recorder
            .event(
                org,
                Actor::service("executor"),
                "budget",
                ENVELOPE_ID,
                EventData::BudgetCommitted(BudgetCommitted {
                    draft_id: draft.draft_id.clone(),
                    account_id: draft.account_id.clone(),
                    amount: Money {
                        minor_units: judged.counted,
                        currency: judged.currency.clone(),
                    },
                    campaign_id: judged.commitment.campaign_id.clone(),
                    envelope: after,
                }),
            )
            .expect_seq(seq);
        if let Some(c) = cause {
            event = event.following(c);
        }
        match event.record().await {
            Ok(_) => {
                return Ok(Committed::Now {
                    counted: judged.counted,
                    at: now,
                });
            }
            Err(LogError::WrongLastSequence { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(LogError::Unavailable(format!("the envelope of {org} is too contended; the push is retried")))
}

/// Takes back the commitment of `draft` (committed at `at`, counting
/// `counted`): its change failed for good, or a payment was refunded. A
/// payment gives back what it counted; a campaign's rate becomes the
/// highest of the commitments still outstanding on it.
pub async fn release(recorder: &Recorder, org: &str, draft: &DraftProposed, counted: i64, at: DateTime<Utc>, cause: Option<Cause>) -> Result<(), LogError> {
    let campaign_id = match &draft.change {
        DraftChange::Campaign { campaign_id, .. } => Some(campaign_id.clone()),
        DraftChange::Payment { .. } if counted <= 0 => return Ok(()),
        DraftChange::Payment { .. } => None,
    };
    for _ in 0..MAX_ATTEMPTS {
        let (state, seq) = envelope(recorder, org).await?;
        let released = state.release(&draft.draft_id, &draft.account_id, &draft.change, counted, at);
        if released.after == state {
            return Ok(());
        }
        let mut event = recorder
            .event(
                org,
                Actor::service("executor"),
                "budget",
                ENVELOPE_ID,
                EventData::BudgetReleased(BudgetReleased {
                    draft_id: draft.draft_id.clone(),
                    account_id: draft.account_id.clone(),
                    amount: Money {
                        minor_units: released.released,
                        currency: draft.spend_impact.currency.clone(),
                    },
                    campaign_id: campaign_id.clone(),
                    envelope: released.after,
                }),
            )
            .expect_seq(seq);
        if let Some(c) = cause {
            event = event.following(c);
        }
        match event.record().await {
            Ok(_) => return Ok(()),
            Err(LogError::WrongLastSequence { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(LogError::Unavailable(format!(
        "the envelope of {org} is too contended to release {}",
        draft.draft_id
    )))
}
