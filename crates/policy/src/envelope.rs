//! The policy's spend envelope: a pure model of what is committed against
//! the daily and monthly ceilings, across every account and both rails.
//!
//! The property it keeps (docs/spend-windows.md): no sequence of committed
//! changes, on any schedule, lets the organisation's spend over any 24
//! hours exceed `daily_limit`, or a calendar month's exceed
//! `monthly_limit`. A payment spends once, so it counts in the rolling 24
//! hours and in its month. A campaign spends its daily budget *every day*
//! from the moment it is committed, so it counts as a standing rate: in
//! every 24-hour window, for every remaining day of this month, and for
//! all 31 days of every month after it (a rate never ends by itself, so
//! it must fit the longest month to come) — which is why raising a budget
//! again on the next day cannot refill the envelope, and why a raise late
//! in a month cannot spend unapproved in the next. A campaign draft counts
//! at its honest worst case: the daily budget it may spend after the
//! change (whatever its status: a paused campaign can be resumed, a bid
//! change can make it spend its whole budget), less what is already
//! counted for that campaign. Decreases release nothing until the
//! executor has pushed them.
//!
//! A campaign's rate is the highest worst case among its outstanding
//! commitments (each kept with its draft), so a commitment released
//! because its change failed for good takes away exactly what no other
//! commitment still needs.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use spend_core::events::{CampaignRate, DraftChange, EnvelopeState, RateCommitment};

/// Bucket width of the rolling window, in minutes. The oldest bucket is
/// counted whole, so the envelope errs on the safe side by at most this.
pub const BUCKET_MINUTES: i64 = 5;
/// How long after its commitment a payment may still be sent to the
/// platform (the executor sends none later): its spend lands within this
/// of the moment it was counted, so the envelope counts each payment this
/// much longer than 24 hours, and a payment committed this close to a
/// month's end in the next month too.
pub const PAYMENT_SEND_WINDOW_SECS: i64 = BUCKET_MINUTES * 60;
/// Buckets a payment counts in after its own: 24 hours, and the send
/// window.
const WINDOW_BUCKETS: i64 = 24 * 60 / BUCKET_MINUTES + PAYMENT_SEND_WINDOW_SECS / (BUCKET_MINUTES * 60);
/// Drafts remembered as committed, so that a decision retried after a
/// crash between commit and decision does not count a draft twice.
pub const RECENT_DRAFTS: usize = 256;
/// Commitments kept per campaign; older ones merge into the campaign's
/// floor, which is never released (the envelope then errs high).
pub const RATE_COMMITMENTS: usize = 8;
/// The longest month: what a standing daily rate spends in each month
/// after the one it is committed in.
pub const LONGEST_MONTH_DAYS: i64 = 31;

fn bucket(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60 * BUCKET_MINUTES)
}

fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The first instant of the month of `t`.
fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let first = t.date_naive().with_day(1).unwrap_or(t.date_naive());
    first.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(t)
}

/// The first bucket of the month of `t` (months start on a bucket edge).
fn month_start_bucket(t: DateTime<Utc>) -> i64 {
    bucket(month_start(t))
}

/// `now`, never before the month the envelope was last committed in: a
/// replica whose clock is a little behind another's never takes the
/// envelope back to a month that has ended (and forgets what the new one
/// holds).
fn not_before_its_month(state: &EnvelopeState, now: DateTime<Utc>) -> DateTime<Utc> {
    match NaiveDate::parse_from_str(&format!("{}-01", state.month), "%Y-%m-%d") {
        Ok(first) if first > now.date_naive() => first.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(now),
        _ => now,
    }
}

/// Payments of `state` that may spend in the month of `now` although they
/// were committed before it: those of the send window before its start.
fn carried_into(state: &EnvelopeState, now: DateTime<Utc>) -> i64 {
    let from = month_start_bucket(now) - PAYMENT_SEND_WINDOW_SECS / (BUCKET_MINUTES * 60);
    state.payments.iter().filter(|(b, _)| *b >= from).map(|(_, v)| v).sum()
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

/// What releasing a commitment gave back, and the state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Minor units the daily ceiling got back (for a campaign: its rate
    /// before less its rate after).
    pub released: i64,
    pub after: EnvelopeState,
}

