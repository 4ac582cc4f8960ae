-- name: queues
-- description: Queue figures per day, device and waiting group (from queue visits): entered,
-- description: answered, abandoned, rejected, average speed of answer, longest wait, service
-- description: level (answered within [queues] sla_seconds / answered, and the inclusive variant over
-- description: answered + abandoned + unknown), abandon rate, short abandons (gave up within 5 s).
-- description: Each figure is defined in docs/queues.md.
-- params: from, to
SELECT substr(entered_local, 1, 10) AS day,
       device,
       grp AS "group",
       max(group_number) AS group_number,
       count(*) AS entered,
       count(*) FILTER (WHERE outcome = 'answered') AS answered,
       count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
       count(*) FILTER (WHERE outcome IN ('rejected_offline', 'rejected_full')) AS rejected,
       count(*) FILTER (WHERE outcome = 'rejected_offline') AS rejected_offline,
       count(*) FILTER (WHERE outcome = 'rejected_full') AS rejected_full,
       count(*) FILTER (WHERE outcome = 'unknown') AS unknown,
       count(*) FILTER (WHERE outcome = 'waiting') AS waiting,
       round(avg(wait_seconds) FILTER (WHERE outcome = 'answered'), 1) AS asa_seconds,
       round(avg(wait_seconds) FILTER (WHERE outcome IN ('answered', 'abandoned', 'unknown')), 1) AS avg_wait_seconds,
       round(max(wait_seconds) FILTER (WHERE outcome IN ('answered', 'abandoned', 'unknown')), 1) AS max_wait_seconds,
       round(1.0 * count(*) FILTER (WHERE outcome = 'answered' AND wait_seconds <= :sla_seconds)
             / nullif(count(*) FILTER (WHERE outcome = 'answered'), 0), 3) AS service_level,
       round(1.0 * count(*) FILTER (WHERE outcome = 'answered' AND wait_seconds <= :sla_seconds)
             / nullif(count(*) FILTER (WHERE outcome IN ('answered', 'abandoned', 'unknown')), 0), 3) AS service_level_inclusive,
       round(1.0 * count(*) FILTER (WHERE outcome = 'abandoned')
             / nullif(count(*) FILTER (WHERE outcome IN ('answered', 'abandoned')), 0), 3) AS abandon_rate,
       count(*) FILTER (WHERE outcome = 'abandoned' AND wait_seconds <= 5) AS short_abandons,
       max(entry_count) AS peak_queue_length
FROM queue_visits
WHERE entered_local >= :from AND entered_local < :to_next
  AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
GROUP BY 1, device, grp
ORDER BY 1, device, grp;
