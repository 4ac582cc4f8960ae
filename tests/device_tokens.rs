//! Device-limited tokens over real sockets, on SQLite and (with
//! `CALLVAULT_TEST_PG`) PostgreSQL (README "API tokens and sessions"): two
//! devices push a recorded call each; a token limited to one sees only
//! that device's calls, legs, recordings, billing rows and daily figures,
//! the other device's ids are 404, a report file is 403; an unlimited
//! token sees both.

use std::time::{Duration, Instant};

use callvault::config::{Config, DeviceConfig};
use callvault::sim::recorder::{self, Faults};
use serde_json::Value;

use crate::recordings_fetch::{cdr_with, spec};
use crate::util::*;

const BRANCH_MAC: &str = "00:0E:A9:00:00:0B";

/// A token named `name` of `role`, limited to `devices`.
async fn limited(ts: &TestServer, name: &str, role: &str, devices: &[&str]) -> String {
    let (name, role) = (name.to_string(), role.to_string());
    let devices: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    ts.running
        .store
        .writer
        .write(move |tx| callvault::store::tokens::create_unique(tx, &name, &role, None, &devices))
        .await
        .expect("token")
        .expect("free name")
}

/// (call id, recording id) of each device's call once both are fetched.
async fn fetched(ts: &TestServer, admin: &str) -> Vec<(String, String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let calls = get_json(ts.api(), "/api/calls?from=2017-03-09", admin).await;
        let mut out = Vec::new();
        for c in calls["calls"].as_array().expect("calls") {
            let id = c["id"].as_str().expect("id");
            let d = get_json(ts.api(), &format!("/api/calls/{id}"), admin).await;
            if d["recordings"][0]["status"] == "done" {
                let rec = d["recordings"][0]["id"].as_i64().expect("recording id");
                out.push((
                    c["device"].as_str().unwrap().to_string(),
                    id.to_string(),
                    rec,
                ));
            }
        }
        out.sort();
        if out.len() == 2 {
            return out;
        }
        assert!(Instant::now() < deadline, "two fetched recordings: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn devices_of(rows: &Value, key: &str) -> Vec<String> {
    let mut d: Vec<String> = rows[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: {rows}"))
        .iter()
        .map(|r| r["device"].as_str().expect("device").to_string())
        .collect();
    d.sort();
    d.dedup();
    d
}

/// The `device` column of a billing CSV, sorted.
fn csv_devices(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "device")
        .expect("device column");
    let mut d: Vec<String> = lines
        .map(|l| l.split(',').nth(at).expect("cell").to_string())
        .collect();
    d.sort();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_limited_token_sees_only_its_devices_on_both_backends() {
    for backend in backends("a_device_limited_token_sees_only_its_devices") {
        let b = backend.backend();
        let hq_rec = recorder::start(vec![spec("2101", "PCMU", 1)], Faults::default())
            .await
            .unwrap();
        let br_rec = recorder::start(vec![spec("3101", "PCMU", 1)], Faults::default())
            .await
            .unwrap();
        let (hq_url, br_url) = (hq_rec.base_url(), br_rec.base_url());
        let ts = start_on(backend, |c: &mut Config| {
            c.recordings.fetch_delay_seconds = 0;
            c.recordings.retry_base_ms = 20;
            c.calls.settle_seconds = 0;
            c.devices.push(DeviceConfig {
                name: "hq".into(),
                push_from: vec!["127.0.0.1".into()],
                recorder_url: Some(hq_url),
                ..Default::default()
            });
            c.devices.push(DeviceConfig {
                name: "branch".into(),
                mac: Some(BRANCH_MAC.into()),
                push_from: vec!["127.0.0.1".into()],
                recorder_url: Some(br_url),
                ..Default::default()
            });
        })
        .await;
        let hq_cdr = cdr_with("h-1", "2101", "PCMU");
        let br_cdr = cdr_with("b-1", "3101", "PCMU").replace(
            "<Cdr id=\"b-1\">",
            &format!("<Cdr id=\"b-1\">\n  <MAC>{BRANCH_MAC}</MAC>"),
        );
        for body in [hq_cdr, br_cdr] {
            let resp = raw_exchange(ts.running.ingest_addr, &om_request("POST", "/", &body));
            assert_eq!(status_of(&resp), 200, "{resp}");
        }
        let all = limited(&ts, "all", "admin", &[]).await;
        let calls = fetched(&ts, &all).await;
        let [(br_dev, br_call, br_rec_id), (hq_dev, hq_call, hq_rec_id)] = &calls[..] else {
            panic!("{b:?}: {calls:?}");
        };
        assert_eq!((br_dev.as_str(), hq_dev.as_str()), ("branch", "hq"));
        let hq = limited(&ts, "hq-only", "admin", &["hq"]).await;
        let api = ts.api();

        // Calls, legs: hq's only; the unlimited token sees both.
        let day = "from=2017-03-09&to=2017-03-09";
        let v = get_json(api, &format!("/api/calls?{day}"), &hq).await;
        assert_eq!(devices_of(&v, "calls"), ["hq"], "{b:?}");
        let v = get_json(api, &format!("/api/calls?{day}"), &all).await;
        assert_eq!(devices_of(&v, "calls"), ["branch", "hq"], "{b:?}");
        let v = get_json(api, &format!("/api/legs?{day}"), &hq).await;
        assert_eq!(devices_of(&v, "legs"), ["hq"], "{b:?}");
        let v = get_json(api, &format!("/api/legs?{day}"), &all).await;
        assert_eq!(devices_of(&v, "legs"), ["branch", "hq"], "{b:?}");
        get_json(api, &format!("/api/queues/visits?{day}"), &hq).await;
        get_json(api, &format!("/api/queues/summary?{day}"), &hq).await;

        // The other device's call and recording are not found (404, not
        // 403: an id tells nothing); its own are served.
        for (path, mine) in [
            (format!("/api/calls/{br_call}"), false),
            (format!("/api/calls/{br_call}/recording"), false),
            (format!("/api/recordings/{br_rec_id}"), false),
            (format!("/api/calls/{hq_call}"), true),
            (format!("/api/calls/{hq_call}/recording"), true),
            (format!("/api/recordings/{hq_rec_id}"), true),
        ] {
            let (code, body) = get(api, &path, Some(&hq)).await;
            let want = if mine { 200 } else { 404 };
            assert_eq!(
                code,
                want,
                "{b:?} {path}: {}",
                String::from_utf8_lossy(&body)
            );
            let (code, _) = get(api, &path, Some(&all)).await;
            assert_eq!(code, 200, "{b:?} {path} unlimited");
        }

        // Billing rows and the daily report's figures: hq's only.
        let (code, body) = get(api, &format!("/export/billing.csv?{day}"), Some(&hq)).await;
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(csv_devices(&body), ["hq"], "{b:?}");
        let (code, body) = get(api, &format!("/export/billing.csv?{day}"), Some(&all)).await;
        assert_eq!(code, 200);
        assert_eq!(csv_devices(&body), ["branch", "hq"], "{b:?}");
        let (code, limited_xlsx) =
            get(api, &format!("/export/billing.xlsx?{day}"), Some(&hq)).await;
        assert_eq!(code, 200);
        let (_, full_xlsx) = get(api, &format!("/export/billing.xlsx?{day}"), Some(&all)).await;
        assert_ne!(
            limited_xlsx, full_xlsx,
            "{b:?}: the workbooks differ by a row"
        );
        let daily = "/reports/daily?date=2017-03-09&format=json";
        let v = get_json(api, daily, &hq).await;
        assert_eq!(v["headline"]["calls"], 1, "{b:?}: {v}");
        let v = get_json(api, daily, &all).await;
        assert_eq!(v["headline"]["calls"], 2, "{b:?}: {v}");

        // A report file in the data directory (here the built-in query,
        // copied) cannot be limited to devices: refused, saying why.
        let reports = ts.dir.path().join("reports");
        std::fs::create_dir_all(reports.join("postgres")).unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
        for f in ["daily_summary.sql", "postgres/daily_summary.sql"] {
            std::fs::copy(src.join(f), reports.join(f)).unwrap();
        }
        let (code, body) = get(api, daily, Some(&hq)).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, 403, "{b:?}: {text}");
        assert!(text.contains("limited to devices"), "{text}");
        let (code, _) = get(api, daily, Some(&all)).await;
        assert_eq!(code, 200, "{b:?}: an unlimited token runs the report file");

        ts.running.stop().await;
        hq_rec.stop().await;
        br_rec.stop().await;
    }
}

#[tokio::test]
async fn token_create_refuses_an_unknown_device_listing_the_known_ones() {
    let ts = start_with(|_| {}).await;
    let mut cfg = Config::default();
    cfg.devices.push(DeviceConfig {
        name: "hq".into(),
        ..Default::default()
    });
    let store = ts.running.store.clone();
    store
        .writer
        .write(|tx| callvault::store::devices::add(tx, "branch", None, Some("10.0.0.9")))
        .await
        .expect("register");
    let (c2, s2) = (cfg.clone(), store.clone());
    let err = tokio::task::spawn_blocking(move || {
        callvault::cli::token::known_devices(&c2, &s2, &["hq".into(), "brnch".into()])
    })
    .await
    .unwrap()
    .expect_err("unknown device");
    let msg = err.to_string();
    assert!(
        msg.contains("\"brnch\"") && msg.contains("branch, hq"),
        "{msg}"
    );
    let ok = tokio::task::spawn_blocking(move || {
        callvault::cli::token::known_devices(&cfg, &store, &["hq".into(), "branch".into()])
    })
    .await
    .unwrap()
    .expect("known");
    assert_eq!(ok, ["branch", "hq"]);
    let rows = ts.running.store.read(callvault::store::tokens::list).await;
    assert!(rows.expect("list").is_empty());
    ts.running.stop().await;
}
