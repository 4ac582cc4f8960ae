//! `callvault backup` while the server ingests, and `callvault restore` of
//! that backup into a new data directory served again (docs/operations.md
//! "Backup and restore"): the archive copy is consistent, every recording
//! file is checked against its sha256, a second backup copies nothing again,
//! a tampered file or a non-empty target is refused, and on PostgreSQL both
//! commands point at pg_dump.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use callvault::server;
use callvault::sim::recorder::{self, Faults};
use sha2::{Digest, Sha256};

use crate::recordings_fetch::{cdr_with, spec, Rig};
use crate::util::*;

fn callvault(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run callvault")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// (path, sha256) lines of a backup's manifest, each checked against the
/// file's bytes when the file is there.
fn check_manifest(dir: &Path) -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.sha256")).expect("manifest");
    let mut out = Vec::new();
    for line in manifest.lines() {
        let (hash, path) = line.split_once("  ").expect("sha256sum line");
        let bytes = std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), hash, "{path}");
        out.push((path.to_string(), hash.to_string()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_serves_the_same_calls_and_recordings() {
    let rec = recorder::start(
        vec![spec("2001", "PCMU", 2), spec("2002", "G729", 3)],
        Faults::default(),
    )
    .await
    .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("1-0", "2001", "PCMU"));
    rig.push(&cdr_with("2-0", "2002", "G729"));
    rig.wait_status("1-0", "done").await;
    rig.wait_status("2-0", "done").await;
    let (_, _, _, file, sha) = rig.row("2-0").unwrap();
    let (file, sha) = (file.unwrap(), sha.unwrap());

    // Pushes keep arriving while the backup runs: each answered 200 is
    // stored, and the copy is the archive as of one commit.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let pusher = {
        let (stop, acked, ingest) = (stop.clone(), acked.clone(), rig.running.ingest_addr);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = cdr(&format!("live-{n}"), "48", "3001").replace(
                    "<Recording>20170309/3001_200_20170309_162711_8032_cd.wav</Recording>",
                    "<Recording></Recording>",
                );
                if status_of(&raw_exchange(ingest, &om_request("POST", "/", &body))) == 200 {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    eventually(10, || acked.load(Ordering::Relaxed) > 5).await;
    let backups = tempfile::tempdir().unwrap();
    let bdir = backups.path().join("nightly");
    let o = callvault(&[
        os("--data"),
        rig.dir.path().as_os_str(),
        os("backup"),
        bdir.as_os_str(),
    ]);
    let acked_during = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(acked_during > 5, "ingest went on during the backup");

    let listed = check_manifest(&bdir);
    let paths: Vec<&str> = listed.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"callvault.sqlite"), "{paths:?}");
    assert!(
        listed.contains(&(format!("recordings/{file}"), sha.clone())),
        "the G.729 call's WAV with the sha256 kept at archiving: {listed:?}"
    );
    let recording_files = paths
        .iter()
        .filter(|p| p.starts_with("recordings/"))
        .count();
    assert!(recording_files >= 2, "{paths:?}");
    let copy = rusqlite::Connection::open(bdir.join("callvault.sqlite")).unwrap();
    let integrity: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let copied_pushes: i64 = copy
        .query_row("SELECT count(*) FROM pushes", [], |r| r.get(0))
        .unwrap();
    assert!(copied_pushes >= 2, "{copied_pushes}");
    drop(copy);

    // Again into the same directory: nothing copied twice.
    let o = callvault(&[
        os("--data"),
        rig.dir.path().as_os_str(),
        os("backup"),
        bdir.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains(&format!(
            "recordings: 0 copied, {recording_files} already in the backup"
        )),
        "{said}"
    );
    rig.running.stop().await;
    rec.stop().await;

    // Restore into a new directory, and serve it.
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let o = callvault(&[
        os("--data"),
        target.as_os_str(),
        os("restore"),
        bdir.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = callvault(&[
        os("--data"),
        target.as_os_str(),
        os("restore"),
        bdir.as_os_str(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not empty"),
        "{}",
        text(&o)
    );
    let o = callvault(&[
        os("--data"),
        target.as_os_str(),
        os("restore"),
        bdir.as_os_str(),
        os("--force"),
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let running = server::start(test_config(&target))
        .await
        .expect("serve the restored archive");
    let tok = token_on(&running, "qa").await;
    let db = rusqlite::Connection::open(target.join("callvault.sqlite")).unwrap();
    let (call, recording): (String, i64) = db
        .query_row(
            "SELECT c.id, r.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
             JOIN legs l ON l.id = cl.leg_id JOIN recordings r ON r.leg_id = l.id
             WHERE l.cdr_id = '2-0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the G.729 call and its recording are restored");
    drop(db);
    let (status, _) = get(running.api_addr, &format!("/api/calls/{call}"), Some(&tok)).await;
    assert_eq!(status, 200);
    let (status, body) = get(
        running.api_addr,
        &format!("/api/recordings/{recording}"),
        Some(&tok),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(hex::encode(Sha256::digest(&body)), sha);
    running.stop().await;

    // A backup whose recording was altered is not restored.
    let wav = bdir.join("recordings").join(&file);
    let mut bytes = std::fs::read(&wav).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wav, bytes).unwrap();
    let again = restored.path().join("again");
    let o = callvault(&[
        os("--data"),
        again.as_os_str(),
        os("restore"),
        bdir.as_os_str(),
    ]);
    assert!(!o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("does not match MANIFEST.sha256"), "{said}");
    assert!(said.contains(&file), "names the file: {said}");
    assert!(
        !again.join("callvault.sqlite").exists(),
        "no archive that looks restored"
    );
}

#[test]
fn backup_and_restore_point_at_pg_dump_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["backup", "restore"] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["--data"])
            .arg(dir.path())
            .args([cmd])
            .arg(dir.path().join("b"))
            .env(
                "CALLVAULT_STORE_URL",
                "postgres://callvault:secret@db.example:5432/callvault",
            )
            .output()
            .expect("run callvault");
        assert!(!o.status.success());
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(said.contains("pg_dump"), "{said}");
        assert!(
            !said.contains("secret"),
            "the password is not shown: {said}"
        );
        assert!(!dir.path().join("b").exists(), "nothing written");
    }
}
