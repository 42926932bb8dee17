//! What a person is asked to sign, in their words, from the exact bytes
//! of the approved event on the log.
//!
//! Pure: bytes in, words out. The page hashes the same bytes in the
//! browser for the challenge, so what it shows and what the passkey signs
//! come from one read. The words come from the fields the executor acts on
//! (a draft's `change`, a SPEND.md version's `source`, a rollback
//! request's changes), never from the display fields a writer could set
//! apart from them: a draft whose stored `diff` or `spend_impact` differs
//! from its `change` is refused here as everywhere
//! ([`spend_draft::display::inconsistency`]).

use std::collections::HashMap;

use spend_core::RawEnvelope;
use spend_core::events::{DraftChange, DraftProposed, EventData, PolicyProposed, RollbackRequested};

/// What can be approved, and where its event lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `spend.draft.proposed.v1`, first on `draft.<id>`.
    Draft,
    /// `spend.policy.proposed.v1`, first on `policy.<id>`.
    Policy,
    /// `spend.rollback.requested.v1`, first on `approval.<id>` (asked in
    /// the app) or `rollback_request.<id>` (asked by an operator).
    Rollback,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "policy" => Some(Self::Policy),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }

    /// The aggregates its event may be first on, in the order tried.
    pub fn aggregates(self) -> &'static [&'static str] {
        match self {
            Self::Draft => &["draft"],
            Self::Policy => &["policy"],
            Self::Rollback => &["approval", "rollback_request"],
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            Self::Draft => DraftProposed::TYPE,
            Self::Policy => PolicyProposed::TYPE,
            Self::Rollback => RollbackRequested::TYPE,
        }
    }
}

/// The page's account of one approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// One sentence: what happens when the person confirms.
    pub headline: String,
    /// Further facts, each a (label, value) row.
    pub rows: Vec<(String, String)>,
    /// Said in bold before the button, when it matters (a payment cannot
    /// be rolled back).
    pub warning: Option<String>,
    /// The confirming button's name.
    pub confirm: &'static str,
}

/// Why the page will not ask for a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the log holds no {0} under that id")]
    Missing(&'static str),
    #[error("the event under that id is not one a person approves: {0}")]
    Type(String),
    #[error("the event is not readable: {0}")]
    Unreadable(String),
    #[error("the event belongs to another organisation")]
    Org,
    #[error("what this draft shows is not what it would push: {0}")]
    Inconsistent(String),
}

/// Reads the approvable event `bytes` of `kind` for `org` and `id`.
/// `drafts` describes each draft a rollback names (by draft id), as read
/// from the log by the caller.
pub fn approvable(kind: Kind, org: &str, id: &str, bytes: &[u8], drafts: &HashMap<String, String>) -> Result<Shown, Refused> {
    let env = RawEnvelope::parse(bytes).map_err(|e| Refused::Unreadable(e.to_string()))?;
    if env.event_type != kind.event_type() {
        return Err(Refused::Type(env.event_type.to_string()));
    }
    if env.org != org {
        return Err(Refused::Org);
    }
    let data = EventData::from_json(&env.event_type, env.data.get()).map_err(|e| Refused::Unreadable(e.to_string()))?;
    match data {
        EventData::DraftProposed(p) if p.draft_id == id => draft(&p),
        EventData::PolicyProposed(p) if p.draft_id == id => Ok(policy(&p)),
        EventData::RollbackRequested(r) if r.rollback_id == id => Ok(rollback(&r, drafts)),
        _ => Err(Refused::Type(format!("{} of another id", env.event_type))),
    }
}

/// A draft's change in words (what [`approvable`] shows of each draft a
/// rollback names), or why it cannot be shown.
pub fn draft_words(bytes: &[u8]) -> Option<String> {
    let env = RawEnvelope::parse(bytes).ok()?;
    match EventData::from_json(&env.event_type, env.data.get()).ok()? {
        EventData::DraftProposed(p) => Some(spend_draft::display::describe(&p.change, &p.account_id)),
        _ => None,
    }
}

fn draft(p: &DraftProposed) -> Result<Shown, Refused> {
    if let Some(why) = spend_draft::display::inconsistency(p) {
        return Err(Refused::Inconsistent(why));
    }
    let headline = spend_draft::display::describe(&p.change, &p.account_id);
    let mut rows = vec![("Draft".to_string(), p.draft_id.clone()), ("Account".to_string(), p.account_id.clone())];
    let warning = match &p.change {
        DraftChange::Payment { merchant, amount, .. } => {
            rows.push(("Merchant".into(), merchant.clone()));
            rows.push(("Amount".into(), amount.to_string()));
            Some("A payment cannot be undone by a rollback: once made, it can only be refunded.".to_string())
        }
        DraftChange::Campaign { .. } => None,
    };
    // The agent's words, said as theirs: never an instruction to the person.
    rows.push(("The agent's reason (its own words)".into(), p.rationale.clone()));
    Ok(Shown {
        headline,
        rows,
        warning,
        confirm: "Confirm and push live",
    })
}

