-- The billed number of each call (docs/billing.md `billed_number`), as
-- sql/sqlite/015_calls_billed_number.sql: the called number of the call's
-- first carrier-billed leg (OU, FW or CB) in leg order (start time, then Cdr
-- id, byte-wise as the calls stage orders them).
ALTER TABLE calls ADD COLUMN billed_number TEXT COLLATE "C";
UPDATE calls SET billed_number = b.cdpn
FROM (
    SELECT DISTINCT ON (cl.call_seq) cl.call_seq, l.cdpn
    FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
    WHERE l.leg_type IN ('OU', 'FW', 'CB')
    ORDER BY cl.call_seq, l.time_start COLLATE "C", l.cdr_id COLLATE "C"
) b
WHERE b.call_seq = calls.seq;
