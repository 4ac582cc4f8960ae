-- Ingest commits the raw push only; legs, events and the live stages
-- (calls, queue visits, recording schedule) are derived from committed
-- pushes right after, in push order, by the writer (src/ingest/derive.rs).
-- Keeping the commit path to one append-only row is what lets it keep up
-- with bursts: the derived tables' random-order keys are written
-- after the device already has its 200.

-- The query string of the request: the device may put the XML there
-- (ARCHITECTURE.md "Durability") and every pushed byte is kept raw.
ALTER TABLE pushes ADD COLUMN query TEXT;
-- Set when deriving this push failed (a bug or a constraint): the raw row
-- stays, the failure is counted and logged, and later pushes go on.
ALTER TABLE pushes ADD COLUMN derive_error TEXT;

-- The last push id whose legs and events are derived. One row.
CREATE TABLE derive_cursor (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    push_id  INTEGER NOT NULL
);
-- Archives made before this migration derived every push at once.
INSERT INTO derive_cursor (one, push_id) SELECT 1, COALESCE(MAX(id), 0) FROM pushes;
