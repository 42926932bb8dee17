//! Where the vault keeps connected accounts (their sealed tokens, scopes
//! and state) and authorizations waiting for the platform's callback:
//! PostgreSQL in production, SQLite in `spend dev`, the same SQL in both
//! (`$n` placeholders work in both). Nothing here is ever plaintext.

use sqlx::Row;

use super::{Sealed, VaultError};

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        VaultError::Store(e.to_string())
    }
}

/// Opening the database failed (a bad URL, a file that cannot be made).
fn store_error(e: spend_store::StoreError) -> VaultError {
    match e {
        spend_store::StoreError::Unavailable(m) | spend_store::StoreError::Internal(m) => VaultError::Store(m),
    }
}

/// One connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    pub org: String,
    pub platform: String,
    pub account_id: String,
    /// `ads` or `cards`.
    pub kind: String,
    /// Space-separated, sorted.
    pub scopes: String,
    /// `active`, `revoked`, `expired` or `disconnected`.
    pub status: String,
    pub access: Sealed,
    /// Unix seconds.
    pub access_expires_at: i64,
    pub refresh: Option<Sealed>,
    pub refresh_expires_at: Option<i64>,
    pub problem: Option<String>,
    pub version: i64,
    pub updated_at: i64,
}

/// An authorization sent to the platform's consent page, until its
/// callback (single use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub state_sha256: String,
    pub org: String,
    pub platform: String,
    pub account_hint: Option<String>,
    pub scopes: String,
    pub redirect_uri: String,
    pub purpose: String,
    /// With a write scope: the approved draft it is asked for.
    pub draft_id: Option<String>,
    /// The PKCE verifier, sealed.
    pub verifier: Sealed,
    pub expires_at: i64,
}

#[async_trait::async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn migrate(&self) -> Result<(), VaultError>;
    async fn put_pending(&self, row: &PendingRow) -> Result<(), VaultError>;
    /// Removes and returns the pending authorization (once).
    async fn take_pending(&self, state_sha256: &str) -> Result<Option<PendingRow>, VaultError>;
    /// Forgets authorizations that expired before `now`.
    async fn purge_pending(&self, now: i64) -> Result<u64, VaultError>;
    /// Inserts or replaces a connection (its version goes up by one).
    async fn upsert(&self, row: &ConnectionRow) -> Result<(), VaultError>;
    async fn get(&self, org: &str, platform: &str, account_id: &str) -> Result<Option<ConnectionRow>, VaultError>;
    /// Every connection of `org`, or of everyone.
    async fn list(&self, org: Option<&str>) -> Result<Vec<ConnectionRow>, VaultError>;
    /// Takes the refresh lease of a connection at `version` until `until`
    /// (nobody else holds it at `now`); false when another replica has it
    /// or the row moved on.
    async fn lease_refresh(&self, row: &ConnectionRow, now: i64, until: i64) -> Result<bool, VaultError>;
    /// Replaces a connection's tokens if it is still at `row.version`
    /// (releasing the lease); false when it moved on.
    async fn replace_tokens(&self, row: &ConnectionRow) -> Result<bool, VaultError>;
    /// Sets a connection's status and problem (and releases the lease).
    async fn set_status(&self, org: &str, platform: &str, account_id: &str, status: &str, problem: Option<&str>, now: i64) -> Result<(), VaultError>;
    /// Active connections whose access token expires before `before`.
    async fn due_for_refresh(&self, before: i64) -> Result<Vec<ConnectionRow>, VaultError>;
    /// Takes (or renews) the lease `name` for `holder` until `until`
    /// (Unix milliseconds) when nobody else holds it at `now`: one replica
    /// at a time works on a change. False when another holds it.
    async fn lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, VaultError>;
    /// Gives the lease back (if `holder` still has it).
    async fn unlease(&self, name: &str, holder: &str) -> Result<(), VaultError>;
}

const CONNECTION_COLS: &str = "org, platform, account_id, kind, scopes, status, access_ct, access_nonce, access_key, access_key_id, access_expires_at, \
     refresh_ct, refresh_nonce, refresh_key, refresh_key_id, refresh_expires_at, problem, version, updated_at";
const PENDING_COLS: &str = "state_sha256, org, platform, account_hint, scopes, redirect_uri, purpose, verifier_ct, verifier_nonce, verifier_key, verifier_key_id, expires_at, draft_id";

