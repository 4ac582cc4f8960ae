//! The retention purge (`[retention]`, docs/operations.md "Retention") on
//! SQLite and on PostgreSQL (`util::backends`): real pushes over the
//! ingest socket, calls dated in the past by their CDR times, and the
//! purge run at a chosen instant (`Cutoffs::new(cfg, now)`) rather than by
//! waiting: what receive time dates (raw pushes, quarantine, audit rows,
//! events, queue visits) is cut between two pushes made a moment apart.

use std::time::Duration;

use callvault::config::Config;
use callvault::recordings::RecordingStore;
use callvault::retention::{self, Cutoffs, Line};
use callvault::store::recordings::{self, Archived};
use callvault::store::{audit, retention as db, sessions};
use chrono::{DateTime, Utc};

use crate::util::*;

const DAY: i64 = 86_400_000;

/// A CDR of one call leg starting at `start` (the device's local clock,
/// the default zone), with a PCMU recording.
fn cdr_at(id: &str, start: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let s = start.with_timezone(&tz);
    let e = s + chrono::Duration::seconds(30);
    let (ts, te, day) = (
        s.format("%Y%m%d%H%M%S"),
        e.format("%Y%m%d%H%M%S"),
        s.format("%Y%m%d"),
    );
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="{id}">
  <callid>{id}</callid>
  <visitor id="v{id}" />
  <TimeStart>{ts}</TimeStart>
  <Type>IN</Type>
  <Route>IP</Route>
  <CPN>1390000{id}</CPN>
  <CDPN>200</CDPN>
  <TimeEnd>{te}</TimeEnd>
  <Duration>30</Duration>
  <TrunkNumber>888</TrunkNumber>
  <Recording>{day}/rec_{id}.wav</Recording>
  <RecCodec>PCMU</RecCodec>
</Cdr>
"#
    )
}

fn push(ts: &TestServer, body: &str) {
    let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", body));
    assert_eq!(status_of(&resp), 200, "{resp}");
}

fn quarantine(ts: &TestServer) {
    let mut bad = b"POST / HTTP/1.0\r\nContent-Length: 6\r\n\r\n".to_vec();
    bad.extend_from_slice(&[0x3c, 0xff, 0xfe, 0x41, 0x3e, 0x0a]);
    assert_eq!(status_of(&raw_exchange(ts.ingest(), &bad)), 400);
}

async fn audit_row(ts: &TestServer, time_ms: i64) {
    let e = audit::Entry {
        time_ms,
        actor: Some("qa".into()),
        role: Some("qa".into()),
        ip: None,
        action: "call.view".into(),
        target: "call x".into(),
        status: 200,
        count: 1,
        detail: None,
    };
    ts.running
        .store
        .writer
        .write(move |tx| audit::insert(tx, &e))
        .await
        .expect("audit row");
}

/// Archives a real file for the recording of leg `cdr` and marks it done,
/// as a fetch would.
async fn archive_recording(ts: &TestServer, cdr: &str) -> (i64, std::path::PathBuf) {
    let id = ts.count(&format!(
        "SELECT r.id FROM recordings r JOIN legs l ON l.id = r.leg_id WHERE l.cdr_id = '{cdr}'"
    ));
    let key = format!("2026/01/01/{cdr}.wav");
    let path = ts.dir.path().join("recordings").join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"RIFF....WAVE").unwrap();
    let a = Archived {
        file: key,
        originals: Vec::new(),
        bytes: 12,
        duration_seconds: 30.0,
        sha256: "00".repeat(32),
        // Figures stored with it, as the fetch does (docs/recordings.md
        // "Conversation figures"): the purge must take them along.
        conversation: Some(Err("test: no sides".into())),
    };
    ts.running
        .store
        .writer
        .write(move |tx| recordings::finish_done(tx, id, &a))
        .await
        .expect("done");
    (id, path)
}

