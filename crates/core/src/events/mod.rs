//! Typed payloads (`data`) of every event type SpendSignoff emits, one
//! struct per `spend.<noun>.<verb>.v1` type. schemas/events/ holds the JSON
//! Schema of each; a test checks every sample here against its schema, so
//! the code and the published contract cannot drift apart.

use serde::Serialize;

mod access;
mod approvals;
mod audit;
mod budget;
mod changes;
mod drafts;
mod samples;

pub use access::*;
pub use approvals::*;
pub use audit::*;
pub use budget::*;
pub use changes::*;
pub use drafts::*;
pub use samples::samples;

/// Every event type, with the file name of its JSON Schema under
/// schemas/events/.
pub const EVENT_TYPES: &[&str] = &[
    DraftProposed::TYPE,
    PolicyEvaluated::TYPE,
    ApprovalGranted::TYPE,
    ChangePushed::TYPE,
    ChangeRolledBack::TYPE,
    ReadPerformed::TYPE,
    SecurityAlert::TYPE,
    CardFrozen::TYPE,
    LedgerCheckpointed::TYPE,
    BudgetCommitted::TYPE,
    ApprovalRejected::TYPE,
    ChangeStarted::TYPE,
    ChangeFailed::TYPE,
    LimitApproaching::TYPE,
    LimitExceeded::TYPE,
    ApiKeyCreated::TYPE,
    ApiKeyRevoked::TYPE,
    DraftStaled::TYPE,
    NonceUsed::TYPE,
    PolicyProposed::TYPE,
    BreakerTripped::TYPE,
    BreakerReset::TYPE,
    ApprovalRequested::TYPE,
    ApprovalExpired::TYPE,
    ApproverInvited::TYPE,
    ApproverRegistered::TYPE,
    ApproverEnrolled::TYPE,
    ApproverAnchored::TYPE,
    ApproverRemoved::TYPE,
    ApprovalEscalated::TYPE,
    NotificationAttempted::TYPE,
    NotificationSent::TYPE,
    NotificationFailed::TYPE,
    CardCreated::TYPE,
    AccountConnected::TYPE,
    AccountRefreshed::TYPE,
    AccountDisconnected::TYPE,
    AccountConsentRequested::TYPE,
    BudgetReleased::TYPE,
    CardFreezeRequested::TYPE,
    AgentsPaused::TYPE,
    AgentsResumed::TYPE,
    RollbackRequested::TYPE,
    RollbackApproved::TYPE,
    RollbackRefused::TYPE,
    ClientGranted::TYPE,
    ClientTokensIssued::TYPE,
    ClientRevoked::TYPE,
];

/// The `data` of an event; the variant decides the envelope's `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    DraftProposed(DraftProposed),
    PolicyEvaluated(PolicyEvaluated),
    ApprovalGranted(ApprovalGranted),
    ChangePushed(ChangePushed),
    ChangeRolledBack(ChangeRolledBack),
    ReadPerformed(ReadPerformed),
    SecurityAlert(SecurityAlert),
    CardFrozen(CardFrozen),
    LedgerCheckpointed(LedgerCheckpointed),
    BudgetCommitted(BudgetCommitted),
    ApprovalRejected(ApprovalRejected),
    ChangeStarted(ChangeStarted),
    ChangeFailed(ChangeFailed),
    LimitApproaching(LimitApproaching),
    LimitExceeded(LimitExceeded),
    ApiKeyCreated(ApiKeyCreated),
    ApiKeyRevoked(ApiKeyRevoked),
    DraftStaled(DraftStaled),
    NonceUsed(NonceUsed),
    PolicyProposed(PolicyProposed),
    BreakerTripped(BreakerTripped),
    BreakerReset(BreakerReset),
    ApprovalRequested(ApprovalRequested),
    ApprovalExpired(ApprovalExpired),
    ApproverInvited(ApproverInvited),
    ApproverRegistered(ApproverRegistered),
    ApproverEnrolled(ApproverEnrolled),
    ApproverAnchored(ApproverAnchored),
    ApproverRemoved(ApproverRemoved),
    ApprovalEscalated(ApprovalEscalated),
    NotificationAttempted(NotificationAttempted),
    NotificationSent(NotificationSent),
    NotificationFailed(NotificationFailed),
    CardCreated(CardCreated),
    AccountConnected(AccountConnected),
    AccountRefreshed(AccountRefreshed),
    AccountDisconnected(AccountDisconnected),
    AccountConsentRequested(AccountConsentRequested),
    BudgetReleased(BudgetReleased),
    CardFreezeRequested(CardFreezeRequested),
    AgentsPaused(AgentsPaused),
    AgentsResumed(AgentsResumed),
    RollbackRequested(RollbackRequested),
    RollbackApproved(RollbackApproved),
    RollbackRefused(RollbackRefused),
    ClientGranted(ClientGranted),
    ClientTokensIssued(ClientTokensIssued),
    ClientRevoked(ClientRevoked),
}

