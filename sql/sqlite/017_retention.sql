-- The retention purge (docs/operations.md "Retention"). One row per kind of
-- purge that walks a table by id ('raw': pushes whose body was emptied):
-- where the next pass starts, so a daily pass reads only what is new, and
-- the newest receive time purged, which `callvault rebuild` reports.
-- A purged recording is a `recordings` row with status 'purged' and needs
-- no column: its `file` is cleared once the file is gone from storage.
CREATE TABLE retention_marks (
    kind       TEXT    PRIMARY KEY,
    last_id    INTEGER NOT NULL,
    newest_ms  INTEGER NOT NULL
);
