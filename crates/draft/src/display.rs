//! What a draft shows a human, derived from the change it pushes.
//!
//! A `spend.draft.proposed.v1` carries `change` (what policy judges and the
//! executor writes) and, for display, `kind`, `diff` and `spend_impact`.
//! Were those trusted, a compromised gateway could show "50 → 60 USD a day"
//! and have 900 pushed. So they are derived: [`derive`] computes them from
//! `change` alone (the gateway records exactly that), and every consumer —
//! policy, executor, the approval app — runs [`inconsistency`] and refuses,
//! with an audited `draft.inconsistent` alert, a draft whose stored ones
//! differ. What humans read ([`describe`]) is built from `change` too, so a
//! person approves the words the executor's fields say.

use spend_core::Money;
use spend_core::events::{DraftChange, DraftProposed, FieldDiff};

/// The alert reason of a draft whose display fields disagree with its change.
pub const INCONSISTENT: &str = "draft.inconsistent";

/// The display fields of a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub kind: String,
    pub diff: Vec<FieldDiff>,
    pub spend_impact: Money,
}

fn money_json(m: &Money) -> serde_json::Value {
    serde_json::json!({"minor_units": m.minor_units, "currency": m.currency})
}

fn money(minor: i64, currency: &str) -> Result<Money, String> {
    Money::new(minor, currency).map_err(|e| e.to_string())
}

/// `kind`, `diff` and `spend_impact` as `change` makes them, or why the
/// change is not one a draft may carry (a field other than its own moved,
/// a bid without its bids, currencies that differ).
pub fn derive(change: &DraftChange) -> Result<Derived, String> {
    match change {
        DraftChange::Payment {
            amount,
            merchant,
            category,
            country,
            https,
            card_id,
            stated_category,
            stated_country,
            url: _,
        } => Ok(Derived {
            kind: "payment".into(),
            diff: vec![FieldDiff {
                path: format!("payment/{merchant}"),
                before: serde_json::Value::Null,
                after: serde_json::json!({
                    "amount_minor": amount.minor_units,
                    "currency": amount.currency,
                    "card_id": card_id,
                    "category": category,
                    "country": country,
                    "https": https,
                    "category_stated_by_agent": stated_category,
                    "country_stated_by_agent": stated_country,
                }),
            }],
            spend_impact: amount.clone(),
        }),
        DraftChange::Campaign {
            campaign_id,
            field,
            daily_budget_before: before,
            daily_budget_after: after,
            status_before,
            status_after,
            bid_before,
            bid_after,
        } => {
            let cur = before.currency.as_str();
            if after.currency != cur {
                return Err(format!("the daily budget is in {cur} before and in {} after", after.currency));
            }
            let budget_moved = before.minor_units != after.minor_units;
            let status_moved = status_before != status_after;
            let bid_moved = bid_before != bid_after;
            let (diff, impact) = match field.as_str() {
                "budget" if !status_moved && !bid_moved => (
                    FieldDiff {
                        path: format!("campaign/{campaign_id}/daily_budget"),
                        before: money_json(before),
                        after: money_json(after),
                    },
                    // Only an active campaign spends its budget.
                    if status_before == "active" {
                        after.minor_units - before.minor_units
                    } else {
                        0
                    },
                ),
                "bid" if !budget_moved && !status_moved => {
                    let (Some(b), Some(a)) = (bid_before, bid_after) else {
                        return Err("a bid change without the bid before and after".into());
                    };
                    if b.currency != cur || a.currency != cur {
                        return Err(format!("the bid is in {} → {} but the campaign in {cur}", b.currency, a.currency));
                    }
                    // A bid moves price, not the budget that caps spend.
                    (
                        FieldDiff {
                            path: format!("campaign/{campaign_id}/bid"),
                            before: money_json(b),
                            after: money_json(a),
                        },
                        0,
                    )
                }
                "status" if !budget_moved && !bid_moved => (
                    FieldDiff {
                        path: format!("campaign/{campaign_id}/status"),
                        before: serde_json::json!(status_before),
                        after: serde_json::json!(status_after),
                    },
                    match (status_before.as_str(), status_after.as_str()) {
                        ("paused", "active") => before.minor_units,
                        ("active", "paused") => -before.minor_units,
                        _ => 0,
                    },
                ),
                "budget" | "bid" | "status" => return Err(format!("a {field} change that moves another field too")),
                other => return Err(format!("a campaign change of field {other:?}")),
            };
            Ok(Derived {
                kind: field.clone(),
                diff: vec![diff],
                spend_impact: money(impact, cur)?,
            })
        }
    }
}

