-- API bearer tokens: only the sha256 of a token is stored (as on SQLite).

CREATE TABLE tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,   -- sha256 hex of the token; the token itself is never stored
    created_at   TEXT    NOT NULL,          -- RFC 3339 UTC, as on SQLite
    last_used_at TEXT
);
