//! Queue visits and figures over HTTP (`/api/queues/visits`,
//! `/api/queues/summary`, docs/queues.md) after the simulator's events are
//! pushed over sockets, on SQLite and on PostgreSQL (`util::backends`): the
//! same visits as the simulator's truth on both, and the same visits on
//! both (times aside: they are receive times).

use std::collections::BTreeMap;

use callvault::sim::push::{self, Pace, Target};
use callvault::sim::{generate, Scenario, SimConfig};
use serde_json::Value;

use crate::util::*;

/// Each party's visits (kind, id) → [(group, outcome, agent)].
type PerParty = BTreeMap<(String, String), Vec<(String, String, Option<String>)>>;

/// A visit as the API lists it, without its receive times.
fn timeless(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["entered_at", "ended_at", "wait_seconds", "entered_local"] {
        v.as_object_mut().expect("a visit object").remove(k);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_visits_and_summary_over_http_match_the_truth_on_each_backend() {
    let plan = generate(&SimConfig {
        seed: 23,
        calls: 60,
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
    // The truth, per party: (group, outcome, agent).
    let mut truth = PerParty::new();
    for t in &plan.truth.visits {
        truth
            .entry((t.party_kind.clone(), t.party_id.clone()))
            .or_default()
            .push((t.group.clone(), t.outcome.clone(), t.agent.clone()));
    }
    for vs in truth.values_mut() {
        vs.sort();
    }
    let mut per_backend = Vec::new();
    for b in backends("queue_visits_and_summary_over_http_match_the_truth_on_each_backend") {
        let ts = start_on(b, |_| {}).await;
        let backend = ts.backend();
        let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
        let sent = push::run(&target, &plan.pushes, Pace::Rate(0.0), |_, _| {}).await;
        assert_eq!((sent.refused, sent.failed), (0, 0), "{backend:?}");
        ts.derived();
        // Visits are dated by their receive time (events carry none): today,
        // with a day either side in case the test runs across midnight.
        let today = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .date_naive();
        let range = format!(
            "from={}&to={}",
            today - chrono::Duration::days(1),
            today + chrono::Duration::days(1)
        );
        let tok = token(&ts, "qa").await;

        let v = get_json(ts.api(), &format!("/api/queues/visits?{range}"), &tok).await;
        let visits = v["visits"].as_array().expect("visits").clone();
        assert_eq!(visits.len(), plan.truth.visits.len(), "{backend:?}");
        let mut ours = PerParty::new();
        for v in &visits {
            let s = |k: &str| v[k].as_str().map(str::to_string);
            ours.entry((s("party_kind").unwrap(), s("party_id").unwrap()))
                .or_default()
                .push((s("group").unwrap(), s("outcome").unwrap(), s("agent")));
        }
        // Per party as a set: the truth lists a party's visits by call
        // start, the API by entry (the day is pushed at once, not on its
        // timeline).
        for vs in ours.values_mut() {
            vs.sort();
        }
        assert_eq!(ours, truth, "{backend:?}: visits vs the simulator's truth");

        let s = get_json(ts.api(), &format!("/api/queues/summary?{range}"), &tok).await;
        let mut groups: BTreeMap<String, [i64; 5]> = BTreeMap::new();
        for g in s["groups"].as_array().expect("groups") {
            let e = groups
                .entry(g["group"].as_str().unwrap().to_string())
                .or_default();
            for (i, k) in [
                "entered",
                "answered",
                "abandoned",
                "rejected_offline",
                "rejected_full",
            ]
            .iter()
            .enumerate()
            {
                e[i] += g[k].as_i64().unwrap();
            }
            assert_eq!(
                (g["unknown"].as_i64(), g["waiting"].as_i64()),
                (Some(0), Some(0))
            );
        }
        let mut want: BTreeMap<String, [i64; 5]> = BTreeMap::new();
        let mut agents_want: BTreeMap<String, i64> = BTreeMap::new();
        for t in &plan.truth.visits {
            let e = want.entry(t.group.clone()).or_default();
            e[0] += 1;
            match t.outcome.as_str() {
                "answered" => e[1] += 1,
                "abandoned" => e[2] += 1,
                "rejected_offline" => e[3] += 1,
                "rejected_full" => e[4] += 1,
                o => panic!("truth outcome {o}"),
            }
            if let (Some(a), "answered") = (&t.agent, t.outcome.as_str()) {
                *agents_want.entry(a.clone()).or_default() += 1;
            }
        }
        assert!(want.len() >= 2, "several groups simulated: {want:?}");
        assert_eq!(groups, want, "{backend:?}: summary vs the truth");
        let mut agents: BTreeMap<String, i64> = BTreeMap::new();
        for a in s["agents"].as_array().expect("agents") {
            *agents
                .entry(a["agent"].as_str().unwrap().to_string())
                .or_default() += a["answered"].as_i64().unwrap();
        }
        assert_eq!(agents, agents_want, "{backend:?}: answered per agent");

        // By key: the order of entry times differs from run to run.
        let mut same = visits.iter().map(timeless).collect::<Vec<_>>();
        same.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        per_backend.push(same);
        ts.running.stop().await;
    }
    if let [sqlite, postgres] = &per_backend[..] {
        assert_eq!(sqlite, postgres, "the same visits on both backends");
    }
}
