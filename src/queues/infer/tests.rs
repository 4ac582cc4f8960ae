//! Tests of the queue inference, one behaviour each, mostly on the
//! manual's examples.

use super::*;
use crate::model::Outcome;
use crate::queues::parse::tests::event;
use chrono::TimeZone;

const DEV: &str = "hq";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid time")
}

/// §2.5.7 visitor QUEUE with the caller of §4.12's RING example.
fn queue_visitor(id: &str, from: &str, group: &str, count: &str) -> Event {
    event(
        "QUEUE",
        &[
            (
                "visitor",
                &[
                    ("id", id),
                    ("from", from),
                    ("to", "888"),
                    ("callid", "45132"),
                ],
            ),
            ("waiting", &[("group", group), ("count", count)]),
        ],
    )
}

fn queue_ext(id: &str, group: &str, count: &str) -> Event {
    event(
        "QUEUE",
        &[
            ("ext", &[("id", id)]),
            ("waiting", &[("group", group), ("count", count)]),
        ],
    )
}

/// §4.12: "分机 200 振铃，来电 18201008888 被接入".
fn ring_visitor(agent: &str, id: &str, from: &str) -> Event {
    event(
        "RING",
        &[
            ("ext", &[("id", agent)]),
            (
                "visitor",
                &[
                    ("id", id),
                    ("from", from),
                    ("to", "203"),
                    ("callid", "45132"),
                ],
            ),
        ],
    )
}

fn bye_visitor(id: &str, from: &str, ext: &str) -> Event {
    event(
        "BYE",
        &[
            (
                "visitor",
                &[
                    ("id", id),
                    ("from", from),
                    ("to", "888"),
                    ("callid", "40977"),
                ],
            ),
            ("ext", &[("id", ext)]),
        ],
    )
}

fn closed(changes: &[VisitChange]) -> Vec<&Visit> {
    changes
        .iter()
        .filter_map(|c| match c {
            VisitChange::Closed(v) => Some(v),
            VisitChange::Opened(_) => None,
        })
        .collect()
}

fn only_closed(changes: Vec<VisitChange>) -> Visit {
    assert_eq!(changes.len(), 1, "expected one change: {changes:?}");
    match changes.into_iter().next() {
        Some(VisitChange::Closed(v)) => v,
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[test]
fn tracker_opens_visit_on_manual_queue() {
    let mut q = QueueTracker::new(3600);
    let ch = q.on_event(DEV, 1, t(0), &queue_visitor("77", "18201008888", "6", "2"));
    let [VisitChange::Opened(v)] = ch.as_slice() else {
        panic!("expected Opened: {ch:?}");
    };
    assert_eq!(v.key, "hq:1");
    assert_eq!((v.group.as_str(), v.entry_count), ("6", 2));
    assert_eq!(
        (v.party_kind.as_str(), v.party_id.as_str()),
        ("visitor", "77")
    );
    assert_eq!(v.caller.as_deref(), Some("18201008888"));
    assert_eq!(v.outcome, Outcome::Waiting);
    assert_eq!(q.open_visits().len(), 1);
}

#[test]
fn tracker_answers_visitor_on_manual_ring() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    let v = only_closed(q.on_event(DEV, 2, t(37), &ring_visitor("200", "75", "18201008888")));
    assert_eq!(v.key, "hq:1");
    assert_eq!(v.outcome, Outcome::Answered);
    assert_eq!(v.agent.as_deref(), Some("200"));
    assert_eq!(v.ended_at, Some(t(37)));
    assert_eq!(v.wait_seconds, Some(37.0));
    assert!(q.open_visits().is_empty());
}

#[test]
fn tracker_answers_ext_on_manual_ring() {
    // §4.12: "分机 201 振铃，分机 213 被接入".
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_ext("213", "6", "1"));
    let ring = event(
        "RING",
        &[("ext", &[("id", "201")]), ("ext", &[("id", "213")])],
    );
    let v = only_closed(q.on_event(DEV, 2, t(12), &ring));
    assert_eq!(
        (v.outcome, v.agent.as_deref()),
        (Outcome::Answered, Some("201"))
    );
    assert_eq!(v.wait_seconds, Some(12.0));
}

