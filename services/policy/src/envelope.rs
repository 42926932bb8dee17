//! The policy's spend envelope: a pure model of what is committed against
//! the daily and monthly ceilings, across every account and both rails.
//!
//! The property it keeps (docs/spend-windows.md): no sequence of committed
//! changes, on any schedule, lets the organisation's spend over any 24
//! hours exceed `daily_limit`, or a calendar month's exceed
//! `monthly_limit`. A payment spends once, so it counts in the rolling 24
//! hours and in its month. A campaign spends its daily budget *every day*
//! from the moment it is committed, so it counts as a standing rate: in
//! every 24-hour window, and for every remaining day of every month —
//! which is why raising a budget again on the next day cannot refill the
//! envelope. A campaign draft counts at its honest worst case: the daily
//! budget it may spend after the change (whatever its status: a paused
//! campaign can be resumed, a bid change can make it spend its whole
//! budget), less what is already counted for that campaign. Decreases
//! release nothing until the executor has pushed them.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use spend_core::events::{CampaignRate, DraftChange, EnvelopeState};

/// Bucket width of the rolling window, in minutes. The oldest bucket is
/// counted whole, so the envelope errs on the safe side by at most this.
pub const BUCKET_MINUTES: i64 = 5;
const WINDOW_BUCKETS: i64 = 24 * 60 / BUCKET_MINUTES;
/// Drafts remembered as committed, so that a decision retried after a
/// crash between commit and decision does not count a draft twice.
pub const RECENT_DRAFTS: usize = 256;

fn bucket(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60 * BUCKET_MINUTES)
}

fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

fn last_day_of_month(d: NaiveDate) -> NaiveDate {
    let first_next = if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    };
    first_next.and_then(|f| f.checked_sub_days(Days::new(1))).unwrap_or(d)
}

/// What a draft adds to the envelope, and the state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment {
    /// Minor units counted against the daily ceiling (0 for a draft that
    /// adds nothing, e.g. a budget decrease).
    pub counted: i64,
    /// The campaign whose rate this sets, for ad drafts.
    pub campaign_id: Option<String>,
    pub after: EnvelopeState,
}

/// Reads of an envelope at a moment.
pub trait EnvelopeExt {
    /// Payments of the last 24 hours (oldest bucket whole).
    fn payments_24h(&self, now: DateTime<Utc>) -> i64;
    /// Σ of the standing daily rates.
    fn daily_rate(&self) -> i64;
    /// Spend that can happen in any 24 hours from now: standing rates plus
    /// the last 24 hours' payments.
    fn daily_committed(&self, now: DateTime<Utc>) -> i64 {
        self.daily_rate().saturating_add(self.payments_24h(now))
    }
    /// Spend committed for the calendar month of `now`: its payments, and
    /// each campaign's rate for every day of the month it can spend.
    fn month_committed(&self, now: DateTime<Utc>) -> i64;
    /// The rate already counted for a campaign.
    fn counted_for(&self, account_id: &str, campaign_id: &str) -> i64;
    /// Whether `draft_id` is among the most recent commitments.
    fn has_committed(&self, draft_id: &str) -> bool;
    /// The state after committing `change` of `draft_id` at `now`.
    fn commit(&self, draft_id: &str, account_id: &str, change: &DraftChange, now: DateTime<Utc>) -> Commitment;
    /// The state after releasing what committing `change` at `committed_at`
    /// counted (`counted`): the change failed for good, so it never spends.
    fn release(&self, account_id: &str, change: &DraftChange, counted: i64, committed_at: DateTime<Utc>) -> EnvelopeState;
}

/// The worst-case daily spend of a campaign after a change.
pub fn campaign_worst_case(change: &DraftChange) -> Option<(&str, i64)> {
    match change {
        DraftChange::Campaign {
            campaign_id,
            daily_budget_before,
            daily_budget_after,
            ..
        } => Some((campaign_id, daily_budget_after.minor_units.max(daily_budget_before.minor_units).max(0))),
        DraftChange::Payment { .. } => None,
    }
}

impl EnvelopeExt for EnvelopeState {
    fn payments_24h(&self, now: DateTime<Utc>) -> i64 {
        let oldest = bucket(now) - WINDOW_BUCKETS;
        self.payments.iter().filter(|(b, _)| *b >= oldest).map(|(_, v)| v).sum()
    }

