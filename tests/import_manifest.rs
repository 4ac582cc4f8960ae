//! `callvault import --manifest`: a captured day replayed with each push's
//! original receive time lands on its day — queue visits with their real
//! waits, linked to their calls — through the real binary and archive.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use callvault::sim::{generate, Scenario, SimConfig};
use chrono::TimeZone;

use crate::util::open_derived;

/// entered_local, outcome, wait_seconds, call_id, party_kind.
type VisitRow = (String, String, Option<f64>, Option<String>, String);

#[test]
fn a_captured_day_keeps_its_timing() {
    let tz = chrono_tz::Asia::Shanghai;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");
    let plan = generate(&SimConfig {
        seed: 7,
        calls: 60,
        start: day.and_hms_opt(9, 0, 0).expect("time"),
        calls_per_hour: 30.0,
        timezone: tz,
        scenarios: vec![
            Scenario::QueueAnswered,
            Scenario::QueueAbandoned,
            Scenario::IpInbound,
        ],
        ..SimConfig::default()
    });
    assert!(!plan.truth.visits.is_empty(), "the plan queues calls");

    // The capture: one file per push and the manifest of their times.
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("capture");
    std::fs::create_dir(&capture).expect("mkdir");
    let mut manifest = String::from("# RECEIVED_AT\tSOURCE_IP\tFILE\n");
    for (i, p) in plan.pushes.iter().enumerate() {
        let file = format!("push-{i:05}.xml");
        std::fs::write(capture.join(&file), &p.body).expect("write push");
        let at = tz
            .from_local_datetime(&p.at)
            .earliest()
            .expect("local time");
        writeln!(manifest, "{}\t192.0.2.10\t{file}", at.to_rfc3339()).unwrap();
    }
    std::fs::write(capture.join("manifest.tsv"), manifest).expect("manifest");

    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--data")
        .arg(&data)
        .args(["import", "--manifest"])
        .arg(capture.join("manifest.tsv"))
        .env("CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES", "true")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run import");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!(
            "{} pushes stored with their receive times",
            plan.pushes.len()
        )),
        "{said}"
    );

    let c = open_derived(&data.join("callvault.sqlite"));
    let rows: Vec<VisitRow> = c
        .prepare(
            "SELECT entered_local, outcome, wait_seconds, call_id, party_kind FROM queue_visits",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.len(),
        plan.truth.visits.len(),
        "one visit per queued call"
    );
    let visitors = rows.iter().filter(|r| r.4 == "visitor").count();
    assert!(visitors > 0, "outside callers queued: {rows:?}");
    for (entered, outcome, _, call, kind) in &rows {
        assert!(entered.starts_with("2026-11-20"), "on its day: {entered}");
        assert_ne!(outcome, "unknown", "no visit timed out during the import");
        // A visitor's visit is linked to its call by visitor id and time
        // (docs/queues.md); an extension's has no visitor id to link by.
        let Some(call) = call.as_deref() else {
            assert_eq!(
                kind, "ext",
                "a visitor's visit is linked to its call: {rows:?}"
            );
            continue;
        };
        let start: String = c
            // The visit names the call by its leg's id, which resolves
            // through call_legs to the call it is in (docs/calls.md).
            .query_row(
                "SELECT c.start_local FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq
                 WHERE cl.leg_call_id = ?1 LIMIT 1",
                [call],
                |r| r.get(0),
            )
            .expect("the linked call exists");
        assert!(start.starts_with("2026-11-20"), "{start}");
    }
    // The waits are the day's, to the second, not the milliseconds of a
    // day pushed at once.
    let count = |waits: &mut dyn Iterator<Item = (String, i64)>| {
        let mut m = BTreeMap::new();
        for w in waits {
            *m.entry(w).or_insert(0) += 1;
        }
        m
    };
    let ours = count(&mut rows.iter().map(|(_, o, w, _, _)| {
        (
            o.clone(),
            w.expect("a closed visit has its wait").round() as i64,
        )
    }));
    let truth = count(
        &mut plan
            .truth
            .visits
            .iter()
            .map(|t| (t.outcome.clone(), t.wait_seconds)),
    );
    assert_eq!(ours, truth);
    assert!(
        ours.keys().any(|(_, w)| *w >= 5),
        "waits of seconds: {ours:?}"
    );
}