fn status_of_recording(ts: &TestServer, id: i64) -> (String, Option<String>) {
    let row = ts.row(&format!(
        "SELECT status, file FROM recordings WHERE id = {id}"
    ));
    (row[0].text().to_string(), row[1].opt_text().map(Into::into))
}

fn line<'a>(plan: &'a [Line], kind: &str) -> &'a Line {
    plan.iter()
        .find(|l| l.kind == kind)
        .unwrap_or_else(|| panic!("{kind} in {plan:?}"))
}

fn removed(r: &retention::Removed, kind: &str) -> u64 {
    r.iter().find(|(k, _)| *k == kind).expect("kind").1
}

/// Everything the purge may touch, as counts, to see that a dry run
/// changes nothing.
fn snapshot(ts: &TestServer) -> Vec<i64> {
    [
        "SELECT COUNT(*) FROM calls",
        "SELECT COUNT(*) FROM legs",
        "SELECT COUNT(*) FROM events",
        "SELECT COUNT(*) FROM queue_visits",
        "SELECT COUNT(*) FROM recordings WHERE status = 'purged'",
        "SELECT COUNT(*) FROM pushes WHERE length(body) = 0",
        "SELECT COUNT(*) FROM pushes",
        "SELECT COUNT(*) FROM audit_log",
        "SELECT COUNT(*) FROM sessions",
    ]
    .iter()
    .map(|q| ts.count(q))
    .collect()
}

