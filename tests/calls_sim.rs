//! Legs -> calls against the simulator's truth: end to end over real
//! sockets, order independence of the live path on a real SQLite file, and
//! rebuild == live.

use std::collections::BTreeMap;
use std::sync::Arc;

use callvault::config::Config;
use callvault::ingest::om::parse_body;
use callvault::model::{Leg, Message};
use callvault::sim::push::{self, Pace, Target};
use callvault::sim::{generate, PushKind, SimConfig, Truth, TruthCall};
use callvault::store::Store;
use rand::seq::SliceRandom;
use rand::Rng;
use rand::SeedableRng;

use crate::util::*;

fn plan_cfg(seed: u64, calls: usize) -> SimConfig {
    SimConfig {
        seed,
        calls,
        calls_per_hour: 400.0,
        ..SimConfig::default()
    }
}

fn legs_of(plan: &callvault::sim::Plan) -> Vec<Leg> {
    plan.pushes
        .iter()
        .filter(|p| p.kind == PushKind::Cdr)
        .flat_map(|p| parse_body(&p.body).expect("simulator XML parses"))
        .filter_map(|d| match d.message {
            Message::Cdr(l) => Some(l),
            Message::Event(_) => None,
        })
        .collect()
}

/// What callvault derived, keyed by the sorted Cdr ids of each call.
pub(crate) type Derived = BTreeMap<Vec<String>, serde_json::Value>;

fn derived(db: &rusqlite::Connection) -> Derived {
    let mut st = db
        .prepare(
            "SELECT c.id, c.direction, c.caller, c.callee, c.answered, c.answered_by, c.trunk, c.talk_seconds,
                    c.billable_seconds, c.forwarded_out, c.start_local, c.end_local,
                    (SELECT group_concat(cdr_id, ' ') FROM (SELECT l.cdr_id FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
                      WHERE cl.call_seq = c.seq ORDER BY l.cdr_id))
             FROM calls c",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            let ids: String = r.get(12)?;
            let mut ids: Vec<String> = ids.split(' ').map(str::to_string).collect();
            ids.sort();
            Ok((
                ids,
                serde_json::json!({
                    "id": r.get::<_, String>(0)?,
                    "direction": r.get::<_, String>(1)?,
                    "caller": r.get::<_, String>(2)?,
                    "callee": r.get::<_, String>(3)?,
                    "answered": r.get::<_, bool>(4)?,
                    "answered_by": r.get::<_, Option<String>>(5)?,
                    "trunk": r.get::<_, Option<String>>(6)?,
                    "talk_seconds": r.get::<_, i64>(7)?,
                    "billable_seconds": r.get::<_, i64>(8)?,
                    "forwarded_out": r.get::<_, bool>(9)?,
                    "start": r.get::<_, String>(10)?,
                    "end": r.get::<_, String>(11)?,
                }),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn truth_map(t: &Truth) -> BTreeMap<Vec<String>, &TruthCall> {
    t.calls
        .iter()
        .map(|c| {
            let mut ids = c.device_cdr_ids.clone();
            ids.sort();
            (ids, c)
        })
        .collect()
}

pub(crate) fn assert_matches_truth(d: &Derived, truth: &Truth) {
    let t = truth_map(truth);
    assert_eq!(d.len(), t.len(), "number of calls");
    for (ids, tc) in &t {
        let c = d.get(ids).unwrap_or_else(|| {
            panic!(
                "truth call {ids:?} ({}) was not derived as one call",
                tc.scenario
            )
        });
        let ctx = format!("{} {ids:?}", tc.scenario);
        assert_eq!(c["direction"], tc.direction, "{ctx}");
        assert_eq!(c["caller"], tc.caller, "{ctx}");
        assert_eq!(c["callee"], tc.callee, "{ctx}");
        assert_eq!(c["answered"], tc.answered, "{ctx}");
        assert_eq!(c["answered_by"], serde_json::json!(tc.answered_by), "{ctx}");
        assert_eq!(c["trunk"], serde_json::json!(tc.trunk), "{ctx}");
        assert_eq!(c["talk_seconds"], tc.talk_seconds, "{ctx}");
        assert_eq!(c["billable_seconds"], tc.billable_seconds, "{ctx}");
        assert_eq!(c["forwarded_out"], tc.forwarded_out, "{ctx}");
        assert_eq!(
            c["start"],
            tc.start.format("%Y-%m-%d %H:%M:%S").to_string(),
            "{ctx}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_200_calls_over_sockets_are_stored_once_and_match_truth() {
    let ts = start().await;
    let plan = generate(&plan_cfg(7, 200));
    let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
    let sent = push::run(&target, &plan.pushes, Pace::Rate(0.0), |_, _| {}).await;
    assert_eq!((sent.refused, sent.failed), (0, 0));
    let cdrs = plan
        .pushes
        .iter()
        .filter(|p| p.kind == PushKind::Cdr)
        .count() as i64;
    let events = plan.pushes.len() as i64 - cdrs;
    assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), cdrs);
    assert_eq!(ts.count("SELECT COUNT(*) FROM events"), events);
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes"),
        plan.pushes.len() as i64
    );
    assert_matches_truth(&derived(&ts.db()), &plan.truth);
    ts.running.stop().await;
}

/// Stores `legs` in the given order through the live path (one transaction:
/// the order of arrival, not the fsyncs, is what is under test).
fn store_in_order(dir: &std::path::Path, legs: &[Leg]) -> Store {
    let store = Store::open(&dir.join("callvault.sqlite")).unwrap();
    let cfg = Arc::new(Config::default());
    let legs = legs.to_vec();
    store
        .writer
        .write_blocking(move |tx| {
            let push = callvault::store::pushes::NewPush {
                received_at: "2024-01-01T00:00:00Z".into(),
                received_ms: 0,
                source: "test".into(),
                device: Some("om".into()),
                method: "TEST".into(),
                path: "/".into(),
                query: None,
                body: Vec::new(),
                outcome: callvault::store::pushes::Outcome::Stored,
                status: 200,
                reason: None,
                sender_mac: None,
            };
            let pid = callvault::store::pushes::insert(tx, &push)?;
            let tz = cfg.device_tz("om");
            for (i, leg) in legs.iter().enumerate() {
                if let callvault::store::legs::Inserted::New(id) =
                    callvault::store::legs::insert(tx, "om", pid, i as i64, leg, tz)?
                {
                    callvault::calls::live::on_leg(tx, "om", id, leg).expect("placed in a call");
                }
            }
            Ok(())
        })
        .unwrap();
    store
}

#[test]
fn any_arrival_order_gives_the_truths_calls() {
    for seed in [3u64, 11, 29] {
        let plan = generate(&plan_cfg(seed, 150));
        let mut legs = legs_of(&plan);
        let mut results = Vec::new();
        for perm in 0..3u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed * 100 + perm);
            if perm > 0 {
                legs.shuffle(&mut rng);
            }
            let dir = tempfile::tempdir().unwrap();
            let _store = store_in_order(dir.path(), &legs);
            let conn = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).unwrap();
            let d = derived(&conn);
            assert_matches_truth(&d, &plan.truth);
            results.push(d);
        }
        assert_eq!(
            results[0], results[1],
            "seed {seed}: same calls (ids included) whatever the order"
        );
        assert_eq!(results[0], results[2]);
    }
}

