//! Queue inference driven through the public API with generated event
//! streams: nothing panics, and rebuild (`infer_all`) equals the live path
//! (events fed one by one with expiry ticks in between).

use std::collections::BTreeMap;

use callvault::model::{Event, Party};
use callvault::queues::{figures, infer_all, Outcome, QueueTracker, Visit};
use chrono::{DateTime, TimeZone, Utc};

/// Small deterministic generator (no rand dependency needed for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn party(tag: &str, attrs: &[(&str, String)]) -> Party {
    Party {
        tag: tag.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        text: None,
    }
}

fn random_party(r: &mut Lcg) -> Party {
    let id = r.next(6).to_string();
    match r.next(4) {
        0 => party("ext", &[("id", format!("20{id}"))]),
        1 => party("ext", &[("id", id)]),
        2 => party(
            "visitor",
            &[("id", id), ("from", format!("1380000000{}", r.next(3)))],
        ),
        _ => party("menu", &[("id", id)]),
    }
}

fn random_event(r: &mut Lcg) -> Event {
    let attribute = ["QUEUE", "RING", "BYE", "RING ", "ANSWER"][r.next(5) as usize];
    let mut parties: Vec<Party> = (0..r.next(3)).map(|_| random_party(r)).collect();
    if attribute == "QUEUE" {
        let mut attrs = vec![
            ("group", (6 + r.next(2)).to_string()),
            ("count", r.next(31).to_string()),
        ];
        match r.next(8) {
            0 => attrs.push(("reason", "offline".into())),
            1 => attrs.push(("reason", "full".into())),
            _ => {}
        }
        parties.push(party("waiting", &attrs));
    }
    Event {
        attribute: attribute.into(),
        attrs: Vec::new(),
        mac: None,
        parties,
    }
}

fn stream(seed: u64, len: usize) -> Vec<(String, i64, DateTime<Utc>, Event)> {
    let mut r = Lcg(seed);
    let mut at = Utc
        .timestamp_opt(1_704_067_200, 0)
        .single()
        .expect("valid time");
    (0..len)
        .map(|i| {
            // Mostly the same second (out-of-order cases), sometimes long gaps
            // (timeouts).
            let step = [0, 0, 1, 3, 40, 2000][r.next(6) as usize];
            at += chrono::TimeDelta::seconds(step);
            let device = ["hq", "branch"][r.next(2) as usize].to_string();
            (device, i as i64 + 1, at, random_event(&mut r))
        })
        .collect()
}

#[test]
fn infer_all_equals_live_path_on_generated_streams() {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut late_matched, mut recycled) = (0, 0);
    for seed in 0..40 {
        let events = stream(seed, 300);
        let now = events.last().map(|e| e.2).expect("events") + chrono::TimeDelta::hours(2);
        let rebuilt = infer_all(events.clone(), 600, now);

        let mut tracker = QueueTracker::new(600);
        let mut live: BTreeMap<String, Visit> = BTreeMap::new();
        for (device, seq, at, ev) in &events {
            let mut changes = tracker.on_event(device, *seq, *at, ev);
            if seq % 7 == 0 {
                changes.extend(tracker.expire(*at));
            }
            for c in changes {
                let v = c.into_visit();
                live.insert(v.key.clone(), v);
            }
        }
        late_matched += tracker.stats().late_matched;
        recycled += tracker.stats().recycled;
        for c in tracker.expire(now) {
            let v = c.into_visit();
            live.insert(v.key.clone(), v);
        }
        let mut sorted = rebuilt.clone();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            sorted,
            live.into_values().collect::<Vec<_>>(),
            "seed {seed}"
        );
        assert!(
            rebuilt.iter().all(|v| v.outcome != Outcome::Waiting),
            "seed {seed}: everything expires two hours later"
        );
        for v in &rebuilt {
            *seen.entry(v.outcome.as_str()).or_insert(0) += 1;
        }
        // Figures over the result never panic and add up.
        for f in figures(&rebuilt, chrono_tz::Asia::Shanghai, 20) {
            let parts = f.answered
                + f.abandoned
                + f.unknown
                + f.rejected_full
                + f.rejected_offline
                + f.waiting;
            assert_eq!(f.entered, parts, "seed {seed}");
        }
    }
    assert!(
        late_matched > 0 && recycled > 0,
        "{late_matched} {recycled}"
    );
    // The generator must reach every outcome, or the comparison proves little.
    for outcome in [
        "answered",
        "abandoned",
        "rejected_offline",
        "rejected_full",
        "unknown",
    ] {
        assert!(
            seen.get(outcome).is_some_and(|n| *n > 0),
            "{outcome}: {seen:?}"
        );
    }
}

#[test]
fn visits_never_end_before_they_start() {
    for seed in 100..120 {
        let events = stream(seed, 300);
        let now = events.last().map(|e| e.2).expect("events");
        for v in infer_all(events, 3600, now) {
            if let Some(end) = v.ended_at {
                assert!(end >= v.entered_at, "seed {seed}: {v:?}");
            }
            assert!(v.wait_seconds.unwrap_or(0.0) >= 0.0, "seed {seed}: {v:?}");
        }
    }
}
