//! The PostgreSQL schema: `sql/postgres/*.sql`, applied in order, each in
//! the transaction that records it in `schema_migrations`.
//!
//! Many collectors start against one database, possibly at once: the one
//! that gets the advisory lock applies what is missing, the others wait for
//! it and then find nothing left to do. The lock is a transaction lock, so
//! a collector killed half-way releases it with its connection, and its
//! migration is rolled back (PostgreSQL's DDL is transactional). Every
//! collector checks the version at start: a database migrated further than
//! this binary knows is refused, not misread.

use deadpool_postgres::GenericClient;

use super::{PgError, Pool};

/// The migrations, in order; a migration's version is its position + 1.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_ingest",
        include_str!("../../../sql/postgres/001_ingest.sql"),
    ),
    (
        "002_tokens",
        include_str!("../../../sql/postgres/002_tokens.sql"),
    ),
    (
        "003_legs_events",
        include_str!("../../../sql/postgres/003_legs_events.sql"),
    ),
    (
        "004_calls_queues",
        include_str!("../../../sql/postgres/004_calls_queues.sql"),
    ),
    (
        "005_recordings",
        include_str!("../../../sql/postgres/005_recordings.sql"),
    ),
    (
        "006_token_names_sessions",
        include_str!("../../../sql/postgres/006_token_names_sessions.sql"),
    ),
    (
        "007_audit",
        include_str!("../../../sql/postgres/007_audit.sql"),
    ),
    (
        "008_calls_billed_number",
        include_str!("../../../sql/postgres/008_calls_billed_number.sql"),
    ),
    (
        "009_token_devices",
        include_str!("../../../sql/postgres/009_token_devices.sql"),
    ),
    (
        "010_retention",
        include_str!("../../../sql/postgres/010_retention.sql"),
    ),
    (
        "011_conversations",
        include_str!("../../../sql/postgres/011_conversations.sql"),
    ),
];

/// The advisory lock key of schema changes ("callvaul" in ASCII): one
/// collector at a time migrates or makes partitions.
pub(super) const SCHEMA_LOCK: i64 = 0x6361_6c6c_7661_756c;

/// The schema version this binary needs.
pub fn known_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the missing migrations; returns how many this call applied (0
/// when another collector already had, or was doing it).
pub async fn apply(pool: &Pool) -> Result<usize, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY,
             name        TEXT NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found = recorded_version(&tx).await?;
    if found > known_version() {
        return Err(PgError::SchemaNewer {
            found,
            known: known_version(),
        });
    }
    let mut applied = 0;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        if *name == "006_token_names_sessions" {
            // The file builds a unique index on token names: duplicates
            // are renamed (and logged) first.
            make_token_names_unique(&tx).await?;
        }
        tx.batch_execute(sql).await?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, name],
        )
        .await?;
        tracing::info!(migration = name, "applied PostgreSQL schema migration");
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// `store::tokens::unique_names` applied to the tokens table.
async fn make_token_names_unique(tx: &impl GenericClient) -> Result<(), PgError> {
    let tokens: Vec<(i64, String, String)> = tx
        .query("SELECT id, name, role FROM tokens ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (id, old, new) in crate::store::tokens::unique_names(&tokens) {
        tx.execute("UPDATE tokens SET name = $1 WHERE id = $2", &[&new, &id])
            .await?;
        crate::store::tokens::log_rename(&old, &new);
    }
    Ok(())
}

/// The archive's schema version, refused unless it is the one this binary
/// needs.
pub async fn check(pool: &Pool) -> Result<i64, PgError> {
    let client = pool.get().await?;
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let found = if exists {
        recorded_version(&client).await?
    } else {
        0
    };
    let known = known_version();
    match found.cmp(&known) {
        std::cmp::Ordering::Greater => Err(PgError::SchemaNewer { found, known }),
        std::cmp::Ordering::Less => Err(PgError::SchemaOlder { found, known }),
        std::cmp::Ordering::Equal => Ok(found),
    }
}

/// The highest migration `schema_migrations` records (0 when none).
async fn recorded_version(c: &impl GenericClient) -> Result<i64, PgError> {
    Ok(c.query_one(
        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
        &[],
    )
    .await?
    .get(0))
}
