-- The billed number of each call (docs/billing.md `billed_number`): the called
-- number of the call's first carrier-billed leg (OU, FW or CB) in leg order
-- (start time, then Cdr id). The calls stage writes it with the call; billing
-- then reads one row per call instead of searching each call's legs.
ALTER TABLE calls ADD COLUMN billed_number TEXT;
UPDATE calls SET billed_number = (
    SELECT l.cdpn FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
    WHERE cl.call_seq = calls.seq AND l.leg_type IN ('OU', 'FW', 'CB')
    ORDER BY l.time_start, l.cdr_id LIMIT 1);
