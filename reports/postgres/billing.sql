-- name: billing
-- description: One row per settled call for finance (the billing CSV). billed_number is the
-- description: called number of the call's first carrier-billed leg (OU, FW or CB), kept on the call.
-- params: from, to
-- PostgreSQL's dialect of reports/billing.sql: the same columns and values.
-- Text is ordered byte-wise (COLLATE "C"), as SQLite does. extensions is the
-- stored JSON array of strings joined with spaces: without a backslash no
-- value has an escape, so stripping the brackets and quotes is exact, and
-- much cheaper per row than parsing it (json_array_elements_text stays for
-- the rest). An empty array gives NULL, as group_concat of nothing does.
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
       CASE WHEN c.extensions = '[]' THEN NULL
            WHEN strpos(c.extensions, '\') = 0 AND c.extensions LIKE '["%"]'
                THEN replace(substr(c.extensions, 3, length(c.extensions) - 4), '","', ' ')
            ELSE (SELECT string_agg(e.value, ' ' ORDER BY e.n)
                  FROM json_array_elements_text(c.extensions::json) WITH ORDINALITY AS e(value, n))
       END AS extensions,
       c.answered,
       c.forwarded_out,
       c.talk_seconds,
       c.billable_seconds,
       c.leg_count
FROM calls c
WHERE c.start_local >= :from::text AND c.start_local < :to_next::text
  AND (:devices::text = '[]' OR c.device IN (SELECT json_array_elements_text(:devices::text::json)))
  AND c.last_change_ms <= :settled_before_ms::bigint
ORDER BY c.start_local COLLATE "C", c.id COLLATE "C";
