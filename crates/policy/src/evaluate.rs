//! Evaluation of a draft against a SPEND.md policy: a pure function of the
//! policy, the spend already committed in the windows, and the draft. The
//! service around it supplies the windows from the event log and reserves
//! against the per-account budget aggregate with expected-sequence
//! publishes, so that racing drafts cannot both fit under a ceiling.

use chrono::{DateTime, Duration, Utc};
use spend_core::Money;
use spend_core::events::{DraftChange, Outcome, Reason};

use crate::money::format_amount;
use crate::spendmd::SpendMd;

/// What a draft would do, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A payment, with the platform's facts about its merchant (absent
    /// when the platform has none: a rule that needs one then denies).
    Payment {
        merchant: String,
        category: Option<String>,
        country: Option<String>,
        /// Whether the merchant takes payment over HTTPS.
        https: Option<bool>,
        /// The page the agent says it pays on.
        url: Option<String>,
    },
    /// An ad budget change from `before` to `after` per day.
    Budget {
        campaign_id: String,
        before: Money,
        after: Money,
    },
    Bid {
        campaign_id: String,
    },
    Status {
        campaign_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub account_id: String,
    pub change: Change,
    /// What the draft may spend, for the approval thresholds: a payment's
    /// amount; for an ad change, the larger of its net change and what it
    /// counts against the envelope (its honest worst case).
    pub spend_impact: Money,
    /// What it adds to the envelope's 24 hours (see [`crate::envelope`]).
    pub counted: Money,
    /// What it adds to the calendar month (a campaign's rate counts for
    /// every remaining day of it).
    pub month_counted: Money,
    /// What it adds to every month after this one (a campaign's rate, for
    /// all the days of the longest month).
    pub later_months_counted: Money,
}

/// The policy's envelope before this draft (see [`crate::envelope`]):
/// what the ceilings are checked against, with the draft's counts added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    /// Spend possible in any 24 hours, minor units.
    pub last_24h: i64,
    /// Committed for the calendar month.
    pub this_month: i64,
    /// Committed for each month after it: the standing rates over 31 days.
    pub later_months: i64,
    /// When this draft's campaign last changed, for the cooldown.
    pub campaign_last_changed: Option<DateTime<Utc>>,
}

/// A limit at or past 80% of its value after this draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitAlert {
    /// `limit.approaching` or `limit.exceeded`.
    pub event: &'static str,
    /// `daily_limit` or `monthly_limit`.
    pub limit: &'static str,
    pub used: i64,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    pub alerts: Vec<LimitAlert>,
}

fn reason(code: &str, message: String) -> Reason {
    Reason { code: code.into(), message }
}

/// `merchant` is on the allowlist: the same domain or a subdomain of it.
fn allowlisted(allowlist: &[String], merchant: &str) -> bool {
    let m = merchant.trim().trim_end_matches('.').to_ascii_lowercase();
    allowlist.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        m == a || m.ends_with(&format!(".{a}"))
    })
}

/// Evaluates `draft` under `policy`. `approved_by_human` says whether this
/// policy version was itself approved by a human: only then does
/// `auto_approve_under` take effect (a standing mandate).
pub fn evaluate(policy: &SpendMd, approved_by_human: bool, windows: &Windows, draft: &Draft, now: DateTime<Utc>) -> Decision {
    let mut deny = Vec::new();
    let mut alerts = Vec::new();
    limits(policy, windows, draft, &mut deny, &mut alerts);
    match &draft.change {
        Change::Payment {
            merchant,
            category,
            country,
            https: secure,
            url,
        } => {
            categories_and_merchants(policy, merchant, category.as_deref(), &mut deny);
            https(policy, *secure, url.as_deref(), &mut deny);
            geography(policy, country.as_deref(), &mut deny);
        }
        Change::Budget { campaign_id, before, after } => {
            budget_change_cap(policy, campaign_id, before, after, &mut deny);
            cooldown(policy, windows, campaign_id, now, &mut deny);
            ad_account(policy, &draft.account_id, &mut deny);
        }
        Change::Bid { campaign_id } | Change::Status { campaign_id } => {
            cooldown(policy, windows, campaign_id, now, &mut deny);
            ad_account(policy, &draft.account_id, &mut deny);
        }
    }
    if !deny.is_empty() {
        return Decision {
            outcome: Outcome::Deny,
            reasons: deny,
            alerts,
        };
    }
    let (outcome, why) = approval(policy, approved_by_human, &draft.spend_impact);
    Decision {
        outcome,
        reasons: vec![why],
        alerts,
    }
}

