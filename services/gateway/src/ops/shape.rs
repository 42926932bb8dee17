//! A draft shaped from what the agent asked and what the platform says:
//! a payment (merchant facts from the platform, never the agent's) or a
//! campaign edit (budget, bid or status against its live state). Pure: the
//! gateway's operations read the platform, then call these.

use super::*;

pub(super) fn find_campaign(list: Vec<Campaign>, id: &str, account: &str) -> Result<Campaign, OpError> {
    list.into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no campaign {id} in account {account}")))
}

/// A draft's shape before it is recorded: what policy judges and the
/// executor pushes (`change`), and what the human sees, derived from it
/// ([`spend_draft::display::derive`]: every consumer derives it again and
/// refuses a draft whose stored display differs).
pub(super) struct Shaped {
    pub(super) kind: String,
    pub(super) change: DraftChange,
    pub(super) impact: Money,
    pub(super) diff: Vec<FieldDiff>,
}

impl Shaped {
    fn of(change: DraftChange) -> Result<Self, OpError> {
        let d = spend_draft::display::derive(&change).map_err(OpError::Invalid)?;
        Ok(Self {
            kind: d.kind,
            change,
            impact: d.spend_impact,
            diff: d.diff,
        })
    }
}

/// A change to one campaign's live settings.
pub(super) enum Edit {
    Budget(i64),
    Bid(i64),
    Status(String),
}

pub(super) fn money(minor: i64, currency: &str) -> Result<Money, OpError> {
    Money::new(minor, currency).map_err(|e| OpError::Invalid(e.to_string()))
}

/// What an agent says about a payment beside its amount and merchant.
pub(super) struct Stated {
    pub(super) category: Option<String>,
    pub(super) country: Option<String>,
    pub(super) url: Option<String>,
}

/// The merchant an agent names, checked before anything is read about it.
pub(super) fn check_merchant(merchant: &str) -> Result<(), OpError> {
    if merchant.trim().is_empty() {
        return Err(OpError::Invalid("payment.merchant is required".into()));
    }
    if merchant.chars().count() > MAX_MERCHANT_CHARS || merchant.chars().any(char::is_control) {
        return Err(OpError::Invalid(format!(
            "payment.merchant must be at most {MAX_MERCHANT_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// A payment draft on `card_id`; `facts` is what the platform's merchant
/// data says of the merchant (see `merchant_facts`).
pub(super) fn payment_draft(
    amount_minor: i64,
    currency: &str,
    merchant: String,
    card_id: String,
    facts: Option<Merchant>,
    stated: Stated,
) -> Result<Shaped, OpError> {
    let Stated { category, country, url } = stated;
    if amount_minor <= 0 {
        return Err(OpError::Invalid("payment.amount_minor must be positive".into()));
    }
    check_merchant(&merchant)?;
    if url.as_ref().is_some_and(|u| u.chars().count() > MAX_URL_CHARS) {
        return Err(OpError::Invalid(format!("payment.url must be at most {MAX_URL_CHARS} characters")));
    }
    if category.as_ref().is_some_and(|c| c.chars().count() > 64) || country.as_ref().is_some_and(|c| c.chars().count() > 64) {
        return Err(OpError::Invalid("payment.category and payment.country must be at most 64 characters".into()));
    }
    let (platform_category, platform_country, https) = match facts {
        Some(m) => (Some(m.category), m.country, m.https),
        None => (None, None, None),
    };
    // What an agent states of the merchant is shown to the human (labelled
    // as the agent's) but never judged (allowed_categories or
    // geographic_restrictions could otherwise be satisfied by saying so):
    // the platform's merchant data is.
    Shaped::of(DraftChange::Payment {
        amount: money(amount_minor, currency)?,
        merchant,
        category: platform_category,
        country: platform_country,
        url,
        https,
        card_id: Some(card_id),
        stated_category: category,
        stated_country: country,
    })
}

/// A campaign edit: the live daily budget, status and bid before, and
/// what the edit sets.
pub(super) fn campaign_change(c: &Campaign, field: &str, budget_after: i64, status_after: &str, bid_after: Option<i64>) -> Result<DraftChange, OpError> {
    let bid = |m: i64| money(m, &c.currency);
    Ok(DraftChange::Campaign {
        campaign_id: c.id.clone(),
        field: field.into(),
        daily_budget_before: money(c.daily_budget_minor, &c.currency)?,
        daily_budget_after: money(budget_after, &c.currency)?,
        status_before: c.status.clone(),
        status_after: status_after.into(),
        bid_before: bid_after.map(|_| bid(c.bid_minor)).transpose()?,
        bid_after: bid_after.map(bid).transpose()?,
    })
}

/// The draft of `edit` on campaign `c` as it is live on the platform.
pub(super) fn campaign_edit(c: &Campaign, edit: Edit) -> Result<Shaped, OpError> {
    Shaped::of(match edit {
        Edit::Budget(new) => {
            if new < 0 {
                return Err(OpError::Invalid("new_daily_budget_minor must not be negative".into()));
            }
            campaign_change(c, "budget", new, &c.status, None)?
        }
        Edit::Bid(new) => {
            if new < 0 {
                return Err(OpError::Invalid("new_bid_minor must not be negative".into()));
            }
            campaign_change(c, "bid", c.daily_budget_minor, &c.status, Some(new))?
        }
        Edit::Status(new_status) => {
            if new_status != "active" && new_status != "paused" {
                return Err(OpError::Invalid(format!("new_status is active or paused, not {new_status:?}")));
            }
            campaign_change(c, "status", c.daily_budget_minor, &new_status, None)?
        }
    })
}
