-- name: billing_legs
-- description: One row per carrier-billed leg (OU, FW, CB) of settled calls: the billing CSV with
-- description: --per-leg. Days are those of the call's start, so totals match the per-call CSV.
-- params: from, to
SELECT c.id AS call_id,
       l.device,
       l.cdr_id,
       substr(c.start_local, 1, 10) AS date,
       l.time_start AS start,
       l.time_end AS "end",
       c.direction,
       l.leg_type,
       l.route,
       l.cpn AS caller,
       l.cdpn AS callee,
       l.cdpn AS billed_number,
       l.trunk_number AS trunk,
       c.answered_by,
       l.duration AS billable_seconds
FROM calls c
JOIN call_legs cl ON cl.call_seq = c.seq
JOIN legs l ON l.id = cl.leg_id
WHERE c.start_local >= :from AND c.start_local < :to_next
  AND (:devices = '[]' OR c.device IN (SELECT value FROM json_each(:devices)))
  AND c.last_change_ms <= :settled_before_ms
  AND l.leg_type IN ('OU', 'FW', 'CB')
ORDER BY c.start_local, c.id, l.time_start, l.id;
