//! The calls stage on both backends against the simulator's truth: the
//! same legs, placed live in a shuffled order, give the truth's calls, the
//! same rows on SQLite and PostgreSQL (ids, fields, legs, the internal
//! `seq`), and a rebuild gives them again, also while legs keep arriving.

use std::collections::BTreeMap;

use crate::ingest::om::parse_body;
use crate::model::{Leg, Message};
use crate::sim::{generate, PushKind, SimConfig, Truth};
use crate::store::call_search::{search, CallFilter, CallView};
use crate::store::testing::{each_backend, Backend};
use crate::store::{calls as db, Store, StoreError, Tx};
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn legs_of(seed: u64, calls: usize) -> (Vec<Leg>, Truth) {
    let plan = generate(&SimConfig {
        seed,
        calls,
        calls_per_hour: 1_000.0,
        ..SimConfig::default()
    });
    let mut legs: Vec<Leg> = plan
        .pushes
        .iter()
        .filter(|p| p.kind == PushKind::Cdr)
        .flat_map(|p| parse_body(&p.body).expect("simulator XML parses"))
        .filter_map(|d| match d.message {
            Message::Cdr(l) => Some(l),
            Message::Event(_) => None,
        })
        .collect();
    // Out of order, as legs may arrive when imported late.
    legs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    (legs, plan.truth)
}

/// Stores `legs` and places each in its call, as derivation does.
fn place(tx: &Tx, legs: &[Leg], first_ms: i64) -> crate::store::Result<()> {
    for (i, leg) in legs.iter().enumerate() {
        let id = db::store_leg_for_test(tx, "om", first_ms + i as i64, leg, chrono_tz::UTC)?;
        super::live::on_leg(tx, "om", id, leg).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    }
    Ok(())
}

/// A call as the store reads it back: its legs' Cdr ids, its `seq`, its
/// row as the API shows it and the fields the API does not show.
#[derive(Debug, PartialEq)]
struct Derived {
    cdrs: Vec<String>,
    seq: Option<i64>,
    row: serde_json::Value,
    start_local: String,
    last_change_ms: i64,
}

/// Every call in search order; every leg's own call id resolves to it.
fn derived(store: &Store) -> Vec<Derived> {
    store
        .read_blocking(|tx| {
            let cfg = crate::config::Config::default();
            let view = CallView {
                cfg: &cfg,
                now_ms: 0,
            };
            let all = CallFilter {
                from: "0000".into(),
                to: "9999".into(),
                limit: i64::MAX,
                ..CallFilter::default()
            };
            let mut rows = Vec::new();
            search::<StoreError>(tx, &all, &view, &mut |c| {
                rows.push(c);
                Ok(())
            })?;
            let mut out = Vec::new();
            for c in rows {
                let ids = db::leg_ids_of_call(tx, &c.id)?;
                let legs = db::call_legs_by_ids(tx, &ids)?;
                let mut cdrs: Vec<String> = legs.iter().map(|l| l.leg.cdr_id.clone()).collect();
                cdrs.sort();
                for cdr in &cdrs {
                    let alias = super::call_id("om", cdr);
                    assert_eq!(db::resolve_id(tx, &alias)?.as_deref(), Some(c.id.as_str()));
                }
                out.push(Derived {
                    cdrs,
                    seq: db::call_seq_of_leg(tx, ids[0])?,
                    row: serde_json::to_value(&c).expect("json"),
                    start_local: c.start_local,
                    last_change_ms: c.last_change_ms,
                });
            }
            Ok(out)
        })
        .expect("read the calls")
}

