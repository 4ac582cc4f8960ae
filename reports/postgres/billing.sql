-- name: billing
-- description: One row per settled call for finance (the billing CSV). billed_number is the
-- description: called number of the call's first carrier-billed leg (OU, FW or CB).
-- params: from, to
-- PostgreSQL's dialect of reports/billing.sql: the same columns and values.
-- Text is ordered byte-wise (COLLATE "C"), as SQLite does.
SELECT c.id AS call_id,
       c.device,
       substr(c.start_local, 1, 10) AS date,
       c.start_local AS start,
       c.end_local AS "end",
       c.direction,
       c.caller,
       c.callee,
       (SELECT l.cdpn FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
        WHERE cl.call_seq = c.seq AND l.leg_type IN ('OU', 'FW', 'CB')
        ORDER BY l.time_start COLLATE "C", l.id LIMIT 1) AS billed_number,
       c.trunk,
       c.route,
       c.answered_by,
       (SELECT string_agg(e.value, ' ' ORDER BY e.n)
        FROM json_array_elements_text(c.extensions::json) WITH ORDINALITY AS e(value, n)) AS extensions,
       c.answered,
       c.forwarded_out,
       c.talk_seconds,
       c.billable_seconds,
       c.leg_count
FROM calls c
WHERE c.start_local >= :from::text AND c.start_local < :to_next::text
  AND c.last_change_ms <= :settled_before_ms::bigint
ORDER BY c.start_local COLLATE "C", c.id COLLATE "C";
