-- The audit log: the same table as on SQLite (sql/sqlite/014_audit.sql,
-- docs/operations.md "Audit log"). Append-only: no API path changes or
-- deletes a row; only the retention purge removes rows older than
-- `[retention] audit_days`. Identity ids are never reused.

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms       BIGINT  NOT NULL,          -- unix ms, UTC (refusals: the first of the minute)
    actor         TEXT,                      -- the token's name; NULL when no valid token
    role          TEXT,
    ip            TEXT,
    action        TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    status        BIGINT  NOT NULL,          -- HTTP status; for commands the exit status (0 = done)
    count         BIGINT  NOT NULL DEFAULT 1,
    detail        TEXT,
    collapse_key  TEXT    UNIQUE             -- refusals: address, minute, status and actor; NULL otherwise
);

CREATE INDEX audit_log_time ON audit_log(time_ms);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
