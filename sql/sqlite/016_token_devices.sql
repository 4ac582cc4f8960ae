-- The devices a token may see (README "API tokens and sessions"): a JSON
-- array of device names as the archive names them ([[device]] name,
-- `callvault devices add --name`). '[]' (every token made before this
-- migration) means every device.
ALTER TABLE tokens ADD COLUMN devices TEXT NOT NULL DEFAULT '[]';
