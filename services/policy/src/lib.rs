//! The policy service: decides each draft once, against the SPEND.md
//! version in force and the organisation's envelope, and serves the policy
//! over gRPC. The domain it decides with — SPEND.md, evaluation, the
//! envelope, versions — is the `spend-policy` crate (`crates/policy`);
//! this crate is its I/O around it.
//!
//! - [`decide`]: the decision path — read a draft from the log, decide
//!   against the envelope as the executor's commitments left it, record the
//!   decision on its own subject — and the consumer that decides drafts
//!   left undecided;
//! - [`recent`]: what the follower saw lately (undecided drafts, the
//!   envelope), so that deciding a draft just recorded reads nothing from
//!   the log;
//! - [`grpc`]: `spendsignoff.v1.Policy` (decide, validate, version in
//!   force, dry-run evaluation) and [`grpc::PolicyClient`];
//! - [`Application`]: the service as `spend serve policy` and `spend dev`
//!   run it — [`PolicyConfig`] + [`Deps`], `build`, `run_until_stopped`.
#![forbid(unsafe_code)]

mod app;
pub mod decide;
pub mod grpc;
pub mod recent;

pub use app::{Application, Deps, PolicyConfig};
