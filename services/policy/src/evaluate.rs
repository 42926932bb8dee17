//! Evaluation of a draft against a SPEND.md policy: a pure function of the
//! policy, the spend already committed in the windows, and the draft. The
//! service around it supplies the windows from the event log and reserves
//! against the per-account budget aggregate with expected-sequence
//! publishes, so that racing drafts cannot both fit under a ceiling.

use chrono::{DateTime, Duration, Utc};
use spend_core::Money;
use spend_core::events::{Outcome, Reason};

use crate::money::format_amount;
use crate::spendmd::SpendMd;

/// What a draft would do, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Payment {
        merchant: String,
        category: Option<String>,
        country: Option<String>,
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
}

/// The policy's envelope before this draft (see [`crate::envelope`]):
/// what the ceilings are checked against, with the draft's counts added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    /// Spend possible in any 24 hours, minor units.
    pub last_24h: i64,
    /// Committed for the calendar month.
    pub this_month: i64,
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
            url,
        } => {
            categories_and_merchants(policy, merchant, category.as_deref(), &mut deny);
            https(policy, url.as_deref(), &mut deny);
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
    for (name, used_before, counted, limit) in [
        ("daily_limit", windows.last_24h, &draft.counted, &spend.daily_limit),
        ("monthly_limit", windows.this_month, &draft.month_counted, &spend.monthly_limit),
    ] {
        let Some(limit) = limit else { continue };
        let used = used_before.saturating_add(counted.minor_units.max(0));
        if used > limit.minor_units && counted.minor_units > 0 {
            deny.push(reason(
                if name == "daily_limit" { "limit.daily" } else { "limit.monthly" },
                format!(
                    "{} would bring {} to {} of {}",
                    format_amount(counted),
                    if name == "daily_limit" { "the last 24 hours" } else { "this month" },
                    format_amount(&Money {
                        minor_units: used,
                        currency: limit.currency.clone()
                    }),
                    format_amount(limit)
                ),
            ));
            alerts.push(LimitAlert {
                event: "limit.exceeded",
                limit: name,
                used,
                value: limit.minor_units,
            });
        } else if limit.minor_units > 0 && used.saturating_mul(5) >= limit.minor_units.saturating_mul(4) && counted.minor_units > 0 {
            alerts.push(LimitAlert {
                event: "limit.approaching",
                limit: name,
                used,
                value: limit.minor_units,
            });
        }
    }
}

/// `blocked_categories`, `allowlist` and `allowed_categories` (a payment).
fn categories_and_merchants(policy: &SpendMd, merchant: &str, category: Option<&str>, deny: &mut Vec<Reason>) {
    let spend = &policy.spend;
    if let Some(c) = category
        && spend.blocked_categories.iter().any(|b| b.eq_ignore_ascii_case(c))
    {
        deny.push(reason("category.blocked", format!("category {c:?} is blocked")));
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

/// `require_https` (a payment): a URL that is not https, or none at all.
fn https(policy: &SpendMd, url: Option<&str>, deny: &mut Vec<Reason>) {
    if !policy.spend.require_https {
        return;
    }
    match url {
        Some(u) if u.to_ascii_lowercase().starts_with("https://") => {}
        Some(u) => deny.push(reason("https.required", format!("{u:?} is not an https:// URL"))),
        None => deny.push(reason(
            "https.unknown",
            "require_https is set and the payment names no URL, so it cannot be shown to be over HTTPS".into(),
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
            "the payment names no country and geographic restrictions apply".into(),
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
