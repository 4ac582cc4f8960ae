//! What the audit log costs the requests it records (docs/operations.md
//! "Audit log"): `cargo bench --bench audit`.
//!
//! A real server (`server::start`, SQLite, loopback sockets) on a copy of
//! the benches' 1 M-call archive (`common/archive.rs`; CALLVAULT_BENCH_DB
//! keeps it between runs), with one recording made 1 h long. The same
//! requests run with the audit log on and off, alternating, in one process
//! and one run:
//! * the billing CSV of the whole range (1 M rows), streamed to the end;
//! * the 1 h recording downloaded whole, and played as a player does, in
//!   256 KiB Range requests from start to end.
//!
//! It prints the median and the best wall time and process CPU time of each
//! with audit on and off, every run's figures, the differences (target:
//! within 5 %), and the audit rows each mode wrote, so a run where auditing
//! did not happen (or was not off) shows. On a machine shared with other
//! work the CPU time is the steadier figure: a build beside it moves the
//! wall times by tens of per cent, in both modes alike.

use std::path::Path;
use std::time::{Duration, Instant};

use callvault::config::Config;
use sha2::{Digest, Sha256};

mod common;
use common::archive::{self, first_day, DAYS};

/// Rounds of (off, on) pairs; the order alternates so drift cancels.
const ROUNDS: usize = 7;
/// A player's Range request size.
const RANGE: u64 = 256 * 1024;
/// 1 h of 8 kHz 16-bit mono.
const HOUR_SAMPLES: u32 = 3600 * 8000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(run());
}

async fn run() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = archive::bench_db(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("recordings/bench")).unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    std::fs::copy(&src, data.join("callvault.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    let recording = one_hour_recording(&data);
    println!(
        "archive copied and 1 h recording made in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut cfg = Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    cfg.ingest.listen = "127.0.0.1:0".into();
    cfg.api.listen = "127.0.0.1:0".into();
    let running = callvault::server::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("server: {e}"));
    let token = running
        .store
        .writer
        .write(|tx| callvault::store::tokens::create(tx, "bench", "admin"))
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));
    let base = format!("http://{}", running.api_addr);
    let client = reqwest::Client::new();
    let billing = format!(
        "{base}/export/billing.csv?from={}&to={}",
        first_day(),
        first_day() + chrono::Duration::days(DAYS)
    );
    let rec_url = format!("{base}/api/recordings/{recording}");

    let mut times: [[Vec<(f64, f64)>; 3]; 2] = Default::default();
    let mut rows = [0i64; 2];
    for round in 0..ROUNDS {
        for i in 0..2 {
            // Round 0: off, on; round 1: on, off; …
            let on = (i + round) % 2 == 1;
            callvault::audit::set_enabled_for_benchmark(on);
            let before = audit_rows(&data);
            let (t_bill, n) = timed(get_all(&client, &billing, &token, None)).await;
            assert!(n > 50_000_000, "billing CSV of {n} bytes: not 1 M rows");
            let (t_down, n) = timed(get_all(&client, &rec_url, &token, None)).await;
            assert_eq!(n, 44 + u64::from(HOUR_SAMPLES) * 2, "download");
            let (t_play, n) = timed(play(&client, &rec_url, &token)).await;
            assert_eq!(n, 44 + u64::from(HOUR_SAMPLES) * 2, "play");
            // Audit writes do not hold up the answer; let them land
            // before counting.
            tokio::time::sleep(Duration::from_millis(300)).await;
            rows[usize::from(on)] += audit_rows(&data) - before;
            let m = &mut times[usize::from(on)];
            m[0].push(t_bill);
            m[1].push(t_down);
            m[2].push(t_play);
        }
    }
    callvault::audit::set_enabled_for_benchmark(true);
    println!(
        "audit rows written: {} with audit on, {} with it off ({ROUNDS} rounds each)",
        rows[1], rows[0]
    );
    let names = [
        "billing CSV, 1 M rows",
        "1 h recording, download",
        "1 h recording, play (256 KiB ranges)",
    ];
    for (k, name) in names.iter().enumerate() {
        println!("{name}:");
        for (what, pick) in [("wall", 0), ("CPU", 1)] {
            let runs = |on: usize| -> Vec<f64> {
                times[on][k]
                    .iter()
                    .map(|t| if pick == 0 { t.0 } else { t.1 })
                    .collect()
            };
            let (off, on) = (runs(0), runs(1));
            let (m_off, m_on) = (median(&off), median(&on));
            let (b_off, b_on) = (min(&off), min(&on));
            let pct = |a: f64, b: f64| (b - a) / a * 100.0;
            println!(
                "    {what:<4} median off {m_off:>7.3} s, on {m_on:>7.3} s ({:>+6.1} %); \
                 best off {b_off:>7.3} s, on {b_on:>7.3} s ({:>+6.1} %)",
                pct(m_off, m_on),
                pct(b_off, b_on)
            );
            println!("         off {off:.3?}\n         on  {on:.3?}");
        }
    }
    running.stop().await;
}

/// Makes the archive's first finished recording a 1 h WAV (a tone) and
/// returns its id. Recordings still to fetch are marked failed, so the
/// worker stays idle while the bench runs.
fn one_hour_recording(data: &Path) -> i64 {
    let file = data.join("recordings/bench/hour.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&file, spec).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..HOUR_SAMPLES {
        let s = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin();
        w.write_sample((s * 8000.0) as i16)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    w.finalize().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let sha = format!("{:x}", Sha256::digest(&bytes));
    let c =
        rusqlite::Connection::open(data.join("callvault.sqlite")).unwrap_or_else(|e| panic!("{e}"));
    c.execute_batch(
        "UPDATE recordings SET status = 'failed', last_error = 'bench'
         WHERE status IN ('pending', 'fetching')",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let id: i64 = c
        .query_row(
            "SELECT min(id) FROM recordings WHERE status = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    c.execute(
        "UPDATE recordings SET file = 'bench/hour.wav', bytes = ?1, duration_seconds = 3600,
             sha256 = ?2 WHERE id = ?3",
        rusqlite::params![bytes.len() as i64, sha, id],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    id
}

fn audit_rows(data: &Path) -> i64 {
    rusqlite::Connection::open(data.join("callvault.sqlite"))
        .and_then(|c| c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0)))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Wall time and this process's CPU time (every thread: the server's
/// handlers, its writer and the client alike) of `f`.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> ((f64, f64), T) {
    let (t, cpu) = (Instant::now(), cpu_secs());
    let v = f.await;
    ((t.elapsed().as_secs_f64(), cpu_secs() - cpu), v)
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// GETs `url` (with `range` when given) and reads the body to the end;
/// returns its length.
async fn get_all(client: &reqwest::Client, url: &str, token: &str, range: Option<String>) -> u64 {
    let mut req = client.get(url).bearer_auth(token);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let mut resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.unwrap_or_else(|e| panic!("{e}")) {
        n += chunk.len() as u64;
    }
    n
}

/// Reads the recording as a player does: Range requests from start to end.
async fn play(client: &reqwest::Client, url: &str, token: &str) -> u64 {
    let total = 44 + u64::from(HOUR_SAMPLES) * 2;
    let mut at = 0;
    while at < total {
        let end = (at + RANGE).min(total) - 1;
        at += get_all(client, url, token, Some(format!("bytes={at}-{end}"))).await;
    }
    at
}

/// The fastest run: on a shared machine the one least disturbed by others.
fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