fn assert_truth(got: &[Derived], truth: &Truth, ctx: &str) {
    let got: BTreeMap<&Vec<String>, &Derived> = got.iter().map(|d| (&d.cdrs, d)).collect();
    assert_eq!(got.len(), truth.calls.len(), "{ctx}: number of calls");
    for tc in &truth.calls {
        let mut ids = tc.device_cdr_ids.clone();
        ids.sort();
        let d = got.get(&ids).unwrap_or_else(|| {
            panic!(
                "{ctx}: truth call {ids:?} ({}) not derived as one",
                tc.scenario
            )
        });
        let ctx = format!("{ctx}: {} {ids:?}", tc.scenario);
        let r = &d.row;
        assert_eq!(r["direction"], tc.direction, "{ctx}");
        assert_eq!(r["caller"], tc.caller, "{ctx}");
        assert_eq!(r["callee"], tc.callee, "{ctx}");
        assert_eq!(r["answered"], tc.answered, "{ctx}");
        assert_eq!(r["answered_by"], serde_json::json!(tc.answered_by), "{ctx}");
        assert_eq!(r["trunk"], serde_json::json!(tc.trunk), "{ctx}");
        assert_eq!(r["talk_seconds"], tc.talk_seconds, "{ctx}");
        assert_eq!(r["billable_seconds"], tc.billable_seconds, "{ctx}");
        assert_eq!(r["forwarded_out"], tc.forwarded_out, "{ctx}");
        assert_eq!(
            d.start_local,
            tc.start.format("%Y-%m-%d %H:%M:%S").to_string(),
            "{ctx}"
        );
    }
}

/// A simulated day, live then rebuilt in small batches, on both backends:
/// the truth's calls, the same rows on both, and rebuild == live.
#[test]
fn a_simulated_day_gives_the_same_calls_live_and_rebuilt_on_both_backends() {
    let (legs, truth) = legs_of(13, 1_000);
    let mut results: Vec<(Backend, Vec<Derived>)> = Vec::new();
    each_backend("calls_parity", |backend, store| {
        let l = legs.clone();
        store
            .writer
            .write_blocking(move |tx| place(tx, &l, 1_714_000_000_000))
            .expect("live");
        let live = derived(store);
        assert_truth(&live, &truth, &format!("{backend:?} live"));
        let mut seen = Vec::new();
        let n = super::live::rebuild_store(store, 97, &mut |done, total| seen.push((done, total)))
            .expect("rebuild");
        assert_eq!(n, legs.len() as u64);
        assert_eq!(seen.last(), Some(&(n, n)), "progress ends at the total");
        assert!(seen.len() > 10, "many commits");
        assert_eq!(derived(store), live, "{backend:?}: rebuild == live");
        let counts = store
            .read_blocking(crate::store::rebuild::derived_counts)
            .expect("counts");
        assert_eq!(counts.calls, truth.calls.len() as i64);
        results.push((backend, live));
    });
    for (backend, live) in &results[1..] {
        assert!(
            live == &results[0].1,
            "{backend:?} and SQLite derived different calls"
        );
    }
}

/// `rebuild` beside a collector placing new legs, each side in its own
/// transactions (on PostgreSQL truly at once, on different connections):
/// the calls are the truth's all the same, and equal a rebuild alone.
#[test]
fn rebuild_beside_live_placement_gives_the_truths_calls() {
    let (legs, truth) = legs_of(31, 300);
    each_backend("calls_rebuild_beside_live", |backend, store| {
        let (before, during) = legs.split_at(legs.len() / 2);
        let b = before.to_vec();
        store
            .writer
            .write_blocking(move |tx| place(tx, &b, 0))
            .expect("first half");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rebuilds = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || runs == 0 {
                    super::live::rebuild_store(&store, 7, &mut |_, _| {}).expect("rebuild beside");
                    runs += 1;
                }
                runs
            })
        };
        for (i, chunk) in during.chunks(5).enumerate() {
            let c = chunk.to_vec();
            store
                .writer
                .write_blocking(move |tx| place(tx, &c, 1_000_000 + 5 * i as i64))
                .expect("second half");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let runs = rebuilds.join().expect("rebuild thread");
        assert!(runs >= 1);
        let interleaved = derived(store);
        assert_truth(&interleaved, &truth, &format!("{backend:?} interleaved"));
        super::live::rebuild_store(store, 50, &mut |_, _| {}).expect("rebuild alone");
        // The internal seq follows the interleaving; the rest does not.
        let shown = |d: Vec<Derived>| -> Vec<Derived> {
            d.into_iter().map(|d| Derived { seq: None, ..d }).collect()
        };
        assert_eq!(shown(derived(store)), shown(interleaved), "{backend:?}");
    });
}
