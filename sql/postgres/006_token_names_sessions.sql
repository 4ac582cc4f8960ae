-- Token names become unique and required, tokens may expire, and the web
-- page's sessions are kept server-side, seen by every collector (as
-- sql/sqlite/013_token_names_sessions.sql; README "API tokens and sessions").
--
-- Before this file runs, the migration renames every duplicate name after
-- the first (`qa-2`, `qa-3`, …) and logs each rename
-- (store::tokens::unique_names), so the index below can be built.

ALTER TABLE tokens ADD COLUMN expires_at TEXT;   -- RFC 3339 UTC (seconds, `Z`); NULL: never expires
CREATE UNIQUE INDEX tokens_name ON tokens(name);

CREATE TABLE sessions (
    hash          TEXT    PRIMARY KEY,      -- sha256 hex of the session id; the id itself is never stored
    token_id      BIGINT  NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,         -- RFC 3339 UTC, as on SQLite
    last_seen_ms  BIGINT  NOT NULL          -- Unix ms of its last use, written at most once a minute
);
CREATE INDEX sessions_token ON sessions(token_id);
