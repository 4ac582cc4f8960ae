//! The ingest listener over raw TCP sockets, as the OM device talks to it
//! (OM manual §1.2; a 200 means stored, ARCHITECTURE.md "Durability"),
//! checked against what the archive holds. Each test runs on SQLite, then
//! on PostgreSQL (`CALLVAULT_TEST_PG`, `util::backends`); the WAL fsync
//! failure is SQLite's own.

use crate::util::*;

const RING: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<Event attribute="RING">
  <ext id="200" />
  <visitor id="22" from="13012345678" to="02161208234" callid="16408" />
</Event>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_get_with_body_and_no_host_is_stored() {
    for b in backends("http10_get_with_body_and_no_host_is_stored") {
        let ts = start_on(b, |_| {}).await;
        let resp = raw_exchange(
            ts.ingest(),
            &om_request(
                "GET",
                "/omapi/report",
                &cdr("2820170309162713-0", "48", "18201008888"),
            ),
        );
        assert_eq!(status_of(&resp), 200, "{resp}");
        let leg = ts.row(
            "SELECT cpn, time_start, trunk_number, start_utc FROM legs WHERE cdr_id = '2820170309162713-0'",
        );
        assert_eq!(
            (leg[0].text(), leg[1].text(), leg[2].text()),
            ("18201008888", "2017-03-09 16:27:08", "888")
        );
        assert_eq!(
            leg[3].text(),
            "2017-03-09T08:27:08+00:00",
            "device local time converted via Asia/Shanghai"
        );
        assert_eq!(ts.count("SELECT COUNT(*) FROM pushes WHERE outcome='stored' AND method='GET' AND path='/omapi/report'"), 1);
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closing_right_after_writing_still_commits() {
    for b in backends("client_closing_right_after_writing_still_commits") {
        let ts = start_on(b, |_| {}).await;
        // Many, because the loss this guards against was a race (the connection
        // task noticed the EOF and dropped the handler before it stored).
        for i in 0..200 {
            raw_fire_and_close(
                ts.ingest(),
                &om_request("GET", "/", &cdr(&format!("{i}20170309162713-0"), "48", "1")),
            );
        }
        assert!(
            eventually(20, || ts.count("SELECT COUNT(*) FROM legs") == 200).await,
            "only {} of 200 legs committed",
            ts.count("SELECT COUNT(*) FROM legs")
        );
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pipelined_requests_in_one_write_are_all_answered_and_stored() {
    for b in backends("three_pipelined_requests_in_one_write_are_all_answered_and_stored") {
        let ts = start_on(b, |_| {}).await;
        let mut bytes = Vec::new();
        bytes.extend(
            format!(
                "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}",
                cdr("1-0", "1", "111").len(),
                cdr("1-0", "1", "111")
            )
            .bytes(),
        );
        bytes.extend(
            format!(
                "POST /b HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}",
                RING.len(),
                RING
            )
            .bytes(),
        );
        let last = cdr("3-0", "3", "333");
        bytes.extend(
            format!(
                "GET /c HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{last}",
                last.len()
            )
            .bytes(),
        );
        let resp = raw_exchange(ts.ingest(), &bytes);
        assert_eq!(resp.matches("HTTP/1.1 200").count(), 3, "{resp}");
        assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 2);
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM events WHERE attribute='RING'"),
            1
        );
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM event_parties WHERE tag='visitor' AND party_id='22'"),
            1
        );
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_documents_in_one_body_are_both_stored() {
    for b in backends("two_documents_in_one_body_are_both_stored") {
        let ts = start_on(b, |_| {}).await;
        let body = format!("{}{}", cdr("10-0", "5", "555"), RING);
        let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 1);
        assert_eq!(ts.count("SELECT COUNT(*) FROM events"), 1);
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes"),
            1,
            "one raw body row for the push"
        );
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_push_is_accepted() {
    for b in backends("query_string_push_is_accepted") {
        let ts = start_on(b, |_| {}).await;
        let q: String = form_urlencoded::byte_serialize(RING.as_bytes()).collect();
        let req = format!("GET /omapi?{q} HTTP/1.0\r\n\r\n");
        let resp = raw_exchange(ts.ingest(), req.as_bytes());
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert_eq!(ts.count("SELECT COUNT(*) FROM events"), 1);
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cdr_id_is_a_noop_and_changed_content_is_a_conflict() {
    for b in backends("duplicate_cdr_id_is_a_noop_and_changed_content_is_a_conflict") {
        let ts = start_on(b, |_| {}).await;
        let a = cdr("2820170309162713-0", "48", "18201008888");
        for _ in 0..2 {
            assert_eq!(
                status_of(&raw_exchange(ts.ingest(), &om_request("GET", "/", &a))),
                200
            );
        }
        assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 1);
        assert_eq!(ts.count("SELECT COUNT(*) FROM leg_conflicts"), 0);
        let changed = cdr("2820170309162713-0", "48", "18999999999");
        assert_eq!(
            status_of(&raw_exchange(
                ts.ingest(),
                &om_request("GET", "/", &changed)
            )),
            200
        );
        assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 1);
        assert_eq!(ts.count("SELECT COUNT(*) FROM leg_conflicts"), 1);
        assert_eq!(
            ts.row("SELECT cpn FROM legs")[0].text(),
            "18201008888",
            "the first version is never overwritten"
        );
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes"),
            3,
            "every push body is kept raw"
        );
        ts.running.stop().await;
    }
}

fn signed(body_root: &str, password: &str, ts: i64, bad_sig: bool) -> String {
    let nonce = "2E8E52C6";
    let mut sig = md5_sign(password, nonce, &ts.to_string());
    if bad_sig {
        sig = sig.replace(&sig[..2], "00");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n{body_root}\n<Auth>\n  <nonce>{nonce}</nonce>\n  <timestamp>{ts}</timestamp>\n  <signature>{sig}</signature>\n</Auth>\n"
    )
}

const BUSY: &str =
    "<Event attribute=\"BUSY\">\n<MAC>00:0E:A9:2D:07:D0</MAC>\n  <ext id=\"200\" />\n</Event>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_pushes_valid_wrong_and_stale() {
    for b in backends("signed_pushes_valid_wrong_and_stale") {
        let ts = start_on(b, |c| c.devices.push(signed_device("secret1", 60))).await;
        let now = chrono::Utc::now().timestamp();
        let ok = raw_exchange(
            ts.ingest(),
            &om_request("GET", "/", &signed(BUSY, "secret1", now, false)),
        );
        assert_eq!(status_of(&ok), 200, "{ok}");
        let wrong = raw_exchange(
            ts.ingest(),
            &om_request("GET", "/", &signed(BUSY, "secret1", now, true)),
        );
        assert_eq!(status_of(&wrong), 401, "{wrong}");
        let stale = raw_exchange(
            ts.ingest(),
            &om_request("GET", "/", &signed(BUSY, "secret1", now - 3600, false)),
        );
        assert_eq!(status_of(&stale), 401, "{stale}");
        assert!(
            stale.to_lowercase().contains("stale") || stale.contains("old"),
            "{stale}"
        );
        let unsigned = raw_exchange(ts.ingest(), &om_request("GET", "/", &format!("{BUSY}\n")));
        assert_eq!(status_of(&unsigned), 401, "{unsigned}");
        assert_eq!(ts.count("SELECT COUNT(*) FROM events WHERE device='hq'"), 1);
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM pushes WHERE outcome='quarantined' AND status=401"),
            3
        );
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_status_and_a_quarantine_row() {
    for b in backends("bad_inputs_get_their_status_and_a_quarantine_row") {
        let ts = start_on(b, |c| c.ingest.max_body_bytes = 4096).await;
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            (
                "malformed",
                om_request("GET", "/", "<Cdr id=\"1\"><callid>1</Cdr>"),
                400,
                "",
            ),
            (
                "unknown root",
                om_request(
                    "GET",
                    "/",
                    "<Control attribute=\"Query\"><DeviceInfo/></Control>",
                ),
                400,
                "Control",
            ),
            (
                "empty",
                b"GET / HTTP/1.0\r\n\r\n".to_vec(),
                400,
                "empty body",
            ),
            (
                "oversized",
                om_request("POST", "/", &"x".repeat(10_000)),
                413,
                "max_body_bytes",
            ),
            (
                "traversal",
                om_request(
                    "GET",
                    "/",
                    &cdr("9-0", "1", "..").replace("20170309/.._200", "../../etc/passwd"),
                ),
                400,
                "",
            ),
            (
                "a leg ending in 9999 (device clock fault)",
                om_request(
                    "GET",
                    "/",
                    &cdr("8-0", "1", "1").replace("20170309162713", "99991231235959"),
                ),
                400,
                "days after TimeStart",
            ),
        ];
        for (name, req, status, needle) in &cases {
            let resp = raw_exchange(ts.ingest(), req);
            assert_eq!(status_of(&resp), *status, "{name}: {resp}");
            assert!(
                resp.contains(needle),
                "{name}: reason should mention {needle:?}: {resp}"
            );
        }
        let mut non_utf8 = b"POST / HTTP/1.0\r\nContent-Length: 6\r\n\r\n".to_vec();
        non_utf8.extend_from_slice(&[0x3c, 0xff, 0xfe, 0x41, 0x3e, 0x0a]);
        let resp = raw_exchange(ts.ingest(), &non_utf8);
        assert_eq!(status_of(&resp), 400, "{resp}");
        assert!(resp.contains("UTF-8"), "{resp}");

        assert_eq!(
            ts.count(
                "SELECT COUNT(*) FROM pushes WHERE outcome='quarantined' AND reason IS NOT NULL"
            ),
            7
        );
        assert_eq!(
            ts.count("SELECT COUNT(*) FROM legs"),
            0,
            "nothing from a refused push is stored as a leg"
        );
        // The server keeps serving after all of that.
        let ok = raw_exchange(ts.ingest(), &om_request("GET", "/", &cdr("77-0", "1", "1")));
        assert_eq!(status_of(&ok), 200);
        let (code, body) = get(ts.api(), "/metrics", None).await;
        assert_eq!(code, 200);
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("callvault_pushes_rejected_total{reason=\"too_large\"}"),
            "{text}"
        );
        assert!(text.contains("callvault_commit_seconds_bucket"), "{text}");
        ts.running.stop().await;
    }
}

