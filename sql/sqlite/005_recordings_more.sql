-- How many attempts of a recording ended in HTTP 404: when every attempt did,
-- the recording is `missing` (never on the device) rather than `failed`.
ALTER TABLE recordings ADD COLUMN not_found INTEGER NOT NULL DEFAULT 0;