/// Legs of up to a week (the longest the parser accepts), starting over ten
/// days and sharing few join keys, stored in random orders: the calls are
/// exactly the connected components of `joins` over all pairs. A leg that
/// started more than a day before a later-arriving leg it overlaps must still
/// be found as its candidate.
#[test]
fn long_legs_join_whatever_the_arrival_order() {
    let base = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for seed in 0..12u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let legs: Vec<Leg> = (0..40)
            .map(|n| {
                let start = base + chrono::Duration::seconds(rng.random_range(0..10 * 86_400));
                let secs = match rng.random_range(0..3) {
                    0 => rng.random_range(0..600),
                    1 => rng.random_range(86_400..7 * 86_400),
                    _ => rng.random_range(0..3 * 86_400),
                };
                let id = rng.random_range(0..4u8).to_string();
                let ty = ["IN", "OU", "FW", "CB"][rng.random_range(0..4)];
                Leg {
                    cdr_id: format!("{seed}-{n}"),
                    callid: id.clone(),
                    visitor_id: (ty != "OU").then(|| id.clone()),
                    outer_id: (ty == "OU").then(|| id.clone()),
                    leg_type: ty.into(),
                    route: "IP".into(),
                    cpn: "200".into(),
                    cdpn: "8001".into(),
                    time_start: start,
                    time_end: start + chrono::Duration::seconds(secs),
                    duration: 0,
                    trunk_number: String::new(),
                    recording: None,
                    rec_codec: None,
                    mac: None,
                }
            })
            .collect();
        // The reference: components over all pairs.
        let mut comp: Vec<usize> = (0..legs.len()).collect();
        for i in 0..legs.len() {
            for j in 0..i {
                if callvault::calls::joins(&legs[i], &legs[j]) && comp[i] != comp[j] {
                    let (from, to) = (comp[j], comp[i]);
                    comp.iter_mut()
                        .filter(|c| **c == from)
                        .for_each(|c| *c = to);
                }
            }
        }
        let mut want: Vec<Vec<String>> = Vec::new();
        for c in 0..legs.len() {
            let mut ids: Vec<String> = (0..legs.len())
                .filter(|&i| comp[i] == c)
                .map(|i| legs[i].cdr_id.clone())
                .collect();
            ids.sort();
            if !ids.is_empty() {
                want.push(ids);
            }
        }
        want.sort();
        assert!(
            want.iter().any(|c| c.len() > 2),
            "seed {seed}: the generated legs join into bigger calls"
        );
        let mut swept: Vec<Vec<String>> = callvault::calls::group(&legs)
            .iter()
            .map(|g| {
                let mut ids: Vec<String> = g.iter().map(|&i| legs[i].cdr_id.clone()).collect();
                ids.sort();
                ids
            })
            .collect();
        swept.sort();
        assert_eq!(swept, want, "seed {seed}: the in-memory sweep");
        let mut order = legs.clone();
        for perm in 0..3 {
            if perm > 0 {
                order.shuffle(&mut rng);
            }
            let dir = tempfile::tempdir().unwrap();
            let _store = store_in_order(dir.path(), &order);
            let conn = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).unwrap();
            let got: Vec<Vec<String>> = derived(&conn).into_keys().collect();
            assert_eq!(got, want, "seed {seed}, order {perm}");
        }
    }
}

