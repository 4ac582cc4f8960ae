//! Ingest load benchmark (ARCHITECTURE.md "Durability": a 200 means the push
//! is on disk, so every push costs an fsync): pushes realistic ~500-byte CDRs over
//! loopback like the OM device — one new TCP connection per push, HTTP/1.0,
//! `Connection: close` — with N concurrent senders, against (a) a bare axum
//! handler that reads the body and answers 200 (the machine's ceiling) and
//! (b) callvault's durable ingest. Prints pushes/s and p50/p99 latency.
//! A third row runs the bare handler beside a thread that only writes and
//! fdatasyncs a file as often as durable ingest fsyncs its WAL: what the
//! disk flushes alone cost this machine, whoever asks for them.
//!
//! Run: `cargo run --release --example ingest_bench [-- SECONDS_PER_SLICE [ROUNDS]]`
//! (default 4 rounds of 2 s bare then 2 s durable per sender count: the two
//! alternate so that both see the same machine; the ratio is of the totals).
//!
//! Environment (for profiling one side): `INGEST_BENCH_SENDERS=64` runs only
//! that many senders; `INGEST_BENCH_BARE=0` skips the bare ceiling.
//!
//! `INGEST_BENCH_PACED=500,1500` instead sends at a steady rate (pushes/s,
//! open loop: a push starts on time whether or not earlier ones are
//! answered) for 5 × SECONDS_PER_SLICE each, and prints how far derivation
//! falls behind: under a steady load the machine can carry, the backlog
//! must not grow.
//!
//! The senders (127.0.0.1) are a registered device, as in production: the
//! listener's limits are on and checked, and never apply to it (README
//! "Limits"). `INGEST_BENCH_UNREGISTERED=1` makes them an unregistered
//! source derived under its IP (the lab setting), so every limit is checked
//! on every connection and push, with the per-address cap and rates set
//! above what the load reaches: the cost of the limits, not their refusals.

// The allocator of the callvault binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn cdr(n: u64) -> String {
    // One call per push, as on a busy trunk: a new call every 3 s of device
    // time, visitor ids recycled from a pool of 99 (never while still in use),
    // unique Cdr ids in the device's shape, arriving in random-looking order.
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 8)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
        + chrono::Duration::seconds(3 * n as i64);
    let end = start + chrono::Duration::seconds(133);
    let (ts, te) = (start.format("%Y%m%d%H%M%S"), end.format("%Y%m%d%H%M%S"));
    let id = format!("{}{te}-0", (n * 2_654_435_761) % 1_000_000);
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Cdr id=\"{id}\">\n  <callid>{}</callid>\n  <visitor id=\"{}\" />\n  \
<TimeStart>{ts}</TimeStart>\n  <Type>IN</Type>\n  <Route>IP</Route>\n  <CPN>1820100{:04}</CPN>\n  <CDPN>200</CDPN>\n  \
<TimeEnd>{te}</TimeEnd>\n  <Duration>120</Duration>\n  <TrunkNumber>02161208234</TrunkNumber>\n  \
<Recording>{}/18201008888_200_{}_{:X}_cd.wav</Recording>\n  <RecCodec>G729</RecCodec>\n</Cdr>\n",
        n % 65_536,
        n % 99 + 1,
        n % 10_000,
        start.format("%Y%m%d"),
        start.format("%Y%m%d_%H%M%S"),
        n % 65_536
    )
}

async fn one_push(addr: SocketAddr, body: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET /omapi HTTP/1.0\r\nConnection: close\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(128);
    s.read_to_end(&mut buf).await?;
    if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&buf).into_owned(),
        ));
    }
    Ok(())
}

/// What one target did over one or more slices of load.
#[derive(Default)]
struct Tally {
    pushes: u64,
    wall_s: f64,
    /// Process CPU (server + generator) seconds.
    cpu_s: f64,
    /// Latency of every push, ms.
    lat_ms: Vec<f64>,
    errors: u64,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.pushes as f64 / self.wall_s.max(1e-9)
    }

    fn cpu_us(&self) -> f64 {
        1e6 * self.cpu_s / self.pushes.max(1) as f64
    }

    fn pct(&mut self, p: f64) -> f64 {
        self.lat_ms.sort_by(|a, b| a.total_cmp(b));
        let n = self.lat_ms.len();
        self.lat_ms
            .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    }
}

