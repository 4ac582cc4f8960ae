-- name: per_extension
-- description: Per extension involved in settled calls: calls (any direction), calls it answered
-- description: and their talk seconds, inbound calls it was part of that nobody answered.
-- params: from, to
-- PostgreSQL's dialect of reports/per_extension.sql: json_each becomes
-- json_array_elements_text; extensions order byte-wise (COLLATE "C") as on SQLite.
WITH c AS (
    SELECT id, direction, answered, answered_by, talk_seconds, extensions
    FROM calls
    WHERE start_local >= :from::text AND start_local < :to_next::text
      AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
      AND last_change_ms <= :settled_before_ms::bigint
),
x AS (
    -- One row per (call, extension), also when an extension appears twice in a call.
    SELECT DISTINCT c.id, e.value AS extension, c.direction, c.answered, c.answered_by, c.talk_seconds
    FROM c, json_array_elements_text(c.extensions::json) AS e(value)
)
SELECT extension,
       count(*) AS calls,
       count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE direction = 'internal') AS internal,
       count(*) FILTER (WHERE answered_by = extension) AS answered,
       count(*) FILTER (WHERE direction = 'inbound' AND answered = 0) AS missed_inbound,
       coalesce(sum(talk_seconds) FILTER (WHERE answered_by = extension), 0)::bigint AS answered_talk_seconds
FROM x
GROUP BY extension
ORDER BY calls DESC, extension COLLATE "C";
