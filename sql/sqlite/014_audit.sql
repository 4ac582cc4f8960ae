-- The audit log (docs/operations.md "Audit log"): who played or downloaded
-- a recording, viewed a call, exported billing or a report, and every
-- refusal (401/403) of the API listener. Append-only: no API path changes
-- or deletes a row; only the retention purge removes rows older than
-- `[retention] audit_days`.
--
-- AUTOINCREMENT: ids are never reused after a purge, so an id (and the
-- paging cursor made of it) names one row for ever.

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms       INTEGER NOT NULL,          -- unix ms, UTC (refusals: the first of the minute)
    actor         TEXT,                      -- the token's name; NULL when no valid token; 'cli'/OS user for commands
    role          TEXT,                      -- the token's role, when there was one
    ip            TEXT,                      -- the peer address of the request; NULL for commands
    action        TEXT    NOT NULL,          -- recording.play, billing.export, auth.refused, ...
    target        TEXT    NOT NULL,          -- recording id, call id, report and date range, token name, route
    status        INTEGER NOT NULL,          -- HTTP status; for commands the exit status (0 = done)
    count         INTEGER NOT NULL DEFAULT 1, -- refusals collapsed into this row
    detail        TEXT,                      -- a short note (rows exported, call of a recording)
    collapse_key  TEXT    UNIQUE             -- refusals: address, minute, status and actor; NULL otherwise
);

CREATE INDEX audit_log_time ON audit_log(time_ms);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
