//! `GET /api/calls/{id}/events` over a real socket, on SQLite and on
//! PostgreSQL: the manual's queue example (§2.5.7 entry, §4.12 exits) and
//! a simulated blind transfer come back as their events in order, each in
//! words; other calls' events and extension states stay out
//! (docs/calls.md "Timeline"); unknown and other devices' calls are 404.

use std::time::Duration;

use callvault::sim::push::{self, Pace, Target};
use callvault::sim::{generate, Scenario, SimConfig};
use serde_json::Value;

use crate::util::*;

pub fn push_xml(ts: &TestServer, body: &str) {
    let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", body));
    assert_eq!(status_of(&resp), 200, "{resp}");
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_millis()
}

/// The manual's QUEUE (§2.5.7) of visitor `id`, with a callid of its own
/// (the device numbers each call's events apart).
pub fn queue_of(id: &str) -> String {
    fixture("2.5.7-queue-1b-visitor.xml")
        .replace(r#"id="77""#, &format!(r#"id="{id}""#))
        .replace(r#"callid="45135""#, &format!(r#"callid="9{id}""#))
}

/// §4.12's RING of agent 200 for the queued visitor `id`.
pub fn agent_ring_of(id: &str) -> String {
    fixture("4.12-ring-2-visitor-agent.xml").replace(r#"id="75""#, &format!(r#"id="{id}""#))
}

/// §2.5.3.3's ANSWER by 200 of visitor `id`.
pub fn answer_of(id: &str) -> String {
    fixture("2.5.3.3-answer-2-visitor-to-ext.xml").replace(r#"id="31""#, &format!(r#"id="{id}""#))
}

/// §2.5.3.5's BYE of visitor `id` talking with 200.
pub fn bye_of(id: &str) -> String {
    fixture("2.5.3.5-bye-1-visitor-hangs-up.xml").replace(r#"id="42""#, &format!(r#"id="{id}""#))
}

/// The calls of 2017-03-09 (the day of `util::cdr`) by their legs'
/// visitor id.
async fn calls_by_visitor(ts: &TestServer, tok: &str) -> Vec<(String, String)> {
    ts.derived();
    let list = get_json(ts.api(), "/api/calls?from=2017-03-09&to=2017-03-09", tok).await;
    let mut out = Vec::new();
    for c in list["calls"].as_array().expect("calls") {
        let id = c["id"].as_str().expect("id").to_string();
        let d = get_json(ts.api(), &format!("/api/calls/{id}"), tok).await;
        let v = d["legs"][0]["visitor_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        out.push((v, id));
    }
    out.sort();
    out
}

fn texts(t: &Value) -> Vec<String> {
    t["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["text"].as_str().expect("text").to_string())
        .collect()
}

fn attributes(t: &Value) -> Vec<String> {
    t["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["attribute"].as_str().expect("attribute").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_of_the_manual_queue_example_on_both_backends() {
    for b in backends("timeline_of_the_manual_queue_example") {
        let backend = b.backend();
        let ts = start_on(b, |_| {}).await;
        // Visitor 77 queues, rings agent 200 (§4.12), is answered, hangs up.
        // Between them: another caller's RING and an extension's state.
        push_xml(&ts, &queue_of("77"));
        push_xml(&ts, &fixture("2.5.2.1-busy.xml"));
        push_xml(&ts, &fixture("2.5.3.1-ring-1-visitor-to-ext.xml"));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        push_xml(&ts, &agent_ring_of("77"));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        push_xml(&ts, &answer_of("77"));
        push_xml(&ts, &bye_of("77"));
        push_xml(&ts, &cdr("q-77", "77", "18201008888"));
        // Visitor 17 queues and leaves the queue (§4.12's second BYE).
        push_xml(&ts, &queue_of("17"));
        push_xml(&ts, &fixture("4.12-bye-2-visitor-leaves.xml"));
        push_xml(&ts, &cdr("q-17", "17", "18201008888"));

        let tok = token(&ts, "qa").await;
        let calls = calls_by_visitor(&ts, &tok).await;
        let [(v17, call17), (v77, call77)] = &calls[..] else {
            panic!("{backend:?}: {calls:?}");
        };
        assert_eq!((v17.as_str(), v77.as_str()), ("17", "77"));

        let t = get_json(ts.api(), &format!("/api/calls/{call77}/events"), &tok).await;
        assert_eq!(t["call_id"], call77.as_str());
        assert_eq!(
            attributes(&t),
            ["QUEUE", "RING", "ANSWER", "BYE"],
            "{backend:?}: {t}"
        );
        let evs = t["events"].as_array().unwrap();
        let at = |i: usize| ms(evs[i]["received_at"].as_str().unwrap());
        let waited = (at(2) - at(0) + 500) / 1000;
        assert!(waited >= 2, "slept 2.3 s between QUEUE and ANSWER: {t}");
        assert_eq!(
            texts(&t),
            [
                "queued in 6".to_string(),
                "rang 200".to_string(),
                format!("answered by 200 after {waited} s"),
                "hung up".to_string(),
            ],
            "{backend:?}"
        );
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(evs[1]["parties"][0]["tag"], "ext");
        assert_eq!(
            evs[1]["parties"][1]["attrs"][0],
            serde_json::json!(["id", "77"])
        );
        assert_eq!(t["truncated"], false);

        let t = get_json(ts.api(), &format!("/api/calls/{call17}/events"), &tok).await;
        assert_eq!(texts(&t), ["queued in 6", "hung up"], "{backend:?}: {t}");

        let (code, _) = get(ts.api(), "/api/calls/0123456789abcdef/events", Some(&tok)).await;
        assert_eq!(code, 404);
        // A token limited to another device: the call is unknown to it.
        let other = ts
            .running
            .store
            .writer
            .write(|tx| {
                callvault::store::tokens::create_unique(
                    tx,
                    "branch-only",
                    "qa",
                    None,
                    &["branch".to_string()],
                )
            })
            .await
            .expect("token")
            .expect("a new name");
        let (code, _) = get(
            ts.api(),
            &format!("/api/calls/{call77}/events"),
            Some(&other),
        )
        .await;
        assert_eq!(code, 404, "{backend:?}");
        ts.running.stop().await;
    }
}

/// The simulator's blind transfer (agent 1 answers, DIVERT to agent 2,
/// who answers): a DIVERT after the answer reads as a transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_of_a_blind_transfer() {
    let plan = generate(&SimConfig {
        seed: 5,
        calls: 1,
        scenarios: vec![Scenario::BlindTransfer],
        ..SimConfig::default()
    });
    let ts = start().await;
    let target = Target::parse(&format!("http://{}/omapi", ts.ingest())).unwrap();
    let sent = push::run(&target, &plan.pushes, Pace::Rate(0.0), |_, _| {}).await;
    assert_eq!((sent.refused, sent.failed), (0, 0));
    ts.derived();
    let tok = token(&ts, "qa").await;
    let ids: Vec<String> = ts
        .rows("SELECT id FROM calls")
        .into_iter()
        .map(|r| r[0].text().to_string())
        .collect();
    let [id] = &ids[..] else {
        panic!("one call: {ids:?}");
    };
    let d = get_json(ts.api(), &format!("/api/calls/{id}"), &tok).await;
    let exts: Vec<&str> = d["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let t = get_json(ts.api(), &format!("/api/calls/{id}/events"), &tok).await;
    assert_eq!(
        attributes(&t),
        ["RING", "ALERT", "ANSWER", "DIVERT", "RING", "ALERT", "ANSWER", "BYE"],
        "{t}"
    );
    let got = texts(&t);
    // The agents: the first RING's extension, then the DIVERT's target.
    let first = t["events"][0]["parties"][0]["attrs"][0][1]
        .as_str()
        .unwrap();
    let second = t["events"][4]["parties"][0]["attrs"][0][1]
        .as_str()
        .unwrap();
    assert_ne!(first, second);
    assert!(exts.contains(&first) && exts.contains(&second), "{exts:?}");
    assert_eq!(got[0], format!("rang {first}"));
    assert!(
        got[2].starts_with(&format!("answered by {first} after ")),
        "{got:?}"
    );
    assert_eq!(got[3], format!("transferred to {second}"));
    assert_eq!(got[4], format!("rang {second}"));
    assert!(
        got[6].starts_with(&format!("answered by {second} after ")),
        "{got:?}"
    );
    assert_eq!(got[7], "hung up");
    ts.running.stop().await;
}
