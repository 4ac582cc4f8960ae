-- Indexes for reports and exports (docs/reports.md "Performance"). Named 006 so that it can sit
-- after another branch's 005; the merger renumbers if needed.
--
-- Calls in (start_local, id) order: the billing export and the call search
-- both walk a range of days in that order. With only calls_start(start_local)
-- SQLite sorts every equal start by id in a temp b-tree; this index gives the
-- order directly (about 15 % off a 1 M-row billing export).
CREATE INDEX IF NOT EXISTS calls_start_id ON calls(start_local, id);
