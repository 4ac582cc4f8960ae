-- Indexes for reports and the billing export (issue 7).
-- Billable legs of a call, in time order: billing's billed_number lookup and
-- the per-leg export walk call_legs(call_id) then legs by primary key; this
-- lets the recordings report find legs that name a recording without a scan.
CREATE INDEX IF NOT EXISTS legs_recording ON legs(id) WHERE recording IS NOT NULL AND recording <> '';
