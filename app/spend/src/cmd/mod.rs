//! One module per command.

pub mod account;
pub mod apikey;
pub mod approver;
pub mod breaker;
pub mod dev;
pub mod internal;
pub mod killswitch;
pub mod ledger;
pub mod nats;
pub mod operator;
pub mod policy;
pub mod rollback;
pub mod serve;
pub mod transactions;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use spend_ledger::store::{self, Store};

use crate::config::{DevPaths, SpendConfig};

/// A `--from`/`--to` value: a leaf index or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Index(u64),
    Time(DateTime<Utc>),
}

/// Parses `123`, `2026-01-01` (midnight UTC) or an RFC 3339 time.
pub fn parse_point(flag: &str, s: &str) -> anyhow::Result<Point> {
    if let Ok(i) = s.parse::<u64>() {
        return Ok(Point::Index(i));
    }
    parse_time(flag, s).map(Point::Time)
}

pub fn parse_time(flag: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected a date (2026-01-01) or an RFC 3339 time (2026-01-01T12:00:00Z)"))
}

/// Reads and validates a SPEND.md; the error lists every problem with its
/// line and field. Returns the policy and its source text.
pub fn load_policy(path: &Path) -> anyhow::Result<(spend_policy::spendmd::SpendMd, String)> {
    let source = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let policy = spend_policy::spendmd::parse(&source).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {}: {e}", path.display())).collect();
        anyhow::anyhow!("{} is not valid:\n{}", path.display(), list.join("\n"))
    })?;
    Ok((policy, source))
}

/// Opens the projection: a dev data folder when given (or when no database
/// is configured), else the configured database.
pub async fn open_store(config: &SpendConfig, data_dir: Option<&Path>) -> anyhow::Result<Arc<dyn Store>> {
    let url = match data_dir {
        Some(dir) => dev_database(dir)?,
        None if config.database.url.is_empty() => {
            let dir = Path::new(".spend");
            eprintln!(
                "note: no database configured (SPEND__DATABASE__URL); reading the `spend dev` data folder {}",
                dir.display()
            );
            dev_database(dir)?
        }
        None => config.database.url.clone(),
    };
    let store: Arc<dyn Store> = store::connect(&url)
        .await
        .map(Arc::from)
        .with_context(|| format!("opening the ledger database {}", store::redact(&url)))?;
    Ok(store)
}

fn dev_database(dir: &Path) -> anyhow::Result<String> {
    let paths = DevPaths::new(dir);
    if !paths.database.exists() {
        anyhow::bail!(
            "{} has no ledger database ({} is missing): run `spend dev --data-dir {}` first",
            dir.display(),
            paths.database.display(),
            dir.display()
        );
    }
    Ok(paths.database_url())
}
