//! Who may write what: one writer per aggregate, recognisable from whole
//! subject tokens (`<prefix>.<org>.<aggregate>.<id>`), because NATS
//! permissions match whole tokens. k8s/nats/auth.conf grants each service's
//! user exactly the aggregates this table gives it (a test reads auth.conf
//! and compares), and every reader checks that an event type sits on an
//! aggregate it belongs to ([`type_allowed_on`]): a message that does not
//! is ignored and raised as a `spend.security.alert.v1`.
//!
//! The table is docs/architecture.md's "Authority" section.

use crate::events::*;

/// A writer of events: one NATS user each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Writer {
    Gateway,
    Policy,
    Approval,
    Executor,
    Ledger,
    /// The operator's CLI (`spend api-key`, `spend policy propose`, ...).
    Operator,
}

impl Writer {
    pub const ALL: [Writer; 6] = [
        Writer::Gateway,
        Writer::Policy,
        Writer::Approval,
        Writer::Executor,
        Writer::Ledger,
        Writer::Operator,
    ];

    /// The NATS user name in k8s/nats/auth.conf.
    pub fn user(self) -> &'static str {
        match self {
            Writer::Gateway => "gateway",
            Writer::Policy => "policy",
            Writer::Approval => "approval",
            Writer::Executor => "executor",
            Writer::Ledger => "ledger",
            Writer::Operator => "operator",
        }
    }

    /// The aggregate of this writer's own security alerts.
    pub fn security_aggregate(self) -> &'static str {
        match self {
            Writer::Gateway => "security_gateway",
            Writer::Policy => "security_policy",
            Writer::Approval => "security_approval",
            Writer::Executor => "security_executor",
            Writer::Ledger => "security_ledger",
            Writer::Operator => "security_operator",
        }
    }

    /// The `source` its events carry.
    pub fn source(self) -> &'static str {
        match self {
            Writer::Gateway => "spendsignoff/gateway",
            Writer::Policy => "spendsignoff/policy",
            Writer::Approval => "spendsignoff/approval",
            Writer::Executor => "spendsignoff/executor",
            Writer::Ledger => "spendsignoff/ledger",
            Writer::Operator => "spendsignoff/cli",
        }
    }
}

/// One row of the authority table.
#[derive(Debug, Clone, Copy)]
pub struct Aggregate {
    /// The subject token.
    pub name: &'static str,
    pub writer: Writer,
    /// The event types that may be appended on it.
    pub types: &'static [&'static str],
    /// What it records, for the docs.
    pub what: &'static str,
}

const ALERT: &[&str] = &[SecurityAlert::TYPE];

