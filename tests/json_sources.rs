//! The JSON sources over a real socket into the same archive as OM pushes:
//! the coocenter call-center PBX (seeds/002, the manual's own examples in
//! tests/fixtures/coocenter/: raw rows, legs, events, calls, queue visits,
//! quarantine, recordings, rebuild == live), the cloud platform's
//! click-to-call CDR (seeds/004: one callback call, billed) and the IVR
//! PBX's events (seeds/003).

use crate::util::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/coocenter/{name}")).expect(name)
}

/// POSTs `body` as the PBX does (HTTP/1.1, JSON); returns the status.
fn post_json(ts: &TestServer, body: &str) -> u16 {
    let req = format!(
        "POST /callvault HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    status_of(&raw_exchange(ts.ingest(), req.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coocenter_json_pushes_become_legs_events_and_calls() {
    let ts = start().await;
    for f in [
        "cdr.json",
        "cc_cdr.json",
        "dialbegin.json",
        "extensionstatus.json",
        "ivr.json",
    ] {
        assert_eq!(post_json(&ts, &fixture(f)), 200, "{f}");
    }
    // A re-push of the same call is stored raw but adds no leg.
    assert_eq!(post_json(&ts, &fixture("cdr.json")), 200);
    // The manual's own relaxed notation is read (its dialend example as
    // printed, with `//` comments); a relaxed object that lacks what a cdr
    // needs is refused for that, and kept.
    assert_eq!(post_json(&ts, &fixture("dialend.as-printed.json")), 200);
    let relaxed = "{event:'cdr', uniqueid:'1.1'}";
    assert_eq!(post_json(&ts, relaxed), 400);
    ts.derived();

    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE outcome = 'stored'"),
        7
    );
    let db = ts.db();
    let (body, reason): (Vec<u8>, String) = db
        .query_row(
            "SELECT body, reason FROM pushes WHERE outcome = 'quarantined'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("quarantined");
    assert_eq!(body, relaxed.as_bytes());
    assert!(reason.contains("missing field starttime"), "{reason}");

    let legs: Vec<(String, String, String, String, i64)> = db
        .prepare("SELECT cdr_id, leg_type, cpn, cdpn, duration FROM legs ORDER BY cdr_id")
        .expect("sql")
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("legs")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        legs,
        vec![
            (
                "1325747409.260".into(),
                "LO".into(),
                "808".into(),
                "809".into(),
                1
            ),
            (
                "1541415929.807".into(),
                "IN".into(),
                "85322361".into(),
                "100".into(),
                0
            ),
        ]
    );
    let events: Vec<String> = db
        .prepare("SELECT attribute FROM events ORDER BY id")
        .expect("sql")
        .query_map([], |r| r.get(0))
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        events,
        ["CC_CDR", "DIALBEGEIN", "EXTENSIONSTATUS", "IVR", "DIALEND"]
    );
    let dialend: String = db
        .query_row(
            "SELECT attrs_json FROM events WHERE attribute = 'DIALEND'",
            [],
            |r| r.get(0),
        )
        .expect("dialend");
    assert!(
        dialend.contains("1534993030.626") && dialend.contains("hangup"),
        "the printed example's fields: {dialend}"
    );
    let attrs: String = db
        .query_row(
            "SELECT attrs_json FROM events WHERE attribute = 'IVR'",
            [],
            |r| r.get(0),
        )
        .expect("ivr");
    assert!(attrs.contains("workingtime"), "every field kept: {attrs}");

    // One call per CDR, found by the API like any OM call.
    let tok = token(&ts, "qa").await;
    let internal = get_json(ts.api(), "/api/calls?from=2012-01-05", &tok).await;
    let inbound = get_json(ts.api(), "/api/calls?from=2018-11-05", &tok).await;
    let first = |v: &serde_json::Value| v["calls"][0].clone();
    assert_eq!(
        (
            first(&internal)["direction"].as_str(),
            first(&internal)["caller"].as_str()
        ),
        (Some("internal"), Some("808")),
        "{internal}"
    );
    assert_eq!(
        (
            first(&inbound)["direction"].as_str(),
            first(&inbound)["answered"].as_bool()
        ),
        (Some("inbound"), Some(false)),
        "{inbound}"
    );

    // The cc_cdr's queue visit: queue 630, the caller hung up after 7 s
    // (MEMBER_CANCEL), linked to its call, in the queues report.
    let visit: (String, String, String, String, f64, Option<String>, Option<String>) = db
        .query_row(
            "SELECT grp, party_id, entered_local, outcome, wait_seconds, agent, call_id FROM queue_visits",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .expect("one queue visit");
    assert_eq!(
        (
            &visit.0[..],
            &visit.1[..],
            &visit.2[..],
            &visit.3[..],
            visit.4,
            &visit.5
        ),
        (
            "630",
            "1541415929.807",
            "2018-11-05 19:05:31",
            "abandoned",
            7.0,
            &None
        )
    );
    assert_eq!(
        visit.6.as_deref(),
        first(&inbound)["id"].as_str(),
        "linked to its call"
    );
    let queues = get_json(ts.api(), "/api/queues/summary?from=2018-11-05", &tok).await;
    assert!(queues.to_string().contains("\"abandoned\":1"), "{queues}");

    // A rebuild gives the calls and queue visits the live path gave.
    let dump = |c: &rusqlite::Connection| {
        let mut rows = rows_as_text(c, "SELECT * FROM calls ORDER BY id");
        rows.extend(rows_as_text(c, "SELECT * FROM queue_visits ORDER BY key"));
        rows
    };
    let live = dump(&db);
    assert_eq!(live.len(), 3);
    callvault::calls::live::rebuild_store(
        &ts.running.store,
        callvault::calls::live::REBUILD_BATCH_LEGS,
        &mut |_, _| {},
    )
    .expect("rebuild");
    let cfg = std::sync::Arc::new(callvault::config::Config::default());
    let queues = callvault::queues::live::QueueLive::new(
        cfg.queues.visit_timeout_seconds,
        callvault::server::tz_of(&cfg),
    );
    let now = chrono::Utc::now().timestamp_millis();
    ts.running
        .store
        .writer
        .write(move |tx| queues.replay(tx, true, now))
        .await
        .expect("queue rebuild");
    assert_eq!(dump(&ts.db()), live);
}