/// Reads of an envelope at a moment.
pub trait EnvelopeExt {
    /// Payments that may have spent in the last 24 hours: those committed
    /// in the last 24 hours and the send window before them (the oldest
    /// bucket whole).
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
    /// Spend committed for each month after the month of `now`: the
    /// standing rates for all the days of the longest month, and the
    /// payments that may still land in the next one (committed within the
    /// send window of its start).
    fn later_months_committed(&self, now: DateTime<Utc>) -> i64;
    /// The rate already counted for a campaign.
    fn counted_for(&self, account_id: &str, campaign_id: &str) -> i64;
    /// Whether `draft_id` is among the most recent commitments.
    fn has_committed(&self, draft_id: &str) -> bool;
    /// The state after committing `change` of `draft_id` at `now`.
    fn commit(&self, draft_id: &str, account_id: &str, change: &DraftChange, now: DateTime<Utc>) -> Commitment;
    /// The state after releasing the commitment of `draft_id` (its change
    /// failed for good, so it never spends): a payment gives back what it
    /// counted (`counted`, committed at `committed_at`); a campaign's rate
    /// becomes the highest of the commitments still outstanding on it.
    fn release(&self, draft_id: &str, account_id: &str, change: &DraftChange, counted: i64, committed_at: DateTime<Utc>) -> Release;
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

/// What older commitments merged into: never released. A rate recorded
/// before commitments were kept has its whole rate as floor.
fn floor(c: &CampaignRate) -> i64 {
    c.floor_minor.unwrap_or(if c.commitments.is_empty() { c.daily_minor } else { 0 }).max(0)
}

/// A campaign's rate: the highest of its floor and its commitments.
fn rate(c: &CampaignRate) -> i64 {
    c.commitments.iter().map(|x| x.daily_minor).fold(floor(c), i64::max)
}

impl EnvelopeExt for EnvelopeState {
    fn payments_24h(&self, now: DateTime<Utc>) -> i64 {
        // 24 hours and the send window, the oldest bucket whole.
        let oldest = bucket(now) - WINDOW_BUCKETS;
        self.payments.iter().filter(|(b, _)| *b >= oldest).map(|(_, v)| v).sum()
    }

    fn daily_rate(&self) -> i64 {
        self.campaigns.iter().map(|c| c.daily_minor).sum()
    }