/// Every aggregate appended on the event stream, each with its one writer.
pub const TABLE: &[Aggregate] = &[
    Aggregate {
        name: "draft",
        writer: Writer::Gateway,
        types: &[DraftProposed::TYPE, DraftStaled::TYPE],
        what: "an agent's draft and its staleness",
    },
    Aggregate {
        name: "read",
        writer: Writer::Gateway,
        types: &[ReadPerformed::TYPE],
        what: "reads an agent performed",
    },
    Aggregate {
        name: "nonce",
        writer: Writer::Gateway,
        types: &[NonceUsed::TYPE],
        what: "signed requests' nonces (replay refused by every replica)",
    },
    Aggregate {
        name: "breaker",
        writer: Writer::Gateway,
        types: &[BreakerTripped::TYPE],
        what: "circuit breaker trips",
    },
    Aggregate {
        name: "security_gateway",
        writer: Writer::Gateway,
        types: ALERT,
        what: "the gateway's security alerts",
    },
    Aggregate {
        name: "decision",
        writer: Writer::Policy,
        types: &[PolicyEvaluated::TYPE],
        what: "the policy's one decision on a draft (`decision.<draft_id>`)",
    },
    Aggregate {
        name: "limit",
        writer: Writer::Policy,
        types: &[LimitApproaching::TYPE, LimitExceeded::TYPE],
        what: "limit.approaching / limit.exceeded notices",
    },
    Aggregate {
        name: "security_policy",
        writer: Writer::Policy,
        types: ALERT,
        what: "the policy service's security alerts",
    },
    Aggregate {
        name: "approval",
        writer: Writer::Approval,
        types: &[
            ApprovalRequested::TYPE,
            ApprovalGranted::TYPE,
            ApprovalRejected::TYPE,
            ApprovalExpired::TYPE,
            ApprovalEscalated::TYPE,
            RollbackRequested::TYPE,
            RollbackApproved::TYPE,
        ],
        what: "approval requests, humans' approvals (with their passkey proofs) and rejections, escalations and expiries (`approval.<draft, proposal or rollback id>`); rollbacks a human asks for in the audit view, and humans' approvals of rollback requests",
    },
    Aggregate {
        name: "approver",
        writer: Writer::Approval,
        types: &[ApproverInvited::TYPE, ApproverRegistered::TYPE, ApproverEnrolled::TYPE, ApproverRemoved::TYPE],
        what: "approvers: invited and removed by an admin in the app, passkeys registered and enrolled with an admin's countersignature (`approver.<approver or invite id>`)",
    },
    Aggregate {
        name: "notification",
        writer: Writer::Approval,
        types: &[NotificationAttempted::TYPE, NotificationSent::TYPE, NotificationFailed::TYPE],
        what: "Slack and email notifications: who took each on, and its outcome (`notification.<notice_id>`)",
    },
    Aggregate {
        name: "client",
        writer: Writer::Approval,
        types: &[ClientGranted::TYPE, ClientTokensIssued::TYPE, ClientRevoked::TYPE],
        what: "MCP clients' grants: a human's consent (with the code's hash), the tokens issued for it (each refresh rotates), its revocation (`client.<grant_id>`)",
    },
    Aggregate {
        name: "kill_switch",
        writer: Writer::Approval,
        types: &[CardFreezeRequested::TYPE, AgentsPaused::TYPE, AgentsResumed::TYPE],
        what: "kill switches an admin pulls in the app (`kill_switch.agents`, `kill_switch.card-<card or all>`): a resume here lifts only a pause made here",
    },
    Aggregate {
        name: "security_approval",
        writer: Writer::Approval,
        types: ALERT,
        what: "the approval service's security alerts",
    },
    Aggregate {
        name: "change",
        writer: Writer::Executor,
        types: &[ChangeStarted::TYPE, ChangePushed::TYPE, ChangeFailed::TYPE, ChangeRolledBack::TYPE],
        what: "pushes and rollbacks",
    },
    Aggregate {
        name: "budget",
        writer: Writer::Executor,
        types: &[BudgetCommitted::TYPE, BudgetReleased::TYPE],
        what: "commitments against the policy's envelope, made right before a push, released on its final failure (`budget.envelope`)",
    },
    Aggregate {
        name: "card",
        writer: Writer::Executor,
        types: &[CardCreated::TYPE, CardFrozen::TYPE],
        what: "card state",
    },
    Aggregate {
        name: "rollback",
        writer: Writer::Executor,
        types: &[RollbackRefused::TYPE],
        what: "changes of an approved rollback the executor did not undo, and why (`rollback.<rollback_id>-<draft_id>`); the changes it undid are `spend.change.rolled_back.v1` on their `change` subject",
    },
    Aggregate {
        name: "account",
        writer: Writer::Executor,
        types: &[
            AccountConnected::TYPE,
            AccountRefreshed::TYPE,
            AccountDisconnected::TYPE,
            AccountConsentRequested::TYPE,
        ],
        what: "connected accounts: connections, scopes, refreshes, disconnections and write consents asked for (`account.<platform>-<account>`)",
    },
    Aggregate {
        name: "security_executor",
        writer: Writer::Executor,
        types: ALERT,
        what: "the executor's security alerts",
    },
    Aggregate {
        name: "security_ledger",
        writer: Writer::Ledger,
        types: ALERT,
        what: "the ledger's security alerts",
    },
    Aggregate {
        name: "apikey",
        writer: Writer::Operator,
        types: &[ApiKeyCreated::TYPE, ApiKeyRevoked::TYPE],
        what: "agent API keys",
    },
    Aggregate {
        name: "policy",
        writer: Writer::Operator,
        types: &[PolicyProposed::TYPE],
        what: "SPEND.md versions proposed (`policy.<proposal_id>`, first proposal of an id wins)",
    },
    Aggregate {
        name: "pause",
        writer: Writer::Operator,
        types: &[AgentsPaused::TYPE, AgentsResumed::TYPE],
        what: "an organisation's agents paused and resumed (`spend agents pause` and `resume`, `pause.<org>`)",
    },
    Aggregate {
        name: "breaker_reset",
        writer: Writer::Operator,
        types: &[BreakerReset::TYPE],
        what: "breaker resets by a human",
    },
    Aggregate {
        name: "card_freeze",
        writer: Writer::Operator,
        types: &[CardFreezeRequested::TYPE],
        what: "card-freeze requests (`spend card freeze`, `card_freeze.<card or all>`)",
    },
    Aggregate {
        name: "rollback_request",
        writer: Writer::Operator,
        types: &[RollbackRequested::TYPE],
        what: "rollbacks an operator asks for (`spend rollback`, `rollback_request.<rollback_id>`); a human approves each in the app",
    },
    Aggregate {
        name: "anchor",
        writer: Writer::Operator,
        types: &[ApproverAnchored::TYPE],
        what: "first-admin approver anchors (`spend approver anchor`, `anchor.<org>`)",
    },
    Aggregate {
        name: "roster",
        writer: Writer::Operator,
        types: &[ApproverInvited::TYPE, ApproverRemoved::TYPE],
        what: "approver invitations and removals by the operator (`spend approver invite` / `remove`)",
    },
    Aggregate {
        name: "security_operator",
        writer: Writer::Operator,
        types: ALERT,
        what: "alerts the operator's CLI records (e.g. a refused mcp.approve)",
    },
];

