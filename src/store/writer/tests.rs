//! Tests of the group commit and the background step.

use std::time::Duration;

use rusqlite::Connection;

use super::background::StepResult;
use super::group_commit::PATIENT_BUSY_WAIT;
use super::*;

/// A writer on a new database file with `schema`, and the file's path.
fn table_db(dir: &std::path::Path, schema: &str) -> (Writer, std::path::PathBuf) {
    let path = dir.join("w.sqlite");
    let conn = Connection::open(&path).expect("open");
    conn.execute_batch(schema).expect("schema");
    (Writer::start(conn), path)
}

/// Jobs batched into one transaction: a failing job's own writes are
/// undone, the others' are committed, and each caller gets its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_is_rolled_back_alone_within_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = table_db(dir.path(), "CREATE TABLE t (v INTEGER)");
    let mut handles = Vec::new();
    for i in 0..50i64 {
        let w = w.clone();
        handles.push(tokio::spawn(async move {
            w.write(move |tx| {
                tx.execute("INSERT INTO t (v) VALUES (?1)", [i])?;
                if i % 10 == 3 {
                    return Err(StoreError::Corrupt("this job fails on purpose".into()));
                }
                Ok(i)
            })
            .await
        }));
    }
    let mut ok = 0;
    for (i, h) in handles.into_iter().enumerate() {
        match h.await.expect("join") {
            Ok(v) => {
                assert_eq!(v, i as i64);
                ok += 1;
            }
            Err(e) => assert!(matches!(e, StoreError::Corrupt(_)), "{e}"),
        }
    }
    assert_eq!(ok, 45);
    let check = Connection::open(&path).expect("reopen");
    let n: i64 = check
        .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        .expect("count");
    let bad: i64 = check
        .query_row("SELECT COUNT(*) FROM t WHERE v % 10 = 3", [], |r| r.get(0))
        .expect("count");
    assert_eq!((n, bad), (45, 0));
}

/// One-statement jobs run without a savepoint: a statement that fails
/// half-way (here on its second row) is undone whole by SQLite, the
/// batch's other jobs are committed, and the transaction goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_statement_is_undone_alone_without_a_savepoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = table_db(dir.path(), "CREATE TABLE t (v INTEGER CHECK (v % 10 != 3))");
    let mut handles = Vec::new();
    for i in 0..50i64 {
        let w = w.clone();
        handles.push(tokio::spawn(async move {
            // Rows i*10 + 1, then i*10 + 3 when i is odd (refused).
            let second = if i % 2 == 1 { 3 } else { 2 };
            w.write_statement(move |tx| {
                Ok(tx.execute(
                    "INSERT INTO t (v) VALUES (?1 * 10 + 1), (?1 * 10 + ?2)",
                    [i, second],
                )?)
            })
            .await
        }));
    }
    let mut ok = 0;
    for (i, h) in handles.into_iter().enumerate() {
        match h.await.expect("join") {
            Ok(rows) => {
                assert_eq!((i % 2, rows), (0, 2));
                ok += 1;
            }
            Err(e) => assert!(i % 2 == 1 && e.to_string().contains("CHECK"), "{i}: {e}"),
        }
    }
    assert_eq!(ok, 25);
    let check = Connection::open(&path).expect("reopen");
    let (n, odd): (i64, i64) = check
        .query_row(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE (v / 10) % 2 = 1) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((n, odd), (50, 0));
}

/// Copies the next row of `src` to `dst`.
const COPY_ONE: &str = "INSERT INTO dst SELECT v FROM src WHERE v > (SELECT COALESCE(MAX(v), 0) FROM dst) ORDER BY v LIMIT 1";

/// Copies a row of `src` not in `dst` yet: rows written by concurrent
/// tasks commit in any order, and one committed after a higher one was
/// copied is still copied (`COPY_ONE` would pass it by).
const COPY_ANY: &str =
    "INSERT INTO dst SELECT v FROM src WHERE v NOT IN (SELECT v FROM dst) ORDER BY v LIMIT 1";

/// A background step that copies rows of `src` to `dst`, one per item,
/// until its deadline.
fn copier() -> Background {
    copier_costing(Duration::ZERO, COPY_ONE)
}

/// Copies rows like `copier`, each taking at least `cost`.
fn copier_costing(cost: Duration, copy_one: &'static str) -> Background {
    Box::new(move |tx, deadline| {
        let mut done = 0;
        loop {
            let t = Instant::now();
            let n = tx.execute(copy_one, [])?;
            if n == 0 {
                return Ok(done);
            }
            while t.elapsed() < cost {
                std::hint::spin_loop();
            }
            done += n;
            if Instant::now() >= deadline {
                return Ok(done);
            }
        }
    })
}

fn copier_db(dir: &std::path::Path) -> (Writer, std::path::PathBuf) {
    let path = dir.join("w.sqlite");
    let conn = Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE src (v INTEGER PRIMARY KEY); CREATE TABLE dst (v INTEGER PRIMARY KEY)")
        .expect("schema");
    (Writer::start(conn), path)
}

