//! What the executor does on a platform: a change started, pushed, failed
//! or rolled back; rollback requests, their approval and refusals; cards
//! created and frozen.

use serde::{Deserialize, Serialize};

use crate::money::Money;

use super::*;

/// A virtual card was issued on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardCreated {
    pub card_id: String,
    pub account_id: String,
    /// The card number's last four digits (never the number).
    pub last4: String,
    /// What the card is for, e.g. `openai.com credits`.
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_limit: Option<Money>,
}

/// An operator froze a card (`spend card freeze CARD`), or every card of
/// the organisation (`card_id` `*`, `spend card freeze --all`): the
/// executor refuses charges on it from then on and freezes it at the
/// platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardFreezeRequested {
    pub card_id: String,
    pub reason: String,
}

/// The executor began applying an approved draft on its platform
/// (appended with expected sequence 0 on `change.<change_id>`: one start
/// per change, however many replicas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeStarted {
    pub change_id: String,
    pub draft_id: String,
    /// The live state the change was applied to, captured before it: what
    /// a rollback restores, and what a resumed push records as `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
}

/// Applying an approved draft failed for good (retries exhausted or a
/// refusal by the platform); its commitment is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFailed {
    pub change_id: String,
    pub draft_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePushed {
    pub change_id: String,
    pub draft_id: String,
    pub platform: String,
    /// Idempotency key sent to the platform.
    pub idempotency_key: String,
    pub diff: Vec<FieldDiff>,
    /// What the platform answered (the campaign as it now is, the charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

/// The executor restored what a push changed (appended on the push's
/// `change.<change_id>` subject, expecting the sequence of its
/// `spend.change.pushed.v1`: one rollback per change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRolledBack {
    /// The rollback's own change id (`<rollback_id>-<draft_id>`), the
    /// idempotency key it was applied with.
    pub change_id: String,
    pub draft_id: String,
    /// The change id of the push it undoes.
    pub rollback_of: String,
    /// Each field as the push left it → as restored (a payment: the
    /// charge → its refund).
    pub diff: Vec<FieldDiff>,
    /// The approved rollback request it carries out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_id: Option<String>,
    /// What the platform answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

/// One pushed change a rollback request undoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackItem {
    /// The push's change id (`spend.change.pushed.v1`).
    pub change_id: String,
    pub draft_id: String,
}

/// Most changes one rollback request lists.
pub const MAX_ROLLBACK_CHANGES: usize = 200;

/// Someone asks to undo pushed changes: a signed-in human from the audit
/// view (the approval service, on `approval.<rollback_id>`) or an operator
/// (`spend rollback`, on `rollback_request.<rollback_id>`). It moves
/// nothing by itself: a human approves these exact bytes with a passkey
/// (`spend.rollback.approved.v1`) before the executor restores anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequested {
    pub rollback_id: String,
    /// The changes to undo (one request for "everything this agent pushed
    /// since Monday"), at most [`MAX_ROLLBACK_CHANGES`].
    pub changes: Vec<RollbackItem>,
    pub reason: String,
    /// Who asked: an approver id, or `operator`.
    pub requested_by: String,
    /// RFC 3339: an approval of it must be made before, and sign exactly
    /// this.
    pub expires_at: String,
}

/// A signed-in human approved a rollback request: the same fields and
/// proof as `spend.approval.granted.v1`, whose `approved_hash` is the hash
/// of the `spend.rollback.requested.v1` bytes (so an approval of a draft
/// cannot pass for one of a rollback, nor the reverse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RollbackApproved(pub ApprovalGranted);

/// The executor did not undo one change of an approved rollback, and why
/// (the live state moved since the push, the change was never pushed, the
/// platform refused): nothing was changed for it. On
/// `rollback.<rollback_id>-<draft_id>`, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRefused {
    pub rollback_id: String,
    pub change_id: String,
    pub draft_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardFrozen {
    pub card_id: String,
    pub reason: String,
}
