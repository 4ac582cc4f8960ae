-- The ingest tables on PostgreSQL: the raw pushes (every pushed byte is kept,
-- ARCHITECTURE.md "Durability"), the registered devices and the single-use
-- Auth nonces, shared by every collector of one archive.
--
-- pushes is partitioned by month of received_at (the big table: one row per
-- push, kept for years). A primary key on a partitioned table must include
-- the partition key, so it is (received_at, id); ids come from one identity
-- sequence, unique across partitions. Partitions are made ahead by
-- `store::postgres::partitions`; a DEFAULT partition catches a row whose
-- month has none yet, so a push is never refused for it (watched: a row
-- there means the partitions fell behind).

CREATE TABLE pushes (
    id           BIGINT GENERATED ALWAYS AS IDENTITY,
    received_at  TIMESTAMPTZ NOT NULL,
    received_ms  BIGINT  NOT NULL,          -- unix milliseconds, for ordering and settling
    source       TEXT    NOT NULL,          -- peer IP, or 'import:<file>'
    device       TEXT,                      -- NULL when it could not be identified
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    query        TEXT,                      -- the request's query string (GET pushes)
    body         BYTEA   NOT NULL,
    outcome      TEXT    NOT NULL,          -- stored | held | quarantined
    status       INTEGER NOT NULL,          -- HTTP status we answered
    reason       TEXT,                      -- one-line reason when quarantined
    derive_error TEXT,                      -- set when deriving it failed
    sender_mac   TEXT,                      -- the MAC/sn a held push named
    PRIMARY KEY (received_at, id)
) PARTITION BY RANGE (received_at);

CREATE TABLE pushes_default PARTITION OF pushes DEFAULT;

CREATE INDEX pushes_id ON pushes (id);
CREATE INDEX pushes_quarantine ON pushes (outcome, id) WHERE outcome = 'quarantined';
CREATE INDEX pushes_held ON pushes (sender_mac, source) WHERE outcome = 'held';

CREATE TABLE devices (
    name         TEXT    PRIMARY KEY,
    mac          TEXT,                      -- normalised: upper case, ':' separated (or an IVR sn)
    ip           TEXT,                      -- the address it pushes from
    added_at     TEXT    NOT NULL,          -- RFC 3339 UTC, the text SQLite keeps (store::now_stamp)
    removed_at   TEXT                       -- set by `devices remove`; NULL while registered
);

CREATE TABLE devices_version (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    version  BIGINT  NOT NULL
);
INSERT INTO devices_version VALUES (1, 0);

-- One row per (device, nonce, timestamp) seen in a signed push until the
-- signature would be stale anyway (OM manual §4.5): a replay is refused on
-- whichever collector it reaches.
CREATE TABLE auth_nonces (
    device      TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    timestamp   TEXT    NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    PRIMARY KEY (device, nonce, timestamp)
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_ms);
