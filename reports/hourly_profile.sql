-- name: hourly_profile
-- description: Settled calls by hour of the day (0-23, device local, all days of the range
-- description: added up; hours without calls show zeros): calls by direction, answered, missed, talk.
-- params: from, to
WITH RECURSIVE hours(hour) AS (
    SELECT 0 UNION ALL SELECT hour + 1 FROM hours WHERE hour < 23
),
c AS (
    SELECT CAST(substr(start_local, 12, 2) AS INTEGER) AS hour, direction, answered, talk_seconds
    FROM calls
    WHERE start_local >= :from AND start_local < :to_next
      AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
      AND last_change_ms <= :settled_before_ms
),
agg AS (
    SELECT hour, count(*) AS calls,
           count(*) FILTER (WHERE direction = 'inbound') AS inbound,
           count(*) FILTER (WHERE direction = 'outbound') AS outbound,
           count(*) FILTER (WHERE direction = 'internal') AS internal,
           count(*) FILTER (WHERE direction = 'callback') AS callback,
           sum(answered) AS answered, sum(talk_seconds) AS talk_seconds
    FROM c GROUP BY hour
)
SELECT h.hour,
       coalesce(a.calls, 0) AS calls,
       coalesce(a.inbound, 0) AS inbound,
       coalesce(a.outbound, 0) AS outbound,
       coalesce(a.internal, 0) AS internal,
       coalesce(a.callback, 0) AS callback,
       coalesce(a.answered, 0) AS answered,
       coalesce(a.calls - a.answered, 0) AS missed,
       coalesce(a.talk_seconds, 0) AS talk_seconds
FROM hours h LEFT JOIN agg a ON a.hour = h.hour
ORDER BY h.hour;