/// A cc_cdr's `filePath` is fetched like an OM recording, from the device's
/// `recorder_url` (for coocenter `http://PBX:8000/coocenter-api/monitor/`),
/// and linked to its call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coocenter_recording_is_fetched_from_its_recorder_url() {
    use callvault::sim::recorder::{self, Faults};
    use callvault::sim::RecordingSpec;
    let spec = RecordingSpec {
        path: "20181105/85322361-100-1541415929.807.wav".into(),
        codec: "PCMA".into(),
        seconds: 2,
    };
    let rec = recorder::start(vec![spec.clone()], Faults::default())
        .await
        .expect("recorder");
    // The push names the PBX's MAC: that is how it is identified.
    let rig = crate::recordings_fetch::Rig::start(&rec, |c| {
        c.devices[0].mac = Some("68:69:2e:03:8b:3e".into())
    })
    .await;
    let call = fixture("cc_cdr.json")
        .replace("\"talkingTime\":\"0\"", "\"talkingTime\":\"6\"")
        .replace(
            "\"filePath\":\"\"",
            &format!("\"filePath\":\"{}\"", spec.path),
        );
    rig.push(&call);
    rig.wait_status("1541415929.807", "done").await;
    let (_, attempts, err, file, _) = rig.row("1541415929.807").expect("row");
    assert_eq!((attempts, err), (1, None));
    let stored = std::fs::read(rig.archive_file(&file.expect("file"))).expect("archived");
    let served = recorder::files_for(&spec, &Faults::default()).remove(0).1;
    assert_eq!(stored, served, "stored as served");
    rig.running.stop().await;
    rec.stop().await;
}

