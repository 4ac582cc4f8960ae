-- The call tables in time order (rebuild cost linear in the number
-- of legs). Named 009: 008 belongs to another branch.
--
-- Until now the calls stage addressed a call by its id, a hash of the anchor
-- leg: `calls` by its primary key and `call_legs` through an index on
-- `call_id`. Every leg replayed or ingested read and wrote random pages of
-- those b-trees (and of the alias index), so once they outgrew the page
-- cache each leg cost random I/O and each commit rewrote most of their
-- pages: a rebuild of 2x the legs took 2.7x the time.
--
-- Now a call row is keyed by `seq`, assigned when the call's first leg
-- arrives (merged calls keep the oldest seq), and `call_legs` point at it by
-- seq. The calls stage reads and writes only by seq and leg id, both in
-- arrival order, so its writes land on the last pages of each b-tree.
-- `leg_keys` is regrouped by time the same way (below).
--
-- The hashed ids stay what users see (API, redirects, exports). Their
-- unique indexes `calls_id` and `call_legs_alias` serve only lookups by
-- those ids; they are created by store::calls::create_lookup_indexes (after
-- the migrations at every open, and at the end of a rebuild, which drops
-- them while it replays), so they are not created here.

CREATE TABLE calls_new (
    seq              INTEGER PRIMARY KEY,   -- internal: order of creation; never shown
    id               TEXT    NOT NULL,      -- derived from the anchor leg: stable, shown to users
    device           TEXT    NOT NULL,
    direction        TEXT    NOT NULL,      -- inbound | outbound | internal | callback
    forwarded_out    INTEGER NOT NULL,
    caller           TEXT    NOT NULL,
    callee           TEXT    NOT NULL,
    extensions       TEXT    NOT NULL,      -- JSON array, in order
    answered_by      TEXT,
    trunk            TEXT,
    route            TEXT    NOT NULL,
    start_local      TEXT    NOT NULL,      -- device local 'YYYY-MM-DD HH:MM:SS'
    end_local        TEXT    NOT NULL,
    talk_seconds     INTEGER NOT NULL,
    billable_seconds INTEGER NOT NULL,
    answered         INTEGER NOT NULL,
    leg_count        INTEGER NOT NULL,
    last_change_ms   INTEGER NOT NULL       -- newest receive time of its legs: settles after settle_seconds
);
-- The old rowid is the order in which calls were created (a call was
-- updated in place, a new one appended), which is what seq means.
INSERT INTO calls_new
SELECT rowid, id, device, direction, forwarded_out, caller, callee, extensions, answered_by, trunk,
       route, start_local, end_local, talk_seconds, billable_seconds, answered, leg_count, last_change_ms
FROM calls ORDER BY rowid;

-- Which call each leg is in. leg_call_id is the id the call would have had
-- with this leg as anchor: any id ever shown resolves through it.
CREATE TABLE call_legs_new (
    leg_id      INTEGER PRIMARY KEY REFERENCES legs(id),
    call_seq    INTEGER NOT NULL,           -- calls.seq
    leg_call_id TEXT    NOT NULL
);
-- Joined with the old table, whose primary key indexes the id (a join with
-- calls_new would make SQLite build a temporary index in memory). A link to
-- a call that does not exist could not be shown; the live path never leaves
-- one, so the join drops nothing on a consistent archive.
INSERT INTO call_legs_new
SELECT cl.leg_id, c.rowid, cl.leg_call_id
FROM call_legs cl JOIN calls c ON c.id = cl.call_id
ORDER BY cl.leg_id;

DROP TABLE call_legs;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
ALTER TABLE call_legs_new RENAME TO call_legs;

-- The call search and the billing export walk calls in (start_local, id)
-- order (006). Start times grow with arrival, so this index is written near
-- its end too.
CREATE INDEX calls_start_id ON calls(start_local, id);
-- The legs of a call, for the calls stage (merging) and the detail views.
CREATE INDEX call_legs_call ON call_legs(call_seq);

-- Join keys, by time first. The primary key (device, key, start_s) and
-- leg_keys_end (device, key, end_s) put each key's entries together, so a
-- batch of legs inserted at the tails of a few thousand keys scattered over
-- the whole b-tree: the pages written per batch grew with the archive (on
-- 2 M legs from 900 to 3,100 per tree and 50 k legs). Here the entries are
-- grouped by the day their leg ends (end_s / 86400, the bucket
-- store::calls::KEY_DAY_SECS), then by key and end: new legs end now, so
-- they all go into the current day's part of one b-tree, and finding a
-- key's legs that end in a window is one range per day the window covers.
CREATE TABLE leg_keys_new (
    device    TEXT    NOT NULL,
    end_day   INTEGER NOT NULL,   -- end_s / 86400
    key       TEXT    NOT NULL,
    end_s     INTEGER NOT NULL,
    start_s   INTEGER NOT NULL,
    leg_id    INTEGER NOT NULL,
    PRIMARY KEY (device, end_day, key, end_s, leg_id)
) WITHOUT ROWID;
INSERT INTO leg_keys_new
SELECT device, end_s / 86400, key, end_s, start_s, leg_id FROM leg_keys
ORDER BY device, end_s / 86400, key, end_s, leg_id;
DROP TABLE leg_keys;
ALTER TABLE leg_keys_new RENAME TO leg_keys;
-- As in 007: the rare legs longer than a day, which can end after the
-- window that the day buckets are searched in (normally empty).
CREATE INDEX leg_keys_long ON leg_keys(device, key, start_s) WHERE end_s > start_s + 86400;
