//! The executor's integration tests, in one binary (one link for all of
//! them): each module runs the executor against the real parts — JetStream,
//! PostgreSQL, moto's KMS and the sandbox platform on a real socket.
//!
//! - [`accounts`]: connecting accounts over the platform's OAuth, the vault;
//! - [`push`]: pushes that hold (once, under the ceiling, on proofs);
//!   [`freeze_and_rollback`]: freezes and rollbacks;
//! - [`push_attacks`], [`passkey_attacks`]: what a compromised layer can
//!   and cannot make the executor do;
//!
//! The fault run (`tests/push_faults.rs`, figures in docs/push.md) is a
//! binary of its own: it loads the servers hard and is timed.

mod common;

mod accounts;
mod freeze_and_rollback;
mod passkey_attacks;
mod push;
mod push_attacks;
