//! "Reply 200 only after the message is committed", checked the hard way:
//! the real binary under load from concurrent devices is killed with
//! SIGKILL in the middle of it. Every push that was answered 200 must be in
//! the archive afterwards, and become its leg at the next start.
//!
//! A killed process keeps what it wrote to the page cache, so this checks
//! the order of commit and answer (an answer sent before its transaction's
//! commit would be lost here), not the fsync before it (which needs a power
//! cut; `store::wal_sync` explains why the WAL fsync covers it).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

/// One push as the device sends it; `Some(status)` when an answer came.
fn push(addr: SocketAddr, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&om_request("POST", "/omapi", body)).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.starts_with("HTTP/").then(|| status_of(&text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_answered_200_survive_a_kill_9_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve_child(
        dir.path(),
        &[
            // Durability is the subject, not identity: derive any sender's pushes.
            ("CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES", "true"),
            // 16 senders as fast as they go from loopback, an unconfigured
            // device: no per-address limits (see util::test_config).
            ("CALLVAULT_INGEST_MAX_CONNECTIONS_PER_IP", "0"),
            ("CALLVAULT_INGEST_UNREGISTERED_PUSHES_PER_MINUTE", "0"),
            ("CALLVAULT_INGEST_UNREGISTERED_BYTES_PER_MINUTE", "0"),
        ],
    );

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..16)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let id = format!("{}-0", t * 1_000_000 + i);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match push(addr, &cdr(&id, &format!("{}", i % 99 + 1), "18201000000")) {
                        Some(200) => {
                            acked.lock().unwrap().insert(id);
                        }
                        Some(other) => panic!("push {id} answered {other}"),
                        // The server is gone (killed): this push was never answered.
                        None => break,
                    }
                }
            })
        })
        .collect();
    // Kill it once a good number were answered, with the senders going.
    for _ in 0..200 {
        if acked.lock().unwrap().len() >= 1_500 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().expect("sender");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 500, "only {} pushes answered", acked.len());

    // Every answered push is in the archive as it was sent...
    let db = dir.path().join("callvault.sqlite");
    let stored: BTreeSet<String> = {
        let c = rusqlite::Connection::open(&db).expect("open archive after the kill");
        let mut st = c
            .prepare("SELECT CAST(body AS TEXT) FROM pushes WHERE outcome = 'stored'")
            .unwrap();
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .filter_map(|b| {
                let b = b.ok()?;
                let from = b.find("<Cdr id=\"")? + 9;
                Some(b[from..from + b[from..].find('"')?].to_string())
            })
            .collect();
        ids
    };
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} of {} pushes answered 200 are not in the archive, e.g. {lost:?}",
        acked.difference(&stored).count(),
        acked.len()
    );
    // ...and the next start derives each into its leg.
    let running = callvault::server::start(test_config(dir.path()))
        .await
        .expect("restart on the killed archive");
    let c = open_derived(&db);
    let mut st = c.prepare("SELECT cdr_id FROM legs").unwrap();
    let legs: BTreeSet<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(acked.is_subset(&legs), "answered pushes without their leg");
    println!(
        "killed under load: {} pushes answered 200, {} stored (some were committed but not yet answered), all answered ones derived",
        acked.len(),
        stored.len()
    );
    running.stop().await;
}