/// `spend:` limits: the policy's currency, `per_transaction` (payments),
/// and the daily and monthly ceilings with their 80% notices.
fn limits(policy: &SpendMd, windows: &Windows, draft: &Draft, deny: &mut Vec<Reason>, alerts: &mut Vec<LimitAlert>) {
    let spend = &policy.spend;
    let impact = &draft.spend_impact;
    let all = [spend.per_transaction.as_ref(), spend.daily_limit.as_ref(), spend.monthly_limit.as_ref()];
    if let Some(other) = all.iter().flatten().find(|l| l.currency != impact.currency) {
        deny.push(reason(
            "currency.mismatch",
            format!("the draft is in {} but the policy's limits are in {}", impact.currency, other.currency),
        ));
        return;
    }
    if let Some(l) = &spend.per_transaction
        && matches!(draft.change, Change::Payment { .. })
        && impact.minor_units > l.minor_units
    {
        deny.push(reason(
            "limit.per_transaction",
            format!("{} is over the per-transaction limit of {}", format_amount(impact), format_amount(l)),
        ));
    }
    if let Some(limit) = &spend.daily_limit {
        let used = windows.last_24h.saturating_add(draft.counted.minor_units.max(0));
        let message = || {
            format!(
                "{} would bring the last 24 hours to {} of {}",
                format_amount(&draft.counted),
                format_amount(&money(used, limit)),
                format_amount(limit)
            )
        };
        limit_check("daily_limit", "limit.daily", used, draft.counted.minor_units, limit, message, deny, alerts);
    }
    if let Some(limit) = &spend.monthly_limit {
        // A standing rate never ends: it must fit this month's remaining
        // days *and* every later month whole (docs/spend-windows.md). Each
        // window is checked only when the draft counts in it.
        let this_counted = draft.month_counted.minor_units.max(0);
        let later_counted = draft.later_months_counted.minor_units.max(0);
        let this_month = windows.this_month.saturating_add(this_counted);
        let later = windows.later_months.saturating_add(later_counted);
        let later_over = later_counted > 0 && later > limit.minor_units;
        let this_over = this_counted > 0 && this_month > limit.minor_units;
        let (used, counted) = match (later_over, this_over) {
            (true, _) => (later, later_counted),
            (false, true) => (this_month, this_counted),
            // Neither over: the fuller window it counts in, for notices.
            (false, false) if later_counted > 0 && later >= this_month => (later, later_counted),
            (false, false) => (this_month, this_counted),
        };
        let message = || {
            if later_over {
                format!(
                    "{} more in every month from the next on would bring each to {} of {}: a daily rate never stops, so each later month counts the standing rates for 31 days",
                    format_amount(&draft.later_months_counted),
                    format_amount(&money(later, limit)),
                    format_amount(limit)
                )
            } else {
                format!(
                    "{} would bring this month to {} of {}",
                    format_amount(&draft.month_counted),
                    format_amount(&money(this_month, limit)),
                    format_amount(limit)
                )
            }
        };
        limit_check("monthly_limit", "limit.monthly", used, counted, limit, message, deny, alerts);
    }
}

fn money(minor_units: i64, like: &Money) -> Money {
    Money {
        minor_units,
        currency: like.currency.clone(),
    }
}

