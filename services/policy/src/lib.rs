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
//! - [`service`]: the decision path on the event log — draft, decision
//!   and budget reservations as events, the envelope a hard ceiling under
//!   concurrency;
//! - [`versions`]: SPEND.md versions proposed as drafts and put in force by
//!   a human's approval, as every deciding process follows them on the log;
//! - [`grpc`]: `spendsignoff.v1.Policy` (validate, active version, dry-run
//!   evaluation), served by `spend serve policy`.
#![forbid(unsafe_code)]

pub mod evaluate;
pub mod grpc;
pub mod money;
pub mod service;
pub mod spendmd;
pub mod versions;
