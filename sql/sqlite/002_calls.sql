-- Logical calls derived from legs (docs/calls.md). Everything here can be
-- recomputed from `legs` by `callvault rebuild`.

CREATE TABLE calls (
    id               TEXT    PRIMARY KEY,   -- derived from the anchor leg: stable
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
CREATE INDEX calls_start ON calls(start_local);

-- Which call each leg is in. leg_call_id is the id the call would have had
-- with this leg as anchor: any id ever shown resolves through it.
CREATE TABLE call_legs (
    leg_id      INTEGER PRIMARY KEY REFERENCES legs(id),
    call_id     TEXT    NOT NULL,
    leg_call_id TEXT    NOT NULL
);
CREATE INDEX call_legs_call ON call_legs(call_id);
CREATE UNIQUE INDEX call_legs_alias ON call_legs(leg_call_id);

-- Join keys of legs (visitor id, outer id, callback callid, internal pair),
-- with the leg's span in device-local seconds, to find join candidates.
CREATE TABLE leg_keys (
    device    TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    start_s   INTEGER NOT NULL,
    end_s     INTEGER NOT NULL,
    leg_id    INTEGER NOT NULL,
    PRIMARY KEY (device, key, start_s, leg_id)
) WITHOUT ROWID;
