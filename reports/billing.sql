-- name: billing
-- description: One row per settled call for finance (the billing CSV). billed_number is the
-- description: called number of the call's first carrier-billed leg (OU, FW or CB), kept on the call.
-- params: from, to
SELECT c.id AS call_id,
       c.device,
       substr(c.start_local, 1, 10) AS date,
       c.start_local AS start,
       c.end_local AS "end",
       c.direction,
       c.caller,
       c.callee,
       c.billed_number,
       c.trunk,
       c.route,
       c.answered_by,
       (SELECT group_concat(value, ' ') FROM json_each(c.extensions)) AS extensions,
       c.answered,
       c.forwarded_out,
       c.talk_seconds,
       c.billable_seconds,
       c.leg_count
FROM calls c
WHERE c.start_local >= :from AND c.start_local < :to_next
  AND (:devices = '[]' OR c.device IN (SELECT value FROM json_each(:devices)))
  AND c.last_change_ms <= :settled_before_ms
ORDER BY c.start_local, c.id;
