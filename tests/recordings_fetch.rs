//! The recording archiver against the simulated recorder over real HTTP
//! (docs/recordings.md): G.711 and G.729 calls end `done` with playable files,
//! retries, `missing`, dropped connections, restarts, hostile paths.

use std::path::{Path, PathBuf};

use callvault::config::{Config, DeviceConfig};
use callvault::server::{self, Running};
use callvault::sim::recorder::{self, Faults, RecorderHandle};
use callvault::sim::RecordingSpec;

use crate::util::*;

pub const DAY: &str = "20170309";

/// The `<Recording>` of `util::cdr(_, _, cpn)`.
pub fn rec_path(cpn: &str) -> String {
    format!("{DAY}/{cpn}_200_20170309_162711_8032_cd.wav")
}

/// A CDR with a recording of `codec`.
pub fn cdr_with(id: &str, cpn: &str, codec: &str) -> String {
    cdr(id, "48", cpn).replace(
        "<RecCodec>G729</RecCodec>",
        &format!("<RecCodec>{codec}</RecCodec>"),
    )
}

pub fn spec(cpn: &str, codec: &str, seconds: u32) -> RecordingSpec {
    RecordingSpec {
        path: rec_path(cpn),
        codec: codec.into(),
        seconds,
    }
}

/// Fast retries, no delay, the recorder as device `hq` pushing from loopback.
pub fn rec_config(dir: &Path, rec: &RecorderHandle) -> Config {
    rec_config_at(dir, &rec.base_url())
}

/// [`rec_config`] for a recorder at `base_url` (`http://…/mcc/Recorder/`).
pub fn rec_config_at(dir: &Path, base_url: &str) -> Config {
    let mut c = test_config(dir);
    c.recordings.fetch_delay_seconds = 0;
    c.recordings.retry_base_ms = 20;
    c.recordings.retry_max_ms = 100;
    c.recordings.max_attempts = 4;
    c.devices.push(DeviceConfig {
        name: "hq".into(),
        push_from: vec!["127.0.0.1".into()],
        recorder_url: Some(base_url.to_string()),
        ..Default::default()
    });
    c
}

/// (status, attempts, last_error, file, sha256) of a recording row.
pub type RowView = (String, i64, Option<String>, Option<String>, Option<String>);

pub struct Rig {
    pub running: Running,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database the server runs on (`None`: SQLite in `dir`).
    pub pg: Option<callvault::store::testing::TestDb>,
}

impl Rig {
    pub async fn start(rec: &RecorderHandle, tweak: impl FnOnce(&mut Config)) -> Rig {
        Rig::start_at(&rec.base_url(), tweak).await
    }

    /// [`Rig::start`] for a recorder at `base_url`.
    pub async fn start_at(base_url: &str, tweak: impl FnOnce(&mut Config)) -> Rig {
        Rig::start_on(OnBackend::Sqlite, base_url, tweak).await
    }

    /// [`Rig::start_at`] with the archive on `backend` (`util::backends`).
    pub async fn start_on(
        backend: OnBackend,
        base_url: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = rec_config_at(dir.path(), base_url);
        backend.configure(&mut cfg);
        tweak(&mut cfg);
        let running = server::start(cfg).await.expect("server starts");
        Rig {
            running,
            dir,
            pg: backend.into_db(),
        }
    }

    /// The archive, once every push answered so far is derived (SQLite only;
    /// [`Rig::reader`] reads either backend).
    pub fn db(&self) -> rusqlite::Connection {
        assert!(self.pg.is_none(), "Rig::db() reads the SQLite file");
        crate::util::open_derived(&self.dir.path().join("callvault.sqlite"))
    }

    /// What the archive holds, on either backend.
    pub fn reader(&self) -> Reader {
        match &self.pg {
            Some(db) => Reader::Postgres(db.url().to_string()),
            None => Reader::Sqlite(self.dir.path().join("callvault.sqlite")),
        }
    }

    /// Pushes `body` and waits until its legs (and recordings) are derived.
    pub fn push(&self, body: &str) {
        let resp = raw_exchange(self.running.ingest_addr, &om_request("POST", "/", body));
        assert_eq!(status_of(&resp), 200, "{resp}");
        wait_derived(&self.running.store);
    }