/// The row of `aggregate`, if it is one.
pub fn aggregate(name: &str) -> Option<&'static Aggregate> {
    TABLE.iter().find(|a| a.name == name)
}

/// The aggregates `writer` may append to.
pub fn aggregates_of(writer: Writer) -> impl Iterator<Item = &'static Aggregate> {
    TABLE.iter().filter(move |a| a.writer == writer)
}

/// Whether an event of `event_type` may sit on `aggregate`.
pub fn type_allowed_on(event_type: &str, aggregate: &str) -> bool {
    self::aggregate(aggregate).is_some_and(|a| a.types.contains(&event_type))
}

/// The writer an event of `event_type` on `aggregate` must come from.
pub fn writer_of(aggregate: &str) -> Option<Writer> {
    self::aggregate(aggregate).map(|a| a.writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_on_the_stream_has_exactly_one_aggregate() {
        for t in EVENT_TYPES {
            let homes: Vec<_> = TABLE.iter().filter(|a| a.types.contains(t)).map(|a| a.name).collect();
            match *t {
                // On the ledger's own stream.
                LedgerCheckpointed::TYPE => assert!(homes.is_empty()),
                SecurityAlert::TYPE => assert_eq!(homes.len(), Writer::ALL.len(), "one alert subject per writer"),
                // An admin removes in the app, the operator with the CLI:
                // each on a subject of their own.
                ApproverRemoved::TYPE | ApproverInvited::TYPE => assert_eq!(homes, ["approver", "roster"]),
                // A human asks in the app, an operator with the CLI.
                RollbackRequested::TYPE => assert_eq!(homes, ["approval", "rollback_request"]),
                CardFreezeRequested::TYPE => assert_eq!(homes, ["kill_switch", "card_freeze"]),
                AgentsPaused::TYPE | AgentsResumed::TYPE => assert_eq!(homes, ["kill_switch", "pause"]),
                _ => assert_eq!(homes.len(), 1, "{t} belongs on {homes:?}"),
            }
        }
    }

    #[test]
    fn an_approval_on_a_draft_subject_is_out_of_place() {
        assert!(type_allowed_on(ApprovalGranted::TYPE, "approval"));
        assert!(!type_allowed_on(ApprovalGranted::TYPE, "draft"));
        assert!(!type_allowed_on(PolicyEvaluated::TYPE, "draft"));
        assert!(!type_allowed_on(PolicyProposed::TYPE, "draft"));
        assert!(!type_allowed_on(DraftProposed::TYPE, "nowhere"));
    }

    #[test]
    fn names_are_whole_subject_tokens() {
        for a in TABLE {
            assert!(crate::subject::is_valid_token(a.name), "{}", a.name);
        }
        let mut names: Vec<_> = TABLE.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
    }
}
