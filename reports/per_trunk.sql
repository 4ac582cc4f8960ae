-- name: per_trunk
-- description: Per trunk number of settled calls: calls by direction, answered, missed,
-- description: talk and billable seconds. Internal calls (no trunk) are left out.
-- params: from, to
SELECT trunk,
       count(*) AS calls,
       count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE direction = 'callback') AS callback,
       sum(answered) AS answered,
       count(*) - sum(answered) AS missed,
       sum(talk_seconds) AS talk_seconds,
       sum(billable_seconds) AS billable_seconds
FROM calls
WHERE start_local >= :from AND start_local < :to_next
  AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
  AND last_change_ms <= :settled_before_ms
  AND trunk IS NOT NULL AND trunk <> ''
GROUP BY trunk
ORDER BY calls DESC, trunk;
