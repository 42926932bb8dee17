//! The one status type of a draft, and the one mapping from a status to the
//! SPEND.md notification names (`transaction.completed`, ...). Every surface
//! that shows or filters drafts (gateway, approval pages, ledger
//! projections, `spend transactions --status`) uses these, so a status means
//! the same thing everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a draft is in its life. Only [`crate::Draft::apply`] moves a draft
/// from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    /// Recorded on the log; the policy has not decided yet.
    Proposed,
    /// The policy requires a human's approval; none yet.
    PendingApproval,
    /// Dual control: one distinct approver so far, a second is needed.
    AwaitingSecondApproval,
    /// Approved by as many distinct humans as the policy required.
    Approved,
    /// Approved by the policy under a standing mandate
    /// (`auto_approve_under`) that a human approved; the executor still
    /// re-evaluates it against that approved policy version before pushing.
    AutoApproved,
    /// Denied by the policy.
    Denied,
    /// Rejected by a human.
    Rejected,
    /// The live state it was drafted against moved: it must be re-drafted.
    Stale,
    /// It waited too long for a human (see [`crate::EXPIRES_AFTER_HOURS`]).
    Expired,
    /// The executor started applying it on its platform.
    Pushing,
    /// Applied on its platform.
    Pushed,
    /// Applying it failed for good; its commitment is released.
    Failed,
    /// A pushed change was undone.
    RolledBack,
}

/// Notification name of a completed transaction (SPEND.md).
pub const COMPLETED: &str = "transaction.completed";
/// Notification name of a declined transaction (SPEND.md).
pub const DECLINED: &str = "transaction.declined";
/// Notification name of a transaction waiting for a human (SPEND.md).
pub const PENDING_APPROVAL: &str = "transaction.pending_approval";

/// The notification words `spend transactions --status` accepts besides the
/// status names (see [`statuses_for_filter`]).
pub const NOTIFICATION_FILTERS: &[&str] = &["completed", "declined", "pending_approval"];

impl DraftStatus {
    /// Every status, in lifecycle order (for validating `--status`).
    pub const ALL: &[DraftStatus] = &[
        Self::Proposed,
        Self::PendingApproval,
        Self::AwaitingSecondApproval,
        Self::Approved,
        Self::AutoApproved,
        Self::Denied,
        Self::Rejected,
        Self::Stale,
        Self::Expired,
        Self::Pushing,
        Self::Pushed,
        Self::Failed,
        Self::RolledBack,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::PendingApproval => "pending_approval",
            Self::AwaitingSecondApproval => "awaiting_second_approval",
            Self::Approved => "approved",
            Self::AutoApproved => "auto_approved",
            Self::Denied => "denied",
            Self::Rejected => "rejected",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::Pushing => "pushing",
            Self::Pushed => "pushed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// The status as a person says it, for pages and messages.
    pub fn words(self) -> &'static str {
        match self {
            Self::Proposed => "Waiting for the policy",
            Self::PendingApproval => "Waiting for approval",
            Self::AwaitingSecondApproval => "Waiting for a second approver",
            Self::Approved => "Approved",
            Self::AutoApproved => "Approved by policy",
            Self::Denied => "Denied by policy",
            Self::Rejected => "Rejected",
            Self::Stale => "Stale: re-draft it",
            Self::Expired => "Expired",
            Self::Pushing => "Being pushed",
            Self::Pushed => "Live",
            Self::Failed => "Failed",
            Self::RolledBack => "Rolled back",
        }
    }

    /// Still waiting for a decision or a human, and so able to be
    /// rejected, go stale or expire.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Proposed | Self::PendingApproval | Self::AwaitingSecondApproval)
    }

    /// Nothing more can happen to the draft: a new one must be drafted.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Denied | Self::Rejected | Self::Stale | Self::Expired | Self::Failed | Self::RolledBack
        )
    }

    /// The SPEND.md notification this status raises, if any. This is the
    /// only mapping from statuses to notification names.
    pub fn notification(self) -> Option<&'static str> {
        match self {
            Self::Pushed => Some(COMPLETED),
            Self::Denied | Self::Rejected | Self::Stale | Self::Expired | Self::Failed => Some(DECLINED),
            Self::PendingApproval | Self::AwaitingSecondApproval => Some(PENDING_APPROVAL),
            Self::Proposed | Self::Approved | Self::AutoApproved | Self::Pushing | Self::RolledBack => None,
        }
    }
}

