//! What the audit log costs the requests it records (docs/operations.md
//! "Audit log"): `cargo bench --bench audit`.
//!
//! Two servers run side by side as child processes of this bench, each on
//! its own copy of the benches' 1 M-call archive (`common/archive.rs`;
//! CALLVAULT_BENCH_DB keeps it between runs) with one recording made 1 h
//! long: one with the audit log on, one with it off. The same requests go
//! to both, alternating which goes first, over loopback sockets:
//! * the billing CSV of the whole range (1 M rows), streamed to the end;
//! * the 1 h recording downloaded whole, and played as a player does, in
//!   256 KiB Range requests from start to end.
//!
//! Each server reports its own CPU time (user + system of every thread,
//! `getrusage`) before and after each request, so the figure is the
//! server's work alone: not the client's, which reads 1 M rows beside it on
//! the same two cores, and not another process's. It prints, for each
//! request and mode, the median and best server CPU and wall time, every
//! run, the difference of the medians (target: within 5 %), and the audit
//! rows each server wrote, so a run where auditing did not happen (or was
//! not off) shows. AUDIT_BENCH_ROUNDS changes the rounds (default 11).
//!
//! On a shared 2-core machine one request's CPU time varies by ±15 % from
//! run to run, more than the 5 % to resolve. With AUDIT_BENCH_CALLGRIND=1
//! both servers run under valgrind's callgrind instead, and each request
//! is measured in instructions the server executed (counters zeroed before
//! it, dumped after it with `callgrind_control`): the same count for the
//! same work whatever else the machine does, so one round settles it
//! (about 15 minutes: callgrind runs the server some 50 times slower).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use callvault::config::Config;
use sha2::{Digest, Sha256};

mod common;
use common::archive::{self, first_day, DAYS};

/// A player's Range request size.
const RANGE: u64 = 256 * 1024;
/// 1 h of 8 kHz 16-bit mono.
const HOUR_SAMPLES: u32 = 3600 * 8000;
/// Bytes of the 1 h WAV (44-byte header).
const HOUR_BYTES: u64 = 44 + HOUR_SAMPLES as u64 * 2;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--serve") {
        let (data, mode) = (&args[pos + 1], &args[pos + 2]);
        return serve(Path::new(data), mode == "on");
    }
    runtime().block_on(run());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Child mode, `--serve DATA on|off`: a server on DATA with the audit log
/// on or off. Prints `API_ADDRESS TOKEN` (an admin token), then answers each
/// line read on stdin with its CPU seconds so far; stops at end of input.
fn serve(data: &Path, on: bool) {
    callvault::audit::set_enabled_for_benchmark(on);
    runtime().block_on(async {
        let mut cfg = Config {
            data_dir: data.to_path_buf(),
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
        println!("{} {token}", running.api_addr);
        let _ = std::io::stdout().flush();
        let (done, stopped) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
                println!("{}", cpu_secs());
                let _ = std::io::stdout().flush();
            }
            let _ = done.send(());
        });
        let _ = stopped.await;
        running.stop().await;
    });
}

/// A `--serve` child and the way to ask it for its CPU time.
struct Server {
    child: Child,
    /// Under callgrind: the prefix of its dump files (`PREFIX.PID.N`).
    callgrind: Option<PathBuf>,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    base: String,
    token: String,
    data: PathBuf,
}

