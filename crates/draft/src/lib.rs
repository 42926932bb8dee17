//! The draft aggregate: the life of one spend change an agent drafted, from
//! `spend.draft.proposed.v1` through the policy's decision, human approval
//! or rejection, staleness and expiry, to push, failure and rollback.
//!
//! It owns two things every service must agree on, so they live in exactly
//! one place:
//! - a draft's status ([`DraftStatus`]), derived only by [`Draft::apply`]
//!   from facts on the log, and its one mapping to SPEND.md notification
//!   names ([`DraftStatus::notification`]);
//! - what counts as an approval: [`verify`] is the only way to get a
//!   [`VerifiedApproval`], and a draft is approved only through one, so
//!   nothing approves on an event alone.
//!
//! Pure, in the cqrs style: [`decide`] turns a [`Command`] and the current
//! state into the events to append (or a [`DraftError`]); [`Draft::apply`]
//! folds a [`DraftEvent`] into the state, ignoring any event the state
//! machine would not accept from where the draft is, so a forged or
//! out-of-order event cannot move a draft. No I/O, no async: services read
//! and publish, this crate only judges.
//!
//! Layout: [`status`] (the status type and `--status` filters), `aggregate`
//! (state, events, commands, re-exported here), [`fold`] (the one reading
//! of a stored message into the draft event it may be, for every service
//! that keeps drafts), [`verify`] (the approval
//! verifier and [`event_hash`]), [`proof`] (the pinned passkey approval
//! proof and its check) and [`approvers`] (the registry of who may approve:
//! anchored first admins and admin-countersigned approvers) — the
//! verifier's next step, which it requires once approvers enroll.
#![forbid(unsafe_code)]

mod aggregate;
pub mod approvers;
pub mod display;
pub mod fold;
#[cfg(any(test, feature = "soft-authenticator"))]
pub mod humans;
pub mod proof;
pub mod status;
pub mod verify;

pub use aggregate::{Command, Draft, DraftError, DraftEvent, EXPIRES_AFTER_HOURS, STALE_EXPIRED, STALE_LIVE_STATE_MOVED, apply, approvals_required, decide};
pub use status::{DraftStatus, UnknownStatus, statuses_for_filter};
pub use verify::{ApprovalFacts, Forgery, ForgeryKind, VerifiedApproval, event_hash, recorded_approval, verify_for_hash, verify_rollback};
