-- name: peak_concurrent
-- description: Peak number of simultaneous settled calls in each hour of each day (device local).
-- description: A call counts from its start up to (not including) its end; calls still running
-- description: from the day before count from midnight.
-- params: from, to
-- PostgreSQL's dialect of reports/peak_concurrent.sql: strftime and date() become
-- to_char and timestamp arithmetic, and the scalar max() of two texts a CASE. Text
-- compares and sorts byte-wise (COLLATE "C", only where it is compared: a column carrying
-- it would clash).
WITH RECURSIVE grid(h) AS (
    SELECT :from::text || ' 00'
    UNION ALL
    SELECT to_char((h || ':00:00')::timestamp + interval '1 hour', 'YYYY-MM-DD HH24')
    FROM grid WHERE h COLLATE "C" < :to::text || ' 23'
),
c AS (
    SELECT start_local AS s,
           CASE WHEN end_local COLLATE "C" > start_local THEN end_local ELSE start_local END AS e
    FROM calls
    WHERE start_local >= to_char(:from::text::date - 1, 'YYYY-MM-DD') AND start_local < :to_next::text
      AND (:devices::text = '[]' OR device IN (SELECT json_array_elements_text(:devices::text::json)))
      AND end_local >= :from::text
      AND last_change_ms <= :settled_before_ms::bigint
),
ev(t, d) AS (
    SELECT CASE WHEN s COLLATE "C" > :from::text || ' 00:00:00' THEN s
                ELSE :from::text || ' 00:00:00' END, 1 FROM c
    UNION ALL
    SELECT CASE WHEN e COLLATE "C" > :from::text || ' 00:00:00' THEN e
                ELSE :from::text || ' 00:00:00' END, -1 FROM c
),
run AS (
    -- Calls up after every event at time t (ends are exclusive, so a call ending
    -- when another starts does not overlap it).
    SELECT t, d, sum(d) OVER (ORDER BY t COLLATE "C") AS n FROM ev
),
hourly AS (
    -- The hour's peak, and by how much it changed the number of calls up.
    SELECT substr(t, 1, 13) AS h, max(n) AS peak, sum(d) AS delta FROM run GROUP BY 1
),
carried AS (
    -- Calls already up when the hour starts: every earlier hour's change.
    SELECT grid.h, hourly.peak,
           (sum(hourly.delta) OVER (ORDER BY grid.h COLLATE "C"
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))::bigint AS carry_in
    FROM grid LEFT JOIN hourly ON hourly.h = grid.h
)
SELECT substr(h, 1, 10) AS day,
       CAST(substr(h, 12, 2) AS INTEGER) AS hour,
       greatest(coalesce(peak, 0), coalesce(carry_in, 0)) AS peak_concurrent
FROM carried
ORDER BY h COLLATE "C";
