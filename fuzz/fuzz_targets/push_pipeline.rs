//! The push pipeline up to the store: `Ingestor::accept` on a real SQLite
//! archive (opened once per process, in a temporary directory, with the
//! derivation and its live stages installed as `serve` does), then the
//! derivation of what was committed (legs, events, calls, queue visits,
//! recording schedule) with `Writer::drain`.
//!
//! The first input byte picks how the push arrives: which source (an
//! unregistered sender, a configured device that signs its pushes, a configured
//! device in another time zone, an `import`), GET or POST, body or query
//! string (a blank body with the XML in the query, as GET pushes do), and
//! how reading the body ended. The rest is the body.
//!
//! Invariants: `accept` answers 200 or a 4xx (a 503 would mean the store
//! refused a write: a bug here); the push is in the `pushes` table with the
//! answer given (a 200 stored, or held when the sender is no configured
//! device; quarantined otherwise) and its body
//! byte for byte; the derivation does not fail, and a stored push derives
//! without a derive error.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use callvault::config::{Config, DeviceConfig};
use callvault::ingest::{BodyEnd, Incoming, Ingestor};
use callvault::store::Store;
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    ingestor: Ingestor,
    store: Store,
    db: Mutex<rusqlite::Connection>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // CALLVAULT_FUZZ_DIR puts the archive elsewhere (e.g. /dev/shm: fsync is then free).
        let dir = match std::env::var_os("CALLVAULT_FUZZ_DIR") {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .expect("temporary directory");
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        cfg.devices = vec![
            DeviceConfig {
                name: "hq".into(),
                mac: Some(HQ_MAC.into()),
                push_from: vec!["10.0.0.5".into()],
                server_password: Some("secret".into()),
                auth_timeout: Some(300),
                ..Default::default()
            },
            DeviceConfig {
                name: "ny".into(),
                push_from: vec!["10.0.0.6".into()],
                timezone: Some("America/New_York".into()),
                ..Default::default()
            },
        ];
        let cfg = Arc::new(cfg);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = Store::open(&cfg.db_path()).expect("open the archive");
        let (ingestor, _queues) = rt
            .block_on(async { callvault::server::ingestor(&store, &cfg) })
            .expect("wire the ingestor");
        let db = rusqlite::Connection::open(cfg.db_path()).expect("read connection");
        World {
            rt,
            ingestor,
            store,
            db: Mutex::new(db),
            _dir: dir,
        }
    })
}

const HQ_MAC: &str = "00:0E:A9:2D:07:D0";

/// An unregistered sender, the signing device, the other device, a replay.
const SOURCES: [&str; 4] = ["127.0.0.1", "10.0.0.5", "10.0.0.6", "import:fuzz.xml"];

fn incoming(data: &[u8]) -> Incoming {
    let (ctl, body) = match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    };
    let source = SOURCES[usize::from(ctl & 3)];
    let method = if ctl & 4 == 0 { "POST" } else { "GET" };
    let (body, query) = if ctl & 8 == 0 {
        (body.to_vec(), None)
    } else {
        (Vec::new(), Some(String::from_utf8_lossy(body).into_owned()))
    };
    let body_end = match ctl >> 4 {
        13 => BodyEnd::TooLarge,
        14 => BodyEnd::Stalled,
        15 => BodyEnd::Broken,
        _ => BodyEnd::Whole,
    };
    Incoming {
        source: source.into(),
        method: method.into(),
        path: "/omapi".into(),
        query,
        body,
        body_end,
    }
}

/// Start of the current input (unix ms; 0 = none running), for `watchdog`.
static STARTED: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as u64)
}

/// With `CALLVAULT_FUZZ_HANG_STACKS=<dir>`: when one input runs longer than
/// 4 s, gdb writes every thread's stack to `<dir>/hang-<pid>.txt` (libFuzzer's
/// own timeout report shows no other thread: a writer stalled behind its
/// background thread would not show where it waits).
fn watchdog() {
    static ONCE: Once = Once::new();
    let Some(dir) = std::env::var_os("CALLVAULT_FUZZ_HANG_STACKS") else {
        return;
    };
    ONCE.call_once(move || {
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let started = STARTED.load(Ordering::SeqCst);
            if started != 0 && now_ms().saturating_sub(started) > 4_000 {
                let pid = std::process::id().to_string();
                if let Ok(out) = std::process::Command::new("gdb")
                    .args(["-p", &pid, "-batch", "-ex", "thread apply all bt 40"])
                    .output()
                {
                    let file = std::path::Path::new(&dir).join(format!("hang-{pid}.txt"));
                    let _ = std::fs::write(&file, out.stdout);
                    eprintln!("push_pipeline: stacks of a hang in {}", file.display());
                }
                std::thread::sleep(Duration::from_secs(60));
            }
        });
    });
}

fuzz_target!(|data: &[u8]| {
    watchdog();
    STARTED.store(now_ms(), Ordering::SeqCst);
    let w = world();
    let req = incoming(data);
    let (body, source) = (
        req.body.clone(),
        SOURCES[usize::from(data.first().copied().unwrap_or(0) & 3)],
    );
    let reply = w.rt.block_on(w.ingestor.accept(req));
    assert!(
        reply.status == 200 || (400..500).contains(&reply.status),
        "accept answered {reply:?}"
    );
    let db = w.db.lock().expect("read connection");
    let (id, outcome, status, stored_body): (i64, String, u16, Vec<u8>) = db
        .query_row(
            "SELECT id, outcome, status, body FROM pushes ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("the push is in the pushes table");
    assert_eq!(status, reply.status);
    // A push from a sender that is no configured device is stored and
    // held (accept_unknown_devices is off by default), but never refused
    // for it.
    let registered = matches!(source, "10.0.0.5" | "10.0.0.6");
    let expected = match reply.status {
        200 if reply.held => "held",
        200 => "stored",
        _ => "quarantined",
    };
    assert_eq!(outcome, expected, "{reply:?}");
    // Held from a configured device's address only when the push names a
    // MAC that is no configured device's (another box behind that address).
    let sender_mac: Option<String> = db
        .query_row("SELECT sender_mac FROM pushes WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("sender_mac");
    assert!(
        !(reply.held && registered && sender_mac.as_deref().is_none_or(|m| m == HQ_MAC)),
        "a registered device's push held (sender MAC {sender_mac:?})"
    );
    assert_eq!(stored_body, body, "the body is stored as received");
    w.rt.block_on(w.store.writer.drain())
        .expect("derivation does not fail");
    let derive_error: Option<String> = db
        .query_row("SELECT derive_error FROM pushes WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("derive_error");
    assert_eq!(derive_error, None, "a stored push fails to derive");
    STARTED.store(0, Ordering::SeqCst);
});