/// The `spend.draft.proposed.v1` of `change`, its display fields derived.
pub fn proposed(draft_id: &str, account_id: &str, rationale: &str, drafted_against: Option<String>, change: DraftChange) -> Result<DraftProposed, String> {
    let d = derive(&change)?;
    Ok(DraftProposed {
        draft_id: draft_id.into(),
        account_id: account_id.into(),
        kind: d.kind,
        diff: d.diff,
        spend_impact: d.spend_impact,
        rationale: rationale.into(),
        drafted_against,
        change,
    })
}

/// Why `p`'s display fields are not what its change makes them (`None`:
/// they are). A campaign draft must also say which live state it was
/// drafted against, or it could never go stale.
pub fn inconsistency(p: &DraftProposed) -> Option<String> {
    let d = match derive(&p.change) {
        Ok(d) => d,
        Err(e) => return Some(format!("draft {}: {e}", p.draft_id)),
    };
    if p.kind != d.kind {
        return Some(format!("draft {} says it is a {} change but its change is a {}", p.draft_id, p.kind, d.kind));
    }
    if p.spend_impact != d.spend_impact {
        return Some(format!(
            "draft {} shows a spend impact of {} but its change makes {}",
            p.draft_id, p.spend_impact, d.spend_impact
        ));
    }
    if p.diff != d.diff {
        let shown = p.diff.iter().map(line).collect::<Vec<_>>().join("; ");
        let pushed = d.diff.iter().map(line).collect::<Vec<_>>().join("; ");
        return Some(format!("draft {} shows {shown} but its change pushes {pushed}", p.draft_id));
    }
    if matches!(p.change, DraftChange::Campaign { .. }) && p.drafted_against.is_none() {
        return Some(format!("campaign draft {} does not say which live state it was drafted against", p.draft_id));
    }
    None
}

fn line(d: &FieldDiff) -> String {
    let short = |v: &serde_json::Value| {
        let s = v.to_string();
        if s.chars().count() > 120 {
            format!("{}…", s.chars().take(120).collect::<String>())
        } else {
            s
        }
    };
    format!("{}: {} → {}", d.path, short(&d.before), short(&d.after))
}

