//! Amounts as SPEND.md writes them (`50 USD`, `12.50 EUR`, `1000 JPY`),
//! parsed into integer minor units of an ISO 4217 currency. Never a float:
//! `0.1 USD` is exactly 10 cents.

use spend_core::Money;

/// ISO 4217 minor-unit exponents of the currencies SPEND.md accepts.
const EXPONENTS: &[(&str, u32)] = &[
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("NZD", 2),
    ("SEK", 2),
    ("NOK", 2),
    ("DKK", 2),
    ("PLN", 2),
    ("CZK", 2),
    ("HUF", 2),
    ("SGD", 2),
    ("HKD", 2),
    ("CNY", 2),
    ("INR", 2),
    ("BRL", 2),
    ("MXN", 2),
    ("ZAR", 2),
    ("ILS", 2),
    ("AED", 2),
    ("SAR", 2),
    ("TRY", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("CLP", 0),
    ("ISK", 0),
    ("VND", 0),
    ("BHD", 3),
    ("KWD", 3),
    ("OMR", 3),
    ("JOD", 3),
    ("TND", 3),
];

pub fn exponent(currency: &str) -> Option<u32> {
    EXPONENTS.iter().find(|(c, _)| *c == currency).map(|(_, e)| *e)
}

/// Parses `<amount> <CUR>`; the error says what is wrong.
pub fn parse_amount(text: &str) -> Result<Money, String> {
    let text = text.trim();
    let (number, currency) = text
        .split_once(char::is_whitespace)
        .map(|(n, c)| (n.trim(), c.trim()))
        .ok_or_else(|| format!("{text:?} is not an amount: write it as <number> <currency>, e.g. \"50 USD\""))?;
    let exp = exponent(currency).ok_or_else(|| format!("{currency:?} is not a supported ISO 4217 currency code"))?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) || number.ends_with('.') {
        return Err(format!("{number:?} is not a non-negative decimal number"));
    }
    if frac.len() as u32 > exp {
        return Err(format!("{number} {currency} has more decimals than {currency} allows ({exp})"));
    }
    let mut minor: i64 = whole.parse::<i64>().map_err(|_| format!("{number} is too large"))?;
    for _ in 0..exp {
        minor = minor.checked_mul(10).ok_or_else(|| format!("{number} is too large"))?;
    }
    let mut frac_units: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| format!("{number} is not a number"))?
    };
    for _ in frac.len() as u32..exp {
        frac_units *= 10;
    }
    let minor = minor.checked_add(frac_units).ok_or_else(|| format!("{number} is too large"))?;
    Money::new(minor, currency).map_err(|e| e.to_string())
}

/// Formats minor units back as SPEND.md writes them.
pub fn format_amount(m: &Money) -> String {
    let exp = exponent(&m.currency).unwrap_or(2);
    if exp == 0 {
        return format!("{} {}", m.minor_units, m.currency);
    }
    let div = 10i64.pow(exp);
    let sign = if m.minor_units < 0 { "-" } else { "" };
    let abs = m.minor_units.unsigned_abs();
    format!("{sign}{}.{:0width$} {}", abs / div as u64, abs % div as u64, m.currency, width = exp as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_exact_minor_units() {
        assert_eq!(parse_amount("50 USD").unwrap(), Money::new(5000, "USD").unwrap());
        assert_eq!(parse_amount("0.1 USD").unwrap().minor_units, 10);
        assert_eq!(parse_amount("12.34 EUR").unwrap().minor_units, 1234);
        assert_eq!(parse_amount("1000 JPY").unwrap().minor_units, 1000);
        assert_eq!(parse_amount("1.005 KWD").unwrap().minor_units, 1005);
        assert_eq!(format_amount(&parse_amount("12.5 USD").unwrap()), "12.50 USD");
    }

    #[test]
    fn bad_amounts_say_what_is_wrong() {
        assert!(parse_amount("50").unwrap_err().contains("<number> <currency>"));
        assert!(parse_amount("50 usd").unwrap_err().contains("ISO 4217"));
        assert!(parse_amount("1.5 JPY").unwrap_err().contains("more decimals"));
        assert!(parse_amount("-5 USD").unwrap_err().contains("non-negative"));
        assert!(parse_amount("1e3 USD").is_err());
        assert!(parse_amount("99999999999999999999 USD").unwrap_err().contains("too large"));
    }
}