#[test]
fn tracker_abandons_ext_on_manual_bye_and_learns_group_number() {
    // §4.12: "分机 201 主动退出队列", ext id="3" is the group number.
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_ext("201", "6", "1"));
    let bye = event(
        "BYE",
        &[
            ("ext", &[("id", "201")]),
            ("ext", &[("id", "3")]),
            ("recording", &[]),
        ],
    );
    let v = only_closed(q.on_event(DEV, 2, t(9), &bye));
    assert_eq!(v.outcome, Outcome::Abandoned);
    assert_eq!(v.group_number.as_deref(), Some("3"));
    assert_eq!(v.wait_seconds, Some(9.0));
    assert_eq!(q.group_number(DEV, "6"), Some("3"));
    assert_eq!(
        q.group_numbers(),
        vec![GroupNumber {
            device: DEV.into(),
            group: "6".into(),
            number: "3".into()
        }]
    );
}

#[test]
fn tracker_abandons_visitor_on_manual_bye() {
    // §4.12: "来电 18201008888 主动退出队列".
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("17", "18201008888", "6", "1"));
    let v = only_closed(q.on_event(DEV, 2, t(4), &bye_visitor("17", "18201008888", "3")));
    assert_eq!(v.outcome, Outcome::Abandoned);
    assert_eq!(v.agent, None);
    assert_eq!(q.group_number(DEV, "6"), Some("3"));
}

#[test]
fn tracker_gives_learned_group_number_to_later_visits() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("17", "18201008888", "6", "1"));
    q.on_event(DEV, 2, t(4), &bye_visitor("17", "18201008888", "3"));
    let ch = q.on_event(DEV, 3, t(10), &queue_ext("200", "6", "1"));
    assert_eq!(ch[0].visit().group_number.as_deref(), Some("3"));
}

#[test]
fn tracker_rejects_manual_offline_at_once() {
    let mut q = QueueTracker::new(3600);
    let offline = event(
        "QUEUE",
        &[
            ("ext", &[("id", "200")]),
            (
                "waiting",
                &[("group", "7"), ("count", "0"), ("reason", "offline")],
            ),
        ],
    );
    let v = only_closed(q.on_event(DEV, 1, t(0), &offline));
    assert_eq!(v.outcome, Outcome::RejectedOffline);
    assert_eq!((v.ended_at, v.wait_seconds), (Some(t(0)), Some(0.0)));
    assert!(q.open_visits().is_empty());
}

#[test]
fn tracker_rejects_manual_full_at_once() {
    let mut q = QueueTracker::new(3600);
    let full = event(
        "QUEUE",
        &[
            ("visitor", &[("id", "2")]),
            (
                "waiting",
                &[("group", "7"), ("count", "30"), ("reason", "full")],
            ),
        ],
    );
    let v = only_closed(q.on_event(DEV, 1, t(0), &full));
    assert_eq!((v.outcome, v.entry_count), (Outcome::RejectedFull, 30));
    assert_eq!(v.wait_seconds, Some(0.0));
}

#[test]
fn tracker_times_out_to_unknown() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    assert!(q.expire(t(3599)).is_empty());
    let v = only_closed(q.expire(t(5000)));
    assert_eq!(v.outcome, Outcome::Unknown);
    assert_eq!(v.ended_at, Some(t(3600)));
    assert_eq!(v.wait_seconds, Some(3600.0));
    assert_eq!(q.stats().timed_out, 1);
}

#[test]
fn tracker_ignores_reused_visitor_id_after_close() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    q.on_event(DEV, 2, t(20), &ring_visitor("200", "75", "18201008888"));
    // Later, id 75 belongs to another call that hangs up: the closed
    // visit stays answered.
    let ch = q.on_event(DEV, 3, t(600), &bye_visitor("75", "13012345678", "3"));
    assert!(ch.is_empty());
    assert!(q.expire(t(700)).is_empty());
    assert_eq!(q.stats().bye_ignored, 1);
    assert_eq!(q.group_number(DEV, "6"), None);
}

#[test]
fn tracker_requeue_after_timeout_opens_new_visit() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    let ch = q.on_event(
        DEV,
        9,
        t(4000),
        &queue_visitor("75", "13012345678", "6", "1"),
    );
    assert_eq!(ch.len(), 2, "{ch:?}");
    assert_eq!(closed(&ch)[0].key, "hq:1");
    assert_eq!(closed(&ch)[0].ended_at, Some(t(3600)));
    assert!(matches!(&ch[1], VisitChange::Opened(v) if v.key == "hq:9"));
    let v = only_closed(q.on_event(DEV, 10, t(4010), &ring_visitor("201", "75", "13012345678")));
    assert_eq!((v.key.as_str(), v.agent.as_deref()), ("hq:9", Some("201")));
}

