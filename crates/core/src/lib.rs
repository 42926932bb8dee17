//! Contracts every SpendSignoff service shares: the pinned CloudEvents
//! envelope and the typed event payloads (`envelope`, `events`), subjects
//! (`subject`), money in integer minor units (`money`), layered typed
//! configuration (`config`), the one telemetry initialiser (`telemetry`),
//! the one retry policy and `Retry-After` reading (`retry`) and the one
//! hex SHA-256 (`hash`).
//!
//! Nothing here does I/O beyond reading a config file: the event log, the
//! signer and the services build on these types.
#![forbid(unsafe_code)]

pub mod alert_gate;
pub mod authority;
pub mod bounded;
pub mod config;
pub mod envelope;
pub mod events;
pub mod hash;
pub mod money;
pub mod retry;
pub mod secret;
pub mod subject;
pub mod telemetry;
pub mod trace;

pub use envelope::{Actor, ActorKind, Cause, Envelope, EnvelopeError, RawEnvelope};
pub use hash::sha256_hex;
pub use money::Money;
pub use secret::Secret;
