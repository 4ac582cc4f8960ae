-- Queue visits inferred from QUEUE/RING/BYE events (docs/queues.md). Derived:
-- `callvault rebuild` recomputes them from `events`.
CREATE TABLE queue_visits (
    key           TEXT    PRIMARY KEY,      -- '<device>:<entry event seq>'
    device        TEXT    NOT NULL,
    grp           TEXT    NOT NULL,         -- the waiting group id of the QUEUE event
    group_number  TEXT,                     -- the group's number, once learned from an abandon BYE
    party_kind    TEXT    NOT NULL,         -- ext | visitor
    party_id      TEXT    NOT NULL,
    caller        TEXT,                     -- visitor 'from'
    callid        TEXT,
    entered_at    TEXT    NOT NULL,         -- RFC 3339 UTC (receive time of the QUEUE event)
    entered_local TEXT    NOT NULL,         -- device local 'YYYY-MM-DD HH:MM:SS'
    entry_count   INTEGER NOT NULL,         -- queue length the device reported at entry
    outcome       TEXT    NOT NULL,         -- waiting | answered | abandoned | rejected_offline | rejected_full | unknown
    agent         TEXT,
    ended_at      TEXT,
    wait_seconds  REAL,
    call_id       TEXT                      -- the logical call, when one matched (visitor id + time)
);
CREATE INDEX queue_visits_entered ON queue_visits(entered_local);