    fn daily_rate(&self) -> i64 {
        self.campaigns.iter().map(|c| c.daily_minor).sum()
    }

    fn month_committed(&self, now: DateTime<Utc>) -> i64 {
        let today = now.date_naive();
        let first = today.with_day(1).unwrap_or(today);
        let last = last_day_of_month(today);
        let payments = if self.month == month_of(now) { self.month_payments } else { 0 };
        let campaigns: i64 = self
            .campaigns
            .iter()
            .map(|c| {
                let since = NaiveDate::parse_from_str(&c.since, "%Y-%m-%d").unwrap_or(first).max(first);
                let days = (last - since).num_days() + 1;
                c.daily_minor.saturating_mul(days.max(0))
            })
            .sum();
        payments.saturating_add(campaigns)
    }

    fn counted_for(&self, account_id: &str, campaign_id: &str) -> i64 {
        self.campaigns
            .iter()
            .find(|c| c.account_id == account_id && c.campaign_id == campaign_id)
            .map(|c| c.daily_minor)
            .unwrap_or(0)
    }

    fn has_committed(&self, draft_id: &str) -> bool {
        self.recent_drafts.iter().any(|d| d == draft_id)
    }

    fn commit(&self, draft_id: &str, account_id: &str, change: &DraftChange, now: DateTime<Utc>) -> Commitment {
        let mut after = self.clone();
        after.recent_drafts.push(draft_id.to_string());
        if after.recent_drafts.len() > RECENT_DRAFTS {
            let excess = after.recent_drafts.len() - RECENT_DRAFTS;
            after.recent_drafts.drain(..excess);
        }
        let b = bucket(now);
        after.payments.retain(|(x, _)| *x >= b - WINDOW_BUCKETS);
        if after.month != month_of(now) {
            after.month = month_of(now);
            after.month_payments = 0;
        }
        match change {
            DraftChange::Payment { amount, .. } => {
                let amount = amount.minor_units.max(0);
                match after.payments.iter_mut().find(|(x, _)| *x == b) {
                    Some((_, v)) => *v += amount,
                    None => after.payments.push((b, amount)),
                }
                after.month_payments += amount;
                Commitment {
                    counted: amount,
                    campaign_id: None,
                    after,
                }
            }
            DraftChange::Campaign { campaign_id, .. } => {
                let worst = campaign_worst_case(change).map(|(_, w)| w).unwrap_or(0);
                let already = self.counted_for(account_id, campaign_id);
                let counted = (worst - already).max(0);
                if counted > 0 {
                    let since = now.date_naive().format("%Y-%m-%d").to_string();
                    match after.campaigns.iter_mut().find(|c| c.account_id == account_id && &c.campaign_id == campaign_id) {
                        // The raise spends from today; what was counted
                        // before keeps its own start, which only makes the
                        // monthly count larger: the safe side.
                        Some(c) => {
                            c.daily_minor = worst;
                            c.since = c.since.clone().min(since);
                        }
                        None => after.campaigns.push(CampaignRate {
                            account_id: account_id.to_string(),
                            campaign_id: campaign_id.clone(),
                            daily_minor: worst,
                            since,
                        }),
                    }
                }
                Commitment {
                    counted,
                    campaign_id: Some(campaign_id.clone()),
                    after,
                }
            }
        }
    }