    fn month_committed(&self, now: DateTime<Utc>) -> i64 {
        let now = not_before_its_month(self, now);
        let today = now.date_naive();
        let first = today.with_day(1).unwrap_or(today);
        let last = last_day_of_month(today);
        let payments = if self.month == month_of(now) {
            self.month_payments
        } else {
            carried_into(self, now)
        };
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

    fn later_months_committed(&self, now: DateTime<Utc>) -> i64 {
        let now = not_before_its_month(self, now);
        let today = now.date_naive();
        let next = last_day_of_month(today).succ_opt().unwrap_or(today);
        let next_start = next.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(now);
        self.daily_rate()
            .saturating_mul(LONGEST_MONTH_DAYS)
            .saturating_add(carried_into(self, next_start))
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
        let now = not_before_its_month(self, now);
        let mut after = self.clone();
        after.recent_drafts.push(draft_id.to_string());
        if after.recent_drafts.len() > RECENT_DRAFTS {
            let excess = after.recent_drafts.len() - RECENT_DRAFTS;
            after.recent_drafts.drain(..excess);
        }
        // A new month starts with what the old one's last minutes may
        // still spend in it: counted before the old payments are pruned.
        if after.month != month_of(now) {
            after.month_payments = carried_into(&after, now);
            after.month = month_of(now);
        }
        let b = bucket(now);
        after.payments.retain(|(x, _)| *x >= b - WINDOW_BUCKETS);
        match change {
            DraftChange::Payment { amount, .. } => {
                let amount = amount.minor_units.max(0);
                match after.payments.iter_mut().find(|(x, _)| *x == b) {
                    Some((_, v)) => *v = v.saturating_add(amount),
                    None => after.payments.push((b, amount)),
                }
                after.month_payments = after.month_payments.saturating_add(amount);
                Commitment {
                    counted: amount,
                    campaign_id: None,
                    after,
                }
            }
            DraftChange::Campaign { campaign_id, .. } => {
                let worst = campaign_worst_case(change).map(|(_, w)| w).unwrap_or(0);
                let already = self.counted_for(account_id, campaign_id);
                let since = now.date_naive().format("%Y-%m-%d").to_string();
                let entry = RateCommitment {
                    draft_id: draft_id.to_string(),
                    daily_minor: worst,
                };
                match after.campaigns.iter_mut().find(|c| c.account_id == account_id && &c.campaign_id == campaign_id) {
                    // Every commitment is kept with its worst case, even
                    // one that adds nothing now: it is what keeps the rate
                    // up if a higher one is released. A raise spends from
                    // today; what was counted before keeps its own start,
                    // which only makes the monthly count larger: the safe
                    // side.
                    Some(c) => {
                        let floor = floor(c);
                        c.floor_minor = Some(floor);
                        c.commitments.retain(|x| x.draft_id != draft_id);
                        c.commitments.push(entry);
                        if c.commitments.len() > RATE_COMMITMENTS {
                            let merged = c.commitments.remove(0);
                            c.floor_minor = Some(floor.max(merged.daily_minor));
                        }
                        c.daily_minor = rate(c);
                        c.since = c.since.clone().min(since);
                    }
                    None if worst > 0 => after.campaigns.push(CampaignRate {
                        account_id: account_id.to_string(),
                        campaign_id: campaign_id.clone(),
                        daily_minor: worst,
                        since,
                        commitments: vec![entry],
                        floor_minor: Some(0),
                    }),
                    None => {}
                }
                let counted = (after.counted_for(account_id, campaign_id) - already).max(0);
                Commitment {
                    counted,
                    campaign_id: Some(campaign_id.clone()),
                    after,
                }
            }
        }
    }

    fn release(&self, draft_id: &str, account_id: &str, change: &DraftChange, counted: i64, committed_at: DateTime<Utc>) -> Release {
        let mut after = self.clone();
        if after.recent_releases.iter().any(|d| d == draft_id) {
            return Release { released: 0, after };
        }
        after.recent_releases.push(draft_id.to_string());
        if after.recent_releases.len() > RECENT_DRAFTS {
            let excess = after.recent_releases.len() - RECENT_DRAFTS;
            after.recent_releases.drain(..excess);
        }
        match change {
            DraftChange::Payment { .. } => {
                let counted = counted.max(0);
                let mut released = 0;
                if let Some((_, v)) = after.payments.iter_mut().find(|(x, _)| *x == bucket(committed_at)) {
                    released = counted.min(*v);
                    *v -= released;
                }
                after.payments.retain(|(_, v)| *v > 0);
                if after.month == month_of(committed_at) {
                    after.month_payments = (after.month_payments - counted).max(0);
                }
                Release { released, after }
            }
            DraftChange::Campaign { campaign_id, .. } => {
                let before = self.counted_for(account_id, campaign_id);
                if let Some(c) = after.campaigns.iter_mut().find(|c| c.account_id == account_id && &c.campaign_id == campaign_id) {
                    // A commitment merged into the floor (or recorded
                    // before commitments were kept) releases nothing.
                    let floor = floor(c);
                    c.floor_minor = Some(floor);
                    c.commitments.retain(|x| x.draft_id != draft_id);
                    c.daily_minor = rate(c);
                }
                after.campaigns.retain(|c| c.daily_minor > 0 || !c.commitments.is_empty());
                let released = (before - after.counted_for(account_id, campaign_id)).max(0);
                Release { released, after }
            }
        }
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
            bid_before: None,
            bid_after: None,
        }
    }

