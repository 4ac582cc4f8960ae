-- name: daily_summary
-- description: Settled calls per device-local day and direction, plus an 'all' row per day:
-- description: calls, answered, missed, talk and billable seconds.
-- params: from, to
WITH c AS (
    SELECT substr(start_local, 1, 10) AS day, direction, answered, talk_seconds, billable_seconds
    FROM calls
    WHERE start_local >= :from AND start_local < :to_next
      AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
      AND last_change_ms <= :settled_before_ms
),
by_direction AS (
    SELECT day, direction, count(*) AS calls, sum(answered) AS answered,
           count(*) - sum(answered) AS missed, sum(talk_seconds) AS talk_seconds,
           round(sum(talk_seconds) / 60.0, 1) AS talk_minutes,
           sum(billable_seconds) AS billable_seconds
    FROM c GROUP BY day, direction
    UNION ALL
    SELECT day, 'all', count(*), sum(answered), count(*) - sum(answered), sum(talk_seconds),
           round(sum(talk_seconds) / 60.0, 1), sum(billable_seconds)
    FROM c GROUP BY day
)
SELECT * FROM by_direction ORDER BY day, direction = 'all', direction;
