-- The executor's vault: connected accounts and their sealed tokens, and
-- authorizations waiting for the platform's callback. Times are Unix
-- seconds. Idempotent: run at every start.
CREATE TABLE IF NOT EXISTS executor_connections (
    org TEXT NOT NULL,
    platform TEXT NOT NULL,
    account_id TEXT NOT NULL,
    -- ads or cards
    kind TEXT NOT NULL,
    -- the scopes granted, space-separated, sorted
    scopes TEXT NOT NULL,
    -- active, revoked, expired or disconnected
    status TEXT NOT NULL,
    access_ct BLOB NOT NULL,
    access_nonce BLOB NOT NULL,
    access_key BLOB NOT NULL,
    access_key_id TEXT NOT NULL,
    access_expires_at INTEGER NOT NULL,
    refresh_ct BLOB,
    refresh_nonce BLOB,
    refresh_key BLOB,
    refresh_key_id TEXT,
    refresh_expires_at INTEGER,
    problem TEXT,
    -- optimistic concurrency: each write of tokens expects the version it read
    version INTEGER NOT NULL,
    -- a replica refreshing the tokens holds this lease
    refreshing_until INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org, platform, account_id)
);

CREATE TABLE IF NOT EXISTS executor_oauth_pending (
    state_sha256 TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    platform TEXT NOT NULL,
    account_hint TEXT,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    purpose TEXT NOT NULL,
    verifier_ct BLOB NOT NULL,
    verifier_nonce BLOB NOT NULL,
    verifier_key BLOB NOT NULL,
    verifier_key_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- One replica at a time works on a change: it holds the change's lease
-- until `until` (Unix milliseconds), renewing it while it works; a lease
-- that lapses (its holder died) can be taken by another replica.
CREATE TABLE IF NOT EXISTS executor_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