impl Server {
    fn start(data: PathBuf, on: bool, callgrind: bool) -> Server {
        let exe = std::env::current_exe().unwrap_or_default();
        let dumps = data.with_file_name(format!("callgrind.{}", if on { "on" } else { "off" }));
        let mut cmd = if callgrind {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg("--quiet")
                .arg(format!("--callgrind-out-file={}.%p", dumps.display()))
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let mut child = cmd
            .arg("--serve")
            .arg(&data)
            .arg(if on { "on" } else { "off" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let mut out = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let mut line = String::new();
        out.read_line(&mut line).unwrap_or_else(|e| panic!("{e}"));
        let (addr, token) = line
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("server said {line:?}"));
        Server {
            base: format!("http://{addr}"),
            token: token.to_string(),
            callgrind: callgrind.then_some(dumps),
            child,
            stdin,
            out,
            data,
        }
    }

    /// The server's CPU seconds so far (all its threads).
    fn cpu(&mut self) -> f64 {
        writeln!(self.stdin, "cpu").unwrap_or_else(|e| panic!("{e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{e}"));
        line.trim()
            .parse()
            .unwrap_or_else(|e| panic!("cpu {line:?}: {e}"))
    }

    /// Starts counting a request's cost: the CPU seconds so far, or (under
    /// callgrind) zeroes its counters.
    fn begin(&mut self) -> f64 {
        if self.callgrind.is_some() {
            self.callgrind_control(&["--zero"]);
            0.0
        } else {
            self.cpu()
        }
    }

    /// The cost since [`Server::begin`]: CPU seconds, or instructions.
    fn cost(&mut self, begun: f64) -> f64 {
        let Some(prefix) = self.callgrind.clone() else {
            return self.cpu() - begun;
        };
        self.callgrind_control(&["--dump"]);
        // The newest dump, `PREFIX.PID.N`, holds what ran since the zeroing.
        let pid = self.child.id();
        let name = format!(
            "{}.{pid}.",
            prefix.file_name().unwrap_or_default().to_string_lossy()
        );
        let dir = prefix.parent().unwrap_or(Path::new("."));
        let newest = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| {
                let f = e.ok()?.file_name().to_string_lossy().to_string();
                let n: u64 = f.strip_prefix(&name)?.parse().ok()?;
                Some((n, dir.join(f)))
            })
            .max()
            .unwrap_or_else(|| panic!("no callgrind dump {name}*"));
        let text = std::fs::read_to_string(&newest.1).unwrap_or_else(|e| panic!("{e}"));
        text.lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no totals in {}", newest.1.display()))
    }

    fn callgrind_control(&self, args: &[&str]) {
        let out = Command::new("callgrind_control")
            .args(args)
            .arg(self.child.id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("callgrind_control: {e}"));
        assert!(
            out.status.success(),
            "callgrind_control {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn audit_rows(&self) -> i64 {
        rusqlite::Connection::open(self.data.join("callvault.sqlite"))
            .and_then(|c| c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// The requests measured, in the order of each round.
const REQUESTS: [&str; 3] = [
    "billing CSV, 1 M rows",
    "1 h recording, download",
    "1 h recording, play (256 KiB ranges)",
];

/// Runs request `k` against `s`: (wall seconds, the server's cost: CPU
/// seconds, or instructions under callgrind).
/// The server's CPU is read again 200 ms after the answer has been read, so
/// the audit row it writes after answering is counted.
async fn measure(s: &mut Server, client: &reqwest::Client, k: usize, rec: i64) -> (f64, f64) {
    let billing = format!(
        "{}/export/billing.csv?from={}&to={}",
        s.base,
        first_day(),
        first_day() + chrono::Duration::days(DAYS)
    );
    let rec_url = format!("{}/api/recordings/{rec}", s.base);
    let begun = s.begin();
    let t = Instant::now();
    match k {
        0 => {
            let n = get_all(client, &billing, &s.token, None).await;
            assert!(n > 50_000_000, "billing CSV of {n} bytes: not 1 M rows");
        }
        1 => assert_eq!(
            get_all(client, &rec_url, &s.token, None).await,
            HOUR_BYTES,
            "download"
        ),
        _ => assert_eq!(play(client, &rec_url, &s.token).await, HOUR_BYTES, "play"),
    }
    let wall = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    (wall, s.cost(begun))
}

async fn run() {
    let callgrind = std::env::var("AUDIT_BENCH_CALLGRIND").is_ok_and(|v| v == "1");
    // Instruction counts repeat exactly: one round is enough.
    let rounds: usize = std::env::var("AUDIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if callgrind { 1 } else { 11 });
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = archive::bench_db(tmp.path());
    let t = Instant::now();
    let mut recording = 0;
    let mut servers: Vec<Server> = ["off", "on"]
        .iter()
        .map(|mode| {
            let data = tmp.path().join(mode);
            std::fs::create_dir_all(data.join("recordings/bench"))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::copy(&src, data.join("callvault.sqlite")).unwrap_or_else(|e| panic!("{e}"));
            recording = one_hour_recording(&data);
            Server::start(data, *mode == "on", callgrind)
        })
        .collect();
    println!(
        "two archive copies, 1 h recordings and servers (audit off, on) ready in {:.1} s; {rounds} rounds",
        t.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    // One unmeasured pass each, so both start with the archive in the page
    // cache and their connections and statements warm (not under
    // callgrind: the page cache does not change an instruction count, and
    // both servers' first requests do the same first-time work).
    for s in servers.iter_mut().filter(|_| !callgrind) {
        for (k, _) in REQUESTS.iter().enumerate() {
            measure(s, &client, k, recording).await;
        }
    }
    let before: Vec<i64> = servers.iter().map(Server::audit_rows).collect();
    // runs[mode][request] = (wall, cpu) per round; the mode that goes first
    // alternates so drift (a build starting beside it) touches both alike.
    let mut runs: [[Vec<(f64, f64)>; 3]; 2] = Default::default();
    for round in 0..rounds {
        for (k, _) in REQUESTS.iter().enumerate() {
            for i in 0..2 {
                let mode = (i + round) % 2;
                let r = measure(&mut servers[mode], &client, k, recording).await;
                runs[mode][k].push(r);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written: Vec<i64> = servers
        .iter()
        .zip(&before)
        .map(|(s, b)| s.audit_rows() - b)
        .collect();
    println!(
        "audit rows written while measured: {} with audit on, {} with it off",
        written[1], written[0]
    );
    // (label, unit, scale) of the server's cost, then of the wall time.
    let cost = if callgrind {
        ("server instructions", "M", 1e-6)
    } else {
        ("server CPU", "s", 1.0)
    };
    let mut all_within = true;
    for (k, name) in REQUESTS.iter().enumerate() {
        println!("{name}:");
        for (pick, (what, unit, scale)) in [cost, ("wall", "s", 1.0)].into_iter().enumerate() {
            let of = |mode: usize| -> Vec<f64> {
                runs[mode][k]
                    .iter()
                    .map(|r| scale * if pick == 0 { r.1 } else { r.0 })
                    .collect()
            };
            let (off, on) = (of(0), of(1));
            let (m_off, m_on) = (median(&off), median(&on));
            let pct = |a: f64, b: f64| (b - a) / a * 100.0;
            println!(
                "    {what:<19} median off {m_off:>9.3} {unit}, on {m_on:>9.3} {unit} ({:>+6.2} %); \
                 best off {:>9.3} {unit}, on {:>9.3} {unit}",
                pct(m_off, m_on),
                min(&off),
                min(&on)
            );
            println!("        off {off:.3?}\n        on  {on:.3?}");
            if pick == 0 {
                all_within &= pct(m_off, m_on) <= 5.0;
            }
        }
    }
    println!(
        "target: the {} with audit on within 5 % of off (medians): {}",
        cost.0,
        if all_within { "met" } else { "MISSED" }
    );
    for s in servers {
        s.stop();
    }
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
    let mut at = 0;
    while at < HOUR_BYTES {
        let end = (at + RANGE).min(HOUR_BYTES) - 1;
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