/// A sender that stops before the end of its body (Content-Length larger
/// than what it sends) and keeps the socket open: answered 408 after
/// `body_timeout_seconds`, what came is quarantined, the connection closed.
/// One that closes its side instead: 400 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_is_answered_408_and_kept() {
    for b in backends("a_body_that_stops_coming_is_answered_408_and_kept") {
        let ts = start_on(b, |c| c.ingest.body_timeout_seconds = 1).await;
        // The device hangs with its socket open; or it closes its side before
        // the end: 400 at once, with what it is, not a parse error of the piece.
        let cases = [
            ("5-0", false, 408, "not complete after 1 s (14 bytes came)"),
            (
                "6-0",
                true,
                400,
                "body incomplete: the connection ended after 14 bytes",
            ),
        ];
        for (id, half_close, status, reason) in cases {
            let exchange = if half_close {
                raw_exchange_half_closed
            } else {
                raw_exchange
            };
            let piece = format!("<Cdr id=\"{id}\">");
            let resp = exchange(
                ts.ingest(),
                format!("POST /omapi HTTP/1.0\r\nContent-Length: 400\r\n\r\n{piece}").as_bytes(),
            );
            assert_eq!(status_of(&resp), status, "{resp}");
            assert!(resp.contains(reason), "{resp}");
            let kept = ts.rows(&format!(
                "SELECT body FROM pushes WHERE outcome = 'quarantined' AND status = {status}"
            ));
            assert_eq!(kept, vec![vec![Val::Blob(piece.clone().into_bytes())]]);
        }
        ts.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_legs_needs_a_token_and_returns_fields() {
    for b in backends("api_legs_needs_a_token_and_returns_fields") {
        let ts = start_on(b, |_| {}).await;
        raw_exchange(
            ts.ingest(),
            &om_request("GET", "/", &cdr("2820170309162713-0", "48", "18201008888")),
        );
        ts.derived();
        let (code, body) = get(ts.api(), "/api/legs?from=2017-03-09&to=2017-03-09", None).await;
        assert_eq!(code, 401);
        assert!(String::from_utf8_lossy(&body).contains("\"error\""));
        let tok = token(&ts, "qa").await;
        let v = get_json(ts.api(), "/api/legs?from=2017-03-09&to=2017-03-09", &tok).await;
        let leg = &v["legs"][0];
        assert_eq!(leg["cdr_id"], "2820170309162713-0");
        assert_eq!(leg["type"], "IN");
        assert_eq!(leg["visitor_id"], "48");
        assert_eq!(leg["time_start"], "2017-03-09T16:27:08+08:00");
        assert_eq!(leg["rec_codec"], "G729");
        let (code, _) = get(
            ts.api(),
            "/api/legs?from=2017-03-10&to=2017-03-09",
            Some(&tok),
        )
        .await;
        assert_eq!(code, 400);
        let (code, body) = get(ts.api(), "/healthz", None).await;
        let mut want = serde_json::json!({"derive_backlog": 0, "recordings_paused": null,
            "status": "ok", "unregistered_senders": 0});
        if ts.backend() == Backend::Postgres {
            // What only a shared archive has.
            want["backend"] = "postgres".into();
            want["default_partition_rows"] = 0.into();
            want["derives_here"] = true.into();
        }
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            want
        );
        ts.running.stop().await;
    }
}

