//! Ingest load benchmark (issue 2): pushes realistic ~500-byte CDRs over
//! loopback like the OM device — one new TCP connection per push, HTTP/1.0,
//! `Connection: close` — with N concurrent senders, against (a) a bare axum
//! handler that reads the body and answers 200 (the machine's ceiling) and
//! (b) callvault's durable ingest. Prints pushes/s and p50/p99 latency.
//!
//! Run: `cargo run --release --example ingest_bench [-- SECONDS]`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn cdr(n: u64) -> String {
    // Unique Cdr ids in the device's shape: random-looking order, like real traffic.
    let id = format!("{}{}-0", (n * 2_654_435_761) % 1_000_000, 20240108100000u64 + n % 86_400);
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<Cdr id=\"{id}\">\n  <callid>{}</callid>\n  <visitor id=\"{}\" />\n  \
<TimeStart>20240108100000</TimeStart>\n  <Type>IN</Type>\n  <Route>IP</Route>\n  <CPN>1820100{:04}</CPN>\n  <CDPN>200</CDPN>\n  \
<TimeEnd>20240108100213</TimeEnd>\n  <Duration>120</Duration>\n  <TrunkNumber>02161208234</TrunkNumber>\n  \
<Recording>20240108/18201008888_200_20240108_100013_{:X}_cd.wav</Recording>\n  <RecCodec>G729</RecCodec>\n</Cdr>\n",
        n % 65_536,
        n % 99 + 1,
        n % 10_000,
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
        return Err(std::io::Error::other(String::from_utf8_lossy(&buf).into_owned()));
    }
    Ok(())
}

struct Result {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

async fn load(addr: SocketAddr, senders: usize, secs: f64, counter: Arc<AtomicU64>) -> Result {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..senders {
        let (c, e) = (counter.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = c.fetch_add(1, Ordering::Relaxed);
                let body = cdr(n);
                let t = Instant::now();
                if one_push(addr, &body).await.is_err() {
                    e.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Result {
        rate: all.len() as f64 / wall,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

async fn bare_server() -> SocketAddr {
    use axum::body::Bytes;
    let app = axum::Router::new().fallback(|_b: Bytes| async { axum::http::StatusCode::OK });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
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
    let running = callvault::server::start(cfg).await.expect("server");
    let bare = bare_server().await;
    let counter = Arc::new(AtomicU64::new(0));
    println!("ingest benchmark: {secs} s per run, one TCP connection per push, ~500-byte CDRs, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!("{:<22} {:>8} {:>12} {:>9} {:>9} {:>7} {:>9}", "target", "senders", "pushes/s", "p50 ms", "p99 ms", "errors", "% bare");
    for senders in [16usize, 64] {
        let b = load(bare, senders, secs, counter.clone()).await;
        println!("{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>9}", "bare axum (ceiling)", senders, b.rate, b.p50_ms, b.p99_ms, b.errors, "100 %");
        let before = running.store.read(callvault::store::legs::count).await.unwrap_or(0);
        let d = load(running.ingest_addr, senders, secs, counter.clone()).await;
        let after = running.store.read(callvault::store::legs::count).await.unwrap_or(0);
        println!(
            "{:<22} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>7} {:>8.0} %   ({} legs committed)",
            "callvault durable",
            senders,
            d.rate,
            d.p50_ms,
            d.p99_ms,
            d.errors,
            100.0 * d.rate / b.rate.max(1.0),
            after - before
        );
    }
    running.stop().await;
}