fn count(path: &std::path::Path, table: &str) -> i64 {
    Connection::open(path)
        .expect("open")
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// The background step catches up on its own once jobs stop, and
/// `drain` returns only when it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_catches_up_when_idle_and_drain_waits_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    for i in 1..=200i64 {
        w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
            .await
            .expect("write");
    }
    w.set_background(copier()).expect("install");
    // Idle: no drain asked, the writer gets there by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&path, "dst") < 200 {
        assert!(
            Instant::now() < deadline,
            "background did not run while idle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 201..=300i64 {
        w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
            .await
            .expect("write");
    }
    w.drain().await.expect("drain");
    assert_eq!(count(&path, "dst"), 300);
}

/// Under jobs that never stop arriving (no idle gap) the background
/// step still progresses, in slices inside the jobs' transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_is_not_starved_by_a_sustained_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    w.write(|tx| {
        for i in 1..=100_000i64 {
            tx.execute("INSERT INTO src VALUES (?1)", [i])?;
        }
        Ok(())
    })
    .await
    .expect("seed");
    w.set_background(copier()).expect("install");
    // 8 writers back to back for 1 s: the writer is never idle for BG_IDLE.
    let stop = Instant::now() + Duration::from_secs(1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                w.write(|tx| Ok(tx.execute("CREATE TABLE IF NOT EXISTS noop (x)", [])?))
                    .await
                    .expect("write");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let copied = count(&path, "dst");
    assert!(copied > 0, "background made no progress during the burst");
    assert!(
        copied < 100_000,
        "background ran to the end: the burst was not sustained"
    );
}

/// A steady load that leaves the writer room is derived as it comes,
/// not left for after: the background's share follows the load
/// (`bg_pace`). Asserted as progress, not as a rate (the machine may be
/// busy): rows are copied while the load goes on, and all of them soon
/// after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_keeps_up_with_a_steady_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    // 1,000 rows/s need a fifth of the writer.
    w.set_background(slow_copier()).expect("install");
    let sent = steady_load(&w, 0, Duration::from_millis(1), 1500).await;
    let copied = count(&path, "dst");
    assert!(
        copied > 0,
        "nothing of {sent} rows copied during a steady load"
    );
    all_copied_before_a_deadline(&path, sent).await;
}

/// A backlog left when a steady load goes on (after a burst; the
/// queue tracker's replay at start) is worked off meanwhile, not only
/// once the load stops: the backlog gets slices of its own under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_worked_off_under_a_steady_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    w.write(|tx| {
        for i in 1..=1_000i64 {
            tx.execute("INSERT INTO src VALUES (?1)", [i])?;
        }
        Ok(())
    })
    .await
    .expect("seed");
    w.set_background(slow_copier()).expect("install");
    // 200 rows/s: 4 % of the writer, 6 % with the margin.
    let sent = 1_000 + steady_load(&w, 1_000, Duration::from_millis(5), 1500).await;
    let copied = count(&path, "dst");
    assert!(
        copied > 0,
        "nothing of {sent} rows copied during a steady load"
    );
    all_copied_before_a_deadline(&path, sent).await;
}

/// Waits until `dst` has all `sent` rows, at most a generous 30 s (the
/// load itself lasted 1.5 s), without asking for a drain.
async fn all_copied_before_a_deadline(path: &std::path::Path, sent: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let copied = count(path, "dst");
        if copied == sent {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{copied} of {sent} rows copied 30 s after the load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies rows not copied yet, 200 µs each (5,000/s, like deriving a push).
fn slow_copier() -> Background {
    copier_costing(Duration::from_micros(200), COPY_ANY)
}

/// Adds one row to `src` (after `first`) every `every` for `ms`, each
/// on its own task like a push; returns how many once all committed.
async fn steady_load(w: &Writer, first: i64, every: Duration, ms: u64) -> i64 {
    let mut tick = tokio::time::interval(every);
    let (start, mut sent, mut writes) = (Instant::now(), 0i64, Vec::new());
    while start.elapsed() < Duration::from_millis(ms) {
        tick.tick().await;
        sent += 1;
        let (w, v) = (w.clone(), first + sent);
        writes.push(tokio::spawn(async move {
            w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [v])?))
                .await
        }));
    }
    for t in writes {
        t.await.expect("join").expect("write");
    }
    sent
}

/// A background step that keeps failing (its table is gone, as with a
/// full disk it would keep failing) neither stops nor undoes the jobs
/// its slices ride with, is retried, and `drain` reports its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_background_step_does_not_stop_the_jobs() {
    jobs_run_beside_a_step_that(|tx| Ok(tx.execute("INSERT INTO missing VALUES (1)", [])?)).await;
}

