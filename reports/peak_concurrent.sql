-- name: peak_concurrent
-- description: Peak number of simultaneous settled calls in each hour of each day (device local).
-- description: A call counts from its start up to (not including) its end; calls still running
-- description: from the day before count from midnight.
-- params: from, to
WITH RECURSIVE grid(h) AS (
    SELECT :from || ' 00'
    UNION ALL
    SELECT strftime('%Y-%m-%d %H', h || ':00:00', '+1 hour') FROM grid WHERE h < :to || ' 23'
),
c AS (
    SELECT start_local AS s, max(end_local, start_local) AS e
    FROM calls
    WHERE start_local >= date(:from, '-1 day') AND start_local < :to_next
      AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
      AND end_local >= :from
      AND last_change_ms <= :settled_before_ms
),
ev(t, d) AS (
    SELECT max(s, :from || ' 00:00:00'), 1 FROM c
    UNION ALL
    SELECT max(e, :from || ' 00:00:00'), -1 FROM c
),
run AS (
    -- Calls up after every event at time t (ends are exclusive, so a call ending
    -- when another starts does not overlap it).
    SELECT t, d, sum(d) OVER (ORDER BY t) AS n FROM ev
),
hourly AS (
    -- The hour's peak, and by how much it changed the number of calls up.
    SELECT substr(t, 1, 13) AS h, max(n) AS peak, sum(d) AS delta FROM run GROUP BY 1
),
carried AS (
    -- Calls already up when the hour starts: every earlier hour's change.
    SELECT grid.h, hourly.peak,
           sum(hourly.delta) OVER (ORDER BY grid.h
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS carry_in
    FROM grid LEFT JOIN hourly ON hourly.h = grid.h
)
SELECT substr(h, 1, 10) AS day,
       CAST(substr(h, 12, 2) AS INTEGER) AS hour,
       max(coalesce(peak, 0), coalesce(carry_in, 0)) AS peak_concurrent
FROM carried
ORDER BY h;
