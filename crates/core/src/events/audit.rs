//! What is watched and proved: security alerts, notification attempts, and
//! the ledger's signed checkpoints.

use serde::{Deserialize, Serialize};

/// The approval service took on delivering one notification (one message
/// to one channel target): appended with the expected last sequence of
/// `notification.<notice_id>`, so one replica delivers it however often
/// its event is read, replayed or redelivered. A later attempt (after a
/// replica died mid-delivery) follows the previous one on the same subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationAttempted {
    pub notice_id: String,
    /// The id of the event notified about (for a digest, the last one).
    pub source_event_id: String,
    /// What is notified: one of SPEND.md's eight notification events
    /// (`transaction.completed`, ...), `approval.requested`,
    /// `approval.escalated`, or `digest.<event>` for a flood folded into one
    /// message.
    pub kind: String,
    /// `slack`, `email` or `outbox`.
    pub channel: String,
    /// Where it goes: the configured webhook's name (never its URL), an
    /// email address, or the outbox folder.
    pub target: String,
    /// 1 for the first replica to take it on.
    pub attempt: u32,
    /// The process that took it on (random per start).
    pub replica: String,
}

/// A notification was delivered: the channel accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSent {
    pub notice_id: String,
    pub channel: String,
    pub target: String,
    /// Tries it took (retries after 429, 5xx, timeouts and 4xx SMTP replies).
    pub tries: u32,
    /// What the channel answered, e.g. `HTTP 200` or `250 queued`.
    pub detail: String,
}

/// A notification could not be delivered: the channel refused it for good
/// or kept failing until the delivery deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationFailed {
    pub notice_id: String,
    pub channel: String,
    pub target: String,
    pub tries: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityAlert {
    /// Machine-readable, e.g. `scope.denied`, `ip_not_allowed`.
    pub reason: String,
    /// The agent key id involved (never the key itself).
    pub key_id: Option<String>,
    /// The client address as the gateway saw it.
    pub address: Option<String>,
    pub detail: String,
}

/// Published to the ledger stream (`SPEND_LEDGER`), not the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerCheckpointed {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash_b64: String,
    /// The exact signed checkpoint body.
    pub body: String,
    pub signature_b64: String,
    pub key_id: String,
}
