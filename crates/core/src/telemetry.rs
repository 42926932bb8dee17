//! One tracing initialiser for every entry point. `RUST_LOG` filters;
//! `SPEND_LOG_FORMAT=json` switches to JSON lines for log collectors.
//! Logs go to stderr so stdout stays clean for exports and JSON output.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Flushes telemetry when dropped; keep it alive for the whole process.
#[must_use = "dropping the guard stops telemetry"]
pub struct TelemetryGuard(());

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // The fmt layer writes synchronously; nothing is buffered. An OTLP
        // exporter would be flushed here.
    }
}

pub fn init(default_filter: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("SPEND_LOG_FORMAT").is_ok_and(|v| v == "json");
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr)).try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
    TelemetryGuard(())
}
