//! Bounded audit under a flood: the first few refusals of one kind in a
//! window are recorded at once; the rest are counted and recorded as one
//! alert with their count when the window ends. Every service that audits
//! refusals of untrusted input (the gateway, the approval routes) records
//! through one, so a flood of bad requests makes a handful of events, not
//! one per request — and no refusal goes uncounted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::SecurityAlert;

/// How long repeats of one refusal are counted into one alert.
pub const ALERT_WINDOW: Duration = Duration::from_secs(60);
/// Distinct (org, key, address, reason) windows tracked at once.
const ALERT_KEYS: usize = 10_000;
/// Refusals of one kind recorded one by one in a window before the rest
/// are counted.
const ALERT_SINGLES: u64 = 3;
/// The kind of the window a full gate counts into.
const OVERFLOW: &str = "from more addresses or keys than are tracked one by one";

/// Aggregates floods of one refusal: the first few of a window (per org,
/// key, address and reason) are recorded at once; further repeats inside
/// the window are counted, and recorded as one alert with their count when
/// the window ends ([`AlertGate::due`]) — so 1,000 unauthenticated
/// requests make four events, not 1,000, and no refusal goes uncounted.
#[derive(Default)]
pub struct AlertGate {
    windows: Mutex<HashMap<AlertKey, (Instant, u64)>>,
}

/// (org, key id, address, reason, kind).
type AlertKey = (String, String, String, String, String);

/// Repeats counted in a window that has ended, to record.
pub struct Repeats {
    pub org: String,
    pub key_id: Option<String>,
    pub address: Option<String>,
    pub reason: String,
    /// What else told these refusals apart from others of their reason
    /// (see [`AlertGate::admit_kind`]); empty when nothing did.
    pub kind: String,
    pub count: u64,
}

impl AlertGate {
    /// `Some(1)` when this refusal opens a window (record it); `None` when
    /// it is counted into an open one.
    pub fn admit(&self, org: &str, key_id: Option<&str>, address: Option<&str>, reason: &str) -> Option<u64> {
        self.admit_kind(org, key_id, address, reason, "")
    }

    /// [`AlertGate::admit`], with windows told apart by `kind` as well
    /// (e.g. how a credential was presented): repeats of one kind are
    /// counted, a different kind is recorded on its own.
    pub fn admit_kind(&self, org: &str, key_id: Option<&str>, address: Option<&str>, reason: &str, kind: &str) -> Option<u64> {
        let key = (
            org.to_string(),
            key_id.unwrap_or_default().to_string(),
            address.unwrap_or_default().to_string(),
            reason.to_string(),
            kind.to_string(),
        );
        let now = Instant::now();
        let mut w = self.windows.lock().expect("alert gate lock");
        if let Some((start, seen)) = w.get_mut(&key)
            && now.duration_since(*start) < ALERT_WINDOW
        {
            *seen += 1;
            return (*seen <= ALERT_SINGLES).then_some(*seen);
        }
        if w.len() >= ALERT_KEYS {
            // Full (a flood from many addresses or keys at once): count
            // into one overflow window per organisation and reason, opened
            // past the bound (organisations and reasons are few), so the
            // flood is still counted and still bounded.
            let overflow = (org.to_string(), String::new(), String::new(), reason.to_string(), OVERFLOW.to_string());
            let (_, seen) = w.entry(overflow).or_insert((now, 0));
            *seen += 1;
            return (*seen <= ALERT_SINGLES).then_some(*seen);
        }
        w.insert(key, (now, 1));
        Some(1)
    }

    /// Windows that ended with repeats (removed), and every ended window
    /// dropped from the table.
    pub fn due(&self) -> Vec<Repeats> {
        self.take(false)
    }

    /// Every window with repeats, ended or not (removed): what a service
    /// records as it stops, so no counted refusal is lost.
    pub fn drain(&self) -> Vec<Repeats> {
        self.take(true)
    }

    fn take(&self, all: bool) -> Vec<Repeats> {
        let now = Instant::now();
        let mut out = Vec::new();
        self.windows
            .lock()
            .expect("alert gate lock")
            .retain(|(org, key, addr, reason, kind), (start, seen)| {
                if !all && now.duration_since(*start) < ALERT_WINDOW {
                    return true;
                }
                if *seen > ALERT_SINGLES {
                    out.push(Repeats {
                        org: org.clone(),
                        key_id: (!key.is_empty()).then(|| key.clone()),
                        address: (!addr.is_empty()).then(|| addr.clone()),
                        reason: reason.clone(),
                        kind: kind.clone(),
                        count: *seen - ALERT_SINGLES,
                    });
                }
                false
            });
        out
    }
}

impl Repeats {
    /// The one alert that records these repeats.
    pub fn alert(&self) -> SecurityAlert {
        SecurityAlert {
            reason: self.reason.clone(),
            key_id: self.key_id.clone(),
            address: self.address.clone(),
            detail: format!(
                "{} more refusals ({}{}{}) in the {} s after the first one recorded",
                self.count,
                self.reason,
                if self.kind.is_empty() { "" } else { ": " },
                self.kind,
                ALERT_WINDOW.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_ever_new_addresses_is_counted_in_a_bounded_table() {
        let gate = AlertGate::default();
        let mut recorded = 0;
        for i in 0..(ALERT_KEYS + 1_000) {
            if gate
                .admit("unknown", None, Some(&format!("10.0.{}.{}", i / 256, i % 256)), "key.unknown")
                .is_some()
            {
                recorded += 1;
            }
        }
        assert!(gate.windows.lock().unwrap().len() <= ALERT_KEYS + 1, "bounded");
        assert_eq!(
            recorded,
            ALERT_KEYS + ALERT_SINGLES as usize,
            "the first of each tracked window, then three of the overflow"
        );
        let counted: u64 = gate.drain().iter().map(|r| r.count).sum();
        assert_eq!(counted, 1_000 - ALERT_SINGLES, "every other refusal counted");
    }
}
