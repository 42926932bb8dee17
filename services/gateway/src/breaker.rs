//! Circuit breakers: per account, watching for a runaway agent or a
//! failing platform, and pausing new drafts on that account until a human
//! resets it (`spend breaker reset`). A breaker only ever stops things; it
//! never reacts by spending.
//!
//! It trips on:
//! - `platform_errors`: `max_platform_errors` failed platform reads on the
//!   account within `error_window_secs`;
//! - `pacing_anomaly`: more than `max_drafts_per_minute` drafts on the
//!   account within a minute;
//! - `spend_spike`: committed-or-pending spend proposed on the account
//!   within `spike_window_minutes` above the whole 24-hour envelope.
//!
//! Counting is per replica (each sees its own traffic); the trip itself is
//! a `spend.breaker.tripped.v1` event, so every replica pauses the account,
//! plus a `spend.security.alert.v1`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spend_core::events::{BreakerTripped, EventData, Outcome};
use spend_core::subject::aggregate_subject;
use spend_core::{Actor, Money};
use spend_eventlog::LogError;

use crate::GatewayState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub max_platform_errors: usize,
    pub error_window_secs: u64,
    pub max_drafts_per_minute: usize,
    pub spike_window_minutes: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            max_platform_errors: 5,
            error_window_secs: 60,
            max_drafts_per_minute: 120,
            spike_window_minutes: 10,
        }
    }
}

#[derive(Default)]
struct Counters {
    errors: VecDeque<Instant>,
    drafts: VecDeque<Instant>,
    spend: VecDeque<(Instant, i64)>,
}

fn trim<T>(q: &mut VecDeque<T>, at: impl Fn(&T) -> Instant, window: Duration) {
    let now = Instant::now();
    while q.front().is_some_and(|x| now.duration_since(at(x)) > window) {
        q.pop_front();
    }
}

#[derive(Default)]
pub struct Breakers {
    counters: Mutex<HashMap<(String, String), Counters>>,
}

impl GatewayState {
    /// A platform read on `account_id` failed.
    pub(crate) async fn platform_error(&self, org: &str, account_id: &str) {
        let cfg = &self.config.breaker;
        let n = {
            let mut all = self.breakers.counters.lock().expect("breaker lock");
            let c = all.entry((org.to_string(), account_id.to_string())).or_default();
            c.errors.push_back(Instant::now());
            trim(&mut c.errors, |t| *t, Duration::from_secs(cfg.error_window_secs));
            c.errors.len()
        };
        if n >= cfg.max_platform_errors {
            let detail = format!("{n} failed platform reads within {} s", cfg.error_window_secs);
            self.trip(org, account_id, "platform_errors", detail).await;
        }
    }

    /// A draft on `account_id` was decided.
    pub(crate) async fn observe_spend(&self, org: &str, account_id: &str, impact: &Money, outcome: &Outcome) {
        let cfg = &self.config.breaker;
        let daily = self.active_policy(org).await.0.spend.daily_limit.clone();
        let (drafts, spend) = {
            let mut all = self.breakers.counters.lock().expect("breaker lock");
            let c = all.entry((org.to_string(), account_id.to_string())).or_default();
            c.drafts.push_back(Instant::now());
            trim(&mut c.drafts, |t| *t, Duration::from_secs(60));
            if *outcome != Outcome::Deny && impact.minor_units > 0 {
                c.spend.push_back((Instant::now(), impact.minor_units));
            }
            trim(&mut c.spend, |(t, _)| *t, Duration::from_secs(cfg.spike_window_minutes * 60));
            (c.drafts.len(), c.spend.iter().map(|(_, v)| v).sum::<i64>())
        };
        if drafts > cfg.max_drafts_per_minute {
            let detail = format!("{drafts} drafts within a minute (at most {})", cfg.max_drafts_per_minute);
            self.trip(org, account_id, "pacing_anomaly", detail).await;
        } else if let Some(limit) = daily
            && limit.currency == impact.currency
            && spend > limit.minor_units
        {
            let detail = format!(
                "{spend} {} proposed within {} minutes, above the 24-hour envelope of {}",
                impact.currency, cfg.spike_window_minutes, limit.minor_units
            );
            self.trip(org, account_id, "spend_spike", detail).await;
        }
    }

    async fn trip(&self, org: &str, account_id: &str, reason: &str, detail: String) {
        // Already tripped (by another replica, and not reset since)?
        if self.view.read().await.breaker(org, account_id).is_some() {
            return;
        }
        let Ok(subject) = aggregate_subject(&self.prefix, org, "breaker", account_id) else {
            return;
        };
        let last = match self.log.last_on_subject(&subject).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the breaker's state");
                return;
            }
        };
        // Trips and resets have subjects of their own (`breaker`, written by
        // the gateway; `breaker_reset`, by the operator): the view knows
        // both, and the expected sequence settles a race between replicas.
        let recorded = self
            .recorder
            .event(
                org,
                Actor::service("gateway"),
                "breaker",
                account_id,
                EventData::BreakerTripped(BreakerTripped {
                    account_id: account_id.into(),
                    reason: reason.into(),
                    detail: detail.clone(),
                }),
            )
            .expect_seq(last.map_or(0, |m| m.seq))
            .record()
            .await;
        match recorded {
            Ok(_) => {
                tracing::warn!(org, account_id, reason, %detail, "circuit breaker tripped");
                self.alert(Some(org), None, None, "breaker.tripped", &format!("account {account_id}: {reason}: {detail}"))
                    .await;
                let _ = self.caught_up().await;
            }
            Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(error = %e, "cannot record a breaker trip"),
        }
    }
}
