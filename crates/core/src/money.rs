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

    /// Digits after the decimal point in `currency` (ISO 4217): 0 for
    /// JPY and the like, 3 for the dinars, 2 for the rest.
    pub fn exponent(currency: &str) -> u32 {
        match currency {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

/// `12.50 USD`, `1200 JPY`: for people (pages, messages), never parsed back.
impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = Self::exponent(&self.currency);
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let abs = self.minor_units.unsigned_abs();
        if e == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let unit = 10u64.pow(e);
        write!(f, "{sign}{}.{:0w$} {}", abs / unit, abs % unit, self.currency, w = e as usize)
    }
}

#[cfg(test)]
mod display_tests {
    use super::Money;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(Money::new(1250, "USD").unwrap().to_string(), "12.50 USD");
        assert_eq!(Money::new(-5, "EUR").unwrap().to_string(), "-0.05 EUR");
        assert_eq!(Money::new(1200, "JPY").unwrap().to_string(), "1200 JPY");
        assert_eq!(Money::new(1234, "KWD").unwrap().to_string(), "1.234 KWD");
    }
}
