//! The spend envelope: commitments and releases, standing campaign rates,
//! and the limit events a draft's evaluation raises.

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// A commitment against the envelope is released: the change it was for
/// failed for good, so its spend never happens. On `budget.envelope`, by
/// the executor, with the envelope's state after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetReleased {
    pub draft_id: String,
    pub account_id: String,
    /// What the release took off the envelope.
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    pub envelope: EnvelopeState,
}

/// One campaign as the envelope counts it: at the daily budget it may
/// spend every day from `since` (a budget raised once keeps spending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRate {
    pub account_id: String,
    pub campaign_id: String,
    /// Minor units per day, in the envelope's currency: the highest of
    /// the outstanding commitments' worst cases and `floor_minor`.
    pub daily_minor: i64,
    /// `YYYY-MM-DD` (UTC) from which this rate is counted.
    pub since: String,
    /// The most recent commitments on this campaign, each at its worst
    /// case, so that releasing one (its change failed for good) recomputes
    /// the rate from those still outstanding rather than subtracting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commitments: Vec<RateCommitment>,
    /// The worst case of older commitments, merged when `commitments` is
    /// full: never released (the envelope errs high). Absent on states
    /// recorded before commitments were kept: `daily_minor` is then the
    /// floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_minor: Option<i64>,
}

/// One commitment on a campaign's rate: the draft and its worst-case
/// daily budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCommitment {
    pub draft_id: String,
    pub daily_minor: i64,
}

/// The policy's spend envelope after a commitment: what the daily and
/// monthly ceilings are checked against. See docs/spend-windows.md.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeState {
    /// ISO 4217 code of every amount here (the policy's currency).
    pub currency: String,
    /// Payments of the last 24 hours in five-minute buckets:
    /// (unix minutes / 5, minor units).
    pub payments: Vec<(i64, i64)>,
    /// `YYYY-MM` of `month_payments`.
    pub month: String,
    pub month_payments: i64,
    /// Standing daily rates of the campaigns committed so far.
    pub campaigns: Vec<CampaignRate>,
    /// The most recent drafts committed (at most 256), so that a decision
    /// retried after a crash never counts a draft twice.
    pub recent_drafts: Vec<String>,
    /// The most recent drafts released (at most 256), so that a release
    /// retried by another replica or after a crash gives back once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_releases: Vec<String>,
}

/// Spend committed against the organisation's envelope (one subject per
/// policy: `budget.envelope`), appended with the subject's expected last
/// sequence so racing commitments cannot both fit. It carries the
/// envelope's state after it, so reading the envelope is one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetCommitted {
    pub draft_id: String,
    pub account_id: String,
    /// What the commitment added to the envelope (the honest worst case).
    pub amount: Money,
    /// The campaign whose standing rate this sets, for ad drafts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    pub envelope: EnvelopeState,
}

macro_rules! limit_event {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub account_id: String,
            /// The draft whose evaluation crossed the threshold.
            pub draft_id: String,
            /// `daily_limit` (the rolling 24 hours) or `monthly_limit`.
            pub limit: String,
            /// Committed spend including the draft.
            pub used: Money,
            pub value: Money,
        }
    };
}

limit_event!(
    /// A draft brought an account to 80% or more of a limit.
    LimitApproaching
);
limit_event!(
    /// A draft would have taken an account over a limit (and was denied).
    LimitExceeded
);
