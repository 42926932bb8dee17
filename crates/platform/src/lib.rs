//! The platform read contract, on its own so that the agent-facing gateway
//! can depend on it without compiling the executor (its platform HTTP
//! client, its sandbox, and — as they land — its vault and pushes).
//!
//! - [`types`]: what an ad or card platform holds, as SpendSignoff sees it;
//! - [`Reads`]: what the gateway may ask of the executor — reads only;
//! - [`grpc`]: the conversions to and from `spendsignoff.v1` messages
//!   (proto/spendsignoff/v1/platform.proto) and [`grpc::ExecutorClient`],
//!   the gateway's client of a separately deployed executor.
//!
//! The executor implements [`Reads`] with its platform connector; in
//! `spend dev` the gateway calls that connector in-process, and in
//! production through [`grpc::ExecutorClient`]. Either way the gateway
//! never holds a platform token.
#![forbid(unsafe_code)]

pub mod connect;
pub mod grpc;
mod reads;
pub mod types;

pub use connect::{Begun, Connect, ConnectError};
pub use reads::{ReadError, Reads};
pub use types::{Account, AccountHealth, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};
