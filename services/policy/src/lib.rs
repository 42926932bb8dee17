//! The policy core: SPEND.md, the file that sets an organisation's hard
//! limits, allowlists, approval thresholds and security settings, and the
//! evaluation of every draft against it.
//!
//! - [`spendmd`]: parsing and validation, with every error located by line
//!   and field (`spend policy validate`);
//! - [`money`]: `50 USD` → integer minor units;
//! - [`evaluate`]: the pure decision (`deny`, `auto_approve`,
//!   `require_approval`, `require_dual_approval`) with machine-readable
//!   reasons.
//!
//! The service around it (versions as approved drafts, spend windows from
//! the event log, reservations, the circuit breaker) builds on these.
#![forbid(unsafe_code)]

pub mod evaluate;
pub mod money;
pub mod spendmd;