/// `senders` concurrent senders push to `addrs` (round-robin, push by
/// push) for `secs`; adds what they did to `tally`.
async fn load(
    addrs: &[SocketAddr],
    senders: usize,
    secs: f64,
    counter: Arc<AtomicU64>,
    tally: &mut Tally,
) {
    let cpu0 = process_cpu_secs();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..senders {
        let (c, e, addrs) = (counter.clone(), errors.clone(), addrs.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = c.fetch_add(1, Ordering::Relaxed);
                let body = cdr(n);
                let addr = addrs[n as usize % addrs.len()];
                let t = Instant::now();
                if one_push(addr, &body).await.is_err() {
                    e.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    for t in tasks {
        let lat = t.await.unwrap_or_default();
        tally.pushes += lat.len() as u64;
        tally.lat_ms.extend(lat);
    }
    tally.wall_s += started.elapsed().as_secs_f64();
    tally.cpu_s += process_cpu_secs() - cpu0;
    tally.errors += errors.load(Ordering::Relaxed);
}

async fn bare_server() -> SocketAddr {
    use axum::body::Bytes;
    let app = axum::Router::new().fallback(|_b: Bytes| async { axum::http::StatusCode::OK });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

/// While `stop` is false, writes 16 KiB into a file and fdatasyncs it, once
/// per millisecond: about what durable ingest asks of the disk under load
/// (900–1,100 WAL fsyncs/s at 64 senders), with none of its other work.
/// Run beside the bare handler it shows what the flushes alone cost this
/// machine. Returns the number of fsyncs.
fn disk_flushes(path: std::path::PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    else {
        return 0;
    };
    let buf = vec![0x5a_u8; 16 * 1024];
    let (mut offset, mut n) = (0u64, 0u64);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if file.write_all_at(&buf, offset).is_err() || file.sync_data().is_err() {
            return n;
        }
        n += 1;
        // Over the same 64 MiB, as the WAL is reused once checkpointed.
        offset = (offset + buf.len() as u64) % (64 << 20);
        next += Duration::from_millis(1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    n
}

/// Commit figures so far, read from the server's own metrics: [commit
/// seconds, commits, pushes in them, seconds writing the WAL, WAL fsync
/// seconds, WAL fsyncs].
fn commit_stats() -> [f64; 6] {
    let text = callvault::telemetry::metrics_handle().render();
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    [
        get("callvault_commit_seconds_sum"),
        get("callvault_commit_seconds_count"),
        get("callvault_commit_batch_size_sum"),
        get("callvault_commit_wal_write_seconds_sum"),
        get("callvault_commit_sync_seconds_sum"),
        get("callvault_commit_sync_seconds_count"),
    ]
}

/// CPU seconds (user + system) in a `/proc/.../stat` file: the process's
/// or one thread's.
fn cpu_secs(stat_path: &std::path::Path) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (num(11) + num(12)) / ticks
}

/// CPU seconds this whole process (server and generator) has used so far.
fn process_cpu_secs() -> f64 {
    cpu_secs(std::path::Path::new("/proc/self/stat"))
}

/// CPU seconds the `store-writer` thread has used so far.
fn writer_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "store-writer")
        })
        .map_or(0.0, |t| cpu_secs(&t.path().join("stat")))
}