/// One ceiling: denied (and `limit.exceeded`) when the draft counts
/// something and takes `used` past it; `limit.approaching` from 80%.
#[allow(clippy::too_many_arguments)]
fn limit_check(
    name: &'static str,
    code: &str,
    used: i64,
    counted: i64,
    limit: &Money,
    message: impl Fn() -> String,
    deny: &mut Vec<Reason>,
    alerts: &mut Vec<LimitAlert>,
) {
    if counted <= 0 {
        return;
    }
    let event = if used > limit.minor_units {
        deny.push(reason(code, message()));
        "limit.exceeded"
    } else if limit.minor_units > 0 && used.saturating_mul(5) >= limit.minor_units.saturating_mul(4) {
        "limit.approaching"
    } else {
        return;
    };
    alerts.push(LimitAlert {
        event,
        limit: name,
        used,
        value: limit.minor_units,
    });
}

/// `blocked_categories`, `allowlist` and `allowed_categories` (a payment).
fn categories_and_merchants(policy: &SpendMd, merchant: &str, category: Option<&str>, deny: &mut Vec<Reason>) {
    let spend = &policy.spend;
    match category {
        Some(c) if spend.blocked_categories.iter().any(|b| b.eq_ignore_ascii_case(c)) => {
            deny.push(reason("category.blocked", format!("category {c:?} is blocked")));
        }
        // Fail closed: a merchant the platform cannot classify could be
        // in any blocked category.
        None if !spend.blocked_categories.is_empty() => deny.push(reason(
            "category.unknown",
            format!("categories are blocked and the platform has no category for merchant {merchant:?}"),
        )),
        _ => {}
    }
    let restricted = !spend.allowlist.is_empty() || !spend.allowed_categories.is_empty();
    let category_ok = category.is_some_and(|c| spend.allowed_categories.iter().any(|a| a.eq_ignore_ascii_case(c)));
    if restricted && !allowlisted(&spend.allowlist, merchant) && !category_ok {
        deny.push(reason(
            "allowlist.merchant",
            format!("merchant {merchant:?} is not on the allowlist and its category is not allowed"),
        ));
    }
}

/// `require_https` (a payment): the platform's merchant data must say the
/// merchant takes payment over HTTPS (fail closed when it says nothing),
/// and a URL the agent states must not be anything but https.
fn https(policy: &SpendMd, secure: Option<bool>, url: Option<&str>, deny: &mut Vec<Reason>) {
    if !policy.spend.require_https {
        return;
    }
    if let Some(u) = url
        && !u.to_ascii_lowercase().starts_with("https://")
    {
        deny.push(reason("https.required", format!("{u:?} is not an https:// URL")));
        return;
    }
    match secure {
        Some(true) => {}
        Some(false) => deny.push(reason(
            "https.required",
            "the platform's merchant data says this merchant does not take payment over HTTPS".into(),
        )),
        None => deny.push(reason(
            "https.unknown",
            "require_https is set and the platform has no data on whether this merchant takes payment over HTTPS".into(),
        )),
    }
}

/// `geographic_restrictions` (a payment).
fn geography(policy: &SpendMd, country: Option<&str>, deny: &mut Vec<Reason>) {
    let allowed = &policy.spend.geographic_restrictions;
    if allowed.is_empty() {
        return;
    }
    match country {
        Some(c) if allowed.iter().any(|g| g.eq_ignore_ascii_case(c)) => {}
        Some(c) => deny.push(reason("geography.restricted", format!("country {c:?} is outside {allowed:?}"))),
        None => deny.push(reason(
            "geography.unknown",
            "geographic restrictions apply and the platform has no country for this merchant".into(),
        )),
    }
}

