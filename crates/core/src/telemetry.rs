//! One tracing initialiser for every entry point. `RUST_LOG` filters (else
//! the configured `log.level`, else the command's default); `log.format =
//! "json"` (`SPEND__LOG__FORMAT=json`) switches to JSON lines for log
//! collectors.
//! Logs go to stderr so stdout stays clean for exports and JSON output.
//! The fmt layer writes synchronously, so there is nothing to flush at exit;
//! an OTLP exporter, when added, returns a guard from here.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub fn init(default_filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr)).try_init()
    };
}
