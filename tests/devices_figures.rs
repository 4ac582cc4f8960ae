//! What the page's first five minutes and the Devices view read, on both
//! backends over real sockets: the call search's `has_recording` filter,
//! its recording column and its `total`; `GET /api/today`; and the
//! devices' figures (`callvault devices --format json` and
//! `GET /api/devices`, the same JSON) against a known set of pushes: a
//! registered device's CDRs with a clock two minutes ahead, a refused
//! push from its address, an unregistered sender, an address whose push
//! was only refused, and the silent mark.

use std::net::SocketAddr;

use callvault::device_status;
use serde_json::Value;

use crate::ingest_devices::push_from;
use crate::reports_util::callvault;
use crate::util::*;

/// A CDR of its own call (`n` in its ids), with or without a recording,
/// ending at `end` (device local `YYYYmmddHHMMSS`).
pub fn call_cdr(n: usize, recorded: bool, end: &str) -> String {
    let fmt = "%Y%m%d%H%M%S";
    let start = chrono::NaiveDateTime::parse_from_str(end, fmt).expect("end")
        - chrono::Duration::seconds(5);
    let body = cdr(
        &format!("{n}-0"),
        &format!("{}", 7000 + n),
        &format!("1380000{n:04}"),
    )
    .replace(
        "<callid>32818</callid>",
        &format!("<callid>{}</callid>", 40_000 + n),
    )
    .replace(
        "<TimeStart>20170309162708</TimeStart>",
        &format!("<TimeStart>{}</TimeStart>", start.format(fmt)),
    )
    .replace(
        "<TimeEnd>20170309162713</TimeEnd>",
        &format!("<TimeEnd>{end}</TimeEnd>"),
    );
    if recorded {
        body
    } else {
        body.lines()
            .filter(|l| !l.contains("Recording>") && !l.contains("RecCodec>"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn calls(api: SocketAddr, tok: &str, query: &str) -> Value {
    get_json(api, &format!("/api/calls?from=2017-03-09{query}"), tok).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_counts_and_filters_by_recording_on_both_backends() {
    for backend in backends("search_counts_and_filters_by_recording") {
        let name = format!("{:?}", backend.backend());
        let ts = start_on(backend, |c| {
            // The recordings stay pending: nothing fetches them here.
            c.recordings.fetch_delay_seconds = 3600;
        })
        .await;
        // Seven calls, four of them recorded.
        for n in 0..7 {
            let body = call_cdr(n, n % 2 == 0, "20170309162713");
            let resp = raw_exchange(ts.ingest(), &om_request("POST", "/omapi", &body));
            assert_eq!(status_of(&resp), 200, "{name}: {resp}");
        }
        assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 7, "{name}");
        let tok = token(&ts, "qa").await;
        let api = ts.api();

        // Two a page, the total of all pages.
        let page = calls(api, &tok, "&limit=2").await;
        assert_eq!(page["calls"].as_array().map(Vec::len), Some(2), "{name}");
        assert_eq!(
            (page["total"].as_i64(), page["total_capped"].as_bool()),
            (Some(7), Some(false)),
            "{name}"
        );
        let next = page["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_string();
        let rest = calls(api, &tok, &format!("&limit=10&cursor={next}")).await;
        assert_eq!(rest["calls"].as_array().map(Vec::len), Some(5), "{name}");
        assert_eq!(
            rest["total"].as_i64(),
            Some(7),
            "{name}: the cursor does not change the total"
        );

        let recs = |v: &Value| -> Vec<Option<String>> {
            v["calls"]
                .as_array()
                .expect("calls")
                .iter()
                .map(|c| c["recording"].as_str().map(String::from))
                .collect()
        };
        let with = calls(api, &tok, "&has_recording=true").await;
        assert_eq!(with["total"].as_i64(), Some(4), "{name}");
        assert_eq!(recs(&with), vec![Some("pending".to_string()); 4], "{name}");
        let without = calls(api, &tok, "&has_recording=false").await;
        assert_eq!(without["total"].as_i64(), Some(3), "{name}");
        assert_eq!(recs(&without), vec![None; 3], "{name}");
        // With another filter: the same WHERE counts and lists.
        let inbound = calls(api, &tok, "&has_recording=true&number=13800000002").await;
        assert_eq!(inbound["total"].as_i64(), Some(1), "{name}");

        // The column follows the recording: failed, then done wins over it.
        ts.rows("UPDATE recordings SET status = 'failed' WHERE id = (SELECT MIN(id) FROM recordings) RETURNING id");
        let shown = recs(&calls(api, &tok, "&has_recording=true").await);
        assert_eq!(
            shown
                .iter()
                .filter(|s| s.as_deref() == Some("failed"))
                .count(),
            1,
            "{name}: {shown:?}"
        );
        ts.rows("UPDATE recordings SET status = 'done' WHERE id = (SELECT MAX(id) FROM recordings) RETURNING id");
        let shown = recs(&calls(api, &tok, "&has_recording=true").await);
        assert_eq!(
            shown
                .iter()
                .filter(|s| s.as_deref() == Some("done"))
                .count(),
            1,
            "{name}: {shown:?}"
        );

        // A bad value is a clear 400, not an empty list.
        let (code, body) = get(
            api,
            "/api/calls?from=2017-03-09&has_recording=maybe",
            Some(&tok),
        )
        .await;
        assert_eq!(code, 400, "{name}");
        assert!(
            String::from_utf8_lossy(&body).contains("has_recording"),
            "{name}"
        );

        // The devices' day for the page's date fields.
        let today = get_json(api, "/api/today", &tok).await;
        assert_eq!(today["timezone"], "Asia/Shanghai", "{name}");
        let day = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .date_naive();
        assert_eq!(
            today["today"].as_str(),
            Some(day.to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            today["yesterday"].as_str(),
            Some(day.pred_opt().expect("day").to_string().as_str()),
            "{name}"
        );
        let (code, _) = get(api, "/api/today", None).await;
        assert_eq!(code, 401, "{name}: signed-in callers only");
    }
}

/// A row of the devices' JSON by name or address.
fn row<'a>(rows: &'a Value, key: &str) -> &'a Value {
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == key || (r["name"].is_null() && r["address"] == key))
        .unwrap_or_else(|| panic!("no row {key} in {rows:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_figures_from_a_known_push_set_on_both_backends() {
    for backend in backends("devices_figures_from_a_known_push_set") {
        let name = format!("{:?}", backend.backend());
        let ts = start_on(backend, |c| {
            c.ingest.accept_unknown_devices = false;
            c.recordings.fetch_delay_seconds = 3600;
        })
        .await;
        // hq, registered from 127.0.0.1: the running server takes it on.
        let added = ts
            .running
            .store
            .writer
            .write(|tx| callvault::store::devices::add(tx, "hq", None, Some("127.0.0.1")))
            .await
            .expect("add");
        assert!(added);
        let tz = chrono_tz::Asia::Shanghai;
        // Its clock is two minutes ahead: each CDR ends "now" + 120 s.
        for n in 0..12 {
            let end = (chrono::Utc::now() + chrono::Duration::seconds(120))
                .with_timezone(&tz)
                .format("%Y%m%d%H%M%S")
                .to_string();
            // Held until the server notices the registration (within
            // seconds), then given to hq: stored either way.
            let status = push_from(ts.ingest(), "127.0.0.1", &call_cdr(n, true, &end));
            assert_eq!(status, 200, "{name}");
        }
        // A refused push from hq's address, an unregistered PBX, and an
        // address that only sent junk.
        assert_eq!(
            push_from(ts.ingest(), "127.0.0.1", "<Cdr><oops"),
            400,
            "{name}"
        );
        for n in 20..23 {
            assert_eq!(
                push_from(
                    ts.ingest(),
                    "127.0.0.2",
                    &call_cdr(n, true, "20170309162713")
                ),
                200
            );
        }
        assert_eq!(push_from(ts.ingest(), "127.0.0.3", "junk"), 400, "{name}");
        assert!(
            eventually(20, || ts.count(
                "SELECT COUNT(*) FROM pushes WHERE device = 'hq' AND outcome = 'stored'"
            ) == 12)
            .await,
            "{name}: hq's pushes are its own"
        );
        ts.derived();

        let admin = token(&ts, "admin").await;
        let api_rows = get_json(ts.api(), "/api/devices", &admin).await;
        let hq = row(&api_rows, "hq");
        assert_eq!(hq["kind"], "registered", "{name}");
        assert_eq!(hq["pushes"], 12, "{name}");
        assert_eq!(hq["pushes_today"], 12, "{name}");
        assert_eq!(hq["refused_today"], 1, "{name}");
        let reasons = hq["refusals_today"].as_object().expect("reasons");
        assert_eq!(reasons.len(), 1, "{name}: {reasons:?}");
        assert!(
            !reasons.keys().any(|k| k.contains(':')),
            "{name}: kinds, not details: {reasons:?}"
        );
        assert_eq!(hq["recordings_pending"], 12, "{name}");
        assert_eq!(
            (
                hq["recordings_failed"].as_i64(),
                hq["derive_backlog"].as_i64()
            ),
            (Some(0), Some(0)),
            "{name}"
        );
        let skew = hq["clock_skew_seconds"].as_i64().expect("skew");
        assert!((115..=125).contains(&skew), "{name}: skew {skew}");
        assert_eq!(hq["silent"], false, "{name}: it just pushed");
        assert!(
            hq["usual_gap_seconds"].is_i64(),
            "{name}: twelve pushes tell"
        );
        assert_eq!(hq["timezone"], "Asia/Shanghai");

        let branch = row(&api_rows, "127.0.0.2");
        assert_eq!(branch["kind"], "unregistered", "{name}");
        assert_eq!(
            (branch["pushes"].as_i64(), branch["pushes_today"].as_i64()),
            (Some(3), Some(3)),
            "{name}"
        );
        assert_eq!(branch["refused_today"], 0, "{name}");
        let junk = row(&api_rows, "127.0.0.3");
        assert_eq!(
            (junk["pushes"].as_i64(), junk["refused_today"].as_i64()),
            (Some(0), Some(1)),
            "{name}"
        );

        // The CLI reads the same archive and prints the same JSON (but the
        // seconds since the last push, which move on).
        let data = ts.dir.path().to_path_buf();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
        cmd.arg("--data")
            .arg(&data)
            .args(["devices", "--format", "json"]);
        if let Some(db) = &ts.pg {
            cmd.env("CALLVAULT_STORE_URL", db.url());
        }
        let out = cmd.output().expect("run callvault");
        assert!(out.status.success(), "{name}: {out:?}");
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            for r in v.as_array_mut().expect("rows") {
                r.as_object_mut().expect("row").remove("silent_for_seconds");
            }
            v
        };
        let cli_rows: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(strip(&cli_rows), strip(&api_rows), "{name}");
        if ts.pg.is_none() {
            // `list --json` is the same list.
            let old = callvault(&data, &["devices", "list", "--json"]);
            let old: Value = serde_json::from_slice(&old.stdout).expect("json");
            assert_eq!(strip(&old), strip(&api_rows));
        }

        // Other roles may not read the devices.
        let (code, _) = get(ts.api(), "/api/devices", Some(&token(&ts, "reports").await)).await;
        assert_eq!(code, 403, "{name}");

        // An hour on without a push from hq: silent, and counted.
        let cfg = callvault::config::Config {
            timezone: "Asia/Shanghai".into(),
            ..Default::default()
        };
        let later = chrono::Utc::now().timestamp_millis() + 3_600_000;
        let (rows, silent) = ts
            .running
            .store
            .read(move |c| {
                Ok((
                    device_status::rows(&cfg, c, later)?,
                    device_status::silent_count(&cfg, c, later)?,
                ))
            })
            .await
            .expect("figures");
        let hq = rows
            .iter()
            .find(|r| r.name.as_deref() == Some("hq"))
            .expect("hq");
        assert!(hq.silent, "{name}: {hq:?}");
        assert!(hq.silent_for_seconds.is_some_and(|s| s >= 3_600), "{name}");
        assert_eq!(silent, 1, "{name}");
        let (_, metrics) = get(ts.api(), "/metrics", None).await;
        let text = String::from_utf8_lossy(&metrics);
        assert!(
            text.contains("callvault_devices_silent 0"),
            "{name}: {text}"
        );
    }
}