    fn release(&self, account_id: &str, change: &DraftChange, counted: i64, committed_at: DateTime<Utc>) -> EnvelopeState {
        let mut after = self.clone();
        let counted = counted.max(0);
        match change {
            DraftChange::Payment { .. } => {
                if let Some((_, v)) = after.payments.iter_mut().find(|(x, _)| *x == bucket(committed_at)) {
                    *v = (*v - counted).max(0);
                }
                after.payments.retain(|(_, v)| *v > 0);
                if after.month == month_of(committed_at) {
                    after.month_payments = (after.month_payments - counted).max(0);
                }
            }
            DraftChange::Campaign { campaign_id, .. } => {
                if let Some(c) = after.campaigns.iter_mut().find(|c| c.account_id == account_id && &c.campaign_id == campaign_id) {
                    c.daily_minor = (c.daily_minor - counted).max(0);
                }
                after.campaigns.retain(|c| c.daily_minor > 0);
            }
        }
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use spend_core::Money;

    fn usd(m: i64) -> Money {
        Money::new(m, "USD").unwrap()
    }

    fn raise(campaign: &str, before: i64, after: i64, status: &str) -> DraftChange {
        DraftChange::Campaign {
            campaign_id: campaign.into(),
            field: "budget".into(),
            daily_budget_before: usd(before),
            daily_budget_after: usd(after),
            status_before: status.into(),
            status_after: status.into(),
        }
    }

    fn pay(m: i64) -> DraftChange {
        DraftChange::Payment {
            amount: usd(m),
            merchant: "openai.com".into(),
            category: None,
            country: None,
            url: None,
        }
    }

    #[test]
    fn a_budget_raised_on_successive_days_keeps_counting_every_day() {
        let day1 = Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap();
        let e = EnvelopeState::default();
        let c1 = e.commit("d1", "act", &raise("c1", 0, 800, "active"), day1);
        assert_eq!(c1.counted, 800);
        // Two days later the rolling window holds no payment, but the
        // campaign still spends 800 a day: a raise to 1600 adds 800 more.
        let day3 = day1 + chrono::Duration::days(2);
        assert_eq!(c1.after.daily_committed(day3), 800);
        let c2 = c1.after.commit("d2", "act", &raise("c1", 800, 1600, "active"), day3);
        assert_eq!(c2.counted, 800);
        assert_eq!(c2.after.daily_committed(day3 + chrono::Duration::days(5)), 1600);
    }

    #[test]
    fn a_campaign_counts_at_its_whole_daily_budget_the_first_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "act", &raise("c1", 5000, 5100, "active"), now);
        assert_eq!(c.counted, 5100);
        // A bid change on a campaign already counted adds nothing; on one
        // that is not, its budget.
        let bid = DraftChange::Campaign {
            campaign_id: "c2".into(),
            field: "bid".into(),
            daily_budget_before: usd(300),
            daily_budget_after: usd(300),
            status_before: "paused".into(),
            status_after: "paused".into(),
        };
        let c2 = c.after.commit("d2", "act", &bid, now);
        assert_eq!(c2.counted, 300);
        assert_eq!(c2.after.commit("d3", "act", &bid, now).counted, 0);
    }

    #[test]
    fn payments_leave_the_rolling_window_but_not_their_month() {
        let now = Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "card", &pay(300), now);
        assert_eq!(c.after.daily_committed(now), 300);
        let later = now + chrono::Duration::hours(25);
        assert_eq!(c.after.daily_committed(later), 0);
        assert_eq!(c.after.month_committed(later), 300);
        let next_month = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(c.after.month_committed(next_month), 0);
    }

    #[test]
    fn a_campaign_counts_for_every_remaining_day_of_the_month() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "act", &raise("c1", 0, 100, "active"), now);
        // 29th and 30th of November.
        assert_eq!(c.after.month_committed(now), 200);
        // All 31 days of December.
        let dec = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        assert_eq!(c.after.month_committed(dec), 3100);
    }

    #[test]
    fn a_release_takes_back_exactly_what_its_commitment_counted() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let empty = EnvelopeState {
            currency: "USD".into(),
            ..EnvelopeState::default()
        };
        let pay = DraftChange::Payment {
            amount: usd(700),
            merchant: "openai.com".into(),
            category: None,
            country: None,
            url: None,
        };
        let c = empty.commit("d1", "card_1", &pay, now);
        let c2 = c.after.commit("d2", "card_1", &pay, now);
        let released = c2.after.release("card_1", &pay, c.counted, now);
        assert_eq!(released.daily_committed(now), 700, "only the released draft's");
        assert_eq!(released.month_committed(now), 700);
        let raise = raise("c1", 5_000, 8_000, "active");
        let r = empty.commit("d3", "act_1", &raise, now);
        assert_eq!(r.after.daily_rate(), 8_000);
        assert_eq!(r.after.release("act_1", &raise, r.counted, now).daily_rate(), 0);
    }
}
