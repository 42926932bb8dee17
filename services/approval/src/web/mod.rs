//! The approval app's pages, by job. Every page is server-rendered (maud
//! escapes whatever an agent wrote), every change a POST with its CSRF
//! token from this origin, and every passkey ceremony the passkey page's:
//! see [`app`] for what they share.
//!
//! - [`app`]: the shell — sessions, ceremonies in flight, refusals, static
//!   files;
//! - [`signin`]: signing in and out, and the way back from the passkey page;
//! - [`enroll`]: enrolling by invitation;
//! - [`queue`]: the queue and the draft page;
//! - [`approve`]: approve in two steps, and reject;
//! - [`approvers`]: invitations, countersignatures, removal.

pub mod app;
pub mod approve;
pub mod approvers;
pub mod enroll;
pub mod queue;
pub mod signin;

pub use app::*;
pub use approve::*;
pub use approvers::*;
pub use enroll::*;
pub use queue::*;
pub use signin::*;
