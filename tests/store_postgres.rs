//! The PostgreSQL archive's schema on a real PostgreSQL server: migrations
//! applied once however many collectors start at the same time, a schema
//! newer than the binary refused, monthly partitions made ahead and rows of
//! a month without one caught by the DEFAULT partition.
//!
//! The server comes from `CALLVAULT_TEST_PG` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`, which `.ci/run` sets); each
//! test makes its own database and drops it. Without the variable the tests
//! say they were skipped.

use std::sync::atomic::{AtomicUsize, Ordering};

use callvault::store::postgres::{self, migrate, partitions, PgError};
use chrono::{TimeZone, Utc};
use tokio_postgres::NoTls;

struct TestDb {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

/// A fresh, empty database on the test server, or `None` (and a line
/// saying so) when there is no server to test against.
async fn fresh_db(test: &str) -> Option<TestDb> {
    let Ok(base) = std::env::var("CALLVAULT_TEST_PG") else {
        eprintln!("skipped {test}: set CALLVAULT_TEST_PG to a PostgreSQL URL to run it");
        return None;
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "cv_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (admin, conn) = tokio_postgres::connect(&base, NoTls)
        .await
        .unwrap_or_else(|e| panic!("CALLVAULT_TEST_PG={base} does not answer: {e}"));
    tokio::spawn(conn);
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .expect("create the test database");
    }
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let head = match path.find("://").map(|s| s + 3) {
        Some(s) => match path[s..].find('/') {
            Some(slash) => &path[..s + slash],
            None => path,
        },
        None => panic!("CALLVAULT_TEST_PG is not a URL: {base}"),
    };
    Some(TestDb {
        admin,
        url: format!("{head}/{name}{query}"),
        name,
    })
}

impl TestDb {
    async fn drop(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .expect("drop the test database");
    }
}

#[tokio::test]
async fn schema_applied_once_however_many_collectors_start_together() {
    let Some(db) = fresh_db("schema_applied_once…").await else {
        return;
    };
    let pool = postgres::pool(&db.url).expect("pool");
    let e = migrate::check(&pool).await.expect_err("an empty database");
    assert!(matches!(e, PgError::SchemaOlder { found: 0, .. }), "{e}");

    // Three collectors starting at once, each with its own pool.
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move {
                let pool = postgres::pool(&url).expect("pool");
                migrate::apply(&pool).await
            })
        })
        .collect();
    let mut applied = Vec::new();
    for s in starts {
        applied.push(s.await.expect("task").expect("apply"));
    }
    applied.sort();
    assert_eq!(
        applied,
        [0, 0, migrate::MIGRATIONS.len()],
        "one collector applies every migration, the others find them done"
    );
    assert_eq!(
        migrate::check(&pool).await.expect("current"),
        migrate::known_version()
    );
    assert_eq!(migrate::apply(&pool).await.expect("again"), 0);

    let client = pool.get().await.expect("client");
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::TEXT FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "auth_nonces",
        "devices",
        "devices_version",
        "pushes_default",
        "schema_migrations",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} in {tables:?}");
    }
    drop(client);
    pool.close();
    db.drop().await;
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = fresh_db("a_schema_newer…").await else {
        return;
    };
    let pool = postgres::pool(&db.url).expect("pool");
    migrate::apply(&pool).await.expect("apply");
    let newer = migrate::known_version() as i32 + 1;
    pool.get()
        .await
        .expect("client")
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_a_newer_callvault')",
            &[&newer],
        )
        .await
        .expect("a newer migration");
    let e = migrate::check(&pool).await.expect_err("refused");
    assert!(matches!(e, PgError::SchemaNewer { .. }), "{e}");
    assert!(e.to_string().contains("upgrade callvault"), "{e}");
    let e = migrate::apply(&pool).await.expect_err("not migrated over");
    assert!(matches!(e, PgError::SchemaNewer { .. }), "{e}");
    pool.close();
    db.drop().await;
}

#[tokio::test]
async fn pushes_land_in_their_months_partition_or_the_default_one() {
    let Some(db) = fresh_db("pushes_land…").await else {
        return;
    };
    let pool = postgres::pool(&db.url).expect("pool");
    migrate::apply(&pool).await.expect("apply");
    let now = Utc.with_ymd_and_hms(2026, 12, 15, 8, 0, 0).unwrap();
    let (a, b) = tokio::join!(
        partitions::ensure(&pool, now, 2),
        partitions::ensure(&pool, now, 2)
    );
    let mut made = [a.expect("ensure"), b.expect("ensure")].concat();
    made.sort();
    let mut want: Vec<String> = partitions::PARTITIONED
        .iter()
        .flat_map(|t| ["202612", "202701", "202702"].map(|m| format!("{t}_{m}")))
        .collect();
    want.sort();
    assert_eq!(made, want, "each partition made once, across the year");

    let client = pool.get().await.expect("client");
    let insert = "INSERT INTO pushes (received_at, received_ms, source, method, path, body, outcome, status)
         VALUES ($1::TEXT::TIMESTAMPTZ, 0, '10.0.0.1', 'POST', '/', '\\x3c436472'::BYTEA, 'stored', 200)
         RETURNING tableoid::regclass::TEXT";
    let lands = |at: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(insert, &[&at]).await.expect("insert");
            row.get::<_, String>(0)
        }
    };
    assert_eq!(lands("2026-12-31T23:59:59Z").await, "pushes_202612");
    assert_eq!(lands("2027-01-01T00:00:00Z").await, "pushes_202701");
    assert_eq!(
        lands("2030-05-01T00:00:00Z").await,
        "pushes_default",
        "a month without a partition is kept, not refused"
    );
    assert_eq!(
        partitions::default_rows(&pool).await.expect("count"),
        [
            ("pushes".to_string(), 1),
            ("legs".into(), 0),
            ("events".into(), 0)
        ]
    );
    // That month's partition cannot be made while its row sits in DEFAULT:
    // said, not hidden.
    let later = Utc.with_ymd_and_hms(2030, 5, 2, 0, 0, 0).unwrap();
    let e = partitions::ensure(&pool, later, 0)
        .await
        .expect_err("blocked");
    assert!(matches!(e, PgError::Partition { .. }), "{e}");
    let ids: Vec<i64> = client
        .query("SELECT id FROM pushes ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 2, 3], "one id sequence across partitions");
    drop(client);
    pool.close();
    db.drop().await;
}

#[test]
fn every_libpq_sslmode_makes_a_pool_and_an_unknown_one_is_refused() {
    // The pool connects when first used: these need no server (the TLS
    // connections themselves: store_postgres_tls).
    for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        let url = format!("postgres://u:secret@127.0.0.1:1/db?sslmode={mode}");
        if let Err(e) = postgres::pool(&url) {
            panic!("sslmode={mode}: {e}");
        }
    }
    let e =
        postgres::pool("postgres://u:secret@127.0.0.1:1/db?sslmode=verify").expect_err("refused");
    let e = e.to_string();
    assert!(
        e.contains("sslmode=\"verify\"") && !e.contains("secret"),
        "{e}"
    );
}
