-- Who may put records in the archive (README "Who may push"). Devices
-- come from the config file's [[device]] tables and from this table
-- (`callvault devices add`). A push from a sender that matches neither is
-- stored raw with outcome 'held' and derives nothing until its sender is
-- registered.

CREATE TABLE devices (
    name         TEXT    PRIMARY KEY,
    mac          TEXT,                      -- normalised: upper case, ':' separated (or an IVR sn)
    ip           TEXT,                      -- the address it pushes from
    added_at     TEXT    NOT NULL,          -- RFC 3339 UTC
    removed_at   TEXT                       -- set by `devices remove`; NULL while registered
);

-- Bumped by every change to `devices`, so a running server notices one
-- with a single-row read.
CREATE TABLE devices_version (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    version  INTEGER NOT NULL
);
INSERT INTO devices_version (one, version) VALUES (1, 0);

-- The MAC (or sn) a push named, to match held pushes to a device later.
ALTER TABLE pushes ADD COLUMN sender_mac TEXT;
CREATE INDEX pushes_held ON pushes(sender_mac, source) WHERE outcome = 'held';

-- Held pushes released after the derivation cursor had passed them: the
-- deriver takes these first, in push order.
CREATE TABLE derive_queue (
    push_id  INTEGER PRIMARY KEY
);

-- Signed (nonce, timestamp) pairs already accepted from devices with
-- auth_nonce_single_use, so a replay is refused across restarts too.
CREATE TABLE auth_nonces (
    device      TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    timestamp   TEXT    NOT NULL,
    expires_ms  INTEGER NOT NULL,           -- unix ms after which the signature is stale anyway
    PRIMARY KEY (device, nonce, timestamp)
) WITHOUT ROWID;
