-- Legs and events derived from the raw pushes, on PostgreSQL: the same
-- tables and columns as on SQLite (sql/sqlite/001, 008, 012), so that the
-- stages and reports read the same values on both backends.
--
-- legs and events are partitioned by month of their push's receive time
-- (received_at): they grow with the pushes and are kept as long. A unique
-- key on a partitioned table must include the partition key, so the dedup
-- key of a leg, (device, cdr_id), lives in leg_ids, an unpartitioned table
-- that holds across months: a leg re-pushed a year later is still a
-- duplicate (ARCHITECTURE.md "Ids").

CREATE TABLE legs (
    id           BIGINT  NOT NULL,          -- leg_ids.id
    received_at  TIMESTAMPTZ NOT NULL,      -- the push's receive time (partition key)
    device       TEXT    NOT NULL,
    cdr_id       TEXT    NOT NULL,
    push_id      BIGINT  NOT NULL,
    received_ms  BIGINT  NOT NULL,
    callid       TEXT    NOT NULL,
    visitor_id   TEXT,
    outer_id     TEXT,
    leg_type     TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    cpn          TEXT    NOT NULL,
    cdpn         TEXT    NOT NULL,
    -- Compared and sorted byte by byte as on SQLite, whatever the
    -- database's collation (a day's range is a string range).
    time_start   TEXT    COLLATE "C" NOT NULL, -- device local 'YYYY-MM-DD HH:MM:SS'
    time_end     TEXT    COLLATE "C" NOT NULL,
    start_utc    TEXT    NOT NULL,          -- RFC 3339 via the device time zone
    end_utc      TEXT    NOT NULL,
    duration     BIGINT  NOT NULL,
    trunk_number TEXT    NOT NULL,
    recording    TEXT,
    rec_codec    TEXT,
    mac          TEXT,
    clock_skewed BIGINT  NOT NULL DEFAULT 0, -- TimeEnd more than a day away from receive time
    content_hash TEXT    NOT NULL,
    PRIMARY KEY (received_at, id)
) PARTITION BY RANGE (received_at);
CREATE TABLE legs_default PARTITION OF legs DEFAULT;
CREATE INDEX legs_id ON legs (id);
CREATE INDEX legs_start ON legs (time_start);
CREATE INDEX legs_device_cdr ON legs (device, cdr_id);

-- The dedup key of legs across partitions, and where each leg's id comes
-- from: a leg is inserted here first (ON CONFLICT DO NOTHING), then in legs.
CREATE TABLE leg_ids (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device       TEXT    NOT NULL,
    cdr_id       TEXT    NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,      -- where its legs row is (partition)
    content_hash TEXT    NOT NULL,
    UNIQUE (device, cdr_id)
);

-- A re-push of a known Cdr id with different content: kept, never overwrites.
CREATE TABLE leg_conflicts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device       TEXT    NOT NULL,
    cdr_id       TEXT    NOT NULL,
    push_id      BIGINT  NOT NULL,
    leg_json     TEXT    NOT NULL
);

CREATE TABLE events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY, -- also the arrival sequence (one deriver at a time)
    received_at  TEXT    NOT NULL,          -- RFC 3339, as on SQLite
    received_ts  TIMESTAMPTZ NOT NULL,      -- the same instant (partition key)
    device       TEXT    NOT NULL,
    push_id      BIGINT  NOT NULL,
    received_ms  BIGINT  NOT NULL,
    attribute    TEXT    NOT NULL,
    attrs_json   TEXT    NOT NULL,
    mac          TEXT,
    parties_json TEXT    NOT NULL,
    PRIMARY KEY (received_ts, id)
) PARTITION BY RANGE (received_ts);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_id ON events (id);
CREATE INDEX events_received ON events (received_ms);

-- Every party of every event, so an event can be found by ext / visitor / outer id.
CREATE TABLE event_parties (
    event_id     BIGINT  NOT NULL,
    pos          BIGINT  NOT NULL,
    tag          TEXT    NOT NULL,
    party_id     TEXT,
    attrs_json   TEXT    NOT NULL,
    text         TEXT,
    PRIMARY KEY (event_id, pos)
);
CREATE INDEX event_parties_id ON event_parties (tag, party_id);

-- Stored pushes not derived yet. Collectors commit pushes concurrently, so
-- push ids do not commit in id order: a cursor "derived up to id N" would
-- skip a push with a smaller id that committed later. Each stored push is
-- queued here in the transaction that stores it, and taken off in the
-- transaction that derives it (ARCHITECTURE.md "Derivation").
CREATE TABLE derive_pending (
    push_id      BIGINT  PRIMARY KEY,
    received_at  TIMESTAMPTZ NOT NULL,
    received_ms  BIGINT  NOT NULL
);

-- Held pushes of a sender registered since, waiting to be derived first.
CREATE TABLE derive_queue (
    push_id  BIGINT PRIMARY KEY
);
