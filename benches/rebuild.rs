//! Benchmark of `callvault rebuild`, which recomputes every derived table
//! from the stored legs (ARCHITECTURE.md "Derivation"): `cargo bench --bench rebuild`.
//!
//! For each archive size N (legs) it
//! * generates (once; cached) an archive of N legs in a real SQLite file
//!   (WAL, the product's schema and migrations, legs stored with
//!   `store::legs::insert`): simulated traffic of all scenarios
//!   (`callvault::sim::generate`), 10 k calls per simulated day, one plan at a
//!   time (seed = day), so memory stays flat whatever N is;
//! * rebuilds the calls in a fresh child process through
//!   `calls::live::rebuild_store`, the function `callvault rebuild` runs, and
//!   reports seconds, legs/s and the child's peak RSS (VmHWM);
//! * checks linearity: time(2N) / time(N) must stay <= 2.2 for every pair of
//!   sizes (scaled by the size ratio), and peak RSS must not grow with N.
//!
//! Environment:
//! * `REBUILD_BENCH_LEGS=1000000,2000000,10000000` — the sizes (default
//!   `1000000,2000000`); `k`/`M` suffixes work (`1M,2M,10M`).
//! * `REBUILD_BENCH_RUNS=3` — rebuilds per size; the best is reported (the
//!   machine is shared, timings are noisy).
//! * `REBUILD_BENCH_BATCH=N` — legs per commit, to try other values than
//!   the product's `calls::live::REBUILD_BATCH_LEGS` (the default).
//! * `REBUILD_BENCH_DIR=path` — where generated archives are cached (default
//!   `target/bench-data/`), one file per size and generator version; delete
//!   them to regenerate.
//!
//! Generation time is printed but is not the measured figure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use callvault::config::Config;
use callvault::ingest::om::parse_body;
use callvault::model::Message;
use callvault::sim::{generate, PushKind, SimConfig};
use callvault::store::{legs, pushes, Store, Tx};
use chrono::{Duration, NaiveDate};

mod common;
use common::vm_hwm_kib;

/// Bump when the generated archive changes shape (invalidates the cache).
const GENERATOR_VERSION: u32 = 1;
/// Calls per simulated day (one plan); about 2.3 legs each.
const CALLS_PER_DAY: usize = 10_000;
const DEVICE: &str = "om";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        return child(&args[pos + 1..]);
    }
    let sizes = sizes();
    let runs: usize = std::env::var("REBUILD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = std::env::var_os("REBUILD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));

    let mut rows: Vec<Row> = Vec::new();
    for &n in &sizes {
        let db = dir.join(format!("rebuild-v{GENERATOR_VERSION}-{n}.sqlite"));
        if !db.exists() {
            let t = Instant::now();
            let tmp = db.with_extension("partial");
            remove_db(&tmp);
            generate_archive(&tmp, n).unwrap_or_else(|e| panic!("generating {n} legs: {e}"));
            // Renamed only when complete, so an interrupted run regenerates.
            std::fs::rename(&tmp, &db).unwrap_or_else(|e| panic!("{e}"));
            println!(
                "generated {n} legs in {:.1} s ({:.0} legs/s): {}",
                t.elapsed().as_secs_f64(),
                n as f64 / t.elapsed().as_secs_f64(),
                db.display()
            );
        }
        let mut best: Option<Measure> = None;
        for run in 0..runs {
            let m = run_child(&db);
            println!(
                "  {n} legs, run {}: {:.2} s, {:.0} legs/s, peak RSS {:.1} MiB, {} calls",
                run + 1,
                m.secs,
                m.legs as f64 / m.secs,
                m.hwm_kib as f64 / 1024.0,
                m.calls
            );
            assert_eq!(m.legs, n as u64, "rebuild replayed every leg");
            if best.as_ref().is_none_or(|b| m.secs < b.secs) {
                best = Some(m);
            }
        }
        if let Some(m) = best {
            rows.push(Row { n, m });
        }
    }

    println!(
        "\n{:>12} {:>10} {:>12} {:>10} {:>12}   (best of {runs})",
        "legs", "seconds", "legs/s", "peak MiB", "calls"
    );
    for r in &rows {
        println!(
            "{:>12} {:>10.2} {:>12.0} {:>10.1} {:>12}",
            r.n,
            r.m.secs,
            r.n as f64 / r.m.secs,
            r.m.hwm_kib as f64 / 1024.0,
            r.m.calls
        );
    }
    println!();
    let mut all_ok = true;
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let size = b.n as f64 / a.n as f64;
        let time = b.m.secs / a.m.secs;
        // "2x legs <= 2.2x time", scaled to the size ratio of this pair.
        let bound = 1.1 * size;
        let ok = time <= bound;
        all_ok &= ok;
        println!(
            "linearity {} -> {} legs: {size:.1}x legs, {time:.2}x time (bound {bound:.2}x): {}",
            a.n,
            b.n,
            if ok { "PASS" } else { "MISS" }
        );
    }
    if let (Some(lo), Some(hi)) = (rows.first(), rows.last()) {
        // Bounded memory: the page cache (64 MiB) and one page of legs, not the archive.
        let ok = (hi.m.hwm_kib as f64) <= 1.25 * lo.m.hwm_kib as f64 + 16_384.0;
        all_ok &= ok;
        println!(
            "peak RSS {:.1} MiB at {} legs vs {:.1} MiB at {} legs: {}",
            hi.m.hwm_kib as f64 / 1024.0,
            hi.n,
            lo.m.hwm_kib as f64 / 1024.0,
            lo.n,
            if ok { "PASS (bounded)" } else { "MISS (grows)" }
        );
    }
    println!("overall: {}", if all_ok { "PASS" } else { "MISS" });
}

