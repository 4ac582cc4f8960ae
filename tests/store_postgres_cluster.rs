//! Three `callvault serve` collectors on one real PostgreSQL server and one
//! S3-compatible bucket (s3s-fs, `recordings_s3`): the simulator's day
//! pushed round-robin across them gives the truth's calls (whichever
//! collector took which push), the same calls as a `rebuild`, and a kill -9
//! of the collector that derives, in the middle of a recording download,
//! loses no acknowledged push: another takes the derivation over within
//! seconds, and the download is made again by another collector once the
//! dead one's claim lapses (`[recordings] claim_lease_seconds`), so every
//! recording of the day is archived exactly once. Skipped without
//! `CALLVAULT_TEST_PG`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use callvault::sim::recorder::{self, Faults};
use callvault::sim::{generate, SimConfig};
use callvault::store::testing::TestDb;
use tokio_postgres::NoTls;

use crate::calls_sim::{assert_matches_truth, Derived};
use crate::recordings_fetch::{all_files, sha256_hex};
use crate::recordings_s3::{S3Server, AK, BUCKET, SK};
use crate::util::*;

/// Where the collectors archive recordings in the bucket.
const PREFIX: &str = "cluster";

struct Collector {
    child: std::process::Child,
    ingest: SocketAddr,
    api: SocketAddr,
    _dir: tempfile::TempDir,
}

fn collector(url: &str, config: &Path) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let (child, ingest, api) = serve_child_config(
        dir.path(),
        Some(config),
        &[
            ("CALLVAULT_STORE_URL", url),
            // The subject is the shared archive, not device identity or the
            // limits for unregistered senders (see util::test_config).
            ("CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES", "true"),
            ("CALLVAULT_INGEST_MAX_CONNECTIONS_PER_IP", "0"),
            ("CALLVAULT_INGEST_UNREGISTERED_PUSHES_PER_MINUTE", "0"),
            ("CALLVAULT_INGEST_UNREGISTERED_BYTES_PER_MINUTE", "0"),
        ],
    );
    Collector {
        child,
        ingest,
        api,
        _dir: dir,
    }
}

