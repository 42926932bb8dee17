//! The policy core: SPEND.md, the file that sets an organisation's hard
//! limits, allowlists, approval thresholds and security settings, and the
//! evaluation of every draft against it.
//!
//! - [`spendmd`]: parsing and validation, with every error located by line
//!   and field (`spend policy validate`);
//! - [`money`]: `50 USD` → integer minor units;
//! - [`evaluate`]: the pure decision (`deny`, `auto_approve`,
//!   `require_approval`, `require_dual_approval`) with machine-readable
//!   reasons;
//! - [`envelope`]: the policy's spend envelope across every account and
//!   both rails (a pure model; the ceilings hold on any schedule);
//! - [`judge`]: a draft judged against the envelope at a moment (what it
//!   would commit), for the policy's decision and the executor's commit;
//! - [`decide`]: the decision path — read a draft from the log, decide
//!   against the envelope as the executor's commitments left it, record the
//!   decision on its own subject — and the consumer that decides drafts
//!   left undecided;
//! - [`recent`]: what the follower saw lately (undecided drafts, the
//!   envelope), so that deciding a draft just recorded reads nothing from
//!   the log;
//! - [`versions`]: SPEND.md versions proposed by the operator and put in
//!   force by a human's approval of their exact bytes;
//! - [`grpc`]: `spendsignoff.v1.Policy` (decide, validate, version in
//!   force, dry-run evaluation) and [`grpc::PolicyClient`];
//! - [`Application`]: the service as `spend serve policy` and `spend dev`
//!   run it — [`PolicyConfig`] + [`Deps`], `build`, `run_until_stopped`.
#![forbid(unsafe_code)]

mod app;
pub mod decide;
pub mod envelope;
pub mod evaluate;
pub mod grpc;
pub mod judge;
pub mod money;
pub mod recent;
pub mod spendmd;
pub mod versions;

pub use app::{Application, Deps, PolicyConfig};
