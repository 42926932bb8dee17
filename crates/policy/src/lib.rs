//! The policy domain: SPEND.md, the file that sets an organisation's hard
//! limits, allowlists, approval thresholds and security settings, and the
//! pure judgement of every draft against it. No I/O: the policy service
//! (`services/policy`) decides drafts with it, the executor re-judges and
//! commits with it at push time, the gateway and the approval app show
//! and check with it — each from its own view of the log.
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
//! - [`versions`]: SPEND.md versions proposed by the operator and put in
//!   force by a human's approval of their exact bytes;
//! - [`decide`]: the decision contract the gateway calls ([`decide::Decide`]).
#![forbid(unsafe_code)]

pub mod decide;
pub mod envelope;
pub mod evaluate;
pub mod judge;
pub mod money;
pub mod spendmd;
pub mod versions;