    fn pay(m: i64) -> DraftChange {
        DraftChange::Payment {
            amount: usd(m),
            merchant: "openai.com".into(),
            category: None,
            country: None,
            url: None,
            https: None,
            card_id: Some("crd_1".into()),
            stated_category: None,
            stated_country: None,
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
            bid_before: None,
            bid_after: None,
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
    fn a_payment_counts_for_the_send_window_past_its_24_hours_and_its_month() {
        // Committed at 23:57 on the last day of November: the executor may
        // still send it at 00:01 on the 1st of December.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 57, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "card", &pay(300), now);
        let next_day = now + chrono::Duration::hours(24) + chrono::Duration::minutes(4);
        assert_eq!(
            c.after.daily_committed(next_day),
            300,
            "its spend may have landed 5 minutes after it was counted"
        );
        assert_eq!(c.after.daily_committed(now + chrono::Duration::hours(24) + chrono::Duration::minutes(11)), 0);
        let dec = Utc.with_ymd_and_hms(2026, 12, 1, 0, 2, 0).unwrap();
        assert_eq!(c.after.month_committed(dec), 300, "in December too");
        assert_eq!(c.after.later_months_committed(now), 300, "it may land in December");
        let december = c.after.commit("d2", "card", &pay(100), dec);
        assert_eq!(december.after.month_payments, 400);
        // Committed earlier in November: December owes it nothing.
        let early = EnvelopeState::default().commit("d3", "card", &pay(300), now - chrono::Duration::minutes(10));
        assert_eq!(early.after.month_committed(dec), 0);
    }

    #[test]
    fn a_month_first_committed_days_after_it_began_still_counts_what_was_carried_into_it() {
        // 90 committed at 23:57 on 30 November lands in December; the next
        // commitment comes on 2 December, when the 24 hours have moved on.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 57, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "card", &pay(9_000), now);
        let dec2 = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        assert_eq!(c.after.month_committed(dec2), 9_000);
        let next = c.after.commit("d2", "card", &pay(5_000), dec2);
        assert_eq!(next.after.month_payments, 14_000, "December holds what landed in it");
        assert_eq!(next.after.month_committed(dec2), 14_000);
    }

    #[test]
    fn a_clock_behind_never_takes_the_envelope_back_to_a_month_that_ended() {
        let dec = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 30).unwrap();
        let c = EnvelopeState::default().commit("d1", "card", &pay(9_000), dec);
        // Another replica, 40 seconds behind, still thinks it is November.
        let behind = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 50).unwrap();
        let next = c.after.commit("d2", "card", &pay(1_000), behind);
        assert_eq!((next.after.month.as_str(), next.after.month_payments), ("2026-12", 10_000));
        assert_eq!(c.after.month_committed(behind), 9_000);
    }

    #[test]
    fn a_campaign_counts_for_every_remaining_day_of_the_month_and_every_day_of_each_later_month() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let c = EnvelopeState::default().commit("d1", "act", &raise("c1", 0, 100, "active"), now);
        // 29th and 30th of November.
        assert_eq!(c.after.month_committed(now), 200);
        // All 31 days of December.
        let dec = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        assert_eq!(c.after.month_committed(dec), 3100);
        // And of every month after the one it is committed in.
        assert_eq!(c.after.later_months_committed(now), 3100);
    }

