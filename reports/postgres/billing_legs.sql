-- name: billing_legs
-- description: One row per carrier-billed leg (OU, FW, CB) of settled calls: the billing CSV with
-- description: --per-leg. Days are those of the call's start, so totals match the per-call CSV.
-- params: from, to
-- PostgreSQL's dialect of reports/billing_legs.sql: the same columns and values.
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
WHERE c.start_local >= :from::text AND c.start_local < :to_next::text
  AND (:devices::text = '[]' OR c.device IN (SELECT json_array_elements_text(:devices::text::json)))
  AND c.last_change_ms <= :settled_before_ms::bigint
  AND l.leg_type IN ('OU', 'FW', 'CB')
ORDER BY c.start_local COLLATE "C", c.id COLLATE "C", l.time_start COLLATE "C", l.id;