/// The change in a person's words, from the fields the executor pushes:
/// "Daily budget of campaign cmp_1 (act_1001): 50.00 USD → 60.00 USD a day",
/// "Pay 4.00 USD to openai.com (US, https) from card crd_1".
pub fn describe(change: &DraftChange, account_id: &str) -> String {
    match change {
        DraftChange::Payment {
            amount,
            merchant,
            country,
            https,
            card_id,
            ..
        } => {
            let mut facts = Vec::new();
            if let Some(c) = country {
                facts.push(c.clone());
            }
            match https {
                Some(true) => facts.push("https".into()),
                Some(false) => facts.push("not https".into()),
                None => {}
            }
            let facts = if facts.is_empty() {
                String::new()
            } else {
                format!(" ({})", facts.join(", "))
            };
            let card = card_id
                .as_deref()
                .map(|c| format!(" from card {c}"))
                .unwrap_or_else(|| " from no card named".into());
            format!("Pay {amount} to {merchant}{facts}{card}")
        }
        DraftChange::Campaign {
            campaign_id,
            field,
            daily_budget_before,
            daily_budget_after,
            status_before,
            status_after,
            bid_before,
            bid_after,
        } => match field.as_str() {
            "budget" => format!("Daily budget of campaign {campaign_id} ({account_id}): {daily_budget_before} → {daily_budget_after} a day"),
            "bid" => {
                let show = |m: &Option<Money>| m.as_ref().map(ToString::to_string).unwrap_or_else(|| "unknown".into());
                format!("Bid of campaign {campaign_id} ({account_id}): {} → {}", show(bid_before), show(bid_after))
            }
            _ => format!("Status of campaign {campaign_id} ({account_id}): {status_before} → {status_after} (daily budget {daily_budget_before})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(m: i64) -> Money {
        Money::new(m, "USD").unwrap()
    }

    fn budget(before: i64, after: i64) -> DraftChange {
        DraftChange::Campaign {
            campaign_id: "cmp_1".into(),
            field: "budget".into(),
            daily_budget_before: usd(before),
            daily_budget_after: usd(after),
            status_before: "active".into(),
            status_after: "active".into(),
            bid_before: None,
            bid_after: None,
        }
    }

    fn proposed(change: DraftChange) -> DraftProposed {
        super::proposed("d1", "act_1001", "", Some("2026-12-07T00:00:00Z".into()), change).unwrap()
    }

    #[test]
    fn a_draft_made_by_derive_is_consistent_and_reads_as_a_person_reads() {
        let p = proposed(budget(5_000, 6_000));
        assert_eq!(inconsistency(&p), None);
        assert_eq!(p.spend_impact, usd(1_000));
        assert_eq!(
            describe(&p.change, "act_1001"),
            "Daily budget of campaign cmp_1 (act_1001): 50.00 USD → 60.00 USD a day"
        );
        let pay = DraftChange::Payment {
            amount: usd(400),
            merchant: "openai.com".into(),
            category: Some("software".into()),
            country: Some("US".into()),
            url: None,
            https: Some(true),
            card_id: Some("crd_1".into()),
            stated_category: None,
            stated_country: None,
        };
        assert_eq!(inconsistency(&proposed(pay.clone())), None);
        assert_eq!(describe(&pay, "act_1001"), "Pay 4.00 USD to openai.com (US, https) from card crd_1");
    }

    #[test]
    fn a_diff_that_says_60_for_a_change_of_900_is_inconsistent() {
        let shown = proposed(budget(5_000, 6_000));
        let mut forged = proposed(budget(5_000, 90_000));
        forged.diff = shown.diff.clone();
        forged.spend_impact = shown.spend_impact.clone();
        let why = inconsistency(&forged).unwrap();
        assert!(why.contains("10.00 USD") && why.contains("850.00 USD"), "{why}");
        // With the impact right, the diff alone differing is caught.
        let mut diff_only = proposed(budget(5_000, 90_000));
        diff_only.diff = shown.diff.clone();
        let why = inconsistency(&diff_only).unwrap();
        assert!(why.contains("6000") && why.contains("90000"), "{why}");
        // The impact alone differing is caught too.
        let mut cheap = proposed(budget(5_000, 90_000));
        cheap.spend_impact = usd(1_000);
        assert!(inconsistency(&cheap).unwrap().contains("spend impact"));
        // Another kind.
        let mut kind = proposed(budget(5_000, 6_000));
        kind.kind = "bid".into();
        assert!(inconsistency(&kind).is_some());
    }

    #[test]
    fn a_change_that_moves_another_field_or_lacks_its_bids_or_live_state_is_refused() {
        let DraftChange::Campaign { campaign_id, .. } = budget(1, 1) else {
            unreachable!()
        };
        let sneaky = DraftChange::Campaign {
            campaign_id: campaign_id.clone(),
            field: "bid".into(),
            daily_budget_before: usd(5_000),
            daily_budget_after: usd(90_000),
            status_before: "active".into(),
            status_after: "active".into(),
            bid_before: Some(usd(100)),
            bid_after: Some(usd(120)),
        };
        assert!(derive(&sneaky).unwrap_err().contains("another field"));
        let bidless = DraftChange::Campaign {
            campaign_id,
            field: "bid".into(),
            daily_budget_before: usd(5_000),
            daily_budget_after: usd(5_000),
            status_before: "active".into(),
            status_after: "active".into(),
            bid_before: None,
            bid_after: None,
        };
        assert!(derive(&bidless).is_err());
        let mut unanchored = proposed(budget(5_000, 6_000));
        unanchored.drafted_against = None;
        assert!(inconsistency(&unanchored).unwrap().contains("drafted against"));
    }
}
