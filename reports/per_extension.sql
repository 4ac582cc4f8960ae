-- name: per_extension
-- description: Per extension involved in settled calls: calls (any direction), calls it answered
-- description: and their talk seconds, inbound calls it was part of that nobody answered.
-- params: from, to
WITH c AS (
    SELECT id, direction, answered, answered_by, talk_seconds, extensions
    FROM calls
    WHERE start_local >= :from AND start_local < :to_next
      AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
      AND last_change_ms <= :settled_before_ms
),
x AS (
    -- One row per (call, extension), also when an extension appears twice in a call.
    -- `+c.id`: on the plain column SQLite walks all calls in id order (index calls_id)
    -- to feed the DISTINCT, instead of the day's range of calls_start_id (10x slower).
    SELECT DISTINCT +c.id AS id, e.value AS extension, c.direction, c.answered, c.answered_by, c.talk_seconds
    FROM c, json_each(c.extensions) AS e
)
SELECT extension,
       count(*) AS calls,
       count(*) FILTER (WHERE direction = 'inbound') AS inbound,
       count(*) FILTER (WHERE direction = 'outbound') AS outbound,
       count(*) FILTER (WHERE direction = 'internal') AS internal,
       count(*) FILTER (WHERE answered_by = extension) AS answered,
       count(*) FILTER (WHERE direction = 'inbound' AND answered = 0) AS missed_inbound,
       coalesce(sum(talk_seconds) FILTER (WHERE answered_by = extension), 0) AS answered_talk_seconds
FROM x
GROUP BY extension
ORDER BY calls DESC, extension;
