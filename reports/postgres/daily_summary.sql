-- name: daily_summary
-- description: Settled calls per device-local day and direction, plus an 'all' row per day:
-- description: calls, answered, missed, talk and billable seconds.
-- params: from, to
-- PostgreSQL's dialect of reports/daily_summary.sql: sums of bigint are numeric on
-- PostgreSQL, so they are cast back to bigint (integers, as on SQLite); minutes are
-- divided as doubles and rounded by sqlite_round (sql/postgres/005), as SQLite does.
WITH c AS (
    SELECT substr(start_local, 1, 10) AS day, direction, answered, talk_seconds, billable_seconds
    FROM calls
    WHERE start_local >= :from::text AND start_local < :to_next::text
      AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
      AND last_change_ms <= :settled_before_ms::bigint
),
by_direction AS (
    SELECT day, direction, count(*) AS calls, sum(answered)::bigint AS answered,
           (count(*) - sum(answered))::bigint AS missed, sum(talk_seconds)::bigint AS talk_seconds,
           sqlite_round(sum(talk_seconds)::float8 / 60, 1) AS talk_minutes,
           sum(billable_seconds)::bigint AS billable_seconds
    FROM c GROUP BY day, direction
    UNION ALL
    SELECT day, 'all', count(*), sum(answered)::bigint, (count(*) - sum(answered))::bigint,
           sum(talk_seconds)::bigint, sqlite_round(sum(talk_seconds)::float8 / 60, 1),
           sum(billable_seconds)::bigint
    FROM c GROUP BY day
)
SELECT * FROM by_direction
ORDER BY day COLLATE "C", direction = 'all', direction COLLATE "C";