fn policy(p: &PolicyProposed) -> Shown {
    let mut rows = vec![
        ("Proposal".to_string(), p.draft_id.clone()),
        ("Version".to_string(), p.version.clone()),
        (
            "Replaces".to_string(),
            p.previous_version.clone().unwrap_or_else(|| "the bootstrap SPEND.md".into()),
        ),
    ];
    if p.enables_auto_approve {
        rows.push((
            "Mandate".into(),
            "This version sets auto_approve_under: drafts below it are approved without a person.".into(),
        ));
    }
    rows.push(("SPEND.md, exactly as proposed".into(), p.source.clone()));
    Shown {
        headline: format!("Put SPEND.md version {} in force", p.version),
        rows,
        warning: None,
        confirm: "Confirm and push live",
    }
}

fn rollback(r: &RollbackRequested, drafts: &HashMap<String, String>) -> Shown {
    let n = r.changes.len();
    let mut rows = vec![
        ("Request".to_string(), r.rollback_id.clone()),
        ("Asked by".to_string(), r.requested_by.clone()),
        (
            "Reason (as given)".to_string(),
            if r.reason.trim().is_empty() {
                "(none given)".into()
            } else {
                r.reason.clone()
            },
        ),
    ];
    for item in &r.changes {
        let words = drafts.get(&item.draft_id).cloned().unwrap_or_else(|| "a draft the log does not show".into());
        rows.push(("Undo".into(), format!("{words} (change {}, draft {})", item.change_id, item.draft_id)));
    }
    Shown {
        headline: format!(
            "Roll back {n} pushed change{}: the executor restores what each replaced",
            if n == 1 { "" } else { "s" }
        ),
        rows,
        warning: Some("A payment is not undone by a rollback: its rollback is a refund at the platform.".into()),
        confirm: "Confirm rollback",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::events::{DraftChange, RollbackItem};
    use spend_core::{Actor, Envelope, Money};

    fn payment(id: &str, minor: i64) -> DraftProposed {
        spend_draft::display::proposed(
            id,
            "card_1",
            "credits",
            None,
            DraftChange::Payment {
                amount: Money::new(minor, "USD").unwrap(),
                merchant: "openai.com".into(),
                category: None,
                country: Some("US".into()),
                url: None,
                https: Some(true),
                card_id: Some("crd_1".into()),
                stated_category: None,
                stated_country: None,
            },
        )
        .unwrap()
    }

    fn bytes(org: &str, subject: &str, data: EventData) -> Vec<u8> {
        Envelope::new("spendsignoff/gateway", org, Actor::agent("k_1"), subject, data).to_bytes()
    }

    #[test]
    fn a_draft_is_shown_from_its_change_and_refused_when_its_display_differs() {
        let shown = approvable(
            Kind::Draft,
            "acme",
            "d_1",
            &bytes("acme", "draft/d_1", EventData::DraftProposed(payment("d_1", 400))),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(shown.headline, "Pay 4.00 USD to openai.com (US, https) from card crd_1");
        assert!(shown.warning.unwrap().contains("cannot be undone by a rollback"));
        let mut lying = payment("d_2", 90_000);
        lying.spend_impact = Money::new(400, "USD").unwrap();
        let refused = approvable(
            Kind::Draft,
            "acme",
            "d_2",
            &bytes("acme", "draft/d_2", EventData::DraftProposed(lying)),
            &HashMap::new(),
        );
        assert!(matches!(refused, Err(Refused::Inconsistent(_))), "{refused:?}");
    }

    #[test]
    fn one_kind_never_passes_for_another_nor_one_id_or_organisation_for_another() {
        let b = bytes("acme", "draft/d_1", EventData::DraftProposed(payment("d_1", 400)));
        assert!(matches!(approvable(Kind::Policy, "acme", "d_1", &b, &HashMap::new()), Err(Refused::Type(_))));
        assert!(matches!(approvable(Kind::Draft, "acme", "d_9", &b, &HashMap::new()), Err(Refused::Type(_))));
        assert!(matches!(approvable(Kind::Draft, "other", "d_1", &b, &HashMap::new()), Err(Refused::Org)));
        assert!(matches!(
            approvable(Kind::Draft, "acme", "d_1", b"not json", &HashMap::new()),
            Err(Refused::Unreadable(_))
        ));
    }

    #[test]
    fn a_rollback_lists_each_change_it_undoes_in_words() {
        let r = RollbackRequested {
            rollback_id: "rb_1".into(),
            changes: vec![RollbackItem {
                change_id: "ch_d_1".into(),
                draft_id: "d_1".into(),
            }],
            reason: String::new(),
            requested_by: "u_1".into(),
            expires_at: "2099-01-01T00:00:00Z".into(),
        };
        let words = HashMap::from([(
            "d_1".to_string(),
            "Daily budget of campaign cmp_1 (act_1001): 50.00 USD → 60.00 USD a day".to_string(),
        )]);
        let shown = approvable(
            Kind::Rollback,
            "acme",
            "rb_1",
            &bytes("acme", "approval/rb_1", EventData::RollbackRequested(r)),
            &words,
        )
        .unwrap();
        assert_eq!(shown.confirm, "Confirm rollback");
        assert!(
            shown.rows.iter().any(|(k, v)| k == "Undo" && v.starts_with("Daily budget of campaign cmp_1")),
            "{shown:?}"
        );
        assert!(shown.rows.iter().any(|(_, v)| v == "(none given)"));
    }
}
