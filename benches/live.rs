//! Benchmark of the live wallboard (`GET /api/live`, ARCHITECTURE.md "Live
//! wallboard"): `cargo bench --bench live`.
//!
//! A `callvault serve` child process (so its CPU time is the server's
//! alone, read from `/proc/<pid>/stat`) with 500 calls in progress and 20
//! watchers of the stream; then 2,000 more events (an ANSWER and a DTMF
//! per call, four rounds), each pushed as the OM device does (one HTTP/1.0
//! connection per event). Printed: the server's CPU time per event
//! (ingest, derivation, the feed and 20 watchers' floors), the same with
//! one watcher (so the difference is what 19 more watchers cost), and how
//! many floors a watcher received.
//!
//! LIVE_BENCH_CALLS, LIVE_BENCH_WATCHERS and LIVE_BENCH_ROUNDS change the
//! figures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of process `pid`, in clock ticks (`/proc/<pid>/stat`
/// fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Field 3 (state) is rest[0]: utime is field 14 → rest[11].
    n(11) + n(12)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn push(ingest: SocketAddr, body: &str) {
    let req = format!(
        "POST / HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(ingest).expect("connect");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        out.starts_with(b"HTTP/1.1 200") || out.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

fn visitor(i: usize) -> String {
    format!(
        r#"<visitor id="{i}" from="1380000{i:04}" to="02161208234" callid="{}" />"#,
        50_000 + i
    )
}

fn ring(i: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Event attribute=\"RING\">\n<ext id=\"{}\" />\n{}\n</Event>\n",
        200 + i % 100,
        visitor(i)
    )
}

fn answer(i: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Event attribute=\"ANSWER\">\n<ext id=\"{}\" />\n{}\n</Event>\n",
        200 + i % 100,
        visitor(i)
    )
}

fn dtmf(i: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Event attribute=\"DTMF\">\n{}\n<info>{}</info>\n</Event>\n",
        visitor(i),
        i % 10
    )
}

fn bye(i: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Event attribute=\"BYE\">\n{}\n</Event>\n",
        visitor(i)
    )
}

struct Server {
    child: Child,
    ingest: SocketAddr,
    api: SocketAddr,
    _dir: tempfile::TempDir,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = env!("CARGO_BIN_EXE_callvault");
    let out = Command::new(exe)
        .arg("--data")
        .arg(dir.path())
        .args(["token", "create", "--role", "qa", "--name", "bench"])
        .output()
        .expect("token create");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !token.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(exe)
        .arg("--data")
        .arg(dir.path())
        .arg("serve")
        .env("CALLVAULT_INGEST_LISTEN", "127.0.0.1:0")
        .env("CALLVAULT_API_LISTEN", "127.0.0.1:0")
        .env("CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES", "true")
        .env("CALLVAULT_INGEST_MAX_CONNECTIONS_PER_IP", "0")
        .env("CALLVAULT_INGEST_UNREGISTERED_PUSHES_PER_MINUTE", "0")
        .env("CALLVAULT_INGEST_UNREGISTERED_BYTES_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callvault serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("addresses").expect("stdout");
    let ingest = loop {
        if let Some(a) = next().strip_prefix("ingest listening on ") {
            break a.trim().parse().expect("address");
        }
    };
    let api = loop {
        if let Some(a) = next().strip_prefix("API and web page on http://") {
            break a.trim().trim_end_matches('/').parse().expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        ingest,
        api,
        _dir: dir,
        token,
    }
}

/// One watcher: counts floors and keeps the newest's number of calls.
struct Watch {
    floors: AtomicUsize,
    calls: AtomicUsize,
}

fn watch(api: SocketAddr, token: String, w: Arc<Watch>) {
    let mut s = TcpStream::connect(api).expect("connect");
    let req =
        format!("GET /api/live HTTP/1.0\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let Ok(n) = s.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        // HTTP/1.0: the body is not chunked; each floor is one `data:` line.
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                w.floors.fetch_add(1, Ordering::Relaxed);
                let floor: serde_json::Value = serde_json::from_str(data).expect("floor JSON");
                let calls = floor["calls"].as_array().map_or(0, Vec::len);
                w.calls.store(calls, Ordering::Relaxed);
            }
        }
    }
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the load with `watchers`; returns (CPU s of the server during the
/// measured events, wall s, events, floors the first watcher got).
fn run(calls: usize, watchers: usize, rounds: usize) -> (f64, f64, usize, usize) {
    let srv = start();
    let ws: Vec<Arc<Watch>> = (0..watchers.max(1))
        .map(|_| {
            Arc::new(Watch {
                floors: AtomicUsize::new(0),
                calls: AtomicUsize::new(usize::MAX),
            })
        })
        .collect();
    for w in &ws {
        let (api, tok, w) = (srv.api, srv.token.clone(), w.clone());
        std::thread::spawn(move || watch(api, tok, w));
    }
    let probe = ws[0].clone();
    for i in 0..calls {
        push(srv.ingest, &ring(i));
    }
    wait_for("the calls on the floor", Duration::from_secs(120), || {
        ws.iter().all(|w| w.calls.load(Ordering::Relaxed) == calls)
    });
    let pid = srv.child.id();
    let (t0, c0, f0) = (
        Instant::now(),
        cpu_ticks(pid),
        probe.floors.load(Ordering::Relaxed),
    );
    let mut events = 0;
    for r in 0..rounds {
        for i in 0..calls {
            push(srv.ingest, &if r % 2 == 0 { answer(i) } else { dtmf(i) });
            events += 1;
        }
    }
    // The end: one call leaves, and every watcher sees it.
    push(srv.ingest, &bye(0));
    events += 1;
    wait_for(
        "the last event on the floor",
        Duration::from_secs(120),
        || {
            ws.iter()
                .all(|w| w.calls.load(Ordering::Relaxed) == calls - 1)
        },
    );
    let cpu = (cpu_ticks(pid) - c0) as f64 / ticks_per_second();
    let wall = t0.elapsed().as_secs_f64();
    let floors = probe.floors.load(Ordering::Relaxed) - f0;
    (cpu, wall, events, floors)
}

fn main() {
    let calls = env_or("LIVE_BENCH_CALLS", 500);
    let watchers = env_or("LIVE_BENCH_WATCHERS", 20);
    let rounds = env_or("LIVE_BENCH_ROUNDS", 4);
    println!("live wallboard: {calls} calls in progress, {rounds} events per call after");
    for w in [watchers, 1] {
        let (cpu, wall, events, floors) = run(calls, w, rounds);
        println!(
            "{w:>3} watchers: {events} events in {wall:.2} s; server CPU {cpu:.2} s = {:.0} µs per event; {floors} floors sent to each watcher ({:.1} events per floor)",
            cpu * 1e6 / events as f64,
            events as f64 / floors.max(1) as f64
        );
    }
}