fn cli(ts: &TestServer, args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.arg("--data")
        .arg(ts.dir.path())
        .args(args)
        .envs(envs.iter().copied());
    if let Some(db) = &ts.pg {
        cmd.env("CALLVAULT_STORE_URL", db.url());
    }
    let out = cmd.output().expect("run callvault");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_exactly_what_is_past_each_limit_on_each_backend() {
    for b in backends("purge_removes_exactly_what_is_past_each_limit_on_each_backend") {
        let ts = start_on(b, |c| {
            // The recordings stay pending: this test archives them itself.
            c.recordings.fetch_delay_seconds = 10_000_000;
        })
        .await;
        let backend = ts.backend();
        let cfg_now = Config::default();
        let tz = cfg_now.default_tz();
        // The purge runs "one day after T"; T splits the pushes in two.
        let real_now = Utc::now();
        let now = real_now + chrono::Duration::days(1);
        let ago = |days: i64| now - chrono::Duration::days(days);
        push(&ts, &cdr_at("101", ago(100), tz)); // call and recording past their limits
        push(&ts, &cdr_at("102", ago(40), tz)); // recording past, call kept
        push(&ts, &cdr_at("103", ago(2), tz)); // both kept
        push(&ts, &fixture("2.5.7-queue-1a-ext.xml"));
        quarantine(&ts);
        let t_ms = Utc::now().timestamp_millis() + 5;
        audit_row(&ts, t_ms - 1_000).await;
        let token = token(&ts, "admin").await;
        let token_id = ts.count("SELECT id FROM tokens WHERE name = 'test'");
        let store = ts.running.store.clone();
        let before = DateTime::from_timestamp_millis(t_ms - 2 * 3_600_000).unwrap();
        store
            .writer
            .write(move |tx| sessions::create(tx, token_id, before, 0))
            .await
            .expect("old session");
        tokio::time::sleep(Duration::from_millis(30)).await;
        push(&ts, &cdr_at("104", ago(3), tz));
        quarantine(&ts);
        audit_row(&ts, t_ms + 1_000).await;
        let later = DateTime::from_timestamp_millis(t_ms + DAY).unwrap();
        store
            .writer
            .write(move |tx| sessions::create(tx, token_id, later, 0))
            .await
            .expect("recent session");
        ts.derived();
        let (r101, f101) = archive_recording(&ts, "101").await;
        let (r102, f102) = archive_recording(&ts, "102").await;
        let (r103, f103) = archive_recording(&ts, "103").await;

        let mut cfg = Config::default();
        cfg.retention.recordings_days = 30;
        cfg.retention.calls_days = 60;
        cfg.retention.raw_days = 1;
        cfg.retention.quarantine_days = 1;
        cfg.retention.audit_days = 1;
        let cut = Cutoffs::new(&cfg, t_ms + DAY);

        // Dry run: lists, changes nothing.
        let before_counts = snapshot(&ts);
        let plan = retention::plan(&store, &cut).await.expect("plan");
        let rec = line(&plan, "recordings");
        assert_eq!(rec.count, 2, "{backend:?}: {plan:?}");
        let local =
            |days: i64| callvault::retention::cutoff::local_text(ago(days).timestamp_millis(), tz);
        assert_eq!(rec.oldest.as_deref(), Some(local(100).as_str()));
        assert_eq!(rec.newest.as_deref(), Some(local(40).as_str()));
        assert_eq!(line(&plan, "calls").count, 1, "{plan:?}");
        assert_eq!(
            line(&plan, "raw").count,
            4,
            "3 CDRs and the event: {plan:?}"
        );
        assert_eq!(line(&plan, "quarantine").count, 1, "{plan:?}");
        assert_eq!(line(&plan, "audit").count, 1, "{plan:?}");
        assert_eq!(line(&plan, "sessions").count, 1, "{plan:?}");
        assert_eq!(line(&plan, "events").count, 0, "{plan:?}");
        assert_eq!(
            snapshot(&ts),
            before_counts,
            "{backend:?}: a dry run changes nothing"
        );
        assert!(f101.exists() && f102.exists());

        // The CLI's dry run, at the real clock: call 101 is 99 days old.
        let out = cli(
            &ts,
            &["purge", "--dry-run"],
            &[("CALLVAULT_RETENTION_CALLS_DAYS", "60")],
        );
        assert!(out.contains("would remove:"), "{out}");
        let calls_line = out
            .lines()
            .find(|l| l.trim_start().starts_with("calls "))
            .unwrap();
        assert_eq!(calls_line.split_whitespace().nth(1), Some("1"), "{out}");
        assert!(calls_line.contains(&local(100)), "{out}");
        assert_eq!(
            snapshot(&ts),
            before_counts,
            "{backend:?}: the CLI's dry run changes nothing"
        );

        // The real run.
        let files = RecordingStore::from_config(&ts_config(&ts)).expect("store");
        let gone = retention::run(&store, &files, &cut, &|_, _| {})
            .await
            .expect("purge");
        assert_eq!(removed(&gone, "recordings"), 2, "{backend:?}: {gone:?}");
        assert_eq!(removed(&gone, "calls"), 1, "{gone:?}");
        assert_eq!(removed(&gone, "raw"), 4, "{gone:?}");
        assert_eq!(removed(&gone, "quarantine"), 1, "{gone:?}");
        assert_eq!(removed(&gone, "audit"), 1, "{gone:?}");
        assert_eq!(removed(&gone, "sessions"), 1, "{gone:?}");
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM legs WHERE cdr_id = '101'"),
            0,
            "{backend:?}"
        );
        assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 3);
        assert_eq!(ts.count("SELECT COUNT(*) FROM call_legs"), 3);
        assert_eq!(
            ts.count(&format!(
                "SELECT COUNT(*) FROM recordings WHERE id = {r101}"
            )),
            0,
            "a purged call's recording row goes with it"
        );
        assert!(
            !f101.exists() && !f102.exists(),
            "{backend:?}: files removed"
        );
        assert!(f103.exists(), "a recording within its limit stays");
        assert_eq!(status_of_recording(&ts, r102), ("purged".into(), None));
        assert_eq!(status_of_recording(&ts, r103).0, "done");
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM conversations"),
            1,
            "{backend:?}: only the kept recording's figures stay"
        );
        assert_eq!(
            ts.count(&format!(
                "SELECT COUNT(*) FROM conversations WHERE recording_id = {r103}"
            )),
            1,
            "{backend:?}"
        );
        // Raw bodies before T are empty; the rows, legs and events stay.
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes WHERE length(body) = 0"),
            4
        );
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes WHERE outcome = 'stored' AND length(body) > 0"),
            1,
            "the push after T keeps its body"
        );
        assert_eq!(ts.count("SELECT COUNT(*) FROM events"), 1, "{backend:?}");
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes WHERE outcome = 'quarantined'"),
            1
        );
        assert_eq!(
            ts.count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE time_ms < {t_ms}"
            )),
            0
        );
        assert_eq!(
            ts.count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE time_ms = {}",
                t_ms + 1_000
            )),
            1
        );
        assert_eq!(ts.count("SELECT COUNT(*) FROM sessions"), 1);

        // The API shows the recording purged, in the field that carries the status.
        let call102 = ts.row(
            "SELECT c.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
               JOIN legs l ON l.id = cl.leg_id WHERE l.cdr_id = '102'",
        )[0]
        .text()
        .to_string();
        let detail = get_json(ts.api(), &format!("/api/calls/{call102}"), &token).await;
        assert_eq!(detail["recordings"][0]["status"], "purged", "{detail}");

        // A second pass finds nothing; a rebuild neither brings back nor
        // reschedules anything, and says the raw bodies are gone.
        let again = retention::run(&store, &files, &cut, &|_, _| {})
            .await
            .expect("again");
        assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
        let out = cli(&ts, &["rebuild"], &[]);
        assert!(out.contains("raw push bodies received up to"), "{out}");
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM calls"),
            3,
            "{backend:?}: {out}"
        );
        assert_eq!(status_of_recording(&ts, r102), ("purged".into(), None));
        // Rebuild made no recording job: only leg 104's (never archived here) waits.
        assert_eq!(
            rows_text(
                &ts,
                "SELECT l.cdr_id FROM recordings r JOIN legs l ON l.id = r.leg_id
                 WHERE r.status IN ('pending', 'fetching') ORDER BY l.cdr_id"
            ),
            vec!["104".to_string()],
            "{backend:?}"
        );
        assert_eq!(
            store
                .read(db::raw_purged_until)
                .await
                .expect("mark")
                .map(|ms| ms < t_ms),
            Some(true)
        );

        // calls_days reaching past every call: all go, with their files,
        // events and queue visits received before the cutoff.
        // On a whole second: queue visits are dated in whole seconds.
        let t2 = (Utc::now().timestamp_millis() / 1000 + 2) * 1000;
        while Utc::now().timestamp_millis() <= t2 + 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        push(&ts, &fixture("2.5.7-queue-1a-ext.xml"));
        ts.derived();
        let mut cfg2 = Config::default();
        cfg2.retention.calls_days = 60;
        let gone = retention::run(
            &store,
            &files,
            &Cutoffs::new(&cfg2, t2 + 60 * DAY),
            &|_, _| {},
        )
        .await
        .expect("purge 2");
        assert_eq!(
            removed(&gone, "calls"),
            3,
            "{backend:?}: {gone:?} {:?} {:?} t2={t2}",
            rows_text(&ts, "SELECT start_local || ' ' || id FROM calls"),
            rows_text(
                &ts,
                "SELECT status || ' ' || COALESCE(file, '-') FROM recordings"
            )
        );
        assert_eq!(removed(&gone, "events"), 1, "{gone:?}");
        assert!(removed(&gone, "queue_visits") >= 1, "{gone:?}");
        assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 0);
        assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 0);
        assert_eq!(ts.count("SELECT COUNT(*) FROM recordings"), 0);
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM events"),
            1,
            "the event after the cutoff"
        );
        assert!(!f103.exists(), "{backend:?}");
    }
}