macro_rules! typed {
    ($($variant:ident => $ty:literal),* $(,)?) => {
        $(impl $variant { pub const TYPE: &'static str = $ty; })*
        impl EventData {
            pub fn event_type(&self) -> &'static str {
                match self { $(EventData::$variant(_) => $variant::TYPE),* }
            }
            /// Parses `data` of the given type; unknown types are an error.
            pub fn from_json(event_type: &str, data: &str) -> Result<Self, String> {
                match event_type {
                    $($ty => serde_json::from_str(data).map(EventData::$variant).map_err(|e| e.to_string()),)*
                    other => Err(format!("unknown event type {other:?}")),
                }
            }
        }
    };
}

typed! {
    DraftProposed => "spend.draft.proposed.v1",
    PolicyEvaluated => "spend.policy.evaluated.v1",
    ApprovalGranted => "spend.approval.granted.v1",
    ChangePushed => "spend.change.pushed.v1",
    ChangeRolledBack => "spend.change.rolled_back.v1",
    ReadPerformed => "spend.read.performed.v1",
    SecurityAlert => "spend.security.alert.v1",
    CardFrozen => "spend.card.frozen.v1",
    LedgerCheckpointed => "spend.ledger.checkpointed.v1",
    BudgetCommitted => "spend.budget.committed.v1",
    ApprovalRejected => "spend.approval.rejected.v1",
    ChangeStarted => "spend.change.started.v1",
    ChangeFailed => "spend.change.failed.v1",
    LimitApproaching => "spend.limit.approaching.v1",
    LimitExceeded => "spend.limit.exceeded.v1",
    ApiKeyCreated => "spend.apikey.created.v1",
    ApiKeyRevoked => "spend.apikey.revoked.v1",
    DraftStaled => "spend.draft.staled.v1",
    NonceUsed => "spend.nonce.used.v1",
    PolicyProposed => "spend.policy.proposed.v1",
    BreakerTripped => "spend.breaker.tripped.v1",
    BreakerReset => "spend.breaker.reset.v1",
    ApprovalRequested => "spend.approval.requested.v1",
    ApprovalExpired => "spend.approval.expired.v1",
    ApproverInvited => "spend.approver.invited.v1",
    ApproverRegistered => "spend.approver.registered.v1",
    ApproverEnrolled => "spend.approver.enrolled.v1",
    ApproverAnchored => "spend.approver.anchored.v1",
    ApproverRemoved => "spend.approver.removed.v1",
    ApprovalEscalated => "spend.approval.escalated.v1",
    NotificationAttempted => "spend.notification.attempted.v1",
    NotificationSent => "spend.notification.sent.v1",
    NotificationFailed => "spend.notification.failed.v1",
    CardCreated => "spend.card.created.v1",
    AccountConnected => "spend.account.connected.v1",
    AccountRefreshed => "spend.account.refreshed.v1",
    AccountDisconnected => "spend.account.disconnected.v1",
    AccountConsentRequested => "spend.account.consent_requested.v1",
    BudgetReleased => "spend.budget.released.v1",
    CardFreezeRequested => "spend.card.freeze_requested.v1",
    AgentsPaused => "spend.agents.paused.v1",
    AgentsResumed => "spend.agents.resumed.v1",
    RollbackRequested => "spend.rollback.requested.v1",
    RollbackApproved => "spend.rollback.approved.v1",
    RollbackRefused => "spend.rollback.refused.v1",
    ClientGranted => "spend.client.granted.v1",
    ClientTokensIssued => "spend.client.tokens_issued.v1",
    ClientRevoked => "spend.client.revoked.v1",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_own_json() {
        for s in samples() {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(EventData::from_json(s.event_type(), &json).unwrap(), s);
        }
        assert_eq!(samples().len(), EVENT_TYPES.len());
    }
}