/// A panic in the step (a bug in a derived stage) is that slice's
/// error: before, it ended the writer's thread, derivation stopped for
/// good and `drain` (so `import`) waited for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_background_step_is_an_error_not_the_end_of_the_writer() {
    jobs_run_beside_a_step_that(|_| panic!("a bug in a derived stage")).await;
}

/// Jobs keep committing beside a background step that writes, then
/// fails with `fail`; its writes are undone, it is retried, and `drain`
/// reports the failure.
async fn jobs_run_beside_a_step_that(fail: fn(&Tx) -> StepResult) {
    use std::sync::atomic::AtomicUsize;
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    w.set_background(Box::new(move |tx, _| {
        t.fetch_add(1, Ordering::Relaxed);
        tx.execute("INSERT INTO dst VALUES (0)", [])?;
        fail(tx)
    }))
    .expect("install");
    let stop = Instant::now() + Duration::from_millis(300);
    let mut i = 0i64;
    while Instant::now() < stop {
        i += 1;
        w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
            .await
            .expect("job committed");
    }
    assert_eq!(count(&path, "src"), i);
    assert_eq!(
        count(&path, "dst"),
        0,
        "the failed step's writes are undone"
    );
    assert!(tries.load(Ordering::Relaxed) >= 2, "the step was retried");
    assert!(w.drain().await.is_err(), "drain reports the step's error");
}

/// A write whose caller stops waiting right after queueing it (the
/// device hung up) is committed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_is_committed_when_its_caller_stops_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    for i in 1..=20i64 {
        let fut = w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?));
        // Poll once (the job is queued), then drop the future.
        let _ = tokio::time::timeout(Duration::ZERO, fut).await;
    }
    // A later write that is awaited comes after them in the queue.
    w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (100)", [])?))
        .await
        .expect("write");
    assert_eq!(count(&path, "src"), 21);
}

/// Another process holds the write lock for `hold` while a write
/// comes: the caller's thread is not blocked on it, the write is not
/// answered while the lock is held, and it is committed (not failed)
/// once the lock is let go.
async fn write_beside_a_lock_held_elsewhere(hold: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    let other = Connection::open(&path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let write = tokio::spawn({
        let w = w.clone();
        async move {
            w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (1)", [])?))
                .await
        }
    });
    // On a one-thread runtime a write that waited for the lock on the
    // caller's thread would stall the timer until the lock is let go (by
    // this very thread, below): the timer must fire before a thread that
    // waits for the lock would give up waiting.
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    assert!(
        t.elapsed() < hold + PATIENT_BUSY_WAIT,
        "the runtime thread was blocked for {:?}",
        t.elapsed()
    );
    assert!(!write.is_finished(), "answered while the lock was held");
    other.execute_batch("COMMIT").expect("unlock");
    let n = tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("write finished after the lock was released")
        .expect("join")
        .expect("the write is committed, not failed");
    assert_eq!(n, 1);
    assert_eq!(count(&path, "src"), 1);
}

/// The caller's thread leaves its job to the background thread instead
/// of waiting on the lock itself.
#[tokio::test(flavor = "current_thread")]
async fn write_lock_held_elsewhere_does_not_block_the_callers_thread() {
    write_beside_a_lock_held_elsewhere(Duration::from_millis(200)).await;
}

/// Held longer than the writer waits at a time (a `rebuild` replaying
/// queue visits in one transaction): it waits again, as long as it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_outlasts_a_long_lock_held_elsewhere() {
    write_beside_a_lock_held_elsewhere(PATIENT_BUSY_WAIT * 5 / 2).await;
}

/// A job that panics fails its own batch, not the writer: later writes
/// are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, path) = copier_db(dir.path());
    let w2 = w.clone();
    let panicked =
        tokio::spawn(async move { w2.write(|_tx| -> Result<()> { panic!("job bug") }).await })
            .await;
    assert!(panicked.is_err(), "the panic reaches the caller's task");
    w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (7)", [])?))
        .await
        .expect("write after the panic");
    assert_eq!(count(&path, "src"), 1);
}

/// A database that asks for durable commits gets the pipelined WAL
/// sync; one that does not (or is not in WAL mode) keeps its setting.
#[test]
fn wal_sync_is_pipelined_only_where_commits_are_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |name: &str, pragmas: &str| {
        let c = Connection::open(dir.path().join(name)).expect("open");
        c.execute_batch(pragmas).expect("pragmas");
        c
    };
    let level = |c: &Connection| -> i64 {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma")
    };
    let full = open(
        "a.sqlite",
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
    );
    assert!(pipelined_sync(&full).is_some());
    assert_eq!(level(&full), 1, "the writer commits with NORMAL");
    let normal = open(
        "b.sqlite",
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    );
    assert!(pipelined_sync(&normal).is_none());
    let rollback = open(
        "c.sqlite",
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;",
    );
    assert!(pipelined_sync(&rollback).is_none());
    assert_eq!(level(&rollback), 2);
}
