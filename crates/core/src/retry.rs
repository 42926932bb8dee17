//! One retry policy for every loop that waits on something that failed —
//! a platform's write, a webhook, the event log, the database — and one
//! reading of `Retry-After`. Before, six loops doubled their own waits
//! (most without jitter, so replicas retried in step) and two parsers read
//! only delta-seconds, taking an HTTP-date for no answer. (The ledger's
//! database retries and notifications' outcome records use it too.)
//!
//! The schedule is backon's exponential backoff: doubling from a first
//! wait, each wait with jitter, and never longer than its cap (backon's
//! jitter may add up to the wait again; the cap is applied after it).

use std::time::{Duration, SystemTime};

use backon::BackoffBuilder as _;

/// Waits that double from `first` up to `max`, with jitter, for ever.
pub fn backoff(first: Duration, max: Duration) -> Backoff {
    let first = first.min(max);
    Backoff {
        waits: backon::ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build(),
        max,
    }
}

/// The waits of [`backoff`]: an endless iterator.
#[derive(Debug)]
pub struct Backoff {
    waits: backon::ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// The next wait.
    pub fn wait(&mut self) -> Duration {
        self.waits.next().unwrap_or(self.max).min(self.max)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.wait())
    }
}

/// How long a `Retry-After` header value asks to wait, read at `now`:
/// delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00
/// GMT`, a date already past being no wait), at most `cap`. `None` for a
/// value that is neither.
pub fn retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_and_never_pass_their_cap() {
        let waits: Vec<Duration> = backoff(Duration::from_secs(1), Duration::from_secs(60)).take(12).collect();
        // Each wait is at least its doubling (1, 2, 4 … 60) and at most
        // twice it, and none is over the cap.
        for (i, w) in waits.iter().enumerate() {
            let base = Duration::from_secs(1 << i.min(6)).min(Duration::from_secs(60));
            assert!(*w >= base && *w <= (base * 2).min(Duration::from_secs(60)), "wait {i}: {w:?}");
        }
        assert!(waits[8..].iter().all(|w| *w == Duration::from_secs(60)), "{waits:?}");
        // Jitter: two schedules do not move in step.
        let a: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(5)).take(6).collect();
        let b: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(5)).take(6).collect();
        assert_ne!(a, b, "two schedules with the same jitter");
        // A first wait over the cap is the cap.
        assert_eq!(backoff(Duration::from_secs(9), Duration::from_secs(2)).wait(), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cap = Duration::from_secs(300);
        assert_eq!(retry_after("120", now, cap), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 7 ", now, cap), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("86400", now, cap), Some(cap));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&later, now, cap), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&past, now, cap), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now, cap), None);
        assert_eq!(retry_after("-5", now, cap), None);
    }
}
