//! `callvault migrate-store`: a simulated day archived on SQLite, copied
//! into a real PostgreSQL server by the real command, gives the same rows
//! (counts of every table, the calls with their legs); a second run copies
//! nothing and changes nothing. Skipped without `CALLVAULT_TEST_PG`.

use std::collections::BTreeMap;

use callvault::sim::push::{self, Pace, Target};
use callvault::sim::{generate, SimConfig};
use callvault::store::testing::TestDb;
use tokio_postgres::NoTls;

use crate::util::*;

/// The calls, keyed by their sorted Cdr ids: the same text on both sides.
fn calls_sqlite(db: &rusqlite::Connection) -> BTreeMap<String, String> {
    let mut st = db
        .prepare(
            "SELECT (SELECT group_concat(cdr_id, ' ') FROM (SELECT l.cdr_id FROM call_legs cl
                       JOIN legs l ON l.id = cl.leg_id WHERE cl.call_seq = c.seq ORDER BY l.cdr_id)),
                    c.id || '|' || c.direction || '|' || c.caller || '|' || c.callee || '|' ||
                    c.answered || '|' || COALESCE(c.answered_by, '-') || '|' ||
                    COALESCE(c.trunk, '-') || '|' || c.talk_seconds || '|' || c.billable_seconds ||
                    '|' || c.start_local || '|' || c.end_local
             FROM calls c",
        )
        .expect("calls");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("calls")
        .map(Result::unwrap)
        .collect()
}

async fn calls_postgres(url: &str) -> BTreeMap<String, String> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
        .query(
            "SELECT (SELECT string_agg(l.cdr_id, ' ' ORDER BY l.cdr_id) FROM call_legs cl
                       JOIN legs l ON l.id = cl.leg_id WHERE cl.call_seq = c.seq),
                    concat_ws('|', c.id, c.direction, c.caller, c.callee, c.answered,
                    COALESCE(c.answered_by, '-'), COALESCE(c.trunk, '-'), c.talk_seconds,
                    c.billable_seconds, c.start_local, c.end_local)
             FROM calls c",
            &[],
        )
        .await
        .expect("calls")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A table's line in migrate-store's output.
fn line(table: &str, rows: i64, now: i64) -> String {
    format!("{table:<16} {rows:>10} rows (copied now: {now})")
}

fn migrate(dir: &std::path::Path, url: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--data")
        .arg(dir)
        .args(["migrate-store", "--to", url])
        .output()
        .expect("run migrate-store");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "migrate-store failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_copied_to_postgres_has_the_same_rows_and_calls() {
    let Some(pg) = TestDb::fresh("a_simulated_day_copied_to_postgres…") else {
        return;
    };
    let ts = start().await;
    let plan = generate(&SimConfig {
        seed: 5,
        calls: 120,
        calls_per_hour: 400.0,
        ..SimConfig::default()
    });
    let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
    let sent = push::run(&target, &plan.pushes, Pace::Rate(0.0), |_, _| {}).await;
    assert_eq!((sent.refused, sent.failed), (0, 0));
    let before = calls_sqlite(&ts.db());
    assert!(before.len() > 50, "the day has calls: {}", before.len());
    let pushes = ts.count("SELECT COUNT(*) FROM pushes");
    let legs = ts.count("SELECT COUNT(*) FROM legs");
    ts.running.stop().await;

    let first = migrate(ts.dir.path(), pg.url());
    assert!(first.contains("every table's count matches"), "{first}");
    assert!(first.contains(&line("pushes", pushes, pushes)), "{first}");
    assert!(first.contains(&line("legs", legs, legs)), "{first}");
    assert_eq!(calls_postgres(pg.url()).await, before, "the same calls");

    // Again: nothing left to copy, nothing doubled.
    let second = migrate(ts.dir.path(), pg.url());
    assert!(second.contains(&line("pushes", pushes, 0)), "{second}");
    assert_eq!(calls_postgres(pg.url()).await, before);
}
