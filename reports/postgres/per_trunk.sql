-- name: per_trunk
-- description: Per trunk number of settled calls: calls by direction, answered, missed,
-- description: talk and billable seconds. Internal calls (no trunk) are left out.
-- params: from, to
-- PostgreSQL's dialect of reports/per_trunk.sql: sums cast back to bigint.
SELECT trunk,
       count(*) AS calls,
       count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE direction = 'callback') AS callback,
       sum(answered)::bigint AS answered,
       (count(*) - sum(answered))::bigint AS missed,
       sum(talk_seconds)::bigint AS talk_seconds,
       sum(billable_seconds)::bigint AS billable_seconds
FROM calls
WHERE start_local >= :from::text AND start_local < :to_next::text
  AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
  AND last_change_ms <= :settled_before_ms::bigint
  AND trunk IS NOT NULL AND trunk <> ''
GROUP BY trunk
ORDER BY calls DESC, trunk COLLATE "C";