/// `ads.max_budget_change`.
fn budget_change_cap(policy: &SpendMd, campaign_id: &str, before: &Money, after: &Money, deny: &mut Vec<Reason>) {
    let Some(cap) = &policy.ads.max_budget_change else { return };
    let delta = (after.minor_units - before.minor_units).abs();
    if after.currency != cap.currency {
        deny.push(reason(
            "currency.mismatch",
            format!("the budget is in {} but ads.max_budget_change is in {}", after.currency, cap.currency),
        ));
    } else if delta > cap.minor_units {
        deny.push(reason(
            "ads.max_budget_change",
            format!(
                "changing campaign {campaign_id} by {} exceeds the cap of {}",
                format_amount(&Money {
                    minor_units: delta,
                    currency: cap.currency.clone()
                }),
                format_amount(cap)
            ),
        ));
    }
}

/// `ads.allowed_accounts`.
fn ad_account(policy: &SpendMd, account_id: &str, deny: &mut Vec<Reason>) {
    let allowed = &policy.ads.allowed_accounts;
    if !allowed.is_empty() && !allowed.iter().any(|a| a == account_id) {
        deny.push(reason("ads.account", format!("ad account {account_id} is not in ads.allowed_accounts")));
    }
}

/// `approval:` thresholds, once no rule denies: two approvers over
/// `require_confirmation_over`; a standing mandate under
/// `auto_approve_under` only in a version a human approved.
fn approval(policy: &SpendMd, approved_by_human: bool, impact: &Money) -> (Outcome, Reason) {
    let approval = &policy.approval;
    let over = |m: &Option<Money>| m.as_ref().is_some_and(|t| t.currency == impact.currency && impact.minor_units > t.minor_units);
    let under = |m: &Option<Money>| m.as_ref().is_some_and(|t| t.currency == impact.currency && impact.minor_units < t.minor_units);
    if over(&approval.require_confirmation_over) {
        (
            Outcome::RequireDualApproval,
            reason(
                "approval.dual",
                format!("{} is over require_confirmation_over: two approvers", format_amount(impact)),
            ),
        )
    } else if approved_by_human && under(&approval.auto_approve_under) {
        (
            Outcome::AutoApprove,
            reason(
                "approval.auto",
                format!("{} is under auto_approve_under, a standing mandate approved by a human", format_amount(impact)),
            ),
        )
    } else if under(&approval.auto_approve_under) {
        (
            Outcome::RequireApproval,
            reason(
                "approval.mandate_missing",
                "auto_approve_under is set, but this policy version was not approved by a human, so it does not apply".into(),
            ),
        )
    } else {
        (
            Outcome::RequireApproval,
            reason("approval.required", "a signed-in human approves every change".into()),
        )
    }
}

/// `ads.campaign_cooldown_minutes`.
fn cooldown(policy: &SpendMd, windows: &Windows, campaign_id: &str, now: DateTime<Utc>, deny: &mut Vec<Reason>) {
    if let (Some(minutes), Some(last)) = (policy.ads.campaign_cooldown_minutes, windows.campaign_last_changed) {
        let until = last + Duration::minutes(minutes as i64);
        if now < until {
            deny.push(reason(
                "ads.cooldown",
                format!(
                    "campaign {campaign_id} changed at {}; next change allowed from {}",
                    last.to_rfc3339(),
                    until.to_rfc3339()
                ),
            ));
        }
    }
}

/// A draft's change, as the evaluation sees it.
impl From<&DraftChange> for Change {
    fn from(c: &DraftChange) -> Self {
        match c {
            DraftChange::Payment {
                merchant,
                category,
                country,
                url,
                https,
                ..
            } => Change::Payment {
                merchant: merchant.clone(),
                category: category.clone(),
                country: country.clone(),
                https: *https,
                url: url.clone(),
            },
            DraftChange::Campaign {
                campaign_id,
                field,
                daily_budget_before,
                daily_budget_after,
                ..
            } => match field.as_str() {
                "budget" => Change::Budget {
                    campaign_id: campaign_id.clone(),
                    before: daily_budget_before.clone(),
                    after: daily_budget_after.clone(),
                },
                "bid" => Change::Bid {
                    campaign_id: campaign_id.clone(),
                },
                _ => Change::Status {
                    campaign_id: campaign_id.clone(),
                },
            },
        }
    }
}
