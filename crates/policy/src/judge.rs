//! A draft as the rules judge it against the envelope at a moment: what it
//! would commit (at its honest worst case; nothing when the envelope has
//! it already), and the windows it is judged in. The policy service judges
//! a draft this way to decide it; the executor judges it again, against
//! the envelope as it is right before it pushes, to commit it.

use chrono::{DateTime, Utc};
use spend_core::Money;
use spend_core::events::{DraftChange, DraftProposed, EnvelopeState};

use crate::envelope::EnvelopeExt;
use crate::evaluate::{Change, Draft, Windows};

/// A draft as the rules judge it against an envelope at `now`: what it
/// would commit (counted at its honest worst case, nothing if it is
/// committed already), and the windows it is judged in.
pub struct Judged {
    /// The draft as the rules see it.
    pub draft: Draft,
    pub windows: Windows,
    /// What committing it would add, and the envelope after.
    pub commitment: crate::envelope::Commitment,
    /// Minor units it adds to the daily ceiling (0 when committed already).
    pub counted: i64,
    pub currency: String,
}

impl Judged {
    pub fn new(data: &DraftProposed, envelope: &EnvelopeState, now: DateTime<Utc>) -> Self {
        let already = envelope.has_committed(&data.draft_id);
        let commitment = envelope.commit(&data.draft_id, &data.account_id, &data.change, now);
        let counted = if already { 0 } else { commitment.counted };
        let currency = data.spend_impact.currency.clone();
        let windows = Windows {
            last_24h: envelope.daily_committed(now),
            this_month: envelope.month_committed(now),
            later_months: envelope.later_months_committed(now),
            campaign_last_changed: data
                .drafted_against
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        };
        let (month_counted, later_months_counted) = if already {
            (0, 0)
        } else {
            (
                commitment.after.month_committed(now).saturating_sub(windows.this_month).max(0),
                commitment.after.later_months_committed(now).saturating_sub(windows.later_months).max(0),
            )
        };
        let money = |minor_units| Money {
            minor_units,
            currency: currency.clone(),
        };
        let draft = Draft {
            account_id: data.account_id.clone(),
            change: Change::from(&data.change),
            spend_impact: money(counted.max(impact_of(&data.change))),
            counted: money(counted),
            month_counted: money(month_counted),
            later_months_counted: money(later_months_counted),
        };
        Self {
            draft,
            windows,
            commitment,
            counted,
            currency,
        }
    }
}

/// What a change may spend, for the approval thresholds, from the change
/// itself (never from the draft's display fields): a payment's amount, a
/// campaign's rise in daily budget.
pub fn impact_of(change: &DraftChange) -> i64 {
    match change {
        DraftChange::Payment { amount, .. } => amount.minor_units.max(0),
        DraftChange::Campaign {
            daily_budget_before,
            daily_budget_after,
            ..
        } => (daily_budget_after.minor_units - daily_budget_before.minor_units).max(0),
    }
}