fn rows_text(ts: &TestServer, sql: &str) -> Vec<String> {
    ts.rows(sql)
        .iter()
        .map(|r| r[0].text().to_string())
        .collect()
}

/// The configuration the test server runs with (its data directory).
fn ts_config(ts: &TestServer) -> Config {
    test_config(ts.dir.path())
}

/// `callvault serve` purges on its own shortly after start (no cron):
/// a call older than `calls_days` goes, a recent one stays, and the pass
/// is counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_purges_shortly_after_start_and_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, ingest, api) = serve_child_addrs(
        dir.path(),
        &[
            ("CALLVAULT_RETENTION_CALLS_DAYS", "60"),
            ("CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES", "true"),
            ("CALLVAULT_RECORDINGS_FETCH_DELAY_SECONDS", "10000000"),
        ],
    );
    let tz = Config::default().default_tz();
    let now = Utc::now();
    for (id, days) in [("201", 100), ("202", 2)] {
        let body = cdr_at(id, now - chrono::Duration::days(days), tz);
        let resp = raw_exchange(ingest, &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
    }
    let db = dir.path().join("callvault.sqlite");
    let legs = |cdr: &str| {
        open_derived(&db)
            .query_row(
                &format!("SELECT COUNT(*) FROM legs WHERE cdr_id = '{cdr}'"),
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(-1)
    };
    assert_eq!(legs("201"), 1, "stored before the first pass");
    // The first pass comes FIRST_PASS_AFTER (10 s) after start.
    let purged = eventually(90, || legs("201") == 0).await;
    // The pass counts a kind once its batch is committed: the legs may be
    // gone a moment before the counter moves.
    let counted = |m: &str| {
        m.lines()
            .any(|l| l.starts_with("callvault_purged_total{kind=\"calls\"} 1"))
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = String::from_utf8_lossy(&get(api, "/metrics", None).await.1).into_owned();
        if counted(&metrics) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(purged, "the 100-day-old call was not purged by serve");
    assert_eq!(legs("202"), 1, "a call within calls_days stays");
    assert!(counted(&metrics), "{metrics}");
}

/// With recordings in S3-compatible storage, a recording past
/// `recordings_days` is deleted from the bucket (a real S3-protocol
/// server) and its row says `purged`; a recent one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_the_object_in_s3() {
    let s3 = crate::recordings_s3::S3Server::start().await;
    let ts = start_with(|c| {
        c.recordings.fetch_delay_seconds = 10_000_000;
        s3.configure(c, "pbx");
    })
    .await;
    let tz = Config::default().default_tz();
    let now = Utc::now();
    push(&ts, &cdr_at("201", now - chrono::Duration::days(40), tz));
    push(&ts, &cdr_at("202", now - chrono::Duration::days(2), tz));
    ts.derived();
    let mut cfg = ts_config(&ts);
    s3.configure(&mut cfg, "pbx");
    let files = RecordingStore::from_config(&cfg).expect("store");
    // Archived as the fetcher does: staged locally, then published.
    let (old, _) = archive_recording(&ts, "201").await;
    let (recent, _) = archive_recording(&ts, "202").await;
    let keys = [
        "2026/01/01/201.wav".to_string(),
        "2026/01/01/202.wav".to_string(),
    ];
    files.publish(&keys).await.expect("upload");
    assert!(s3.object("pbx/2026/01/01/201.wav").is_some(), "uploaded");

    cfg.retention.recordings_days = 30;
    let cut = Cutoffs::new(&cfg, now.timestamp_millis());
    let gone = retention::run(&ts.running.store, &files, &cut, &|_, _| {})
        .await
        .expect("purge");
    assert_eq!(removed(&gone, "recordings"), 1, "{gone:?}");
    assert_eq!(
        s3.object("pbx/2026/01/01/201.wav"),
        None,
        "deleted from the bucket"
    );
    assert!(
        s3.object("pbx/2026/01/01/202.wav").is_some(),
        "the recent one stays"
    );
    assert_eq!(status_of_recording(&ts, old), ("purged".into(), None));
    assert_eq!(status_of_recording(&ts, recent).0, "done");
    ts.running.stop().await;
}
