//! Approvals: approval requests for drafts that need a human, Slack and
//! email notifications with links, approver identity (passkeys), the
//! two-step approve-and-push page, and timeouts (which always deny).
//! Contract: proto/spendsignoff/v1/approval.proto.
//!
//! Not built yet: this crate holds the approval service's place in the
//! workspace.
#![forbid(unsafe_code)]
