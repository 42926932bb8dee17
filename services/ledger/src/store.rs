//! The ledger's projection: events, checkpoints, the consumer position and
//! transaction status history, in PostgreSQL (production) or SQLite
//! (`spend dev`). Both schemas are append-only, enforced by the database.
//!
//! A batch of events and the stream position it reaches are written in one
//! transaction, so a crash can never project an event twice or lose one:
//! on restart the ledger resumes after the committed position.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use crate::merkle::Hash;

pub use spend_store::{StoreError, redact};

/// One projected event (a leaf of the tree).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub idx: u64,
    pub seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub payload: Vec<u8>,
    pub leaf_hash: Hash,
    pub stored_at: DateTime<Utc>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub org: Option<String>,
    pub event_time: Option<DateTime<Utc>>,
    /// Set when the payload is not a valid event; it is still a leaf.
    pub reject_reason: Option<String>,
}

/// One status change of a draft or payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRow {
    pub idx: u64,
    pub draft_id: String,
    pub status: String,
    pub org: String,
    pub account_id: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub event_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub tree_size: u64,
    pub origin: String,
    pub root_hash: Hash,
    pub body: String,
    pub signature: Vec<u8>,
    pub key_id: String,
    pub signed_at: DateTime<Utc>,
}

/// Filters of `QueryEvents`; all set filters must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub org: Option<String>,
    pub event_type: Option<String>,
    pub subject: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after_index: Option<u64>,
    pub limit: u32,
}

/// The approver registry's event types, replayed with the open drafts.
pub const REGISTRY_TYPES: [&str; 3] = [
    spend_core::events::ApproverEnrolled::TYPE,
    spend_core::events::ApproverAnchored::TYPE,
    spend_core::events::ApproverRemoved::TYPE,
];

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The stream sequence the projection has reached (0: nothing yet).
    async fn position(&self) -> Result<u64, StoreError>;
    /// Every leaf hash, in index order.
    async fn leaf_hashes(&self) -> Result<Vec<Hash>, StoreError>;
    /// Writes a batch and the position it reaches, atomically.
    async fn commit(&self, events: &[EventRow], txs: &[TxRow], position: u64) -> Result<(), StoreError>;
    /// Records a checkpoint; recording the same tree size again is a no-op.
    async fn insert_checkpoint(&self, cp: &CheckpointRow) -> Result<(), StoreError>;
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError>;
    /// Checkpoints with `above < tree_size <= upto`, by size.
    async fn checkpoints(&self, above: u64, upto: u64) -> Result<Vec<CheckpointRow>, StoreError>;
    async fn query_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError>;
    /// Events with `from <= idx < to`, at most `limit`.
    async fn events_by_index(&self, from: u64, to: u64, limit: u32) -> Result<Vec<EventRow>, StoreError>;
    /// Index of the first event whose event time is at or after `t`.
    async fn first_index_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, StoreError>;
    /// Drafts/payments whose latest status matches, latest first.
    async fn transactions(&self, status: Option<&str>, from: Option<DateTime<Utc>>, org: Option<&str>) -> Result<Vec<TxRow>, StoreError>;
    /// Every event that moved one of the `max_drafts` most recent drafts
    /// whose last status is one of `statuses`, in log order: what the
    /// ledger rebuilds its open drafts from after a restart, with every
    /// event of the approver registry ([`REGISTRY_TYPES`]) among them.
    async fn draft_events(&self, statuses: &[&str], max_drafts: usize) -> Result<Vec<EventRow>, StoreError>;
}

/// Opens the store a database URL names: `postgres://…` or `sqlite://…`.
pub async fn connect(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(path)).await?))
    } else {
        Err(StoreError::Internal(format!(
            "database url must start with postgres:// or sqlite://, got {:?}",
            redact(url)
        )))
    }
}

const EVENT_COLS: &str = "idx, seq, subject, msg_id, payload, leaf_hash, stored_at, event_id, event_type, org, event_time, reject_reason";

fn to_hash(v: Vec<u8>) -> Result<Hash, StoreError> {
    v.try_into()
        .map_err(|v: Vec<u8>| StoreError::Internal(format!("stored hash has {} bytes, expected 32", v.len())))
}

