-- Token names become unique and required, tokens may expire, and the web
-- page's sessions are kept server-side (README "API tokens and sessions").
--
-- Names were optional and defaulted to the role, so an archive may hold
-- several tokens called `qa`: before this file runs, the migration renames
-- every duplicate after the first (`qa-2`, `qa-3`, …) and logs each rename
-- (store::tokens::unique_names), so the index below can be built.

ALTER TABLE tokens ADD COLUMN expires_at TEXT;   -- RFC 3339 UTC (seconds, `Z`); NULL: never expires
CREATE UNIQUE INDEX tokens_name ON tokens(name);

-- A signed-in web page. Only the sha256 of the session id is stored (the id
-- is the cookie's value, as a token's hash is for the token). A session
-- lives while its token does (revoking the token deletes its sessions) and
-- until it has been idle for `[api] session_idle_minutes`.
CREATE TABLE sessions (
    hash          TEXT    PRIMARY KEY,      -- sha256 hex of the session id
    token_id      INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created_at    TEXT    NOT NULL,         -- RFC 3339 UTC
    last_seen_ms  INTEGER NOT NULL          -- Unix ms of its last use, written at most once a minute
);
CREATE INDEX sessions_token ON sessions(token_id);
