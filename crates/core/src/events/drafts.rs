//! A draft's own events: the proposal an agent makes (its diff, its change,
//! its spend impact), the policy's decision and its reasons, staleness, and
//! SPEND.md proposals.

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// One field of a before→after diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDiff {
    pub path: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftProposed {
    pub draft_id: String,
    pub account_id: String,
    /// `budget`, `bid`, `status` or `payment`.
    pub kind: String,
    pub diff: Vec<FieldDiff>,
    pub spend_impact: Money,
    pub rationale: String,
    /// The version of the live state the diff's `before` was read from
    /// (e.g. the campaign's last-modified time on the platform); when the
    /// live state moves past it, the draft goes stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafted_against: Option<String>,
    /// What the policy judges, as read from the platform: the policy
    /// service decides from this event on the log, never from a caller.
    pub change: DraftChange,
}

/// The change a draft makes, with the live facts policy needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DraftChange {
    Payment {
        amount: Money,
        merchant: String,
        /// The merchant's category as the platform knows it (never the
        /// agent's word for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        /// The merchant's country (ISO 3166-1 alpha-2) as the platform's
        /// merchant data gives it (never the agent's word for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        country: Option<String>,
        /// The page the agent pays on, as it says: shown to humans, and a
        /// stated non-https URL is refused, but whether the merchant takes
        /// payment over HTTPS is `https`, the platform's fact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// Whether the platform's merchant data says the merchant takes
        /// payment over HTTPS (absent: the platform does not say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        https: Option<bool>,
        /// The card the agent asks to be charged: the executor charges this
        /// card or none (absent on drafts recorded before cards were named:
        /// those are refused at push).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_id: Option<String>,
        /// The merchant's category as the agent states it: shown to humans
        /// beside the platform's, labelled as the agent's word, never judged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stated_category: Option<String>,
        /// The merchant's country as the agent states it (as above).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stated_country: Option<String>,
    },
    /// A campaign's daily budget, bid or status, with the campaign's live
    /// daily budget and status before the change.
    Campaign {
        campaign_id: String,
        /// `budget`, `bid` or `status`.
        field: String,
        daily_budget_before: Money,
        daily_budget_after: Money,
        status_before: String,
        status_after: String,
        /// A bid draft's live bid before and the bid it sets: what the
        /// executor writes (absent on other fields; a bid draft without
        /// them is refused at push).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bid_before: Option<Money>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bid_after: Option<Money>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Deny,
    AutoApprove,
    RequireApproval,
    RequireDualApproval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEvaluated {
    pub draft_id: String,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    /// Content hash of the SPEND.md version that decided.
    pub policy_version: String,
}

/// A draft can no longer be approved: the live state it was drafted
/// against moved, or it waited longer than 48 hours. It must be re-drafted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftStaled {
    pub draft_id: String,
    /// `live_state_moved` or `expired`.
    pub reason: String,
    pub detail: String,
}

/// A new SPEND.md version, proposed by the operator's CLI on its own
/// subject (`policy.<draft_id>`; the first proposal of an id wins) and in
/// force once a human's approval names the hash of this event's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyProposed {
    pub draft_id: String,
    /// Content hash of `source` (`sha256:…`).
    pub version: String,
    /// The SPEND.md text, exactly as proposed.
    pub source: String,
    /// The version in force when this one was proposed.
    pub previous_version: Option<String>,
    /// Whether this version sets `auto_approve_under` (a standing mandate
    /// once a human approves it).
    pub enables_auto_approve: bool,
}
