//! Money as integer minor units plus an ISO 4217 currency code. Never a
//! float: rounding errors in limits are spending errors.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub minor_units: i64,
    /// Three upper-case letters.
    pub currency: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not a three-letter ISO 4217 code")]
pub struct CurrencyError(pub String);

impl Money {
    pub fn new(minor_units: i64, currency: &str) -> Result<Self, CurrencyError> {
        if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self {
                minor_units,
                currency: currency.to_string(),
            })
        } else {
            Err(CurrencyError(currency.to_string()))
        }
    }
}
