-- The devices a token may see, as sql/sqlite/016_token_devices.sql: a JSON
-- array of device names; '[]' (every token made before this migration)
-- means every device.
ALTER TABLE tokens ADD COLUMN devices TEXT NOT NULL DEFAULT '[]';
