//! Queue visits inferred from the simulator's events (stamped with the
//! times the device sent them) match the simulator's truth.

use callvault::ingest::om::parse_body;
use callvault::model::Message;
use callvault::queues::infer_all;
use callvault::sim::{generate, PushKind, Scenario, SimConfig};
use chrono::TimeZone;

#[test]
fn simulated_queue_visits_match_truth_to_the_second() {
    let cfg = SimConfig {
        seed: 42,
        calls: 300,
        calls_per_hour: 200.0,
        scenarios: vec![
            Scenario::QueueAnswered,
            Scenario::QueueAbandoned,
            Scenario::QueueRejectedOffline,
            Scenario::QueueRejectedFull,
            Scenario::IpInbound,
        ],
        ..SimConfig::default()
    };
    let plan = generate(&cfg);
    let tz = chrono_tz::Asia::Shanghai;
    let events: Vec<_> = plan
        .pushes
        .iter()
        .filter(|p| p.kind == PushKind::Event)
        .enumerate()
        .flat_map(|(i, p)| {
            let at = tz
                .from_local_datetime(&p.at)
                .earliest()
                .unwrap()
                .with_timezone(&chrono::Utc);
            parse_body(&p.body)
                .unwrap()
                .into_iter()
                .filter_map(move |d| match d.message {
                    Message::Event(e) => Some(("om".to_string(), i as i64 + 1, at, e)),
                    Message::Cdr(_) => None,
                })
        })
        .collect();
    let end = plan
        .pushes
        .last()
        .map(|p| tz.from_local_datetime(&p.at).earliest().unwrap())
        .unwrap();
    let visits = infer_all(events, 3600, end.with_timezone(&chrono::Utc));
    assert_eq!(
        visits.len(),
        plan.truth.visits.len(),
        "one visit per queued call"
    );
    // A party id (recycled) has at most one visit at a time: pair each
    // party's visits in time order (truth lists them by call start).
    let mut ours: std::collections::BTreeMap<(String, String), Vec<_>> = Default::default();
    for v in &visits {
        ours.entry((v.party_kind.clone(), v.party_id.clone()))
            .or_default()
            .push(v);
    }
    let mut theirs: std::collections::BTreeMap<(String, String), Vec<_>> = Default::default();
    for t in &plan.truth.visits {
        theirs
            .entry((t.party_kind.clone(), t.party_id.clone()))
            .or_default()
            .push(t);
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    let pairs: Vec<_> = ours
        .iter_mut()
        .flat_map(|(k, vs)| {
            vs.sort_by_key(|v| v.entered_at);
            assert_eq!(vs.len(), theirs[k].len(), "visits of {k:?}");
            vs.clone().into_iter().zip(theirs[k].clone())
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::new();
    for (v, t) in pairs {
        let ctx = format!("{v:?} vs {t:?}");
        assert_eq!(v.party_kind, t.party_kind, "{ctx}");
        assert_eq!(v.party_id, t.party_id, "{ctx}");
        assert_eq!(v.group, t.group, "{ctx}");
        assert_eq!(v.outcome.as_str(), t.outcome, "{ctx}");
        assert_eq!(v.agent, t.agent, "{ctx}");
        assert_eq!(
            v.wait_seconds.map(|w| w.round() as i64),
            Some(t.wait_seconds),
            "{ctx}"
        );
        *outcomes.entry(t.outcome.clone()).or_insert(0) += 1;
    }
    for o in ["answered", "abandoned", "rejected_offline", "rejected_full"] {
        assert!(
            outcomes.get(o).copied().unwrap_or(0) > 0,
            "the plan exercised {o}: {outcomes:?}"
        );
    }
}
