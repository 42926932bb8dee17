//! How the services with a database of their own (the ledger's projection,
//! the executor's vault) open it: PostgreSQL in production, SQLite in
//! `spend dev`, the same SQL in both (`$n` placeholders work in both).
//! Each service keeps its own schema (`migrations/{postgres,sqlite}.sql`,
//! append-only where the service says so) and its own queries; what they
//! share is here, once:
//! - the pools: PostgreSQL connected lazily, so a database down at
//!   start-up is waited for rather than fatal; SQLite in WAL mode with
//!   full synchronous writes and a busy timeout, its folder created;
//! - one [`StoreError`] that tells a database that cannot be reached now
//!   (worth retrying) from one that refused the statement;
//! - URLs in messages only with their password redacted.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A database URL with any password replaced, for messages and logs.
pub use spend_core::secret::redact_url as redact;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::Tls(_) | E::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            E::Database(d) => {
                let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
                // 08: connection exception; 57P0x: shutdown / cannot connect now;
                // 53300: too many connections.
                if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Internal(e.to_string())
                }
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// A PostgreSQL pool for `url`, connecting on demand (at most 8
/// connections, 5 s to get one): a database that is down at start-up
/// fails requests (which retry), not the start.
pub fn postgres(url: &str) -> Result<sqlx::PgPool, StoreError> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| StoreError::Internal(format!("database url {}: {e}", redact(url))))?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts))
}

/// A SQLite pool on the file at `path` (created, with its folder), in WAL
/// mode with full synchronous writes: a commit is on disk when it returns.
pub async fn sqlite(path: &Path) -> Result<sqlx::SqlitePool, StoreError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Internal(format!("creating {}: {e}", dir.display())))?;
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .map_err(|e| StoreError::Internal(format!("opening {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_file_is_created_in_wal_mode_with_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/store.db");
        let pool = sqlite(&path).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
        assert_eq!(mode, "wal");
        assert!(path.exists());
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password_and_an_unreachable_database_is_transient() {
        let e = postgres("postgres://ada:s3cret@127.0.0.1:1/db?sslmode=nonsense").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let pool = postgres("postgres://ada:s3cret@127.0.0.1:1/db").unwrap();
        let e = StoreError::from(sqlx::query("SELECT 1").execute(&pool).await.unwrap_err());
        assert!(e.is_transient(), "{e}");
    }
}