#[test]
fn tracker_requeue_while_open_closes_old_as_unknown() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_ext("200", "6", "1"));
    let ch = q.on_event(DEV, 2, t(50), &queue_ext("200", "7", "1"));
    let old = closed(&ch);
    assert_eq!(old.len(), 1);
    assert_eq!(
        (old[0].outcome, old[0].ended_at),
        (Outcome::Unknown, Some(t(50)))
    );
    assert_eq!(q.open_visits()[0].group, "7");
    assert_eq!(q.stats().requeued, 1);
}

#[test]
fn tracker_closes_recycled_visitor_as_unknown() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    // Same id, another caller: the queued call must have ended unseen.
    let v = only_closed(q.on_event(DEV, 2, t(30), &ring_visitor("200", "75", "13012345678")));
    assert_eq!((v.outcome, v.agent), (Outcome::Unknown, None));
    assert_eq!(q.stats().recycled, 1);
}

#[test]
fn tracker_matches_ring_stored_before_its_queue() {
    let mut q = QueueTracker::new(3600);
    assert!(q
        .on_event(DEV, 1, t(5), &ring_visitor("200", "75", "18201008888"))
        .is_empty());
    let v = only_closed(q.on_event(DEV, 2, t(5), &queue_visitor("75", "18201008888", "6", "1")));
    assert_eq!((v.key.as_str(), v.outcome), ("hq:2", Outcome::Answered));
    assert_eq!(
        (v.agent.as_deref(), v.wait_seconds),
        (Some("200"), Some(0.0))
    );
    assert_eq!(q.stats().late_matched, 1);
    assert!(q.open_visits().is_empty());
}

#[test]
fn tracker_matches_bye_stored_before_its_queue() {
    let mut q = QueueTracker::new(3600);
    let bye = event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]);
    q.on_event(DEV, 1, t(5), &bye);
    let v = only_closed(q.on_event(DEV, 2, t(6), &queue_ext("201", "6", "1")));
    assert_eq!(v.outcome, Outcome::Abandoned);
    assert_eq!(q.group_number(DEV, "6"), Some("3"));
}

#[test]
fn tracker_keeps_pending_exit_only_for_window() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(5), &ring_visitor("200", "75", "18201008888"));
    let ch = q.on_event(DEV, 2, t(8), &queue_visitor("75", "18201008888", "6", "1"));
    assert!(matches!(ch.as_slice(), [VisitChange::Opened(_)]), "{ch:?}");
    assert_eq!(q.stats().ring_ignored, 1);
}

#[test]
fn tracker_ignores_bye_of_never_queued_visitor() {
    // §2.5.3.5 example 1: an ordinary call ends.
    let mut q = QueueTracker::new(3600);
    let ch = q.on_event(DEV, 1, t(0), &bye_visitor("42", "13012345678", "200"));
    assert!(ch.is_empty());
    assert!(q.expire(t(3)).is_empty());
    assert_eq!(q.stats().bye_ignored, 1);
    assert!(q.group_numbers().is_empty());
}

#[test]
fn tracker_ignores_ring_from_menu() {
    // §2.5.3.1 example 5: no queued party can be named.
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_ext("200", "6", "1"));
    let ring = event(
        "RING",
        &[("ext", &[("id", "200")]), ("menu", &[("id", "1")])],
    );
    assert!(q.on_event(DEV, 2, t(1), &ring).is_empty());
    assert_eq!(q.stats().ring_ignored, 1);
    assert_eq!(q.open_visits().len(), 1);
}

#[test]
fn tracker_bye_with_known_extension_is_not_abandon() {
    // The RING was lost; the caller talked to 200 and hung up.
    let mut q = QueueTracker::new(3600);
    q.on_event(
        DEV,
        1,
        t(0),
        &event(
            "RING",
            &[("ext", &[("id", "200")]), ("ext", &[("id", "208")])],
        ),
    );
    q.on_event(DEV, 2, t(10), &queue_visitor("42", "13012345678", "6", "1"));
    let v = only_closed(q.on_event(DEV, 3, t(90), &bye_visitor("42", "13012345678", "200")));
    assert_eq!(v.outcome, Outcome::Unknown);
    assert_eq!(q.group_number(DEV, "6"), None);
    assert_eq!(q.stats().bye_not_group_number, 1);
}