macro_rules! row_readers {
    ($row:ty) => {
        pub(super) fn event_from(r: &$row) -> Result<EventRow, StoreError> {
            Ok(EventRow {
                idx: r.try_get::<i64, _>("idx")? as u64,
                seq: r.try_get::<i64, _>("seq")? as u64,
                subject: r.try_get("subject")?,
                msg_id: r.try_get("msg_id")?,
                payload: r.try_get("payload")?,
                leaf_hash: to_hash(r.try_get("leaf_hash")?)?,
                stored_at: r.try_get("stored_at")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                org: r.try_get("org")?,
                event_time: r.try_get("event_time")?,
                reject_reason: r.try_get("reject_reason")?,
            })
        }
        pub(super) fn checkpoint_from(r: &$row) -> Result<CheckpointRow, StoreError> {
            Ok(CheckpointRow {
                tree_size: r.try_get::<i64, _>("tree_size")? as u64,
                origin: r.try_get("origin")?,
                root_hash: to_hash(r.try_get("root_hash")?)?,
                body: r.try_get("body")?,
                signature: r.try_get("signature")?,
                key_id: r.try_get("key_id")?,
                signed_at: r.try_get("signed_at")?,
            })
        }
        pub(super) fn tx_from(r: &$row) -> Result<TxRow, StoreError> {
            Ok(TxRow {
                idx: r.try_get::<i64, _>("idx")? as u64,
                draft_id: r.try_get("draft_id")?,
                status: r.try_get("status")?,
                org: r.try_get("org")?,
                account_id: r.try_get("account_id")?,
                amount_minor: r.try_get("amount_minor")?,
                currency: r.try_get("currency")?,
                event_time: r.try_get("event_time")?,
            })
        }
    };
}

/// SQL and binds of an event filter; `$n` placeholders work in both databases.
fn filter_sql(f: &EventFilter) -> (String, Vec<FilterArg>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    let mut push = |clause: &str, arg: FilterArg| {
        args.push(arg);
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(v) = &f.org {
        push("org = ?", FilterArg::Text(v.clone()));
    }
    if let Some(v) = &f.event_type {
        push("event_type = ?", FilterArg::Text(v.clone()));
    }
    if let Some(v) = &f.subject {
        push("subject = ?", FilterArg::Text(v.clone()));
    }
    if let Some(v) = f.from {
        push("event_time >= ?", FilterArg::Time(v));
    }
    if let Some(v) = f.to {
        push("event_time < ?", FilterArg::Time(v));
    }
    if let Some(v) = f.after_index {
        push("idx > ?", FilterArg::Int(v as i64));
    }
    let limit = f.limit.clamp(1, 1000);
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (format!("SELECT {EVENT_COLS} FROM ledger_events {filter} ORDER BY idx LIMIT {limit}"), args)
}

enum FilterArg {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

fn tx_sql(status: Option<&str>, from: Option<DateTime<Utc>>, org: Option<&str>) -> (String, Vec<FilterArg>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if let Some(s) = status {
        args.push(FilterArg::Text(s.to_string()));
        clauses.push(format!("t.status = ${}", args.len()));
    }
    if let Some(f) = from {
        args.push(FilterArg::Time(f));
        clauses.push(format!("t.event_time >= ${}", args.len()));
    }
    if let Some(o) = org {
        args.push(FilterArg::Text(o.to_string()));
        clauses.push(format!("t.org = ${}", args.len()));
    }
    let extra = clauses.iter().map(|c| format!(" AND {c}")).collect::<String>();
    (
        format!(
            "SELECT t.idx, t.draft_id, t.status, t.org, COALESCE(t.account_id, p.account_id) AS account_id, \
             COALESCE(t.amount_minor, p.amount_minor) AS amount_minor, COALESCE(t.currency, p.currency) AS currency, t.event_time \
             FROM ledger_transactions t \
             JOIN (SELECT draft_id, MAX(idx) AS idx FROM ledger_transactions GROUP BY draft_id) latest ON latest.idx = t.idx \
             LEFT JOIN (SELECT draft_id, MIN(idx) AS idx FROM ledger_transactions WHERE status = 'proposed' GROUP BY draft_id) first ON first.draft_id = t.draft_id \
             LEFT JOIN ledger_transactions p ON p.idx = first.idx \
             WHERE 1 = 1{extra} ORDER BY t.idx DESC"
        ),
        args,
    )
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                FilterArg::Text(s) => q.bind(s),
                FilterArg::Time(t) => q.bind(t),
                FilterArg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

/// The read methods, whose SQL is the same in both databases (`$n`
/// placeholders work in both); `$rows` names the row-decoding module.
macro_rules! store_impl {
    ($ty:ty, $rows:ident, { $($own:item)* }) => {
        #[async_trait]
        impl Store for $ty {
            $($own)*

        async fn position(&self) -> Result<u64, StoreError> {
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM ledger_position").fetch_one(&self.pool).await?;
            Ok(v.unwrap_or(0) as u64)
        }

        async fn leaf_hashes(&self) -> Result<Vec<Hash>, StoreError> {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT leaf_hash FROM ledger_events ORDER BY idx")
                .fetch_all(&self.pool)
                .await?;
            rows.into_iter().map(to_hash).collect()
        }

        async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
            let row = sqlx::query("SELECT * FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map($rows::checkpoint_from).transpose()
        }

        async fn checkpoints(&self, above: u64, upto: u64) -> Result<Vec<CheckpointRow>, StoreError> {
            let rows = sqlx::query("SELECT * FROM ledger_checkpoints WHERE tree_size > $1 AND tree_size <= $2 ORDER BY tree_size")
                .bind(above as i64)
                .bind(upto.min(i64::MAX as u64) as i64)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map($rows::checkpoint_from).collect()
        }

        async fn query_events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
            let (sql, args) = filter_sql(filter);
            let rows = bind_args!(sqlx::query(AssertSqlSafe(sql)), args).fetch_all(&self.pool).await?;
            rows.iter().map($rows::event_from).collect()
        }

        async fn events_by_index(&self, from: u64, to: u64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLS} FROM ledger_events WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3"
            )))
            .bind(from as i64)
            .bind(to.min(i64::MAX as u64) as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map($rows::event_from).collect()
        }

        async fn first_index_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
            let v: Option<i64> = sqlx::query_scalar("SELECT MIN(idx) FROM ledger_events WHERE stored_at >= $1")
                .bind(t)
                .fetch_one(&self.pool)
                .await?;
            Ok(v.map(|v| v as u64))
        }

        async fn transactions(&self, status: Option<&str>, from: Option<DateTime<Utc>>, org: Option<&str>) -> Result<Vec<TxRow>, StoreError> {
            let (sql, args) = tx_sql(status, from, org);
            let rows = bind_args!(sqlx::query(AssertSqlSafe(sql)), args).fetch_all(&self.pool).await?;
            rows.iter().map($rows::tx_from).collect()
        }

        async fn draft_events(&self, statuses: &[&str], max_drafts: usize) -> Result<Vec<EventRow>, StoreError> {
            if statuses.is_empty() {
                return Ok(vec![]);
            }
            let placeholders = (1..=statuses.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let cols = EVENT_COLS.split(',').map(|c| format!("e.{}", c.trim())).collect::<Vec<_>>().join(", ");
            // The approver registry's events come along, in log order, so
            // the approvals among them are judged as they were at first.
            let registry = REGISTRY_TYPES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {cols} FROM ledger_events e \
                 WHERE e.idx IN (SELECT t.idx FROM ledger_transactions t \
                   WHERE t.draft_id IN (SELECT l.draft_id FROM ledger_transactions l \
                   JOIN (SELECT draft_id, MAX(idx) AS idx FROM ledger_transactions GROUP BY draft_id) latest ON latest.idx = l.idx \
                   WHERE l.status IN ({placeholders}) ORDER BY l.idx DESC LIMIT {max_drafts})) \
                 OR e.event_type IN ({registry}) \
                 ORDER BY e.idx"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for s in statuses {
                q = q.bind(*s);
            }
            let rows = q.fetch_all(&self.pool).await?;
            rows.iter().map($rows::event_from).collect()
        }
        }
    };
}