struct Row {
    n: usize,
    m: Measure,
}

struct Measure {
    secs: f64,
    legs: u64,
    calls: u64,
    hwm_kib: u64,
}

/// `REBUILD_BENCH_LEGS`, e.g. `1000000,2000000` or `1M,2M,10M`.
fn sizes() -> Vec<usize> {
    let spec = std::env::var("REBUILD_BENCH_LEGS").unwrap_or_else(|_| "1000000,2000000".into());
    let mut v: Vec<usize> = spec
        .split(',')
        .filter_map(|s| {
            let s = s.trim();
            let (num, mul) = match s.chars().last() {
                Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
                Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
                _ => (s, 1),
            };
            num.parse::<f64>().ok().map(|x| (x * mul as f64) as usize)
        })
        .filter(|&n| n > 0)
        .collect();
    v.sort_unstable();
    v.dedup();
    assert!(!v.is_empty(), "REBUILD_BENCH_LEGS={spec}: no sizes");
    v
}

fn remove_db(p: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let mut s = p.as_os_str().to_owned();
        s.push(ext);
        let _ = std::fs::remove_file(PathBuf::from(s));
    }
}

/// Fills `db` with `n` legs of simulated traffic, one day (plan) at a time.
/// Legs are stored in push order (the device's arrival order) with the
/// product's insert, so ids follow arrival like a live archive.
fn generate_archive(db: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    // Schema and migrations as the server makes them.
    drop(Store::open(db)?);
    let mut conn = rusqlite::Connection::open(db)?;
    // Filling a cache, not archiving: durability does not matter here.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;",
    )?;
    let tz = Config::default().device_tz(DEVICE);
    let first = NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(8, 0, 0))
        .unwrap_or_default();
    let mut stored = 0usize;
    let mut day = 0u64;
    while stored < n {
        let plan = generate(&SimConfig {
            seed: 1 + day,
            calls: CALLS_PER_DAY,
            start: first + Duration::days(day as i64),
            calls_per_hour: 1_000.0,
            ..SimConfig::default()
        });
        let sql_tx = conn.transaction()?;
        let tx = Tx::on_sqlite(&sql_tx);
        // One push row per day: rebuild never reads pushes, only legs.
        let push_id = pushes::insert(
            &tx,
            &pushes::NewPush {
                received_at: "2020-01-01T00:00:00Z".into(),
                received_ms: 0,
                source: "bench".into(),
                device: Some(DEVICE.into()),
                method: "POST".into(),
                path: "/omapi".into(),
                query: None,
                body: Vec::new(),
                outcome: pushes::Outcome::Stored,
                status: 200,
                reason: None,
                sender_mac: None,
            },
        )?;
        'day: for p in plan.pushes.iter().filter(|p| p.kind == PushKind::Cdr) {
            for d in parse_body(&p.body)? {
                if let Message::Cdr(leg) = d.message {
                    // Received when the leg ended, as the device pushes it.
                    let received_ms = legs::local_to_utc(tz, leg.time_end).timestamp_millis();
                    if let legs::Inserted::New(_) =
                        legs::insert(&tx, DEVICE, push_id, received_ms, &leg, tz)?
                    {
                        stored += 1;
                        if stored == n {
                            break 'day;
                        }
                    }
                }
            }
        }
        sql_tx.commit()?;
        day += 1;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Child mode: `--child DB`. Rebuilds the calls of DB as `callvault rebuild`
/// does and prints `seconds legs calls vmhwm_kib`. A fresh process per run,
/// so VmHWM is the rebuild's own peak.
fn child(args: &[String]) {
    let db = Path::new(&args[0]);
    let store = Store::open(db).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let n = callvault::calls::live::rebuild_store(
        &store,
        std::env::var("REBUILD_BENCH_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(callvault::calls::live::REBUILD_BATCH_LEGS),
        &mut |_, _| {},
    )
    .unwrap_or_else(|e| panic!("rebuild: {e}"));
    let secs = t.elapsed().as_secs_f64();
    // Before the count below, whose reader connection has its own page cache.
    let hwm = vm_hwm_kib();
    let calls = store
        .read_blocking(callvault::store::rebuild::derived_counts)
        .unwrap_or_else(|e| panic!("{e}"))
        .calls;
    println!("{secs} {n} {calls} {hwm}");
}

fn run_child(db: &Path) -> Measure {
    let v = common::run_child(&[db], 4);
    Measure {
        secs: v[0].parse().unwrap_or(f64::NAN),
        legs: v[1].parse().unwrap_or(0),
        calls: v[2].parse().unwrap_or(0),
        hwm_kib: v[3].parse().unwrap_or(0),
    }
}
