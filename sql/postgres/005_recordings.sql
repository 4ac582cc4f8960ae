-- Recording fetch jobs and archived recordings on PostgreSQL: the same
-- table as on SQLite (sql/sqlite/004, 005, 011). Any collector's fetch
-- worker claims due rows with FOR UPDATE SKIP LOCKED, so each recording is
-- fetched by one collector at a time (docs/recordings.md).
--
-- A claim is a lease: claimed_by names the collector process that took the
-- row and lease_until_ms (unix ms) when the claim goes stale. A row left
-- `fetching` by a collector that died is taken back (to `pending`) only once
-- its lease is past, so a starting collector never takes back a row another
-- live collector is downloading (src/store/postgres/recordings.rs).

CREATE TABLE recordings (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leg_id           BIGINT  NOT NULL UNIQUE, -- leg_ids.id
    device           TEXT    NOT NULL,
    path             TEXT    NOT NULL,      -- the CDR <Recording> value, 'YYYYMMDD/<file>'
    codec            TEXT,
    status           TEXT    NOT NULL,      -- pending | fetching | done | missing | failed
    attempts         BIGINT  NOT NULL DEFAULT 0,
    due_ms           BIGINT  NOT NULL,
    last_error       TEXT,
    file             TEXT,
    originals        TEXT,
    bytes            BIGINT,
    duration_seconds DOUBLE PRECISION,
    sha256           TEXT,
    updated_at       TEXT    NOT NULL,
    not_found        BIGINT  NOT NULL DEFAULT 0,
    claimed_by       TEXT,                  -- the claiming collector while `fetching`
    lease_until_ms   BIGINT                 -- unix ms: the claim is stale after this
);
CREATE INDEX recordings_due ON recordings (status, due_ms);
CREATE INDEX recordings_device_due ON recordings (status, device, due_ms);

-- round(x, n) as SQLite's round() does it (the bundled SQLite, 3.50): the
-- exact binary value of the double rounded half away from zero, so 0.15
-- (0.1499999…) gives 0.1 where PostgreSQL's round(0.15::numeric, 1) gives
-- 0.2. The reports of reports/postgres/ round with it, so that their
-- figures equal those of reports/*.sql on SQLite (ARCHITECTURE.md
-- "src/reports/"). The double's exact value comes from its bits: mantissa
-- × 2^exponent, divided out at 100 decimal places (exact for every double
-- above 1e-45; SQLite itself keeps 26 significant digits).
CREATE FUNCTION sqlite_round(x DOUBLE PRECISION, n INTEGER) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN x = 0 OR x = 'NaN' OR abs(x) > 4503599627370496 THEN x
        ELSE round(
            CASE WHEN bits < 0 THEN -1 ELSE 1 END
            * CASE WHEN e = 0 THEN m ELSE m + 4503599627370496 END::numeric(400, 100)
            / 2::numeric ^ (CASE WHEN e = 0 THEN 1074 ELSE 1075 - e END),
            greatest(n, 0))::double precision
        END
    FROM (SELECT bits, ((bits >> 52) & 2047)::integer AS e, bits & 4503599627370495 AS m
          FROM (SELECT ('x' || encode(float8send(x), 'hex'))::bit(64)::bigint AS bits) AS b) AS p
$fn$;
