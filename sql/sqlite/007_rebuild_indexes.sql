-- Indexes for the calls hot path (rebuild of 10 M legs; the live
-- path runs the same queries for every leg).
--
-- Join candidates of a leg are the legs sharing a key whose spans overlap
-- it. The primary key (device, key, start_s) can only bound their start to
-- "within the last day", and a recycled visitor/outer id has a leg every few
-- minutes on a busy device: hundreds of index entries walked per leg. Legs
-- arrive when they end, so bounding the candidates' *end* instead leaves
-- only the few legs that ended around this one's span.
CREATE INDEX IF NOT EXISTS leg_keys_end ON leg_keys(device, key, end_s);
-- The end bound above assumes legs shorter than a day (calls::live::MAX_LEG_SECS);
-- the rare longer ones are found through this (normally empty) index, so the
-- candidates stay exactly what the start bound alone gives.
CREATE INDEX IF NOT EXISTS leg_keys_long ON leg_keys(device, key, start_s) WHERE end_s > start_s + 86400;
-- calls_start_id (006) starts with start_local: calls_start is redundant and
-- only costs a b-tree write on every call write.
DROP INDEX IF EXISTS calls_start;