/// seeds/004's click-to-call CDR: two legs the platform made, one callback
/// call, billed for both; seeds/003's DTMF event kept with its party.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_to_call_cdr_is_one_billed_callback_and_ivr_events_are_kept() {
    let ts = start().await;
    let ctc = std::fs::read_to_string("tests/fixtures/cloud/click_to_call.json").expect("fixture");
    assert_eq!(post_json(&ts, &ctc), 200);
    let dtmf = r#"{"action": "DTMF", "callid": "1553672645.217", "call": [{"outbound": {"from": "6500", "to": "500", "trunk": "192.168.9.121", "outboundid": "1553672645.219"}}], "info": "5", "flag": "1", "sn": "368182384620"}"#;
    assert_eq!(post_json(&ts, dtmf), 200);
    assert_eq!(post_json(&ts, r#"{"sid": "no known shape"}"#), 400);
    ts.derived();

    assert_eq!(
        ts.count("SELECT COUNT(*) FROM legs WHERE leg_type = 'CB'"),
        2
    );
    let tok = token(&ts, "finance").await;
    let calls = get_json(ts.api(), "/api/calls?from=2019-08-14", &tok).await;
    let call = &calls["calls"][0];
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(1), "{calls}");
    assert_eq!(call["direction"], "callback", "{call}");
    assert_eq!(call["leg_count"], 2);
    assert_eq!(
        call["billable_seconds"], 34,
        "both calls the platform made are billed"
    );

    let db = ts.db();
    let party: (String, String) = db
        .query_row(
            "SELECT p.tag, p.attrs_json FROM events e JOIN event_parties p ON p.event_id = e.id
             WHERE e.attribute = 'DTMF'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the DTMF event's party");
    assert_eq!(party.0, "outbound");
    assert!(party.1.contains("1553672645.219"), "{}", party.1);
    let mac: String = db
        .query_row("SELECT mac FROM events WHERE attribute = 'DTMF'", [], |r| {
            r.get(0)
        })
        .expect("sn");
    assert_eq!(mac, "368182384620");
    let facts: String = db
        .query_row(
            "SELECT attrs_json FROM events WHERE attribute = 'CLOUD_CDR'",
            [],
            |r| r.get(0),
        )
        .expect("the conversation's facts");
    assert!(facts.contains("recordingUrl"), "{facts}");
}

/// `callvault import` replays captured bodies of every source through the
/// ingest path: OM XML and the JSON sources stored and derived before it
/// exits, a refused file quarantined and the exit code 2. The senders are
/// registered first (`devices add`), by address and by the PBX's MAC.
#[test]
fn import_replays_om_and_json_captures_and_reports_refusals() {
    let dir = tempfile::tempdir().expect("dir");
    for add in [
        ["devices", "add", "--name", "lab", "--ip", "127.0.0.1"],
        [
            "devices",
            "add",
            "--name",
            "cc",
            "--mac",
            "68-69-2E-03-8B-3E",
        ],
    ] {
        let out = crate::reports_util::callvault(dir.path(), &add);
        assert!(out.status.success(), "{out:?}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{event:'cdr'}").expect("write");
    let files = [
        "tests/fixtures/om/1.3.2-cdr-internal-in.xml",
        "tests/fixtures/coocenter/cc_cdr.json",
        "tests/fixtures/cloud/click_to_call.json",
        bad.to_str().expect("utf-8"),
    ];
    let out = crate::reports_util::callvault(dir.path(), &[&["import"][..], &files].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("cc_cdr.json: stored (1 Cdr, 1 Event documents)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("click_to_call.json: stored (2 Cdr, 1 Event documents)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.json: refused (400): cdr \"?\": missing field uniqueid"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 4 files refused"));
    let db = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).expect("archive");
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT COUNT(*) FROM legs"),
        4,
        "derived before import exits"
    );
    assert_eq!(count("SELECT COUNT(*) FROM calls"), 3);
    assert_eq!(
        count("SELECT COUNT(*) FROM legs WHERE device = 'cc'"),
        1,
        "the coocenter PBX identified by its MAC"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM pushes WHERE outcome = 'quarantined'"),
        1
    );
}