    #[test]
    fn a_release_takes_back_exactly_what_its_commitment_counted() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let empty = EnvelopeState {
            currency: "USD".into(),
            ..EnvelopeState::default()
        };
        let pay = pay(700);
        let c = empty.commit("d1", "card_1", &pay, now);
        let c2 = c.after.commit("d2", "card_1", &pay, now);
        let released = c2.after.release("d1", "card_1", &pay, c.counted, now);
        assert_eq!(released.released, 700);
        assert_eq!(released.after.daily_committed(now), 700, "only the released draft's");
        assert_eq!(released.after.month_committed(now), 700);
        let raise = raise("c1", 5_000, 8_000, "active");
        let r = empty.commit("d3", "act_1", &raise, now);
        assert_eq!(r.after.daily_rate(), 8_000);
        let back = r.after.release("d3", "act_1", &raise, r.counted, now);
        assert_eq!((back.released, back.after.daily_rate()), (8_000, 0));
        assert!(back.after.campaigns.is_empty());
    }

    #[test]
    fn releasing_a_campaign_commitment_keeps_the_rate_a_later_one_needs() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let e = EnvelopeState::default();
        // d1 raises 50 → 80; d2, drafted against the same live 50, to 100.
        let d1 = raise("c1", 5_000, 8_000, "active");
        let d2 = raise("c1", 5_000, 10_000, "active");
        let c1 = e.commit("d1", "act", &d1, now);
        let c2 = c1.after.commit("d2", "act", &d2, now);
        assert_eq!((c1.counted, c2.counted), (8_000, 2_000));
        // d1 fails for good: the campaign may still spend d2's 100 a day.
        let r = c2.after.release("d1", "act", &d1, c1.counted, now);
        assert_eq!(r.after.daily_rate(), 10_000, "subtracting d1's 80 would leave 20");
        assert_eq!(r.released, 0);
        // A bid change that counted nothing keeps d2's rate up too.
        let bid = DraftChange::Campaign {
            campaign_id: "c1".into(),
            field: "bid".into(),
            daily_budget_before: usd(10_000),
            daily_budget_after: usd(10_000),
            status_before: "active".into(),
            status_after: "active".into(),
            bid_before: None,
            bid_after: None,
        };
        let c3 = r.after.commit("d3", "act", &bid, now);
        assert_eq!(c3.counted, 0);
        let r2 = c3.after.release("d2", "act", &d2, c2.counted, now);
        assert_eq!(r2.after.daily_rate(), 10_000);
        let r3 = r2.after.release("d3", "act", &bid, 0, now);
        assert_eq!((r3.after.daily_rate(), r3.released), (0, 10_000));
    }

    #[test]
    fn commitments_past_the_kept_number_merge_into_a_floor_that_is_never_released() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let mut e = EnvelopeState::default();
        let first = raise("c1", 0, 9_000, "active");
        e = e.commit("d0", "act", &first, now).after;
        for i in 1..=RATE_COMMITMENTS {
            e = e.commit(&format!("d{i}"), "act", &raise("c1", 0, 100, "active"), now).after;
        }
        let c = &e.campaigns[0];
        assert_eq!((c.commitments.len(), c.floor_minor, c.daily_minor), (RATE_COMMITMENTS, Some(9_000), 9_000));
        // d0 merged into the floor: its release gives nothing back.
        let r = e.release("d0", "act", &first, 9_000, now);
        assert_eq!((r.released, r.after.daily_rate()), (0, 9_000));
    }

    #[test]
    fn a_rate_recorded_before_commitments_were_kept_is_its_own_floor() {
        let legacy: EnvelopeState = serde_json::from_value(serde_json::json!({
            "currency": "USD", "payments": [], "month": "2026-11", "month_payments": 0,
            "campaigns": [{"account_id": "act", "campaign_id": "c1", "daily_minor": 7_000, "since": "2026-11-01"}],
            "recent_drafts": ["d_old"]
        }))
        .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let old = raise("c1", 5_000, 7_000, "active");
        assert_eq!(legacy.release("d_old", "act", &old, 7_000, now).after.daily_rate(), 7_000);
        let c = legacy.commit("d1", "act", &raise("c1", 7_000, 8_000, "active"), now);
        assert_eq!(c.counted, 1_000);
        assert_eq!(
            c.after
                .release("d1", "act", &raise("c1", 7_000, 8_000, "active"), 1_000, now)
                .after
                .daily_rate(),
            7_000
        );
    }
}