    /// (status, attempts, last_error, file, sha256) of the recording of leg `cdr_id`.
    pub fn row(&self, cdr_id: &str) -> Option<RowView> {
        wait_derived(&self.running.store);
        let rows = self.reader().rows(&format!(
            "SELECT r.status, r.attempts, r.last_error, r.file, r.sha256 FROM recordings r
             JOIN legs l ON l.id = r.leg_id WHERE l.cdr_id = '{}'",
            cdr_id.replace('\'', "''")
        ));
        let r = rows.first()?;
        let opt = |v: &Val| v.opt_text().map(str::to_string);
        Some((
            r[0].text().to_string(),
            r[1].int(),
            opt(&r[2]),
            opt(&r[3]),
            opt(&r[4]),
        ))
    }

    pub fn status(&self, cdr_id: &str) -> String {
        self.row(cdr_id).map(|r| r.0).unwrap_or_default()
    }

    pub async fn wait_status(&self, cdr_id: &str, want: &str) {
        let ok = eventually(15, || self.status(cdr_id) == want).await;
        assert!(
            ok,
            "recording of {cdr_id} is {:?}, wanted {want}",
            self.row(cdr_id)
        );
    }

    pub fn archive_file(&self, rel: &str) -> PathBuf {
        self.dir.path().join("recordings").join(rel)
    }
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn served(spec: &RecordingSpec, faults: &Faults) -> Vec<Vec<u8>> {
    recorder::files_for(spec, faults)
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_call_ends_done_with_the_served_wav() {
    let s = spec("1001", "PCMU", 3);
    let rec = recorder::start(vec![s.clone()], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("1-0", "1001", "PCMU"));
    rig.wait_status("1-0", "done").await;
    let (_, attempts, err, file, sha) = rig.row("1-0").unwrap();
    assert_eq!((attempts, err), (1, None));
    let file = file.unwrap();
    assert!(
        file.starts_with("2017/03/09/") && file.ends_with("-1001_200_20170309_162711_8032_cd.wav"),
        "{file}"
    );
    let bytes = std::fs::read(rig.archive_file(&file)).unwrap();
    assert_eq!(bytes, served(&s, &Faults::default())[0], "stored as served");
    assert_eq!(sha.unwrap(), sha256_hex(&bytes));
    let r = hound::WavReader::open(rig.archive_file(&file)).unwrap();
    assert_eq!((r.spec().sample_rate, r.duration()), (8000, 24_000));
    let dur: f64 = rig
        .db()
        .query_row("SELECT duration_seconds FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dur, 3.0);
    rig.running.stop().await;
    rec.stop().await;
}

#[cfg(feature = "g729")]
pub fn merged(halves: &[Vec<u8>]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    callvault::recordings::merge::merge(
        &halves[0][..],
        &halves[1][..],
        &mut out,
        Default::default(),
    )
    .unwrap();
    out.into_inner()
}

#[cfg(feature = "g729")]
async fn g729_case(faults: Faults) {
    let s = spec("1002", "G729", 2);
    let rec = recorder::start(vec![s.clone()], faults.clone())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("2-0", "1002", "G729"));
    rig.wait_status("2-0", "done").await;
    let (_, _, _, file, sha) = rig.row("2-0").unwrap();
    let wav = std::fs::read(rig.archive_file(&file.unwrap())).unwrap();
    let halves = served(&s, &faults);
    assert_eq!(
        wav,
        merged(&halves),
        "archived WAV = merge of the served halves"
    );
    assert_eq!(sha.unwrap(), sha256_hex(&wav));
    let r = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
    assert_eq!(
        (r.spec().channels, r.duration()),
        (1, 200 * 80),
        "padded to the longer half"
    );
    let originals: String = rig
        .db()
        .query_row("SELECT originals FROM recordings", [], |r| r.get(0))
        .unwrap();
    let originals: Vec<String> = serde_json::from_str(&originals).unwrap();
    assert_eq!(originals.len(), 2);
    for (rel, want) in originals.iter().zip(&halves) {
        assert_eq!(
            &std::fs::read(rig.archive_file(rel)).unwrap(),
            want,
            "{rel} kept as served"
        );
    }
    // The conversation figures were stored with the recording, from the
    // same decode: those of the served halves.
    let mut out = std::io::Cursor::new(Vec::new());
    let stats = callvault::recordings::merge::merge(
        &halves[0][..],
        &halves[1][..],
        &mut out,
        Default::default(),
    )
    .unwrap();
    let want = callvault::recordings::conversation::of_sides(
        &stats.speech_send,
        &stats.speech_recv,
        Default::default(),
    )
    .expect("figures");
    let (status, agent, customer, segments): (String, f64, f64, String) = rig
        .db()
        .query_row(
            "SELECT status, agent_talk_seconds, customer_talk_seconds, segments FROM conversations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(status, "ok");
    let r2 = callvault::model::conversation::round2;
    assert_eq!(
        (agent, customer),
        (r2(want.agent_talk_seconds), r2(want.customer_talk_seconds))
    );
    assert_eq!(segments, serde_json::to_string(&want.segments).unwrap());
    // `recordings analyze` computes them again from the kept halves: for
    // the recording without figures, then (`--all`) for every one.
    rig.db().execute("DELETE FROM conversations", []).unwrap();
    let analyze = |args: &[&str]| {
        let out = crate::reports_util::callvault(rig.dir.path(), args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = analyze(&["recordings", "analyze"]);
    assert!(text.contains("analysed 1: 1 with figures"), "{text}");
    let again: String = rig
        .db()
        .query_row("SELECT segments FROM conversations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(again, segments, "the same figures from the archived halves");
    let text = analyze(&["recordings", "analyze"]);
    assert!(text.contains("analysed 0"), "{text}");
    let text = analyze(&["recordings", "analyze", "--all"]);
    assert!(text.contains("analysed 1: 1 with figures"), "{text}");
    rig.running.stop().await;
    rec.stop().await;
}

#[cfg(feature = "g729")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g729_call_ends_done_with_merged_wav_and_originals() {
    g729_case(Faults::default()).await;
}

#[cfg(feature = "g729")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g729_halves_found_through_the_day_listing() {
    g729_case(Faults {
        half_suffixes: Some(("_x1_send.dat".into(), "_x1_recv.dat".into())),
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_twice_then_ok_ends_done() {
    let faults = Faults {
        not_found_first: 2,
        ..Default::default()
    };
    let rec = recorder::start(vec![spec("1003", "PCMA", 1)], faults)
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("3-0", "1003", "PCMA"));
    rig.wait_status("3-0", "done").await;
    let (_, attempts, err, _, _) = rig.row("3-0").unwrap();
    assert_eq!((attempts, err), (3, None));
    assert_eq!(rec.requests(&rec_path("1003")), 3);
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_not_found_ends_missing() {
    let faults = Faults {
        always_not_found: true,
        ..Default::default()
    };
    let rec = recorder::start(vec![spec("1004", "PCMU", 1)], faults)
        .await
        .unwrap();
    let rig = Rig::start(&rec, |c| c.recordings.max_attempts = 3).await;
    rig.push(&cdr_with("4-0", "1004", "PCMU"));
    rig.wait_status("4-0", "missing").await;
    let (_, attempts, err, file, _) = rig.row("4-0").unwrap();
    assert_eq!(attempts, 3);
    assert!(err.unwrap().contains("404"));
    assert_eq!(file, None);
    assert!(all_files(&rig.dir.path().join("recordings")).is_empty());
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_leaves_no_partial_file_and_is_retried() {
    // Always dropped: gives up as `failed`, and nothing at all is left in the archive.
    let faults = Faults {
        drop_mid_body_first: u32::MAX,
        ..Default::default()
    };
    let rec = recorder::start(vec![spec("1005", "PCMU", 2)], faults)
        .await
        .unwrap();
    let rig = Rig::start(&rec, |c| c.recordings.max_attempts = 2).await;
    rig.push(&cdr_with("5-0", "1005", "PCMU"));
    rig.wait_status("5-0", "failed").await;
    let (_, attempts, err, _, _) = rig.row("5-0").unwrap();
    assert_eq!(attempts, 2);
    assert!(
        err.unwrap().contains("request to"),
        "names the failed request"
    );
    assert_eq!(
        all_files(&rig.dir.path().join("recordings")),
        Vec::<PathBuf>::new()
    );
    rig.running.stop().await;
    rec.stop().await;

    // Dropped once: the retry gets the whole file.
    let faults = Faults {
        drop_mid_body_first: 1,
        ..Default::default()
    };
    let s = spec("1006", "PCMU", 2);
    let rec = recorder::start(vec![s.clone()], faults.clone())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("6-0", "1006", "PCMU"));
    rig.wait_status("6-0", "done").await;
    let (_, attempts, _, file, _) = rig.row("6-0").unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(
        std::fs::read(rig.archive_file(&file.unwrap())).unwrap(),
        served(&s, &faults)[0]
    );
    assert_eq!(
        all_files(&rig.dir.path().join("recordings")).len(),
        1,
        "no temporary file left"
    );
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_of_the_device_is_sent() {
    let faults = Faults {
        basic_auth: Some(("user".into(), "user".into())),
        ..Default::default()
    };
    let rec = recorder::start(
        vec![spec("1007", "PCMU", 1), spec("1008", "PCMU", 1)],
        faults,
    )
    .await
    .unwrap();
    let rig = Rig::start(&rec, |c| {
        c.devices[0].recorder_user = Some("user".into());
        c.devices[0].recorder_password = Some("user".into());
    })
    .await;
    rig.push(&cdr_with("7-0", "1007", "PCMU"));
    rig.wait_status("7-0", "done").await;
    rig.running.stop().await;
    let rig = Rig::start(&rec, |c| c.recordings.max_attempts = 1).await;
    rig.push(&cdr_with("8-0", "1008", "PCMU"));
    rig.wait_status("8-0", "failed").await;
    assert!(rig.row("8-0").unwrap().2.unwrap().contains("401"));
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_fetching_resumes_to_done() {
    let slow = recorder::start(
        vec![spec("1009", "PCMU", 1)],
        Faults {
            delay: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let running = server::start(rec_config(dir.path(), &slow)).await.unwrap();
    let resp = raw_exchange(
        running.ingest_addr,
        &om_request("POST", "/", &cdr_with("9-0", "1009", "PCMU")),
    );
    assert_eq!(status_of(&resp), 200);
    let db = || rusqlite::Connection::open(dir.path().join("callvault.sqlite")).unwrap();
    let status = || {
        db().query_row("SELECT status FROM recordings", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_default()
    };
    assert!(
        eventually(10, || status() == "fetching").await,
        "{}",
        status()
    );
    let stopped = std::time::Instant::now();
    running.stop().await;
    assert!(
        stopped.elapsed().as_secs() < 10,
        "stop does not wait for the slow download"
    );
    assert_eq!(
        status(),
        "fetching",
        "the interrupted job is still recorded"
    );

    let fast = recorder::start(vec![spec("1009", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    let running = server::start(rec_config(dir.path(), &fast)).await.unwrap();
    assert!(eventually(15, || status() == "done").await, "{}", status());
    let attempts: i64 = db()
        .query_row("SELECT attempts FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 1, "the interrupted attempt does not count");
    running.stop().await;
    fast.stop().await;
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_recording_values_never_touch_the_file_system() {
    let rec = recorder::start(Vec::new(), Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    let good = rec_path("1010");
    for (i, bad) in [
        "../../etc/passwd",
        "/etc/passwd",
        "20170309/a&#0;b.wav",
        "20170309/../../x.wav",
        "..\\..\\x.wav",
    ]
    .iter()
    .enumerate()
    {
        let body = cdr_with(&format!("{i}0-0"), "1010", "PCMU").replace(&good, bad);
        let resp = raw_exchange(rig.running.ingest_addr, &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 400, "{bad}: {resp}");
    }
    let n: i64 = rig
        .db()
        .query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "no job for a refused path");
    // The archive path builder refuses them too, by itself.
    let archive = callvault::recordings::archive::Archive::new(rig.dir.path().join("recordings"));
    for bad in [
        "../../etc/passwd",
        "/etc/passwd",
        "20170309/a\0b.wav",
        "20170309/..",
        "a/b/c.wav",
    ] {
        assert!(archive.relative(1, bad, "x.wav").is_err(), "{bad:?}");
        assert!(archive.relative(1, &good, bad).is_err(), "name {bad:?}");
        if bad != "a/b/c.wav" {
            assert!(archive.resolve(bad).is_err(), "resolve {bad:?}");
        }
    }
    let rel = archive
        .relative(1, &good, "1010_200_20170309_162711_8032_cd.wav")
        .unwrap();
    assert!(archive
        .resolve(&rel)
        .unwrap()
        .starts_with(rig.dir.path().join("recordings")));
    assert!(all_files(&rig.dir.path().join("recordings")).is_empty());
    rig.running.stop().await;
    rec.stop().await;
}
