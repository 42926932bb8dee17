//! The operator console inside the approval app: what an admin does to the
//! organisation's connections and money, beside approving drafts.
//!
//! - [`accounts`]: connected accounts (connect, grant write access for the
//!   draft that waits for it, disconnect), through the executor, which
//!   alone holds tokens;
//! - [`killswitch`]: pause the agents, freeze a card or every card;
//! - [`rollback`]: the audit view of pushed changes and the rollback a
//!   human asks for and approves with a passkey.

pub mod accounts;
pub mod killswitch;
pub mod rollback;
