//! Shared helpers of the integration tests: a real server on port 0 with a
//! temporary data directory, on SQLite or on a fresh PostgreSQL database,
//! raw TCP pushes, reading what was stored on either backend, and polling
//! with a deadline.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault::config::{Config, DeviceConfig};
use callvault::server::{self, Running};
use callvault::store::testing::TestDb;

pub use crate::stored::{Reader, Val};
pub use callvault::store::testing::Backend;

pub struct TestServer {
    pub running: Running,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database the server runs on (`None`: the SQLite file
    /// in `dir`); dropped, with its data, when the test ends.
    pub pg: Option<TestDb>,
}

/// Where a test server keeps its archive, before it starts: see [`backends`].
pub enum OnBackend {
    Sqlite,
    Postgres(TestDb),
}

/// SQLite, then (when `CALLVAULT_TEST_PG` is set) a fresh PostgreSQL
/// database: a test body runs once per item, the same steps and assertions
/// on both backends. Without the variable the PostgreSQL run says that
/// `test` was skipped.
pub fn backends(test: &str) -> Vec<OnBackend> {
    let mut out = vec![OnBackend::Sqlite];
    out.extend(TestDb::fresh(test).map(OnBackend::Postgres));
    out
}

impl OnBackend {
    pub fn backend(&self) -> Backend {
        match self {
            OnBackend::Sqlite => Backend::Sqlite,
            OnBackend::Postgres(_) => Backend::Postgres,
        }
    }

    /// Points `cfg` at this backend (`[store] url`).
    pub fn configure(&self, cfg: &mut Config) {
        if let OnBackend::Postgres(db) = self {
            cfg.store.url = db.url().to_string();
        }
    }

    /// The database handle to keep for as long as the server runs.
    pub fn into_db(self) -> Option<TestDb> {
        match self {
            OnBackend::Sqlite => None,
            OnBackend::Postgres(db) => Some(db),
        }
    }
}

impl TestServer {
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("callvault.sqlite")
    }

    pub fn backend(&self) -> Backend {
        if self.pg.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// A fresh read-only view of the archive file, once every push
    /// answered so far is derived (legs, events, calls: ingest answers the
    /// device after committing the raw push, and derives right after).
    /// SQLite only: tests that run on both backends read with [`count`],
    /// [`rows`] and [`reader`](TestServer::reader).
    pub fn db(&self) -> rusqlite::Connection {
        assert!(
            self.pg.is_none(),
            "TestServer::db() reads the SQLite file; on PostgreSQL use count/rows"
        );
        open_derived(&self.db_path())
    }

    /// Waits until every push answered so far is derived (see `db`), on
    /// either backend.
    pub fn derived(&self) {
        wait_derived(&self.running.store);
    }

    /// What the archive holds, read with the backend's own SQL (without
    /// waiting for derivation; usable after the server stopped).
    pub fn reader(&self) -> Reader {
        match &self.pg {
            Some(db) => Reader::Postgres(db.url().to_string()),
            None => Reader::Sqlite(self.db_path()),
        }
    }

    /// The single integer `sql` returns, once every push answered so far is
    /// derived. `sql` must read the same on both backends.
    pub fn count(&self, sql: &str) -> i64 {
        self.derived();
        self.reader().count(sql)
    }

    /// Every row `sql` returns, once every push answered so far is derived.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Val>> {
        self.derived();
        self.reader().rows(sql)
    }

    /// The single row `sql` returns (panics unless exactly one).
    pub fn row(&self, sql: &str) -> Vec<Val> {
        let mut rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows.remove(0)
    }

    pub fn ingest(&self) -> SocketAddr {
        self.running.ingest_addr
    }

    pub fn api(&self) -> SocketAddr {
        self.running.api_addr
    }
}

