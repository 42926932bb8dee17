-- SpendSignoff ledger projection (PostgreSQL). Every table is append-only:
-- UPDATE, DELETE and TRUNCATE are refused by triggers (which bind even the
-- table owner and superusers) and not granted to the writer role.
CREATE TABLE IF NOT EXISTS ledger_events (
    idx           BIGINT PRIMARY KEY,
    seq           BIGINT NOT NULL,
    subject       TEXT NOT NULL,
    msg_id        TEXT,
    payload       BYTEA NOT NULL,
    leaf_hash     BYTEA NOT NULL,
    stored_at     TIMESTAMPTZ NOT NULL,
    event_id      TEXT,
    event_type    TEXT,
    org           TEXT,
    event_time    TIMESTAMPTZ,
    reject_reason TEXT
);
CREATE INDEX IF NOT EXISTS ledger_events_org_type ON ledger_events (org, event_type, idx);
CREATE INDEX IF NOT EXISTS ledger_events_subject ON ledger_events (subject, idx);
-- Events arrive roughly in time order: a BRIN index is tiny and cheap to keep.
CREATE INDEX IF NOT EXISTS ledger_events_time ON ledger_events USING brin (event_time);

CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    tree_size  BIGINT PRIMARY KEY,
    origin     TEXT NOT NULL,
    root_hash  BYTEA NOT NULL,
    body       TEXT NOT NULL,
    signature  BYTEA NOT NULL,
    key_id     TEXT NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL
);

-- The consumer position: one row per committed batch, written in the same
-- transaction as the batch's rows.
CREATE TABLE IF NOT EXISTS ledger_position (
    seq          BIGINT PRIMARY KEY,
    committed_at TIMESTAMPTZ NOT NULL
);

-- Status history of drafts/payments; the current status is the latest row.
CREATE TABLE IF NOT EXISTS ledger_transactions (
    idx          BIGINT PRIMARY KEY,
    draft_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    org          TEXT NOT NULL,
    account_id   TEXT,
    amount_minor BIGINT,
    currency     TEXT,
    event_time   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_transactions_draft ON ledger_transactions (draft_id, idx);

CREATE OR REPLACE FUNCTION spend_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['ledger_events', 'ledger_checkpoints', 'ledger_position', 'ledger_transactions'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION spend_append_only()', t || '_no_change', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION spend_append_only()', t || '_no_truncate', t);
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM PUBLIC', t);
    END LOOP;
END $$;

-- The role the ledger should run as in production: it may read and append,
-- nothing else.
DO $$
BEGIN
    CREATE ROLE spend_ledger_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
GRANT SELECT, INSERT ON ledger_events, ledger_checkpoints, ledger_position, ledger_transactions TO spend_ledger_writer;