/// PostgreSQL's binary COPY format: a header, then per row a field count
/// and length-prefixed big-endian fields (-1 for NULL), then a trailer.
struct CopyBinary(Vec<u8>);

impl CopyBinary {
    /// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    fn new() -> Self {
        let mut v = Vec::with_capacity(1 << 20);
        v.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        v.extend_from_slice(&0i32.to_be_bytes()); // flags
        v.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self(v)
    }
    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }
    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&8i32.to_be_bytes());
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: Option<&[u8]>) {
        match v {
            Some(b) => {
                self.0.extend_from_slice(&(b.len() as i32).to_be_bytes());
                self.0.extend_from_slice(b);
            }
            None => self.0.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    fn text(&mut self, v: Option<&str>) {
        self.bytes(v.map(str::as_bytes));
    }
    fn time(&mut self, v: Option<DateTime<Utc>>) {
        match v {
            Some(t) => self.int(t.timestamp_micros() - Self::PG_EPOCH_MICROS),
            None => self.bytes(None),
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// PostgreSQL projection (production).
pub struct PgStore {
    pool: sqlx::PgPool,
}

mod pg_rows {
    use super::*;
    row_readers!(sqlx::postgres::PgRow);
}

impl PgStore {
    /// Connects on demand: a database that is down at start-up is waited
    /// for by the ingest loop's retries, not fatal.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pool: spend_store::postgres(url)?,
        })
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

store_impl!(PgStore, pg_rows, {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(include_str!("../migrations/postgres.sql")).execute(&self.pool).await?;
        Ok(())
    }

    async fn commit(&self, events: &[EventRow], txs: &[TxRow], position: u64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Binary COPY: the fastest way into PostgreSQL, in the same
        // transaction as the position.
        if !events.is_empty() {
            let mut buf = CopyBinary::new();
            for e in events {
                buf.row(12);
                buf.int(e.idx as i64);
                buf.int(e.seq as i64);
                buf.text(Some(&e.subject));
                buf.text(e.msg_id.as_deref());
                buf.bytes(Some(&e.payload));
                buf.bytes(Some(&e.leaf_hash));
                buf.time(Some(e.stored_at));
                buf.text(e.event_id.as_deref());
                buf.text(e.event_type.as_deref());
                buf.text(e.org.as_deref());
                buf.time(e.event_time);
                buf.text(e.reject_reason.as_deref());
            }
            let mut copy = tx
                .copy_in_raw("COPY ledger_events (idx, seq, subject, msg_id, payload, leaf_hash, stored_at, event_id, event_type, org, event_time, reject_reason) FROM STDIN (FORMAT binary)")
                .await?;
            copy.send(buf.finish()).await?;
            copy.finish().await?;
        }
        if !txs.is_empty() {
            let mut buf = CopyBinary::new();
            for t in txs {
                buf.row(8);
                buf.int(t.idx as i64);
                buf.text(Some(&t.draft_id));
                buf.text(Some(&t.status));
                buf.text(Some(&t.org));
                buf.text(t.account_id.as_deref());
                match t.amount_minor {
                    Some(m) => buf.int(m),
                    None => buf.bytes(None),
                }
                buf.text(t.currency.as_deref());
                buf.time(Some(t.event_time));
            }
            let mut copy = tx
                .copy_in_raw("COPY ledger_transactions (idx, draft_id, status, org, account_id, amount_minor, currency, event_time) FROM STDIN (FORMAT binary)")
                .await?;
            copy.send(buf.finish()).await?;
            copy.finish().await?;
        }
        sqlx::query("INSERT INTO ledger_position (seq, committed_at) VALUES ($1, now()) ON CONFLICT (seq) DO NOTHING")
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_checkpoint(&self, cp: &CheckpointRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO ledger_checkpoints (tree_size, origin, root_hash, body, signature, key_id, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tree_size) DO NOTHING")
            .bind(cp.tree_size as i64)
            .bind(&cp.origin)
            .bind(cp.root_hash.as_slice())
            .bind(&cp.body)
            .bind(&cp.signature)
            .bind(&cp.key_id)
            .bind(cp.signed_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
});

/// SQLite projection (`spend dev`).
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

mod sqlite_rows {
    use super::*;
    row_readers!(sqlx::sqlite::SqliteRow);
}

impl SqliteStore {
    pub async fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        Ok(Self {
            pool: spend_store::sqlite(path).await?,
        })
    }
}

store_impl!(SqliteStore, sqlite_rows, {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(include_str!("../migrations/sqlite.sql")).execute(&self.pool).await?;
        Ok(())
    }

    async fn commit(&self, events: &[EventRow], txs: &[TxRow], position: u64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO ledger_events (idx, seq, subject, msg_id, payload, leaf_hash, stored_at, event_id, event_type, org, event_time, reject_reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(e.idx as i64)
            .bind(e.seq as i64)
            .bind(&e.subject)
            .bind(&e.msg_id)
            .bind(&e.payload)
            .bind(e.leaf_hash.as_slice())
            .bind(e.stored_at)
            .bind(&e.event_id)
            .bind(&e.event_type)
            .bind(&e.org)
            .bind(e.event_time)
            .bind(&e.reject_reason)
            .execute(&mut *tx)
            .await?;
        }
        for t in txs {
            sqlx::query("INSERT INTO ledger_transactions (idx, draft_id, status, org, account_id, amount_minor, currency, event_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(t.idx as i64)
                .bind(&t.draft_id)
                .bind(&t.status)
                .bind(&t.org)
                .bind(&t.account_id)
                .bind(t.amount_minor)
                .bind(&t.currency)
                .bind(t.event_time)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT OR IGNORE INTO ledger_position (seq, committed_at) VALUES ($1, $2)")
            .bind(position as i64)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_checkpoint(&self, cp: &CheckpointRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR IGNORE INTO ledger_checkpoints (tree_size, origin, root_hash, body, signature, key_id, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(cp.tree_size as i64)
        .bind(&cp.origin)
        .bind(cp.root_hash.as_slice())
        .bind(&cp.body)
        .bind(&cp.signature)
        .bind(&cp.key_id)
        .bind(cp.signed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
});
