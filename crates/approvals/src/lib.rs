//! What the approval side knows from the log, shared by the services that
//! act on it — the approval app (requests, pages) and notifications (who
//! to tell, with which link) — without either depending on the other.
//!
//! - [`book`]: the fold of the log into invitations, registrations, the
//!   drafts that need or needed a human, approval requests, rollbacks and
//!   kill switches (pure: any replica rebuilds it by replaying);
//! - [`links`]: the approval links' tokens, derived from the link secret.
#![forbid(unsafe_code)]

pub mod book;
pub mod links;