async fn health(api: SocketAddr) -> Option<serde_json::Value> {
    let resp = reqwest::get(format!("http://{api}/healthz")).await.ok()?;
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

/// The index of the collector that derives, once exactly one says so.
async fn leader(cs: &[&Collector], within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut leaders = Vec::new();
        for (i, c) in cs.iter().enumerate() {
            if let Some(h) = health(c.api).await {
                if h["derives_here"] == true {
                    leaders.push(i);
                }
            }
        }
        if leaders.len() == 1 {
            return Some(leaders[0]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The calls in the shared archive, in the shape `calls_sim` compares.
async fn derived(url: &str) -> Derived {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT c.id, c.direction, c.caller, c.callee, c.answered, c.answered_by, c.trunk,
                    c.talk_seconds, c.billable_seconds, c.forwarded_out, c.start_local, c.end_local,
                    (SELECT string_agg(l.cdr_id, ' ' ORDER BY l.cdr_id) FROM call_legs cl
                      JOIN legs l ON l.id = cl.leg_id WHERE cl.call_seq = c.seq)
             FROM calls c",
            &[],
        )
        .await
        .expect("calls");
    rows.iter()
        .map(|r| {
            let ids: String = r.get(12);
            let mut ids: Vec<String> = ids.split(' ').map(str::to_string).collect();
            ids.sort();
            (
                ids,
                serde_json::json!({
                    "id": r.get::<_, String>(0),
                    "direction": r.get::<_, String>(1),
                    "caller": r.get::<_, String>(2),
                    "callee": r.get::<_, String>(3),
                    "answered": r.get::<_, i64>(4) != 0,
                    "answered_by": r.get::<_, Option<String>>(5),
                    "trunk": r.get::<_, Option<String>>(6),
                    "talk_seconds": r.get::<_, i64>(7),
                    "billable_seconds": r.get::<_, i64>(8),
                    "forwarded_out": r.get::<_, i64>(9) != 0,
                    "start": r.get::<_, String>(10),
                    "end": r.get::<_, String>(11),
                }),
            )
        })
        .collect()
}

/// The collectors' configuration: the simulated device and its recorder
/// at `recorder_url`, recordings fetched at once into the bucket, fast
/// retries, and a short claim lease, so that the downloads of a collector
/// that died are made again within seconds (not the default 30 minutes).
fn cluster_config(dir: &Path, recorder_url: &str, s3: &S3Server) -> std::path::PathBuf {
    let path = dir.join("cluster.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[device]]
name = "om"
push_from = ["127.0.0.1"]
recorder_url = "{recorder_url}"

[recordings]
fetch_delay_seconds = 0
retry_base_ms = 100
retry_max_ms = 1000
max_attempts = 8
per_device_concurrency = 9
max_concurrent = 3
min_free_bytes = 0
claim_lease_seconds = 3
store = "s3://{BUCKET}/{PREFIX}"

[recordings.s3]
endpoint = "http://{}"
access_key_id = "{AK}"
secret_access_key = "{SK}"
allow_http = true
"#,
            s3.addr
        ),
    )
    .expect("write the collectors' configuration");
    path
}

async fn count(url: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_collectors_give_the_truths_calls_and_survive_a_kill_9_of_the_deriver() {
    let Some(pg) = TestDb::fresh("three_collectors…") else {
        return;
    };
    let url = pg.url().to_string();
    let plan = generate(&SimConfig {
        seed: 13,
        calls: 150,
        calls_per_hour: 400.0,
        ..SimConfig::default()
    });
    // Each request of the recorder takes a while, so that downloads are
    // under way when the kill comes.
    let rec = recorder::start(
        plan.recordings.clone(),
        Faults {
            delay: Some(Duration::from_millis(60)),
            ..Faults::default()
        },
    )
    .await
    .expect("recorder");
    let s3 = S3Server::start().await;
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = cluster_config(conf_dir.path(), &rec.base_url(), &s3);
    let mut cs: Vec<Collector> = (0..3).map(|_| collector(&url, &conf)).collect();
    let all: Vec<&Collector> = cs.iter().collect();
    let first = leader(&all, Duration::from_secs(20))
        .await
        .expect("one collector derives");
    let bodies: Vec<String> = plan.pushes.iter().map(|p| p.body.clone()).collect();
    let half = bodies.len() / 2;
    let addrs: Vec<SocketAddr> = cs.iter().map(|c| c.ingest).collect();
    // The first half round-robin over all three.
    let (b, a) = (bodies[..half].to_vec(), addrs.clone());
    let acked_first = tokio::task::spawn_blocking(move || push_round_robin(&b, &a))
        .await
        .unwrap();
    assert_eq!(
        acked_first, half,
        "every push of the first half answered 200"
    );

    // kill -9 the deriver mid-day, while it downloads recordings (its
    // claims name its process id, store::postgres::recordings::CLAIMER);
    // the rest goes round-robin over the others.
    let mut dead = cs.remove(first);
    let claims = format!(
        "SELECT id FROM recordings WHERE status = 'fetching' AND claimed_by LIKE '{}-%'",
        dead.child.id()
    );
    let reader = Reader::Postgres(url.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let cut: Vec<i64> = loop {
        let ids: Vec<i64> = reader.rows(&claims).iter().map(|r| r[0].int()).collect();
        if !ids.is_empty() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "the deriver never fetched a recording"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    dead.child.kill().expect("kill -9");
    let _ = dead.child.wait();
    let killed_at = Instant::now();
    let alive: Vec<SocketAddr> = cs.iter().map(|c| c.ingest).collect();
    let b = bodies[half..].to_vec();
    let acked_rest = tokio::task::spawn_blocking(move || push_round_robin(&b, &alive))
        .await
        .unwrap();
    assert_eq!(acked_rest, bodies.len() - half);

    let survivors: Vec<&Collector> = cs.iter().collect();
    let next = leader(&survivors, Duration::from_secs(10))
        .await
        .expect("another collector takes the derivation over");
    assert!(
        killed_at.elapsed() < Duration::from_secs(10) + Duration::from_secs(5),
        "took over within 10 s of the kill (plus the pushes' time)"
    );
    // Derivation goes on to the end on the new deriver.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(cs[next].api).await.expect("healthz");
        if h["derive_backlog"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "derivation stalled: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // No acknowledged push lost, none derived twice.
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM pushes").await,
        bodies.len() as i64
    );
    let cdrs = plan
        .pushes
        .iter()
        .filter(|p| p.kind == callvault::sim::PushKind::Cdr)
        .count() as i64;
    assert_eq!(count(&url, "SELECT COUNT(*) FROM legs").await, cdrs);
    let live = derived(&url).await;
    assert_matches_truth(&live, &plan.truth);

    // Every recording of the day archived exactly once, the downloads the
    // kill cut included.
    let waited = Instant::now();
    let archived = assert_recordings_stored_once(&reader, &plan.recordings, &s3, &cut).await;
    eprintln!(
        "{archived} recordings archived once each ({:.1} s after derivation caught up); \
         {} downloads cut by the kill made again",
        waited.elapsed().as_secs_f64(),
        cut.len()
    );
    rec.stop().await;

    // A rebuild (the CLI, on the same database) gives the same calls.
    for c in &mut cs {
        c.child.kill().expect("stop");
        let _ = c.child.wait();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--data")
        .arg(dir.path())
        .arg("rebuild")
        .env("CALLVAULT_STORE_URL", &url)
        .output()
        .expect("run rebuild");
    assert!(
        out.status.success(),
        "rebuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(derived(&url).await, live, "rebuild == live");
}

/// Pushes `bodies` in order, push i to `addrs[i % n]`, as the OM device
/// does (one request per connection); returns how many were answered 200.
fn push_round_robin(bodies: &[String], addrs: &[SocketAddr]) -> usize {
    bodies
        .iter()
        .enumerate()
        .filter(|(i, body)| {
            let resp = raw_exchange(addrs[i % addrs.len()], &om_request("POST", "/omapi", body));
            status_of(&resp) == 200
        })
        .count()
}

/// Once every recording row is final: one row per recording of the plan,
/// each `done`; the bucket holds exactly the objects those rows name (the
/// WAV and, for G.729, the two halves as served), no other and none twice,
/// each WAV with the row's sha256; the rows in `cut` (claimed by the killed
/// collector) among them.
async fn assert_recordings_stored_once(
    reader: &Reader,
    plan: &[callvault::sim::RecordingSpec],
    s3: &S3Server,
    cut: &[i64],
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open =
            reader.count("SELECT COUNT(*) FROM recordings WHERE status IN ('pending', 'fetching')");
        if open == 0 {
            break;
        }
        let statuses =
            reader.rows("SELECT status, COUNT(*) FROM recordings GROUP BY status ORDER BY 1");
        assert!(
            Instant::now() < deadline,
            "recordings still open after 120 s: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = reader.rows("SELECT id, path, status, file, originals, sha256 FROM recordings");
    let mut want_paths: Vec<&str> = plan.iter().map(|r| r.path.as_str()).collect();
    let mut got_paths: Vec<&str> = rows.iter().map(|r| r[1].text()).collect();
    want_paths.sort_unstable();
    got_paths.sort_unstable();
    assert_eq!(got_paths, want_paths, "one recordings row per recording");
    let root = s3.dir.path().join(BUCKET);
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let id = r[0].int();
        assert_eq!(r[2].text(), "done", "recording {id}: {r:?}");
        let file = r[3].text().to_string();
        let object = s3
            .object(&format!("{PREFIX}/{file}"))
            .unwrap_or_else(|| panic!("recording {id}: no object {file}"));
        assert_eq!(sha256_hex(&object), r[5].text(), "recording {id}: sha256");
        *expected.entry(file).or_default() += 1;
        let originals: Vec<String> =
            serde_json::from_str(r[4].opt_text().unwrap_or("[]")).expect("originals");
        for o in originals {
            *expected.entry(o).or_default() += 1;
        }
    }
    let stored: BTreeMap<String, i64> = all_files(&root.join(PREFIX))
        .iter()
        .map(|p| {
            let key = p.strip_prefix(root.join(PREFIX)).unwrap();
            (key.to_string_lossy().into_owned(), 1)
        })
        .collect();
    assert!(
        expected.values().all(|&n| n == 1),
        "no two rows name one object"
    );
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the bucket holds exactly one object per archived file"
    );
    let ids: Vec<i64> = rows.iter().map(|r| r[0].int()).collect();
    for id in cut {
        assert!(ids.contains(id), "the cut download {id} has its row");
    }
    rows.len()
}