/// Waits until every push `store` committed so far is derived (through the
/// store, so on either backend).
pub fn wait_derived(store: &callvault::store::Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let backlog = || {
        store
            .read_blocking(callvault::store::pushes::derive_backlog)
            .expect("backlog")
    };
    while backlog() > 0 {
        assert!(
            Instant::now() < deadline,
            "derivation did not catch up in 20 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens the archive at `path` once every push committed so far is derived.
pub fn open_derived(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open archive");
    let deadline = Instant::now() + Duration::from_secs(20);
    let backlog = || callvault::store::pushes::derive_backlog(&callvault::store::Tx::on_sqlite(&c));
    while backlog().expect("backlog") > 0 {
        assert!(
            Instant::now() < deadline,
            "derivation did not catch up in 20 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    c
}

/// A push of `body` from loopback as the ingest listener hands it on
/// (for tests that call `Ingestor::accept` directly).
pub fn incoming(body: &str) -> callvault::ingest::Incoming {
    callvault::ingest::Incoming {
        source: "127.0.0.1".into(),
        method: "POST".into(),
        path: "/omapi".into(),
        query: None,
        body: body.as_bytes().to_vec(),
        body_end: callvault::ingest::BodyEnd::Whole,
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    cfg.ingest.listen = "127.0.0.1:0".into();
    cfg.api.listen = "127.0.0.1:0".into();
    // The lab setting: tests whose subject is not device identity derive
    // any sender's pushes (tests/ingest_devices.rs turns it off).
    cfg.ingest.accept_unknown_devices = true;
    // The tests push from loopback as an unconfigured device, at simulator
    // speed and fire-and-forget like the OM device: the per-address limits
    // for unregistered sources would refuse them. `ingest_limits` turns
    // them on where it checks them.
    cfg.ingest.max_connections_per_ip = 0;
    cfg.ingest.unregistered_pushes_per_minute = 0;
    cfg.ingest.unregistered_bytes_per_minute = 0;
    // Every test request comes from loopback, and several check 401s in
    // numbers: login throttling would answer them 429 (tests/api_tls.rs
    // turns it on where it checks it).
    cfg.api.login_failures_per_minute = 0;
    cfg
}

/// A device that signs its pushes (API_SERVER_PASSWORD) and pushes from loopback.
pub fn signed_device(password: &str, timeout: u64) -> DeviceConfig {
    DeviceConfig {
        name: "hq".into(),
        mac: Some("00:0E:A9:2D:07:D0".into()),
        push_from: vec!["127.0.0.1".into()],
        server_password: Some(password.into()),
        auth_timeout: Some(timeout),
        ..Default::default()
    }
}

pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
    start_on(OnBackend::Sqlite, f).await
}

/// [`start_with`] on `backend` (see [`backends`]).
pub async fn start_on(backend: OnBackend, f: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    backend.configure(&mut cfg);
    f(&mut cfg);
    let running = server::start(cfg).await.expect("server starts");
    TestServer {
        running,
        dir,
        pg: backend.into_db(),
    }
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Writes `bytes` in one write and reads until the server closes (or 5 s).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(addr, bytes, false)
}

/// `raw_exchange`, closing our sending side right after the write.
pub fn raw_exchange_half_closed(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(addr, bytes, true)
}

fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("write");
    if half_close {
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `bytes` and closes at once without reading (what the OM device does).
pub fn raw_fire_and_close(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("write");
    drop(s);
}

/// An HTTP/1.0 request as the OM device sends it: no Host, Content-Length, body.
pub fn om_request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of the first response in `resp`.
pub fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` until it holds or `secs` pass.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/om")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn md5_sign(password: &str, nonce: &str, ts: &str) -> String {
    callvault::ingest::om::sign(password, nonce, ts)
}

/// A minimal CDR document with the given id (shape of manual §2.6.1).
pub fn cdr(id: &str, visitor: &str, cpn: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="{id}">
  <callid>32818</callid>
  <visitor id="{visitor}" />
  <TimeStart>20170309162708</TimeStart>
  <Type>IN</Type>
  <Route>IP</Route>
  <CPN>{cpn}</CPN>
  <CDPN>200</CDPN>
  <TimeEnd>20170309162713</TimeEnd>
  <Duration>2</Duration>
  <TrunkNumber>888</TrunkNumber>
  <Recording>20170309/{cpn}_200_20170309_162711_8032_cd.wav</Recording>
  <RecCodec>G729</RecCodec>
</Cdr>
"#
    )
}

/// Blocking HTTP GET with an optional bearer token; returns (status, body).
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let url = format!("http://{addr}{path}");
    let client = reqwest::Client::new();
    let mut rb = client.get(url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

/// GET `path` with `token`, which must answer 200 with JSON.
pub async fn get_json(addr: SocketAddr, path: &str, token: &str) -> serde_json::Value {
    let (code, body) = get(addr, path, Some(token)).await;
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"))
}

pub async fn token(ts: &TestServer, role: &str) -> String {
    token_on(&ts.running, role).await
}

/// A new API token of `role` on a running server.
pub async fn token_on(running: &callvault::server::Running, role: &str) -> String {
    let role = role.to_string();
    running
        .store
        .writer
        .write(move |tx| callvault::store::tokens::create(tx, "test", &role))
        .await
        .expect("token")
}

/// Every row `sql` returns, each as one line of its values' debug text: for
/// comparing derived tables exactly (live vs rebuild).
pub fn rows_as_text(c: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!("{:?}|", r.get_ref(i)?));
        }
        Ok(s)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A `callvault serve` child process on `dir` (both listeners on free
/// loopback ports, `envs` added to its environment) and its ingest address.
/// What it prints is read on, so it never meets a closed pipe.
pub fn serve_child(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> (std::process::Child, SocketAddr) {
    let (child, ingest, _) = serve_child_addrs(dir, envs);
    (child, ingest)
}

/// `serve_child`, with the API address too.
pub fn serve_child_addrs(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> (std::process::Child, SocketAddr, SocketAddr) {
    serve_child_config(dir, None, envs)
}

/// `serve_child_addrs` with a configuration file (`--config`), for what the
/// environment cannot say (`[[device]]` tables).
pub fn serve_child_config(
    dir: &std::path::Path,
    config: Option<&std::path::Path>,
    envs: &[(&str, &str)],
) -> (std::process::Child, SocketAddr, SocketAddr) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
    if let Some(file) = config {
        cmd.arg("--config").arg(file);
    }
    let mut child = cmd
        .arg("--data")
        .arg(dir)
        .arg("serve")
        .env("CALLVAULT_INGEST_LISTEN", "127.0.0.1:0")
        .env("CALLVAULT_API_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start callvault serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || {
        lines
            .next()
            .expect("serve printed its addresses")
            .expect("stdout")
    };
    let ingest = loop {
        if let Some(a) = next().strip_prefix("ingest listening on ") {
            break a.trim().parse().expect("address");
        }
    };
    let api = loop {
        let line = next();
        if let Some(a) = line.strip_prefix("API and web page on http://") {
            break a.trim().trim_end_matches('/').parse().expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, ingest, api)
}
