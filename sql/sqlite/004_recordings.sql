-- Recordings copied off the devices (docs/recordings.md): one row per leg that names a Recording.
CREATE TABLE recordings (
    id               INTEGER PRIMARY KEY,
    leg_id           INTEGER NOT NULL UNIQUE REFERENCES legs(id),
    device           TEXT    NOT NULL,
    path             TEXT    NOT NULL,      -- the CDR <Recording> value, 'YYYYMMDD/<file>'
    codec            TEXT,                  -- G729 | PCMU | PCMA (as the CDR said)
    status           TEXT    NOT NULL,      -- pending | fetching | done | missing | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_ms           INTEGER NOT NULL,      -- unix ms: next attempt not before
    last_error       TEXT,
    file             TEXT,                  -- archive-relative path of the playable WAV
    originals        TEXT,                  -- JSON array of archive-relative paths of kept G.729 halves
    bytes            INTEGER,
    duration_seconds REAL,
    sha256           TEXT,
    updated_at       TEXT    NOT NULL
);
CREATE INDEX recordings_due ON recordings(status, due_ms);
