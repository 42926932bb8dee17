//! The decision contract: what the gateway asks of the policy service
//! ([`Decide`]) and the ways a decision can fail ([`DecideError`]). The
//! policy service implements it in-process (`spend dev`, tests) and over
//! gRPC; the gateway depends on this trait alone, never on the service.

use async_trait::async_trait;
use spend_core::events::PolicyEvaluated;
use spend_eventlog::LogError;

/// Why a draft could not be decided, in kinds callers can match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no draft {0} on the log")]
    NotFound(String),
    /// The id names something that is not a genuine draft.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Too many decisions raced on the organisation's envelope: try again.
    #[error("the envelope of organisation {0} is too contended; try again")]
    Contended(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<LogError> for DecideError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Rejected(m) => DecideError::Invalid(m),
            other => DecideError::Unavailable(format!("event log: {other}")),
        }
    }
}

/// What the gateway asks: decide this draft. Served in-process
/// ([`Decider`]) in `spend dev` and tests, over gRPC otherwise.
#[async_trait]
pub trait Decide: Send + Sync + 'static {
    async fn decide(&self, org: &str, draft_id: &str) -> Result<PolicyEvaluated, DecideError>;
}