macro_rules! rows {
    ($row:ty) => {
        pub(super) fn connection(r: &$row) -> Result<ConnectionRow, VaultError> {
            let refresh = match (
                r.try_get::<Option<Vec<u8>>, _>("refresh_ct")?,
                r.try_get::<Option<Vec<u8>>, _>("refresh_nonce")?,
                r.try_get::<Option<Vec<u8>>, _>("refresh_key")?,
                r.try_get::<Option<String>, _>("refresh_key_id")?,
            ) {
                (Some(ciphertext), Some(nonce), Some(wrapped_key), Some(key_id)) => Some(Sealed {
                    ciphertext,
                    nonce,
                    wrapped_key,
                    key_id,
                }),
                _ => None,
            };
            Ok(ConnectionRow {
                org: r.try_get("org")?,
                platform: r.try_get("platform")?,
                account_id: r.try_get("account_id")?,
                kind: r.try_get("kind")?,
                scopes: r.try_get("scopes")?,
                status: r.try_get("status")?,
                access: Sealed {
                    ciphertext: r.try_get("access_ct")?,
                    nonce: r.try_get("access_nonce")?,
                    wrapped_key: r.try_get("access_key")?,
                    key_id: r.try_get("access_key_id")?,
                },
                access_expires_at: r.try_get("access_expires_at")?,
                refresh,
                refresh_expires_at: r.try_get("refresh_expires_at")?,
                problem: r.try_get("problem")?,
                version: r.try_get("version")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        pub(super) fn pending(r: &$row) -> Result<PendingRow, VaultError> {
            Ok(PendingRow {
                state_sha256: r.try_get("state_sha256")?,
                org: r.try_get("org")?,
                platform: r.try_get("platform")?,
                account_hint: r.try_get("account_hint")?,
                scopes: r.try_get("scopes")?,
                redirect_uri: r.try_get("redirect_uri")?,
                purpose: r.try_get("purpose")?,
                draft_id: r.try_get("draft_id")?,
                verifier: Sealed {
                    ciphertext: r.try_get("verifier_ct")?,
                    nonce: r.try_get("verifier_nonce")?,
                    wrapped_key: r.try_get("verifier_key")?,
                    key_id: r.try_get("verifier_key_id")?,
                },
                expires_at: r.try_get("expires_at")?,
            })
        }
    };
}

/// The SQL, the same for both databases.
macro_rules! store_impl {
    ($ty:ty, $rows:ident, $migration:literal) => {
        #[async_trait::async_trait]
        impl ConnectionStore for $ty {
            async fn migrate(&self) -> Result<(), VaultError> {
                sqlx::raw_sql(include_str!($migration)).execute(&self.pool).await?;
                Ok(())
            }

            async fn put_pending(&self, p: &PendingRow) -> Result<(), VaultError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO executor_oauth_pending ({PENDING_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                )))
                .bind(&p.state_sha256)
                .bind(&p.org)
                .bind(&p.platform)
                .bind(&p.account_hint)
                .bind(&p.scopes)
                .bind(&p.redirect_uri)
                .bind(&p.purpose)
                .bind(&p.verifier.ciphertext)
                .bind(&p.verifier.nonce)
                .bind(&p.verifier.wrapped_key)
                .bind(&p.verifier.key_id)
                .bind(p.expires_at)
                .bind(&p.draft_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_pending(&self, state_sha256: &str) -> Result<Option<PendingRow>, VaultError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM executor_oauth_pending WHERE state_sha256 = $1 RETURNING {PENDING_COLS}"
                )))
                .bind(state_sha256)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map($rows::pending).transpose()
            }

            async fn purge_pending(&self, now: i64) -> Result<u64, VaultError> {
                let r = sqlx::query("DELETE FROM executor_oauth_pending WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn upsert(&self, c: &ConnectionRow) -> Result<(), VaultError> {
                let (rct, rn, rk, rkid) = match &c.refresh {
                    Some(s) => (Some(&s.ciphertext), Some(&s.nonce), Some(&s.wrapped_key), Some(&s.key_id)),
                    None => (None, None, None, None),
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO executor_connections ({CONNECTION_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18) \
                     ON CONFLICT (org, platform, account_id) DO UPDATE SET \
                       kind = excluded.kind, scopes = excluded.scopes, status = excluded.status, \
                       access_ct = excluded.access_ct, access_nonce = excluded.access_nonce, access_key = excluded.access_key, \
                       access_key_id = excluded.access_key_id, access_expires_at = excluded.access_expires_at, \
                       refresh_ct = excluded.refresh_ct, refresh_nonce = excluded.refresh_nonce, refresh_key = excluded.refresh_key, \
                       refresh_key_id = excluded.refresh_key_id, refresh_expires_at = excluded.refresh_expires_at, \
                       problem = excluded.problem, version = executor_connections.version + 1, refreshing_until = NULL, \
                       updated_at = excluded.updated_at"
                )))
                .bind(&c.org)
                .bind(&c.platform)
                .bind(&c.account_id)
                .bind(&c.kind)
                .bind(&c.scopes)
                .bind(&c.status)
                .bind(&c.access.ciphertext)
                .bind(&c.access.nonce)
                .bind(&c.access.wrapped_key)
                .bind(&c.access.key_id)
                .bind(c.access_expires_at)
                .bind(rct)
                .bind(rn)
                .bind(rk)
                .bind(rkid)
                .bind(c.refresh_expires_at)
                .bind(&c.problem)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get(&self, org: &str, platform: &str, account_id: &str) -> Result<Option<ConnectionRow>, VaultError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CONNECTION_COLS} FROM executor_connections WHERE org = $1 AND platform = $2 AND account_id = $3"
                )))
                .bind(org)
                .bind(platform)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map($rows::connection).transpose()
            }

            async fn list(&self, org: Option<&str>) -> Result<Vec<ConnectionRow>, VaultError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CONNECTION_COLS} FROM executor_connections WHERE $1 IS NULL OR org = $1 ORDER BY org, platform, account_id"
                )))
                .bind(org)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($rows::connection).collect()
            }

            async fn lease_refresh(&self, c: &ConnectionRow, now: i64, until: i64) -> Result<bool, VaultError> {
                let r = sqlx::query(
                    "UPDATE executor_connections SET refreshing_until = $1 \
                     WHERE org = $2 AND platform = $3 AND account_id = $4 AND version = $5 \
                       AND (refreshing_until IS NULL OR refreshing_until < $6)",
                )
                .bind(until)
                .bind(&c.org)
                .bind(&c.platform)
                .bind(&c.account_id)
                .bind(c.version)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn replace_tokens(&self, c: &ConnectionRow) -> Result<bool, VaultError> {
                let refresh = c.refresh.as_ref();
                let r = sqlx::query(
                    "UPDATE executor_connections SET scopes = $1, status = $2, access_ct = $3, access_nonce = $4, access_key = $5, \
                       access_key_id = $6, access_expires_at = $7, refresh_ct = $8, refresh_nonce = $9, refresh_key = $10, \
                       refresh_key_id = $11, refresh_expires_at = $12, problem = $13, version = version + 1, refreshing_until = NULL, \
                       updated_at = $14 \
                     WHERE org = $15 AND platform = $16 AND account_id = $17 AND version = $18",
                )
                .bind(&c.scopes)
                .bind(&c.status)
                .bind(&c.access.ciphertext)
                .bind(&c.access.nonce)
                .bind(&c.access.wrapped_key)
                .bind(&c.access.key_id)
                .bind(c.access_expires_at)
                .bind(refresh.map(|s| &s.ciphertext))
                .bind(refresh.map(|s| &s.nonce))
                .bind(refresh.map(|s| &s.wrapped_key))
                .bind(refresh.map(|s| &s.key_id))
                .bind(c.refresh_expires_at)
                .bind(&c.problem)
                .bind(c.updated_at)
                .bind(&c.org)
                .bind(&c.platform)
                .bind(&c.account_id)
                .bind(c.version)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_status(&self, org: &str, platform: &str, account_id: &str, status: &str, problem: Option<&str>, now: i64) -> Result<(), VaultError> {
                sqlx::query(
                    "UPDATE executor_connections SET status = $1, problem = $2, version = version + 1, refreshing_until = NULL, updated_at = $3 \
                     WHERE org = $4 AND platform = $5 AND account_id = $6",
                )
                .bind(status)
                .bind(problem)
                .bind(now)
                .bind(org)
                .bind(platform)
                .bind(account_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn lease(&self, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, VaultError> {
                let r = sqlx::query(
                    "INSERT INTO executor_leases (name, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE executor_leases.until < $4 OR executor_leases.holder = excluded.holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn unlease(&self, name: &str, holder: &str) -> Result<(), VaultError> {
                sqlx::query("DELETE FROM executor_leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn due_for_refresh(&self, before: i64) -> Result<Vec<ConnectionRow>, VaultError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CONNECTION_COLS} FROM executor_connections WHERE status = 'active' AND access_expires_at < $1 AND refresh_ct IS NOT NULL"
                )))
                .bind(before)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($rows::connection).collect()
            }
        }
    };
}

/// PostgreSQL (production).
pub struct PgConnections {
    pool: sqlx::PgPool,
}

mod pg_rows {
    use super::*;
    rows!(sqlx::postgres::PgRow);
}

impl PgConnections {
    /// Connects lazily (a database down at start-up fails requests, not
    /// the start) and creates the tables.
    pub async fn connect(url: &str) -> Result<Self, VaultError> {
        let s = Self {
            pool: spend_store::postgres(url).map_err(store_error)?,
        };
        s.migrate().await?;
        Ok(s)
    }
}

store_impl!(PgConnections, pg_rows, "../../migrations/postgres.sql");

/// SQLite (`spend dev`).
pub struct SqliteConnections {
    pool: sqlx::SqlitePool,
}

mod sqlite_rows {
    use super::*;
    rows!(sqlx::sqlite::SqliteRow);
}

impl SqliteConnections {
    pub async fn open(path: &std::path::Path) -> Result<Self, VaultError> {
        let pool = spend_store::sqlite(path).await.map_err(store_error)?;
        let s = Self { pool };
        s.migrate().await?;
        // A column added after the table was first created (SQLite has no
        // `ADD COLUMN IF NOT EXISTS`).
        let has_draft: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('executor_oauth_pending') WHERE name = 'draft_id'")
            .fetch_one(&s.pool)
            .await?;
        if has_draft == 0 {
            sqlx::raw_sql("ALTER TABLE executor_oauth_pending ADD COLUMN draft_id TEXT")
                .execute(&s.pool)
                .await?;
        }
        Ok(s)
    }
}

store_impl!(SqliteConnections, sqlite_rows, "../../migrations/sqlite.sql");
