//! Three `callvault serve` collectors on one real PostgreSQL server: the
//! simulator's day pushed round-robin across them gives the truth's calls
//! (whichever collector took which push), the same calls as a `rebuild`,
//! and a kill -9 of the collector that derives loses no acknowledged push:
//! another takes the derivation over within seconds. Skipped without
//! `CALLVAULT_TEST_PG`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault::sim::{generate, SimConfig};
use callvault::store::testing::TestDb;
use tokio_postgres::NoTls;

use crate::calls_sim::{assert_matches_truth, Derived};
use crate::util::*;

struct Collector {
    child: std::process::Child,
    ingest: SocketAddr,
    api: SocketAddr,
    _dir: tempfile::TempDir,
}

fn collector(url: &str) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let (child, ingest, api) = serve_child_addrs(
        dir.path(),
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
    let mut cs: Vec<Collector> = (0..3).map(|_| collector(&url)).collect();
    let all: Vec<&Collector> = cs.iter().collect();
    let first = leader(&all, Duration::from_secs(20))
        .await
        .expect("one collector derives");

    let plan = generate(&SimConfig {
        seed: 13,
        calls: 150,
        calls_per_hour: 400.0,
        ..SimConfig::default()
    });
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

    // kill -9 the deriver mid-day; the rest goes round-robin over the others.
    let mut dead = cs.remove(first);
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
