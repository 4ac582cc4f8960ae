//! Properties of a whole generated plan (many scenarios mixed, ids
//! recycled, calls overlapping): determinism, push order, CDR ids,
//! recordings, the Auth block (manual §4.5), and generation speed.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use callvault::model::OM_TIME_FORMAT;
use callvault::sim::{generate, Scenario, SimConfig};
use chrono::{NaiveDateTime, TimeZone};
use md5::{Digest, Md5};

use super::sim_pushes::{busy, calls_with_legs, parse, read, Cdr};

#[test]
fn generate_is_deterministic_for_a_seed() {
    let cfg = SimConfig {
        server_password: Some("s3cret".into()),
        ..busy(7)
    };
    assert_eq!(generate(&cfg), generate(&cfg));
    assert_ne!(
        generate(&cfg).pushes,
        generate(&SimConfig { seed: 8, ..cfg }).pushes
    );
}

#[test]
fn pushes_are_sorted_by_time() {
    let plan = generate(&busy(3));
    assert!(plan.pushes.windows(2).all(|w| w[0].at <= w[1].at));
    let (cdrs, _) = read(&plan);
    for c in &cdrs {
        assert_eq!(
            plan.pushes[c.idx].at, c.end,
            "a CDR is pushed when its leg ends"
        );
    }
}

#[test]
fn ids_are_live_in_one_call_at_a_time_and_recycle() {
    let plan = generate(&busy(5));
    let (_, evs) = read(&plan);
    // Every id a call uses (legs and events) with the call's span.
    let mut uses: HashMap<String, Vec<(NaiveDateTime, NaiveDateTime)>> = HashMap::new();
    for (t, legs) in calls_with_legs(&plan) {
        let mut ids: HashSet<String> = legs
            .iter()
            .flat_map(|l| l.visitor.clone().into_iter().chain(l.outer.clone()))
            .collect();
        for e in evs.iter().filter(|e| e.at >= t.start && e.at <= t.end) {
            let v = e.ids("visitor");
            if v.iter().any(|i| ids.contains(i)) {
                ids.extend(e.ids("outer"));
            }
        }
        for id in ids {
            uses.entry(id).or_default().push((t.start, t.end));
        }
    }
    let mut recycled = 0;
    for spans in uses.values_mut() {
        spans.sort();
        recycled += spans.len() - 1;
        for w in spans.windows(2) {
            assert!(
                (w[1].0 - w[0].1).num_seconds() > 5,
                "id reused within TOL: {w:?}"
            );
        }
    }
    assert!(recycled > 100, "ids must really recycle: {recycled}");
    let overlapping = plan
        .truth
        .calls
        .windows(2)
        .filter(|w| w[1].start < w[0].end)
        .count();
    assert!(overlapping > 10, "calls overlap: {overlapping}");
}

#[test]
fn cdr_ids_are_seq_plus_time_end_and_belong_to_one_call() {
    let plan = generate(&busy(9));
    let (cdrs, _) = read(&plan);
    for c in &cdrs {
        let stamp = c.end.format(OM_TIME_FORMAT).to_string();
        let seq =
            c.id.strip_suffix(&format!("{stamp}-0"))
                .expect("<seq><TimeEnd>-0");
        assert!(seq.parse::<u64>().is_ok(), "{}", c.id);
    }
    let mut all: Vec<&String> = plan
        .truth
        .calls
        .iter()
        .flat_map(|t| &t.device_cdr_ids)
        .collect();
    assert_eq!(all.len(), cdrs.len());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), cdrs.len());
    assert!(plan
        .truth
        .calls
        .iter()
        .all(|t| t.device_cdr_ids.windows(2).all(|w| w[0] <= w[1])));
}

#[test]
fn recordings_match_cdr_fields() {
    let plan = generate(&busy(11));
    let (cdrs, _) = read(&plan);
    let recorded: Vec<&Cdr> = cdrs.iter().filter(|c| c.recording.is_some()).collect();
    assert_eq!(recorded.len(), plan.recordings.len());
    for (c, r) in recorded.iter().zip(&plan.recordings) {
        assert_eq!(c.recording.as_deref(), Some(r.path.as_str()));
        assert_eq!(c.codec.as_deref(), Some(r.codec.as_str()));
        assert_eq!(i64::from(r.seconds), c.duration);
        // YYYYMMDD/<a>_<b>_<YYYYMMDD>_<hhmmss>_<HEX>_<cg|cd>.wav, stamped at answer time.
        let answer = c.end - chrono::TimeDelta::seconds(c.duration);
        let stamp = answer.format("%Y%m%d/").to_string();
        assert!(r.path.starts_with(&stamp), "{}", r.path);
        assert!(
            r.path
                .contains(&answer.format("_%Y%m%d_%H%M%S_").to_string()),
            "{}",
            r.path
        );
        assert!(r.path.ends_with("_cg.wav") || r.path.ends_with("_cd.wav"));
    }
    let codecs: HashSet<&str> = plan.recordings.iter().map(|r| r.codec.as_str()).collect();
    assert_eq!(codecs, HashSet::from(["G729", "PCMU", "PCMA"]));
    assert!(
        cdrs.iter().any(|c| c.duration > 0 && c.recording.is_none()),
        "some calls are not recorded"
    );
}

#[test]
fn auth_block_follows_root_and_signs_with_password() {
    let cfg = SimConfig {
        mac: Some("00:0E:A9:3D:00:0C".into()),
        server_password: Some("s3cret".into()),
        ..busy(13)
    };
    let plan = generate(&cfg);
    for p in &plan.pushes {
        let docs = parse(&p.body);
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].children[0].name, "MAC",
            "MAC is the root's first child"
        );
        assert_eq!(docs[0].children[0].text, "00:0E:A9:3D:00:0C");
        let auth = &docs[1];
        assert_eq!(auth.name, "Auth");
        let (nonce, ts, sig) = (
            auth.field("nonce"),
            auth.field("timestamp"),
            auth.field("signature"),
        );
        let expected_ts = chrono_tz::Asia::Shanghai
            .from_local_datetime(&p.at)
            .earliest()
            .expect("local")
            .timestamp();
        assert_eq!(ts, expected_ts.to_string());
        let digest = hex::encode(Md5::digest(format!("s3cret{nonce}{ts}").as_bytes()));
        assert_eq!(sig, digest);
        assert!(!nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

#[test]
fn every_scenario_appears_in_default_mix() {
    let plan = generate(&SimConfig {
        calls: 1000,
        ..busy(17)
    });
    let seen: HashSet<&str> = plan
        .truth
        .calls
        .iter()
        .map(|t| t.scenario.as_str())
        .collect();
    for sc in Scenario::ALL {
        assert!(seen.contains(sc.name()), "{}", sc.name());
    }
}

#[test]
fn thousand_calls_generate_fast() {
    let cfg = SimConfig {
        calls: 1000,
        server_password: Some("pw".into()),
        ..SimConfig::default()
    };
    // Best of three: the other tests run in parallel on a small shared machine.
    let took = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(generate(&cfg).truth.calls.len(), 1000);
            t.elapsed()
        })
        .min()
        .expect("three runs");
    assert!(took.as_millis() < 500, "took {took:?}");
}