#[test]
fn tracker_bye_with_other_number_than_learned_is_unknown() {
    let mut q = QueueTracker::new(3600);
    q.on_event(DEV, 1, t(0), &queue_ext("201", "6", "1"));
    q.on_event(
        DEV,
        2,
        t(5),
        &event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]),
    );
    q.on_event(DEV, 3, t(10), &queue_ext("202", "6", "1"));
    let bye = event("BYE", &[("ext", &[("id", "202")]), ("ext", &[("id", "4")])]);
    let v = only_closed(q.on_event(DEV, 4, t(20), &bye));
    assert_eq!(v.outcome, Outcome::Unknown);
    assert_eq!(v.group_number.as_deref(), Some("3"));
}

#[test]
fn tracker_keeps_devices_apart() {
    let mut q = QueueTracker::new(3600);
    q.on_event("a", 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
    assert!(q
        .on_event("b", 2, t(10), &ring_visitor("200", "75", "18201008888"))
        .is_empty());
    assert_eq!(q.open_visits().len(), 1);
}

#[test]
fn tracker_survives_malformed_events() {
    let mut q = QueueTracker::new(i64::MAX);
    let odd: Vec<Event> = vec![
        event("", &[]),
        event("QUEUE", &[]),
        event(
            "QUEUE",
            &[("ext", &[("id", " ")]), ("waiting", &[("group", "6")])],
        ),
        event("QUEUE", &[("visitor", &[("from", "")]), ("waiting", &[])]),
        event(
            "QUEUE",
            &[
                ("ext", &[("id", "1")]),
                ("waiting", &[("group", "6"), ("count", "x")]),
            ],
        ),
        event("RING", &[("visitor", &[("from", "")])]),
        event("RING", &[("ext", &[("id", "1")]), ("ext", &[("id", "1")])]),
        event("BYE", &[("outer", &[("id", "38")])]),
        event("bye", &[("ext", &[("id", "1")])]),
    ];
    for (i, ev) in odd.iter().enumerate() {
        let i = i as i64;
        q.on_event(DEV, i, t(i), ev);
    }
    q.expire(DateTime::<Utc>::MAX_UTC);
    assert_eq!(q.stats().queue_malformed, 3);
    assert_eq!(q.stats().entries, 1);
}

#[test]
fn infer_all_equals_incremental() {
    let events: Vec<(String, i64, DateTime<Utc>, Event)> = vec![
        (
            "hq".into(),
            1,
            t(0),
            queue_visitor("75", "18201008888", "6", "1"),
        ),
        ("br".into(), 2, t(1), queue_ext("201", "6", "1")),
        (
            "hq".into(),
            3,
            t(2),
            queue_visitor("76", "13012345678", "6", "2"),
        ),
        (
            "br".into(),
            4,
            t(8),
            event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]),
        ),
        (
            "hq".into(),
            5,
            t(30),
            ring_visitor("200", "75", "18201008888"),
        ),
        ("hq".into(), 6, t(40), ring_visitor("200", "77", "1")),
        ("hq".into(), 7, t(40), queue_visitor("77", "1", "6", "2")),
        ("hq".into(), 8, t(50), queue_ext("202", "7", "0")),
    ];
    let now = t(5000);
    let rebuilt = infer_all(events.clone(), 3600, now);

    let mut q = QueueTracker::new(3600);
    let mut live: BTreeMap<String, Visit> = BTreeMap::new();
    for (d, seq, at, ev) in &events {
        for c in q.on_event(d, *seq, *at, ev) {
            let v = c.into_visit();
            live.insert(v.key.clone(), v);
        }
        // Live expiry ticks in between must not change the result.
        for c in q.expire(*at) {
            let v = c.into_visit();
            live.insert(v.key.clone(), v);
        }
    }
    for c in q.expire(now) {
        let v = c.into_visit();
        live.insert(v.key.clone(), v);
    }
    let mut by_key = rebuilt.clone();
    by_key.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(by_key, live.into_values().collect::<Vec<_>>());
    let outcomes: Vec<_> = rebuilt
        .iter()
        .map(|v| (v.key.as_str(), v.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("hq:1", Outcome::Answered),
            ("br:2", Outcome::Abandoned),
            ("hq:3", Outcome::Unknown),
            ("hq:7", Outcome::Answered),
            ("hq:8", Outcome::Unknown),
        ]
    );
}
