-- SpendSignoff ledger projection (SQLite, for `spend dev`). Append-only by
-- trigger, as in PostgreSQL.
CREATE TABLE IF NOT EXISTS ledger_events (
    idx           INTEGER PRIMARY KEY,
    seq           INTEGER NOT NULL,
    subject       TEXT NOT NULL,
    msg_id        TEXT,
    payload       BLOB NOT NULL,
    leaf_hash     BLOB NOT NULL,
    stored_at     TEXT NOT NULL,
    event_id      TEXT,
    event_type    TEXT,
    org           TEXT,
    event_time    TEXT,
    reject_reason TEXT
);
CREATE INDEX IF NOT EXISTS ledger_events_org_type ON ledger_events (org, event_type, idx);
CREATE INDEX IF NOT EXISTS ledger_events_subject ON ledger_events (subject, idx);
CREATE INDEX IF NOT EXISTS ledger_events_time ON ledger_events (event_time);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    tree_size  INTEGER PRIMARY KEY,
    origin     TEXT NOT NULL,
    root_hash  BLOB NOT NULL,
    body       TEXT NOT NULL,
    signature  BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    signed_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_position (
    seq          INTEGER PRIMARY KEY,
    committed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_transactions (
    idx          INTEGER PRIMARY KEY,
    draft_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    org          TEXT NOT NULL,
    account_id   TEXT,
    amount_minor INTEGER,
    currency     TEXT,
    event_time   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_transactions_draft ON ledger_transactions (draft_id, idx);
CREATE TRIGGER IF NOT EXISTS ledger_events_no_update BEFORE UPDATE ON ledger_events BEGIN SELECT RAISE(ABORT, 'table ledger_events is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_events_no_delete BEFORE DELETE ON ledger_events BEGIN SELECT RAISE(ABORT, 'table ledger_events is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints BEGIN SELECT RAISE(ABORT, 'table ledger_checkpoints is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints BEGIN SELECT RAISE(ABORT, 'table ledger_checkpoints is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_position_no_update BEFORE UPDATE ON ledger_position BEGIN SELECT RAISE(ABORT, 'table ledger_position is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_position_no_delete BEFORE DELETE ON ledger_position BEGIN SELECT RAISE(ABORT, 'table ledger_position is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions BEGIN SELECT RAISE(ABORT, 'table ledger_transactions is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions BEGIN SELECT RAISE(ABORT, 'table ledger_transactions is append-only: DELETE refused'); END;
