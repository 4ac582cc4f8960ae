-- name: per_extension
-- description: Per extension involved in settled calls: calls (any direction), calls it answered
-- description: and their talk seconds, inbound calls it was part of that nobody answered.
-- params: from, to
WITH c AS (
    SELECT id, direction, answered, answered_by, talk_seconds, extensions
    FROM calls
    WHERE start_local >= :from AND start_local < :to_next
      AND last_change_ms <= :settled_before_ms
),
x AS (
    SELECT DISTINCT c.id AS id, e.value AS extension
    FROM c, json_each(c.extensions) AS e
)
SELECT x.extension,
       count(*) AS calls,
       count(*) FILTER (WHERE c.direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE c.direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE c.direction = 'internal') AS internal,
       count(*) FILTER (WHERE c.answered_by = x.extension) AS answered,
       count(*) FILTER (WHERE c.direction = 'inbound' AND c.answered = 0) AS missed_inbound,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.answered_by = x.extension), 0) AS answered_talk_seconds
FROM x JOIN c ON c.id = x.id
GROUP BY x.extension
ORDER BY calls DESC, x.extension;
