-- name: recordings_missing
-- description: Calls whose CDR names a recording that the archive does not have: missing on the
-- description: device, failed to fetch, or never queued — one row per recording, with the reason.
-- params: from, to
-- PostgreSQL's dialect of reports/recordings_missing.sql: the same columns and values.
WITH c AS (
    SELECT seq, id, device, start_local, direction, caller, callee, answered_by
    FROM calls
    WHERE start_local >= :from::text AND start_local < :to_next::text
      AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
),
cl AS MATERIALIZED (
    SELECT c.*, cl.leg_id
    FROM c
    JOIN call_legs cl ON cl.call_seq = c.seq
        -- The range's calls are a narrow band of seq (rows are numbered as
        -- calls are made): bounding the join to it keeps the planner from
        -- merge-joining with call_legs read from its start (every call ever).
        AND cl.call_seq BETWEEN (SELECT min(seq) FROM c) AND (SELECT max(seq) FROM c)
)
SELECT c.id AS call_id,
       c.device,
       c.start_local AS start,
       c.direction,
       c.caller,
       c.callee,
       c.answered_by,
       l.cdr_id,
       l.recording AS path,
       l.rec_codec AS codec,
       coalesce(r.status, 'untracked') AS status,
       coalesce(r.attempts, 0) AS attempts,
       CASE
           WHEN r.id IS NULL THEN 'never queued for fetching (no recordings row for this leg)'
           WHEN r.last_error IS NOT NULL AND r.last_error <> '' THEN r.last_error
           WHEN r.status = 'missing' THEN 'not found on the device after the retry window'
           ELSE 'fetch failed'
       END AS reason,
       r.updated_at
FROM cl AS c
JOIN legs l ON l.id = c.leg_id
    -- Their legs are a narrow band of id too (numbered as received): one range
    -- read of the legs' id index in every monthly partition, hashed, instead
    -- of a probe per leg into each partition.
    AND l.id BETWEEN (SELECT min(leg_id) FROM cl) AND (SELECT max(leg_id) FROM cl)
LEFT JOIN recordings r ON r.leg_id = l.id
WHERE l.recording IS NOT NULL AND l.recording <> ''
  AND (r.id IS NULL OR r.status IN ('missing', 'failed'))
ORDER BY c.start_local COLLATE "C", c.id COLLATE "C", l.id;
