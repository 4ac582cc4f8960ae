-- name: recording_coverage
-- description: Per day, how many settled calls have a recording and where the recordings are:
-- description: fetched, pending, missing on the device, failed, or named by a CDR but never queued.
-- params: from, to
-- PostgreSQL's dialect of reports/recording_coverage.sql: sums cast back to bigint, the
-- percentage divided as a double and rounded by sqlite_round (sql/postgres/005).
WITH c AS (
    SELECT seq, id, substr(start_local, 1, 10) AS day, answered
    FROM calls
    WHERE start_local >= :from::text AND start_local < :to_next::text
      AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
      AND last_change_ms <= :settled_before_ms::bigint
),
cl AS MATERIALIZED (
    SELECT c.day, c.id, cl.leg_id
    FROM c
    JOIN call_legs cl ON cl.call_seq = c.seq
        -- The range's calls are a narrow band of seq (rows are numbered as
        -- calls are made): bounding the join to it keeps the planner from
        -- merge-joining with call_legs read from its start (every call ever).
        AND cl.call_seq BETWEEN (SELECT min(seq) FROM c) AND (SELECT max(seq) FROM c)
),
rec AS (
    SELECT cl.day, cl.id AS call_id, r.status
    FROM cl
    JOIN legs l ON l.id = cl.leg_id
        -- Their legs are a narrow band of id too (numbered as received): one
        -- range read of the legs' id index in every monthly partition, hashed,
        -- instead of a probe per leg into each partition.
        AND l.id BETWEEN (SELECT min(leg_id) FROM cl) AND (SELECT max(leg_id) FROM cl)
    LEFT JOIN recordings r ON r.leg_id = l.id
    WHERE l.recording IS NOT NULL AND l.recording <> ''
),
calls_day AS (
    SELECT day, count(*) AS calls, sum(answered)::bigint AS answered FROM c GROUP BY day
),
rec_day AS (
    SELECT day,
           count(DISTINCT call_id) AS calls_recorded,
           count(*) AS recordings,
           count(*) FILTER (WHERE status = 'done') AS fetched,
           count(*) FILTER (WHERE status IN ('pending', 'fetching')) AS pending,
           count(*) FILTER (WHERE status = 'missing') AS missing,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status IS NULL) AS untracked
    FROM rec GROUP BY day
)
SELECT d.day, d.calls, d.answered,
       coalesce(r.calls_recorded, 0) AS calls_recorded,
       coalesce(r.recordings, 0) AS recordings,
       coalesce(r.fetched, 0) AS fetched,
       coalesce(r.pending, 0) AS pending,
       coalesce(r.missing, 0) AS missing,
       coalesce(r.failed, 0) AS failed,
       coalesce(r.untracked, 0) AS untracked,
       sqlite_round(100.0::float8 * r.fetched / nullif(r.recordings, 0), 1) AS fetched_pct
FROM calls_day d LEFT JOIN rec_day r ON r.day = d.day
ORDER BY d.day COLLATE "C";