/// Sends `rate` pushes/s to `addr` for `secs`, each on its own task, and
/// prints the derive backlog every second and the latencies at the end.
async fn paced(
    store: &callvault::store::Store,
    addr: SocketAddr,
    rate: f64,
    secs: f64,
    counter: Arc<AtomicU64>,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tally = Tally::default();
    let mut tasks = Vec::new();
    let cpu0 = process_cpu_secs();
    let mut backlogs = Vec::new();
    for sec in 1..=secs.ceil() as u64 {
        while start.elapsed() < Duration::from_secs(sec) {
            tick.tick().await;
            let body = cdr(counter.fetch_add(1, Ordering::Relaxed));
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = one_push(addr, &body).await.is_ok();
                (ok, t.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        backlogs.push(
            count(store, callvault::store::pushes::derive_backlog)
                .await
                .to_string(),
        );
    }
    for t in tasks {
        let (ok, ms) = t.await.unwrap_or((false, 0.0));
        tally.pushes += 1;
        tally.errors += u64::from(!ok);
        tally.lat_ms.push(ms);
    }
    tally.wall_s = start.elapsed().as_secs_f64();
    tally.cpu_s = process_cpu_secs() - cpu0;
    println!(
        "{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>9.0}   derive backlog each second: {}",
        "callvault paced",
        "-",
        tally.rate(),
        tally.pct(0.50),
        tally.pct(0.99),
        tally.errors,
        tally.cpu_us(),
        backlogs.join(" ")
    );
    let t = Instant::now();
    store.writer.drain().await.expect("derive");
    println!(
        "{:<22} {:>8} caught up in {:.2} s",
        "",
        "",
        t.elapsed().as_secs_f64()
    );
}

/// A count read from the archive (0 when it cannot be read: the figure is
/// then visibly wrong rather than the benchmark stopping).
async fn count(
    store: &callvault::store::Store,
    f: fn(&callvault::store::Tx) -> callvault::store::Result<i64>,
) -> i64 {
    store.read(f).await.unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: f64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: ingest_bench [SECONDS_PER_SLICE [ROUNDS]]   (default 2 s, 4 rounds)\n\
             environment: INGEST_BENCH_SENDERS=N (one sender count instead of 16 and 64), \
             INGEST_BENCH_BARE=0 (skip the bare ceiling), INGEST_BENCH_PACED=500,1500 (steady rates), \
             INGEST_BENCH_UNREGISTERED=1 (the senders are no registered device: every limit is checked), \
             INGEST_BENCH_BACKENDS=1 (SQLite vs PostgreSQL at CALLVAULT_TEST_PG with 1, 2, 3 collectors)"
        );
        return;
    }
    let (secs, rounds) = (arg(1, 2.0), arg(2, 4.0).max(1.0) as usize);
    if std::env::var("INGEST_BENCH_BACKENDS").is_ok_and(|v| v == "1") {
        return backends(secs, rounds).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = callvault::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    // Measure ingest alone: the recordings the CDRs name would be fetched
    // from an address that does not exist here; keep them pending.
    cfg.recordings.fetch_delay_seconds = 24 * 3600;
    cfg.ingest.listen = "127.0.0.1:0".into();
    cfg.api.listen = "127.0.0.1:0".into();
    // The senders are a registered device, as in production (the limits
    // are on, and never apply to it). INGEST_BENCH_UNREGISTERED=1 measures
    // the other path: senders checked by every limit (set above the load)
    // and derived under their IP (the lab setting).
    let unregistered = std::env::var("INGEST_BENCH_UNREGISTERED").is_ok_and(|v| v == "1");
    if unregistered {
        cfg.ingest.accept_unknown_devices = true;
        cfg.ingest.max_connections_per_ip = 100_000;
        cfg.ingest.unregistered_pushes_per_minute = 1 << 40;
        cfg.ingest.unregistered_bytes_per_minute = 1 << 50;
    } else {
        cfg.devices.push(callvault::config::DeviceConfig {
            name: "bench".into(),
            push_from: vec!["127.0.0.1".into()],
            ..Default::default()
        });
    }
    let db = cfg.db_path();
    let running = callvault::server::start(cfg).await.expect("server");
    // The largest the WAL gets (it must not grow with the load: the writer
    // finishes checkpoints, `store::checkpoint`).
    let wal_max = Arc::new(AtomicU64::new(0));
    {
        let (wal_max, wal) = (wal_max.clone(), db.with_extension("sqlite-wal"));
        std::thread::spawn(move || loop {
            if let Ok(m) = std::fs::metadata(&wal) {
                wal_max.fetch_max(m.len(), Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        });
    }
    let bare = bare_server().await;
    let counter = Arc::new(AtomicU64::new(0));
    println!(
        "ingest benchmark: {rounds} rounds of {secs} s bare then {secs} s durable per sender count \
         (alternated so both see the same machine), one TCP connection per push, ~500-byte CDRs, {} cores, \
         senders {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if !unregistered {
            "a registered device"
        } else {
            "unregistered (every limit checked)"
        }
    );
    println!(
        "{:<22} {:>8} {:>12} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "target", "senders", "pushes/s", "p50 ms", "p99 ms", "errors", "CPU µs", "% bare"
    );
    let senders_list: Vec<usize> = std::env::var("INGEST_BENCH_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|n| vec![n])
        .unwrap_or_else(|| vec![16, 64]);
    let with_bare = std::env::var("INGEST_BENCH_BARE").map_or(true, |v| v != "0");
    let store = &running.store;
    if let Ok(rates) = std::env::var("INGEST_BENCH_PACED") {
        for rate in rates
            .split(',')
            .filter_map(|r| r.trim().parse::<f64>().ok())
        {
            paced(
                store,
                running.ingest_addr,
                rate,
                5.0 * secs,
                counter.clone(),
            )
            .await;
        }
        running.stop().await;
        return;
    }
    for senders in senders_list {
        let (mut b, mut d, mut f) = (Tally::default(), Tally::default(), Tally::default());
        let mut flushes = 0;
        let before = count(store, callvault::store::pushes::count).await;
        let legs_before = count(store, callvault::store::legs::count).await;
        let (mut m, mut writer_s, mut drain_s, mut backlog) = ([0.0; 6], 0.0, 0.0, 0);
        let mut per_round = Vec::new();
        for _ in 0..rounds {
            let bare_before = b.pushes as f64;
            if with_bare {
                load(&[bare], senders, secs, counter.clone(), &mut b).await;
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (file, flag) = (dir.path().join("flushes"), stop.clone());
                let disk = std::thread::spawn(move || disk_flushes(file, flag));
                load(&[bare], senders, secs, counter.clone(), &mut f).await;
                stop.store(true, Ordering::Relaxed);
                flushes += disk.join().unwrap_or(0);
            }
            let (m0, w0) = (commit_stats(), writer_cpu_secs());
            let d_before = d.pushes as f64;
            load(
                &[running.ingest_addr],
                senders,
                secs,
                counter.clone(),
                &mut d,
            )
            .await;
            let m1 = commit_stats();
            writer_s += writer_cpu_secs() - w0;
            for ((sum, a), b) in m.iter_mut().zip(m0).zip(m1) {
                *sum += b - a;
            }
            per_round.push(
                100.0 * (d.pushes as f64 - d_before) / (b.pushes as f64 - bare_before).max(1.0),
            );
            // Deriving legs, events and calls runs after the commit: finish
            // it before the next slice (it would steal the next slice's
            // CPU), and time how fast it goes once the burst is over.
            backlog += count(store, callvault::store::pushes::derive_backlog).await;
            let t = Instant::now();
            store.writer.drain().await.expect("derive");
            drain_s += t.elapsed().as_secs_f64();
        }
        let committed = count(store, callvault::store::pushes::count).await - before;
        println!(
            "{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>9.0} {:>9}",
            "bare axum (ceiling)",
            senders,
            b.rate(),
            b.pct(0.50),
            b.pct(0.99),
            b.errors,
            b.cpu_us(),
            "100 %"
        );
        println!(
            "{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>9.0} {:>7.0} %   (beside {:.0} fsyncs/s of 16 KiB: the flushes alone)",
            "bare + disk flushes",
            senders,
            f.rate(),
            f.pct(0.50),
            f.pct(0.99),
            f.errors,
            f.cpu_us(),
            100.0 * f.rate() / b.rate().max(1.0),
            flushes as f64 / f.wall_s.max(1e-9)
        );
        let rounds_pct: Vec<String> = per_round.iter().map(|p| format!("{p:.0}")).collect();
        println!(
            "{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>9.0} {:>7.0} %   ({committed} pushes committed; rounds: {} %)",
            "callvault durable",
            senders,
            d.rate(),
            d.pct(0.50),
            d.pct(0.99),
            d.errors,
            d.cpu_us(),
            100.0 * d.rate() / b.rate().max(1.0),
            rounds_pct.join(", ")
        );
        let commits = m[1].max(1.0);
        println!(
            "{:<22} {:>8} commits: {:.0}, mean {:.2} ms each ({:.2} ms writing the WAL), mean batch {:.1} pushes; \
             WAL fsyncs: {:.0}, mean {:.2} ms; writer thread (background step) CPU {:.0} µs/push",
            "",
            "",
            commits,
            1000.0 * m[0] / commits,
            1000.0 * m[3] / commits,
            m[2] / commits,
            m[5],
            1000.0 * m[4] / m[5].max(1.0),
            1e6 * writer_s / committed.max(1) as f64
        );
        let legs = count(store, callvault::store::legs::count).await - legs_before;
        println!(
            "{:<22} {:>8} derive backlog at the end of the bursts {backlog} pushes in all, caught up in {drain_s:.2} s \
             ({:.0} pushes/s); {legs} legs derived",
            "",
            "",
            backlog as f64 / drain_s.max(1e-9),
        );
    }
    println!(
        "largest WAL seen: {:.0} MiB; archive {:.0} MiB",
        wal_max.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64
    );
    running.stop().await;
}

/// A collector's config for the backends comparison: a registered device
/// on loopback, recordings kept pending, its own data directory.
fn collector_cfg(dir: &std::path::Path, store_url: &str) -> callvault::config::Config {
    let mut cfg = callvault::config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    cfg.store.url = store_url.into();
    cfg.recordings.fetch_delay_seconds = 24 * 3600;
    cfg.ingest.listen = "127.0.0.1:0".into();
    cfg.api.listen = "127.0.0.1:0".into();
    cfg.devices.push(callvault::config::DeviceConfig {
        name: "bench".into(),
        push_from: vec!["127.0.0.1".into()],
        ..Default::default()
    });
    cfg
}

/// `INGEST_BENCH_BACKENDS=1`: the same load (16 senders, one connection per
/// push) on one collector on SQLite, then on 1, 2 and 3 collectors (in this
/// process) sharing one PostgreSQL database, pushes round-robin across
/// them. On one machine this shows what each backend costs, not scaling:
/// the collectors and the database share the same cores.
async fn backends(secs: f64, rounds: usize) {
    let senders = std::env::var("INGEST_BENCH_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    println!(
        "ingest on each backend: {rounds} slices of {secs} s, {senders} senders, one TCP connection per push, ~500-byte CDRs, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<26} {:>12} {:>9} {:>9} {:>7} {:>14}",
        "target", "pushes/s", "p50 ms", "p99 ms", "errors", "derived/s after"
    );
    let counter = Arc::new(AtomicU64::new(0));
    let mut runs: Vec<(String, usize)> = vec![("SQLite, 1 collector".into(), 1)];
    let with_pg = std::env::var_os("CALLVAULT_TEST_PG").is_some();
    if with_pg {
        for n in 1..=3 {
            runs.push((
                format!("PostgreSQL, {n} collector{}", if n > 1 { "s" } else { "" }),
                n,
            ));
        }
    }
    for (name, n) in runs {
        let dirs: Vec<_> = (0..n)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        // A fresh database for each PostgreSQL run.
        let pg = name
            .starts_with("PostgreSQL")
            .then(|| callvault::store::testing::TestDb::fresh("the backends benchmark"))
            .flatten();
        let url = pg
            .as_ref()
            .map_or("sqlite:".to_string(), |db| db.url().to_string());
        let mut servers = Vec::new();
        for d in &dirs {
            servers.push(
                callvault::server::start(collector_cfg(d.path(), &url))
                    .await
                    .expect("server"),
            );
        }
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.ingest_addr).collect();
        let mut t = Tally::default();
        let mut drain = (0i64, 0.0f64);
        for _ in 0..rounds {
            load(&addrs, senders, secs, counter.clone(), &mut t).await;
            // Derivation catches up between slices (it would take the next
            // slice's CPU otherwise); timed.
            let store = &servers[0].store;
            let backlog = count(store, callvault::store::pushes::derive_backlog).await;
            let started = Instant::now();
            for s in &servers {
                s.store.writer.drain().await.expect("derive");
            }
            drain.0 += backlog;
            drain.1 += started.elapsed().as_secs_f64();
        }
        println!(
            "{:<26} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>14.0}",
            name,
            t.rate(),
            t.pct(0.50),
            t.pct(0.99),
            t.errors,
            drain.0 as f64 / drain.1.max(1e-9)
        );
        for s in servers {
            s.stop().await;
        }
        drop(pg);
    }
    if !with_pg {
        println!("PostgreSQL: skipped (set CALLVAULT_TEST_PG to a server URL)");
    }
}
