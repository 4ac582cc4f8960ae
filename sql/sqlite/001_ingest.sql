-- Raw pushes, parsed legs and events, quarantine, API tokens.
-- Every pushed byte is kept (ARCHITECTURE.md "Durability"): pushes.body is the request body as received.

CREATE TABLE pushes (
    id           INTEGER PRIMARY KEY,
    received_at  TEXT    NOT NULL,          -- RFC 3339 UTC
    received_ms  INTEGER NOT NULL,          -- unix milliseconds, for ordering and settling
    source       TEXT    NOT NULL,          -- peer IP, or 'import:<file>'
    device       TEXT,                      -- NULL when it could not be identified
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    outcome      TEXT    NOT NULL,          -- stored | quarantined
    status       INTEGER NOT NULL,          -- HTTP status we answered
    reason       TEXT                       -- one-line reason when quarantined
);
CREATE INDEX pushes_quarantine ON pushes(outcome, id) WHERE outcome = 'quarantined';

-- One row per CDR (= one call leg). (device, cdr_id) is unique: a re-push is a no-op.
CREATE TABLE legs (
    id           INTEGER PRIMARY KEY,
    device       TEXT    NOT NULL,
    cdr_id       TEXT    NOT NULL,
    push_id      INTEGER NOT NULL REFERENCES pushes(id),
    received_ms  INTEGER NOT NULL,
    callid       TEXT    NOT NULL,
    visitor_id   TEXT,
    outer_id     TEXT,
    leg_type     TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    cpn          TEXT    NOT NULL,
    cdpn         TEXT    NOT NULL,
    time_start   TEXT    NOT NULL,          -- device local 'YYYY-MM-DD HH:MM:SS'
    time_end     TEXT    NOT NULL,
    start_utc    TEXT    NOT NULL,          -- RFC 3339 via the device time zone
    end_utc      TEXT    NOT NULL,
    duration     INTEGER NOT NULL,
    trunk_number TEXT    NOT NULL,
    recording    TEXT,
    rec_codec    TEXT,
    mac          TEXT,
    clock_skewed INTEGER NOT NULL DEFAULT 0, -- TimeEnd more than a day away from receive time
    content_hash TEXT    NOT NULL,
    UNIQUE (device, cdr_id)
);
CREATE INDEX legs_start ON legs(time_start);

-- A re-push of a known Cdr id with different content: kept, never overwrites.
CREATE TABLE leg_conflicts (
    id           INTEGER PRIMARY KEY,
    device       TEXT    NOT NULL,
    cdr_id       TEXT    NOT NULL,
    push_id      INTEGER NOT NULL REFERENCES pushes(id),
    leg_json     TEXT    NOT NULL
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,       -- also the arrival sequence
    device       TEXT    NOT NULL,
    push_id      INTEGER NOT NULL REFERENCES pushes(id),
    received_at  TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    attribute    TEXT    NOT NULL,
    attrs_json   TEXT    NOT NULL,
    mac          TEXT,
    parties_json TEXT    NOT NULL
);
CREATE INDEX events_received ON events(received_ms);

-- Every party of every event, so an event can be found by ext / visitor / outer id.
CREATE TABLE event_parties (
    event_id     INTEGER NOT NULL REFERENCES events(id),
    pos          INTEGER NOT NULL,
    tag          TEXT    NOT NULL,
    party_id     TEXT,
    attrs_json   TEXT    NOT NULL,
    text         TEXT,
    PRIMARY KEY (event_id, pos)
) WITHOUT ROWID;
CREATE INDEX event_parties_id ON event_parties(tag, party_id);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,   -- sha256 hex of the token; the token itself is never stored
    created_at   TEXT    NOT NULL,
    last_used_at TEXT
);
