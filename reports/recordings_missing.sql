-- name: recordings_missing
-- description: Calls whose CDR names a recording that the archive does not have: missing on the
-- description: device, failed to fetch, or never queued — one row per recording, with the reason.
-- params: from, to
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
FROM calls c
JOIN call_legs cl ON cl.call_seq = c.seq
JOIN legs l ON l.id = cl.leg_id
LEFT JOIN recordings r ON r.leg_id = l.id
WHERE c.start_local >= :from AND c.start_local < :to_next
  AND (:devices = '[]' OR c.device IN (SELECT value FROM json_each(:devices)))
  AND l.recording IS NOT NULL AND l.recording <> ''
  AND (r.id IS NULL OR r.status IN ('missing', 'failed'))
ORDER BY c.start_local, c.id, l.id;
