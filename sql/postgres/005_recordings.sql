-- Recording fetch jobs and archived recordings on PostgreSQL: the same
-- table as on SQLite (sql/sqlite/004, 005, 011). Any collector's fetch
-- worker claims due rows with FOR UPDATE SKIP LOCKED, so each recording is
-- fetched by one collector at a time (docs/recordings.md).
--
-- A claim is a lease: claimed_by names the collector process that took the
-- row and lease_until_ms (unix ms) when the claim goes stale. A row left
-- `fetching` by a collector that died is taken back (to `pending`) only once
-- its lease is past, so a starting collector never takes back a row another
-- live collector is downloading (src/store/postgres/recordings.rs).

CREATE TABLE recordings (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leg_id           BIGINT  NOT NULL UNIQUE, -- leg_ids.id
    device           TEXT    NOT NULL,
    path             TEXT    NOT NULL,      -- the CDR <Recording> value, 'YYYYMMDD/<file>'
    codec            TEXT,
    status           TEXT    NOT NULL,      -- pending | fetching | done | missing | failed
    attempts         BIGINT  NOT NULL DEFAULT 0,
    due_ms           BIGINT  NOT NULL,
    last_error       TEXT,
    file             TEXT,
    originals        TEXT,
    bytes            BIGINT,
    duration_seconds DOUBLE PRECISION,
    sha256           TEXT,
    updated_at       TEXT    NOT NULL,
    not_found        BIGINT  NOT NULL DEFAULT 0,
    claimed_by       TEXT,                  -- the claiming collector while `fetching`
    lease_until_ms   BIGINT                 -- unix ms: the claim is stale after this
);
CREATE INDEX recordings_due ON recordings (status, due_ms);
CREATE INDEX recordings_device_due ON recordings (status, device, due_ms);