impl fmt::Display for DraftStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`DraftStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown draft status {0:?}: expected one of {names}", names = names())]
pub struct UnknownStatus(pub String);

fn names() -> String {
    DraftStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

impl FromStr for DraftStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DraftStatus::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The statuses a `--status` filter selects: a notification word
/// (`completed`, `declined`, `pending_approval`, with or without the
/// `transaction.` prefix) selects every status that raises it, so
/// `pending_approval` includes `awaiting_second_approval`; any other status
/// name selects itself. `None` for a word that is neither.
pub fn statuses_for_filter(filter: &str) -> Option<Vec<DraftStatus>> {
    let word = filter.strip_prefix("transaction.").unwrap_or(filter);
    if NOTIFICATION_FILTERS.contains(&word) {
        let name = format!("transaction.{word}");
        return Some(DraftStatus::ALL.iter().copied().filter(|s| s.notification() == Some(name.as_str())).collect());
    }
    filter.parse().ok().map(|s| vec![s])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name_and_its_json() {
        for &s in DraftStatus::ALL {
            assert_eq!(s.as_str().parse::<DraftStatus>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<DraftStatus>(&format!("\"{s}\"")).unwrap(), s);
        }
        assert_eq!(DraftStatus::ALL.len(), 13);
    }

    #[test]
    fn an_unknown_status_name_is_refused_with_the_valid_names() {
        let e = "completed".parse::<DraftStatus>().unwrap_err();
        assert_eq!(e, UnknownStatus("completed".into()));
        assert!(e.to_string().contains("pending_approval, awaiting_second_approval"), "{e}");
    }

    #[test]
    fn statuses_map_to_the_spend_md_notification_names() {
        use DraftStatus::*;
        assert_eq!(Pushed.notification(), Some("transaction.completed"));
        for s in [Denied, Rejected, Stale, Expired, Failed] {
            assert_eq!(s.notification(), Some("transaction.declined"), "{s}");
        }
        for s in [PendingApproval, AwaitingSecondApproval] {
            assert_eq!(s.notification(), Some("transaction.pending_approval"), "{s}");
        }
        for s in [Proposed, Approved, AutoApproved, Pushing, RolledBack] {
            assert_eq!(s.notification(), None, "{s}");
        }
    }

    #[test]
    fn pending_means_waiting_for_a_decision_or_a_human() {
        let pending: Vec<_> = DraftStatus::ALL.iter().copied().filter(|s| s.is_pending()).collect();
        assert_eq!(
            pending,
            [DraftStatus::Proposed, DraftStatus::PendingApproval, DraftStatus::AwaitingSecondApproval]
        );
        assert!(DraftStatus::ALL.iter().all(|s| !(s.is_pending() && s.is_terminal())));
        assert!(!DraftStatus::Pushed.is_terminal(), "a pushed change can still be rolled back");
        assert!(DraftStatus::RolledBack.is_terminal());
    }

    #[test]
    fn a_notification_word_filters_to_every_status_that_raises_it() {
        use DraftStatus::*;
        assert_eq!(statuses_for_filter("completed"), Some(vec![Pushed]));
        assert_eq!(statuses_for_filter("transaction.completed"), Some(vec![Pushed]));
        assert_eq!(statuses_for_filter("declined"), Some(vec![Denied, Rejected, Stale, Expired, Failed]));
        assert_eq!(statuses_for_filter("pending_approval"), Some(vec![PendingApproval, AwaitingSecondApproval]));
        assert_eq!(statuses_for_filter("auto_approved"), Some(vec![AutoApproved]));
        assert_eq!(statuses_for_filter("done"), None);
    }
}