#[test]
fn rebuild_equals_live_on_a_10000_call_day() {
    let plan = generate(&SimConfig {
        seed: 5,
        calls: 10_000,
        calls_per_hour: 1_000.0,
        ..SimConfig::default()
    });
    let legs = legs_of(&plan);
    let dir = tempfile::tempdir().unwrap();
    let store = store_in_order(dir.path(), &legs);
    let conn = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).unwrap();
    let dump = |c: &rusqlite::Connection| rows_as_text(c, "SELECT * FROM calls ORDER BY id");
    let live = dump(&conn);
    let live_links: i64 = conn
        .query_row("SELECT COUNT(*) FROM call_legs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live.len(), plan.truth.calls.len());
    callvault::calls::live::rebuild_store(
        &store,
        callvault::calls::live::REBUILD_BATCH_LEGS,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        dump(&conn),
        live,
        "rebuild reproduces every call row exactly"
    );
    let links: i64 = conn
        .query_row("SELECT COUNT(*) FROM call_legs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(links, live_links);
}

/// `callvault simulate` (the binary) pushing into a real server: the truth
/// file it writes equals what the server derived, and the same seed gives the
/// same traffic as the library generator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_cli_writes_truth_that_serve_reproduces() {
    let ts = start().await;
    let truth_file = ts.dir.path().join("truth.json");
    let target = format!("http://{}/omapi", ts.ingest());
    let tf = truth_file.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args([
                "simulate", "--target", &target, "--calls", "40", "--rate", "0", "--seed", "9",
            ])
            .args(["--start", "2024-01-08 09:00:00", "--truth"])
            .arg(&tf)
            .output()
    })
    .await
    .expect("join")
    .expect("run simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 refused, 0 failed"));
    let truth: Truth = serde_json::from_slice(&std::fs::read(&truth_file).expect("truth file"))
        .expect("truth json");
    assert_eq!(truth.calls.len(), 40);
    let again = generate(&SimConfig {
        seed: 9,
        calls: 40,
        start: chrono::NaiveDateTime::parse_from_str("2024-01-08 09:00:00", "%Y-%m-%d %H:%M:%S")
            .unwrap(),
        ..SimConfig::default()
    });
    assert_eq!(truth, again.truth, "deterministic for a seed");
    assert_matches_truth(&derived(&ts.db()), &truth);
    ts.running.stop().await;
}

