//! Queue visits: `callvault rebuild` (the binary, on the archive a real
//! server filled over sockets) reproduces exactly the visits the live path
//! derived, including their outcomes, waits and agents.

use callvault::sim::push::{self, Pace, Target};
use callvault::sim::{generate, Scenario, SimConfig};

use crate::util::*;

fn visits(db: &Reader) -> Vec<String> {
    db.rows_as_text("SELECT * FROM queue_visits ORDER BY key")
}

/// On SQLite and on PostgreSQL (`util::backends`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_reproduces_live_queue_visits() {
    let plan = generate(&SimConfig {
        seed: 21,
        calls: 80,
        calls_per_hour: 300.0,
        scenarios: vec![
            Scenario::QueueAnswered,
            Scenario::QueueAbandoned,
            Scenario::QueueRejectedOffline,
            Scenario::QueueRejectedFull,
            Scenario::IpInbound,
        ],
        ..SimConfig::default()
    });
    for b in backends("rebuild_reproduces_live_queue_visits") {
        let ts = start_on(b, |_| {}).await;
        let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
        let sent = push::run(&target, &plan.pushes, Pace::Rate(0.0), |_, _| {}).await;
        assert_eq!((sent.refused, sent.failed), (0, 0));
        let db = ts.reader();
        let TestServer { running, dir, pg } = ts;
        running.stop().await;
        let live = visits(&db);
        assert_eq!(
            live.len(),
            plan.truth.visits.len(),
            "one visit per queued call"
        );
        // (Links to calls are not asserted here: events carry no time, so a
        // visit is dated by its receive time, and this simulated day is pushed
        // at once, long after the legs' own times. Linking is covered where
        // pushes follow their timeline.)

        rebuild(dir.path(), pg.as_ref()).await;
        assert_eq!(visits(&db), live, "rebuild == live");
    }
}

/// A visit is linked to the logical call of the same visitor id whose legs
/// span the visit (manual §4.12 flow in real time: QUEUE, RING to the
/// agent, then the CDR legs when the call ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_visit_is_linked_to_its_call() {
    let ts = start().await;
    let push = |body: String| {
        let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
    };
    let now = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .naive_local();
    push(fixture("2.5.7-queue-1b-visitor.xml"));
    // The agent's RING with the queued caller (same visitor as the QUEUE).
    push(fixture("2.5.3.1-ring-1-visitor-to-ext.xml").replace(
        r#"<visitor id="22" from="13012345678" to="02161208234" callid="16408" />"#,
        r#"<visitor id="77" from="18201008888" to="888" callid="45135" />"#,
    ));
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y%m%d%H%M%S").to_string();
    let leg = cdr("1-0", "77", "18201008888")
        .replace("20170309162708", &fmt(now - chrono::Duration::seconds(30)))
        .replace("20170309162713", &fmt(now + chrono::Duration::seconds(60)));
    push(leg);
    let db = ts.db();
    let (outcome, agent, call): (String, Option<String>, Option<String>) = db
        .query_row(
            "SELECT outcome, agent, call_id FROM queue_visits",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (outcome.as_str(), agent.as_deref()),
        ("answered", Some("200"))
    );
    let alias: String = db
        .query_row("SELECT leg_call_id FROM call_legs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        call.as_deref(),
        Some(alias.as_str()),
        "visit linked to the call of visitor 77"
    );
    // And the call's detail in the API lists the visit.
    let tok = token(&ts, "qa").await;
    let (code, body) = get(ts.api(), &format!("/api/calls/{alias}"), Some(&tok)).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["queue_visits"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["queue_visits"][0]["outcome"], "answered");
    ts.running.stop().await;
}

/// A restart in the middle of the day, on SQLite and on PostgreSQL: visits
/// open at the stop are continued after it (the queue tracker replays the
/// stored events in the writer's background before deriving anything new),
/// so the live visits are still exactly what `rebuild` derives from the
/// same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_day_continues_open_visits() {
    let plan = generate(&SimConfig {
        seed: 22,
        calls: 80,
        calls_per_hour: 300.0,
        scenarios: vec![
            Scenario::QueueAnswered,
            Scenario::QueueAbandoned,
            Scenario::QueueRejectedFull,
        ],
        ..SimConfig::default()
    });
    let (first, second) = plan.pushes.split_at(plan.pushes.len() / 2);
    let send = |addr: std::net::SocketAddr, pushes: Vec<callvault::sim::Push>| async move {
        let target = Target::parse(&format!("http://{addr}/omapi")).unwrap();
        let sent = push::run(&target, &pushes, Pace::Rate(0.0), |_, _| {}).await;
        assert_eq!((sent.refused, sent.failed), (0, 0));
    };
    for b in backends("restart_mid_day_continues_open_visits") {
        let ts = start_on(b, |_| {}).await;
        send(ts.ingest(), first.to_vec()).await;
        let db = ts.reader();
        let TestServer { running, dir, pg } = ts;
        running.stop().await;
        let open_at_stop = db.count("SELECT COUNT(*) FROM queue_visits WHERE outcome = 'waiting'");
        assert!(open_at_stop > 0, "the split leaves visits open");

        let mut cfg = test_config(dir.path());
        if let Some(pg) = &pg {
            cfg.store.url = pg.url().to_string();
        }
        let running = callvault::server::start(cfg).await.expect("restart");
        send(running.ingest_addr, second.to_vec()).await;
        wait_derived(&running.store);
        running.stop().await;
        let live = visits(&db);
        assert_eq!(
            live.len(),
            plan.truth.visits.len(),
            "one visit per queued call"
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM queue_visits WHERE outcome IN ('unknown', 'waiting')"),
            0,
            "every visit open at the stop was closed by its exit"
        );
        rebuild(dir.path(), pg.as_ref()).await;
        assert_eq!(visits(&db), live, "rebuild == live across the restart");
    }
}

/// `callvault rebuild` on the archive in `dir`, or on `pg`'s database.
async fn rebuild(dir: &std::path::Path, pg: Option<&callvault::store::testing::TestDb>) {
    let data = dir.to_path_buf();
    let url = pg.map(|db| db.url().to_string());
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
        if let Some(url) = url {
            cmd.env("CALLVAULT_STORE_URL", url);
        }
        cmd.arg("--data").arg(&data).arg("rebuild").output()
    })
    .await
    .unwrap()
    .expect("run rebuild");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