/// A WAL fsync that fails (here: the WAL file vanished under the archive)
/// is never answered 200: that push and every later one get 503 (the
/// device keeps and retries them), and /healthz says the storage failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wal_fsync_refuses_pushes_and_shows_in_healthz() {
    let ts = start().await;
    let ok = raw_exchange(
        ts.ingest(),
        &om_request("POST", "/", &cdr("2820170309162713-0", "48", "18201008888")),
    );
    assert_eq!(status_of(&ok), 200, "{ok}");
    let mut wal = ts.db_path().into_os_string();
    wal.push("-wal");
    std::fs::remove_file(&wal).expect("remove the WAL");
    for id in ["2820170309162714-0", "2820170309162715-0"] {
        let resp = raw_exchange(
            ts.ingest(),
            &om_request("POST", "/", &cdr(id, "49", "18201008889")),
        );
        assert_eq!(status_of(&resp), 503, "{resp}");
    }
    let (code, body) = get(ts.api(), "/healthz", None).await;
    assert_eq!(code, 503);
    assert!(
        String::from_utf8_lossy(&body).contains("storage_failed"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    ts.running.stop().await;
}

/// A leg dated more than a day from when it arrived (a wrong device clock,
/// like the manual's own 2082 example, or a late re-send) is stored and
/// flagged `clock_skewed`, and counted; a leg of today is not flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_far_from_their_receive_time_are_flagged_and_counted() {
    for b in backends("legs_far_from_their_receive_time_are_flagged_and_counted") {
        let ts = start_on(b, |_| {}).await;
        let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
        let today = now.format("%Y%m%d%H%M%S").to_string();
        let fresh = cdr("1-0", "1", "18201000001")
            .replace("20170309162708", &today)
            .replace("20170309162713", &today);
        for body in [cdr("2-0", "2", "18201000002"), fresh] {
            let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &body));
            assert_eq!(status_of(&resp), 200, "{resp}");
        }
        ts.derived();
        let flagged = |id: &str| {
            ts.count(&format!(
                "SELECT clock_skewed FROM legs WHERE cdr_id = '{id}'"
            ))
        };
        assert_eq!((flagged("1-0"), flagged("2-0")), (0, 1));
        let tok = token(&ts, "qa").await;
        let v = get_json(ts.api(), "/api/legs?from=2017-03-09&to=2017-03-09", &tok).await;
        assert_eq!(v["legs"][0]["clock_skewed"], true, "{v}");
        let (_, metrics) = get(ts.api(), "/metrics", Some(&tok)).await;
        let metrics = String::from_utf8(metrics).unwrap();
        // The recorder is global to the test binary: other tests' legs count too.
        let counted: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("callvault_legs_clock_skewed_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(counted >= 1.0, "{metrics}");
        ts.running.stop().await;
    }
}