/// Every row of the derived call tables, and their indexes (a rebuild
/// drops some while it replays), for exact comparisons.
fn dump_derived(c: &rusqlite::Connection) -> Vec<String> {
    [
        "SELECT name, sql FROM sqlite_master WHERE type = 'index'
           AND tbl_name IN ('calls', 'call_legs', 'leg_keys') ORDER BY name",
        "SELECT * FROM calls ORDER BY id",
        "SELECT cl.leg_id, cl.call_seq, c.id, cl.leg_call_id FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq ORDER BY cl.leg_id",
        "SELECT * FROM leg_keys ORDER BY device, key, start_s, leg_id",
    ]
    .iter()
    .flat_map(|sql| rows_as_text(c, sql))
    .collect()
}

/// `callvault rebuild` commits in batches (`rebuild_store`); small batches
/// here, so that calls span many commits, must still give the live result.
#[test]
fn batched_rebuild_store_equals_live() {
    let plan = generate(&SimConfig {
        seed: 13,
        calls: 1_500,
        calls_per_hour: 1_000.0,
        ..SimConfig::default()
    });
    let mut legs = legs_of(&plan);
    // Out of order, as legs may arrive (and be numbered) when imported late.
    legs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(13));
    let dir = tempfile::tempdir().unwrap();
    let store = store_in_order(dir.path(), &legs);
    let conn = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).unwrap();
    let live = dump_derived(&conn);
    let mut seen = Vec::new();
    let n = callvault::calls::live::rebuild_store(&store, 97, &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert_eq!(n, legs.len() as u64);
    assert_eq!(seen.last(), Some(&(n, n)), "progress ends at the total");
    assert!(seen.len() > 10, "many commits");
    assert_eq!(
        dump_derived(&conn),
        live,
        "batched rebuild reproduces calls, links, keys and indexes exactly"
    );
}

/// `callvault rebuild` beside a running server, as an operator may run it:
/// the server keeps storing and deriving new legs between the rebuild's
/// commits (each batch small here, so they interleave a lot), and a leg
/// may be derived live and then replayed again by the rebuild. The calls
/// at the end are the truth's all the same, and equal a rebuild alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_beside_a_server_deriving_new_legs_gives_the_truths_calls() {
    let ts = start().await;
    let plan = generate(&plan_cfg(31, 600));
    let (before, during) = plan.pushes.split_at(plan.pushes.len() / 2);
    let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
    let sent = push::run(&target, before, Pace::Rate(0.0), |_, _| {}).await;
    assert_eq!((sent.refused, sent.failed), (0, 0));
    ts.derived();

    // Rebuild after rebuild for as long as the second half is being pushed.
    let store = Store::open(&ts.db_path()).unwrap();
    let pushing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = pushing.clone();
    let rebuilds = tokio::task::spawn_blocking(move || {
        while still.load(std::sync::atomic::Ordering::Relaxed) {
            callvault::calls::live::rebuild_store(&store, 7, &mut |_, _| {})
                .expect("rebuild beside the server");
        }
    });
    let sent = push::run(&target, during, Pace::Rate(0.0), |_, _| {}).await;
    assert!(
        !rebuilds.is_finished(),
        "a rebuild was running all the time the second half was pushed"
    );
    pushing.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!((sent.refused, sent.failed), (0, 0));
    rebuilds.await.expect("join");
    ts.derived();
    let db = ts.db();
    let live = derived(&db);
    assert_matches_truth(&live, &plan.truth);
    // And exactly what a rebuild alone gives, link by link.
    // The internal `seq` (order of creation) follows the interleaving;
    // everything shown or joined on does not.
    let shown = |c: &rusqlite::Connection| -> Vec<String> {
        [
            "SELECT id, device, direction, forwarded_out, caller, callee, extensions, answered_by,
                    trunk, route, start_local, end_local, talk_seconds, billable_seconds, answered,
                    leg_count, last_change_ms FROM calls ORDER BY id",
            "SELECT cl.leg_id, c.id, cl.leg_call_id FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq ORDER BY cl.leg_id",
            "SELECT * FROM leg_keys ORDER BY device, key, start_s, leg_id",
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'
               AND tbl_name IN ('calls', 'call_legs', 'leg_keys') ORDER BY name",
        ]
        .iter()
        .flat_map(|sql| rows_as_text(c, sql))
        .collect()
    };
    let interleaved = shown(&db);
    let store = Store::open(&ts.db_path()).unwrap();
    callvault::calls::live::rebuild_store(&store, 50, &mut |_, _| {}).unwrap();
    assert_eq!(
        shown(&ts.db()),
        interleaved,
        "a rebuild alone gives the same"
    );
    ts.running.stop().await;
}
