//! Contracts every SpendSignoff service shares: the pinned CloudEvents
//! envelope and the typed event payloads (`envelope`, `events`), subjects
//! (`subject`), money in integer minor units (`money`), layered typed
//! configuration (`config`) and the one telemetry initialiser (`telemetry`).
//!
//! Nothing here does I/O beyond reading a config file: the event log, the
//! signer and the services build on these types.
#![forbid(unsafe_code)]

pub mod config;
pub mod envelope;
pub mod events;
pub mod money;
pub mod subject;
pub mod telemetry;

pub use envelope::{Actor, ActorKind, Envelope, EnvelopeError, RawEnvelope};
pub use money::Money;
