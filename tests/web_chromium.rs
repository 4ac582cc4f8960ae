//! The web page in headless Chromium, driven through chromedriver (W3C
//! WebDriver over plain HTTP with reqwest, no extra crates): sign in, search,
//! page, open a call, the `<audio>` element loads the WAV (the server sees
//! 200/206), the daily report view, and the billing CSV download. Skips with a
//! printed reason when Chromium or chromedriver is not installed. Sign-in
//! keeps only the session cookie unless "remember me" is ticked; a reload
//! keeps the session, sign-out ends it. Screenshots
//! go to tests/artifacts/ (gitignored).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use callvault::http::{api_router, AppState};
use serde_json::json;
use sha2::Digest;

use crate::chromium::{have_chromium, start_driver};
use crate::devices_figures::call_cdr;
use crate::reports_util::{config, simulated_day, start};
use crate::util::{om_request, raw_exchange, start_with, status_of, token, TestServer};

/// Each request the page made: path, status, query string.
type Log = Arc<Mutex<Vec<(String, u16, String)>>>;

/// A one-second 440 Hz WAV stored as the recording of `leg_id` (status done).
fn store_recording(ts: &TestServer, leg_id: i64) {
    let rel = "20240108/web_test.wav";
    let path = config(ts).recordings_dir().join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("wav");
    for i in 0..8000 {
        let s = (i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0;
        w.write_sample(s as i16).expect("sample");
    }
    w.finalize().expect("finalize");
    let bytes = std::fs::read(&path).expect("read wav");
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    ts.db()
        .execute(
            "INSERT OR REPLACE INTO recordings (leg_id, device, path, codec, status, attempts, due_ms, file, bytes, duration_seconds, sha256, updated_at)
             SELECT id, device, recording, rec_codec, 'done', 1, 0, ?2, ?3, 1.0, ?4, '2024-01-08T10:00:00Z' FROM legs WHERE id = ?1",
            rusqlite::params![leg_id, rel, bytes.len() as i64, sha],
        )
        .expect("recording row");
}

/// Conversation figures for the recording of `leg_id` (docs/recordings.md
/// "Conversation figures"): the agent speaks 0.10–0.40 s, the customer
/// 0.50–0.90 s of the one-second recording.
fn store_conversation(ts: &TestServer, leg_id: i64) {
    ts.db()
        .execute(
            "INSERT INTO conversations (recording_id, status, agent_talk_seconds, customer_talk_seconds,
                 talk_ratio, overtalk_seconds, longest_silence_seconds, silence_seconds, interruptions,
                 agent_first_word_seconds, segments, computed_at)
             SELECT id, 'ok', 0.3, 0.4, 0.43, 0, 0.1, 0.1, 0, 0.1,
                 '[{\"side\":\"agent\",\"start\":0.1,\"end\":0.4},{\"side\":\"customer\",\"start\":0.5,\"end\":0.9}]',
                 '2024-01-08T10:00:00Z' FROM recordings WHERE leg_id = ?1",
            [leg_id],
        )
        .expect("conversation row");
}

/// The real API router, logging every request.
async fn front(ts: &TestServer, log: Log) -> SocketAddr {
    let state = AppState {
        store: ts.running.store.clone(),
        cfg: config(ts),
        recordings_paused: Default::default(),
        recordings: callvault::recordings::storage::RecordingStore::from_config(&config(ts))
            .expect("recordings store"),
        live: callvault::live::Feed::start(
            ts.running.store.clone(),
            tokio::sync::watch::channel(false).1,
        ),
    };
    let app = Router::new()
        .fallback_service(api_router(state))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or_default().to_string();
                    let resp = next.run(req).await;
                    log.lock()
                        .expect("log")
                        .push((path, resp.status().as_u16(), query));
                    resp
                }
            },
        ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

/// The first file with extension `ext` in the download directory, once
/// Chromium has finished it (it writes `.crdownload` until then).
async fn wait_for_download(downloads: &Path, ext: &str, log: &Log) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(f) = done.into_iter().next() {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "no .{ext} downloaded; requests: {:?}",
            log.lock().expect("log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 5 s for a request to `path` answered `status`.
/// Waits (5 s at most) for more than `before` answers with `status` to
/// `path` in the log.
async fn within_log(log: &Log, path: &str, status: u16, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if answers(log, path, status) > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn answers(log: &Log, path: &str, status: u16) -> usize {
    log.lock()
        .expect("log")
        .iter()
        .filter(|(p, s, _)| p == path && *s == status)
        .count()
}

fn seen(log: &Log, path: &str, ok: &[u16]) -> bool {
    log.lock()
        .expect("log")
        .iter()
        .any(|(p, s, _)| p == path && ok.contains(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_in_headless_chromium() {
    if !have_chromium("web_chromium") {
        return;
    }
    let ts = start().await;
    simulated_day(&ts, 13, 120).await;
    // The first call of the day with a recording: it is on page 1 of the search.
    let (call_id, leg_id): (String, i64) = ts
        .db()
        .query_row(
            "SELECT c.id, l.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq JOIN legs l ON l.id = cl.leg_id
             WHERE l.recording IS NOT NULL ORDER BY c.start_local, c.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a recorded call");
    store_recording(&ts, leg_id);
    store_conversation(&ts, leg_id);
    let tok = token(&ts, "admin").await;
    let log: Log = Arc::default();
    let addr = front(&ts, log.clone()).await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let (profile, downloads) = (tmp.path().join("profile"), tmp.path().join("downloads"));
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let d = start_driver(&profile, &downloads).await;
    d.call(
        reqwest::Method::POST,
        "/url",
        Some(json!({"url": format!("http://{addr}/")})),
    )
    .await;

    // Sign in: a wrong token is refused, the right one opens the calls view.
    d.wait(
        "document.querySelector('#login-view') && !document.querySelector('#login-view').hidden",
    )
    .await;
    d.type_into("#token", "not-a-token").await;
    d.click("#login-btn").await;
    d.wait("document.querySelector('#login-error').textContent.includes('not accepted')")
        .await;
    d.js("document.querySelector('#token').value = '';").await;
    assert_eq!(
        d.js("return document.querySelector('#remember').checked;")
            .await,
        json!(false),
        "remember me is off by default"
    );
    d.type_into("#token", &tok).await;
    d.click("#login-btn").await;
    d.wait("!document.querySelector('#calls-view').hidden")
        .await;
    // Signed in by the session cookie alone: the page kept no token.
    assert_eq!(
        d.js("return [localStorage.getItem('callvault.token'), sessionStorage.getItem('callvault.token'), document.cookie];")
            .await,
        json!([null, null, ""]),
        "no token in storage, and the HttpOnly cookie is out of the script's reach"
    );

    // Search the simulated day, 25 per page, then page forward and back.
    d.js("document.querySelector('#from').value = '2024-01-08'; document.querySelector('#to').value = '2024-01-08'; document.querySelector('#limit').value = '25';").await;
    d.click("#search-btn").await;
    d.wait("document.querySelectorAll('#calls-table tbody tr').length === 25")
        .await;
    d.click("#next").await;
    d.wait("document.querySelector('#page').textContent === 'Page 2' && document.querySelectorAll('#calls-table tbody tr').length > 0").await;
    d.click("#prev").await;
    d.wait("document.querySelector('#page').textContent === 'Page 1'")
        .await;
    // Filter by direction.
    d.js("document.querySelector('#direction').value = 'inbound';")
        .await;
    d.click("#search-btn").await;
    d.wait("[...document.querySelectorAll('#calls-table tbody tr')].length > 0 && [...document.querySelectorAll('#calls-table tbody tr td:nth-child(2)')].every(td => td.textContent.startsWith('inbound'))").await;
    d.js("document.querySelector('#direction').value = '';")
        .await;
    d.click("#search-btn").await;
    // The conversation filters: the one call with figures (talk ratio
    // 0.43, longest silence 0.1 s) is in a ratio window around it and out
    // of a search for dead air.
    d.js("document.querySelector('#talk_ratio_min').value = '0.4'; document.querySelector('#talk_ratio_max').value = '0.5';").await;
    d.click("#search-btn").await;
    d.wait(&format!("(() => {{ const r = document.querySelectorAll('#calls-table tbody tr[data-id]'); return r.length === 1 && r[0].dataset.id === '{call_id}'; }})()")).await;
    d.js("document.querySelector('#talk_ratio_min').value = ''; document.querySelector('#talk_ratio_max').value = ''; document.querySelector('#longest_silence_min').value = '5';").await;
    d.click("#search-btn").await;
    d.wait("document.querySelector('#calls-status').textContent === 'No calls match.' && document.querySelectorAll('#calls-table tbody tr[data-id]').length === 0").await;
    d.js("document.querySelector('#longest_silence_min').value = '';")
        .await;
    d.click("#search-btn").await;
    let row = format!("#calls-table tbody tr[data-id='{call_id}']");
    d.wait(&format!("document.querySelector(\"{row}\")")).await;

    // Open the call: legs, recording status, player, download link.
    d.click(&row).await;
    d.wait("document.querySelector('#detail h3') && document.querySelectorAll('#detail table').length >= 2").await;
    d.wait("document.querySelector('#player')").await;
    d.js("const a = document.querySelector('#player'); a.muted = true; a.load(); a.play().catch(() => {});").await;
    let state = d.wait("(() => { const a = document.querySelector('#player'); return a.error ? 'error ' + a.error.code : (a.readyState >= 1 ? 'ready' : ''); })()").await;
    assert_eq!(state, json!("ready"), "audio element did not load the WAV");
    let rec_path = format!("/api/calls/{call_id}/recording");
    assert!(
        seen(&log, &rec_path, &[200, 206]),
        "server did not serve the recording: {:?}",
        log.lock().expect("log")
    );
    let dl = d
        .js("return document.querySelector('#download-rec').getAttribute('href');")
        .await;
    assert_eq!(
        dl,
        json!(format!("{rec_path}?download=1")),
        "no token in the link"
    );
    // Who spoke when: a lane each, a segment each; a click seeks the audio
    // to the time under it (the middle of the timeline: about 0.45 s).
    d.wait("document.querySelectorAll('#timeline rect.lane').length === 2")
        .await;
    assert_eq!(
        d.js(
            "return [...document.querySelectorAll('#timeline rect.seg')].map(r => r.dataset.side);"
        )
        .await,
        json!(["agent", "customer"])
    );
    d.js("const a = document.querySelector('#player'); a.pause(); a.currentTime = 0;")
        .await;
    d.wait("document.querySelector('#player').currentTime === 0")
        .await;
    d.click("#timeline").await;
    let at = d
        .wait("(() => { const t = document.querySelector('#player').currentTime; return t > 0 ? t : null; })()")
        .await;
    let at = at.as_f64().expect("a time");
    assert!((0.3..0.6).contains(&at), "the click seeked to {at} s");
    d.screenshot("web_call.png").await;

    // Daily report view: the HTML report in the frame.
    d.click("button[data-view='report']").await;
    d.js("document.querySelector('#report-date').value = '2024-01-08';")
        .await;
    d.click("#report-form button[type=submit]").await;
    d.wait("(() => { const f = document.querySelector('#report-frame'); return f.contentDocument && f.contentDocument.body && f.contentDocument.body.innerText.includes('Daily call report 2024-01-08') && f.contentDocument.querySelectorAll('svg').length >= 4; })()").await;
    assert!(seen(&log, "/reports/daily", &[200]));
    d.screenshot("web_report.png").await;

    // Billing: the download link fetches the CSV into the download directory.
    d.click("button[data-view='billing']").await;
    d.js("document.querySelector('#bill-from').value = '2024-01-08'; document.querySelector('#bill-to').value = '2024-01-08'; document.querySelector('#billing-form').dispatchEvent(new Event('change'));").await;
    d.click("#billing-link").await;
    let file = wait_for_download(&downloads, "csv", &log).await;
    assert!(seen(&log, "/export/billing.csv", &[200]));
    let bytes = std::fs::read(&file).expect("downloaded csv");
    let body = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .expect("BOM (checked by default)");
    let mut rd = csv::Reader::from_reader(body);
    assert!(rd
        .headers()
        .expect("header")
        .iter()
        .any(|h| h == "billable_seconds"));
    let csv_rows = rd.records().count();
    assert!(csv_rows > 50);

    // The Excel link: a workbook with the same number of rows.
    d.click("#billing-xlsx-link").await;
    let file = wait_for_download(&downloads, "xlsx", &log).await;
    assert!(seen(&log, "/export/billing.xlsx", &[200]));
    let bytes = std::fs::read(&file).expect("downloaded xlsx");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an .xlsx file");
    let sheet = calamine::Reader::worksheet_range_at(&mut book, 0)
        .expect("a sheet")
        .expect("readable");
    assert_eq!(sheet.height(), csv_rows + 1, "header and the CSV's rows");

    // Audio, downloads and the report frame rode on the session cookie: no
    // request carried the token in its URL.
    assert!(seen(&log, "/api/session", &[200]));
    let leaked: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|(_, _, q)| q.contains("token="))
        .map(|(p, _, q)| format!("{p}?{q}"))
        .collect();
    assert!(leaked.is_empty(), "token in URLs: {leaked:?}");

    // A reload keeps the session (the cookie); signing out ends it on the
    // server, so a reload then shows the sign-in form.
    // (The view is in the URL: the reload opens the billing view again.)
    d.call(reqwest::Method::POST, "/refresh", Some(json!({})))
        .await;
    d.wait("document.querySelector('#billing-view') && !document.querySelector('#billing-view').hidden && document.querySelector('#who').textContent.includes('admin')").await;
    // (The page's first load, signed out, already sent one DELETE: wait
    // for this sign-out's own before reloading.)
    let signed_out = answers(&log, "/api/session", 204);
    d.click("#logout").await;
    d.wait("!document.querySelector('#login-view').hidden")
        .await;
    assert!(
        within_log(&log, "/api/session", 204, signed_out).await,
        "sign-out reached the server"
    );
    d.call(reqwest::Method::POST, "/refresh", Some(json!({})))
        .await;
    d.wait(
        "document.querySelector('#login-view') && !document.querySelector('#login-view').hidden",
    )
    .await;

    // "Remember me" keeps the token, and only then.
    d.js("document.querySelector('#remember').checked = true;")
        .await;
    d.type_into("#token", &tok).await;
    d.click("#login-btn").await;
    d.wait("!document.querySelector('#calls-view').hidden")
        .await;
    assert_eq!(
        d.js("return localStorage.getItem('callvault.token');")
            .await,
        json!(tok)
    );
    d.click("#logout").await;
    d.wait("!document.querySelector('#login-view').hidden")
        .await;
    assert_eq!(
        d.js("return localStorage.getItem('callvault.token');")
            .await,
        json!(null),
        "signing out forgets it"
    );

    // Signed out, the page shows the sign-in form only.
    assert_eq!(
        d.js("return [document.querySelector('#nav').offsetParent, document.querySelector('#calls-view').offsetParent];")
            .await,
        json!([null, null]),
        "nothing but the sign-in form is visible"
    );

    // The demo's link (the token in the fragment), opened afresh, signs in,
    // keeps no token and clears the fragment from the address bar.
    d.open_fresh(format!("http://{addr}/#token={tok}")).await;
    d.wait(
        "document.querySelector('#calls-view') && !document.querySelector('#calls-view').hidden",
    )
    .await;
    assert_eq!(
        d.js("return [location.hash, localStorage.getItem('callvault.token')];")
            .await,
        json!(["", null])
    );
    // Everything above ran under the page's Content-Security-Policy
    // (script only from this origin): the console shows no violation.
    let violations = d.csp_violations().await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    d.call(reqwest::Method::DELETE, "", None).await;
}

/// The page's first five minutes, with the browser twenty-six hours west of
/// the devices (browser at UTC−12, devices at UTC+14: their calendars
/// always differ): the date fields open on the devices' days; a search's
/// filters live in the URL (a reload keeps them); the total, the recording
/// column and its filter; a `#/calls/{id}` link opens that call in view,
/// its legs' Type column filled; the Devices view for an administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_first_minutes_in_another_time_zone() {
    if !have_chromium("web_page_first_minutes") {
        return;
    }
    const DEVICES_TZ: &str = "Pacific/Kiritimati";
    const BROWSER_TZ: &str = "Etc/GMT+12"; // UTC−12 (POSIX signs)
    let ts = start_with(|c| {
        c.timezone = DEVICES_TZ.into();
        c.calls.settle_seconds = 0;
        c.recordings.fetch_delay_seconds = 3600;
        c.devices.push(callvault::config::DeviceConfig {
            name: "hq".into(),
            push_from: vec!["127.0.0.1".into()],
            ..Default::default()
        });
    })
    .await;
    // Five calls on 2017-03-09, three recorded.
    for n in 0..5 {
        let body = call_cdr(n, n % 2 == 0, "20170309162713");
        let resp = raw_exchange(ts.ingest(), &om_request("POST", "/omapi", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
    }
    ts.derived();
    let call_id: String = ts
        .db()
        .query_row(
            "SELECT id FROM calls ORDER BY start_local, id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a call");
    let tok = token(&ts, "admin").await;
    let addr = ts.api();

    let now = chrono::Utc::now();
    let day_in = |tz: &str| {
        now.with_timezone(&tz.parse::<chrono_tz::Tz>().expect("tz"))
            .date_naive()
    };
    let (devices_day, browser_day) = (day_in(DEVICES_TZ), day_in(BROWSER_TZ));
    assert_ne!(
        devices_day, browser_day,
        "the two calendars differ at every hour"
    );
    let devices_yesterday = devices_day.pred_opt().expect("day").to_string();

    let tmp = tempfile::tempdir().expect("tempdir");
    let (profile, downloads) = (tmp.path().join("profile"), tmp.path().join("downloads"));
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let d = start_driver(&profile, &downloads).await;
    d.call(
        reqwest::Method::POST,
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": BROWSER_TZ}})),
    )
    .await;
    d.call(
        reqwest::Method::POST,
        "/url",
        Some(json!({"url": format!("http://{addr}/")})),
    )
    .await;
    assert_eq!(
        d.js("return Intl.DateTimeFormat().resolvedOptions().timeZone;")
            .await,
        json!(BROWSER_TZ),
        "the browser runs in its own zone"
    );
    d.wait(
        "document.querySelector('#login-view') && !document.querySelector('#login-view').hidden",
    )
    .await;
    d.type_into("#token", &tok).await;
    d.click("#login-btn").await;
    d.wait("!document.querySelector('#calls-view').hidden")
        .await;

    // The daily report opens on the devices' yesterday, not the browser's.
    d.wait(&format!(
        "document.querySelector('#report-date').value === '{devices_yesterday}'"
    ))
    .await;
    assert_eq!(
        d.js("return document.querySelector('#to').value;").await,
        json!(devices_day.to_string())
    );
    d.click("button[data-view='report']").await;
    d.wait(&format!(
        "(document.querySelector('#report-frame').getAttribute('src') || '').includes('date={devices_yesterday}')"
    ))
    .await;
    assert!(
        d.js("return location.hash;")
            .await
            .as_str()
            .is_some_and(|h| h.starts_with("#/report")),
        "the view is in the URL"
    );

    // A search: its filters go into the URL; the total and the recording column.
    d.click("button[data-view='calls']").await;
    d.js("document.querySelector('#from').value = '2017-03-09'; document.querySelector('#to').value = '2017-03-09'; document.querySelector('#limit').value = '25';").await;
    d.click("#search-btn").await;
    d.wait("document.querySelectorAll('#calls-table tbody tr').length === 5")
        .await;
    assert_eq!(
        d.js("return document.querySelector('#calls-total').dataset.total;")
            .await,
        json!("5")
    );
    let recs = d
        .js("return [...document.querySelectorAll('#calls-table td.rec')].map(td => td.dataset.rec).sort();")
        .await;
    assert_eq!(recs, json!(["", "", "pending", "pending", "pending"]));
    d.js("document.querySelector('#has_recording').value = 'true';")
        .await;
    d.click("#search-btn").await;
    d.wait("document.querySelector('#calls-total') && document.querySelector('#calls-total').dataset.total === '3'")
        .await;
    d.wait("[...document.querySelectorAll('#calls-table td.rec')].every(td => td.dataset.rec === 'pending') && document.querySelectorAll('#calls-table tbody tr').length === 3").await;
    let hash = d.js("return location.hash;").await;
    let hash = hash.as_str().unwrap_or_default().to_string();
    assert!(
        hash.starts_with("#/calls?")
            && hash.contains("has_recording=true")
            && hash.contains("from=2017-03-09"),
        "{hash}"
    );
    // A reload (or the link shared) keeps the filters.
    d.call(reqwest::Method::POST, "/refresh", Some(json!({})))
        .await;
    d.wait("document.querySelector('#calls-total') && document.querySelector('#calls-total').dataset.total === '3'")
        .await;
    assert_eq!(
        d.js("return [document.querySelector('#has_recording').value, document.querySelector('#from').value];").await,
        json!(["true", "2017-03-09"])
    );

    // A link to a call, opened afresh: the call in view, its legs' types.
    d.open_fresh(format!("http://{addr}/#/calls/{call_id}"))
        .await;
    d.wait("document.querySelector('#detail h3') && document.querySelectorAll('#detail table').length >= 1")
        .await;
    let in_view = d
        .js("const r = document.querySelector('#detail h3').getBoundingClientRect(); return !document.querySelector('#detail-panel').hidden && r.top >= 0 && r.bottom <= innerHeight;")
        .await;
    assert_eq!(in_view, json!(true), "the detail opens in view");
    assert!(
        d.js("return document.querySelector('#detail').innerText;")
            .await
            .as_str()
            .is_some_and(|t| t.contains(&call_id)),
        "the call asked for"
    );
    let types = d
        .js("const t = [...document.querySelectorAll('#detail table')].find(t => t.querySelector('th') && [...t.querySelectorAll('th')].some(th => th.textContent === 'Type')); const i = [...t.querySelectorAll('th')].findIndex(th => th.textContent === 'Type'); return [...t.querySelectorAll('tbody tr')].map(r => r.children[i].textContent);")
        .await;
    assert_eq!(types, json!(["IN"]), "the Type column is filled");
    d.screenshot("web_call_panel.png").await;
    // Closing it goes back to the list.
    d.click("#detail-close").await;
    d.wait("document.querySelector('#detail-panel').hidden && location.hash.startsWith('#/calls')")
        .await;

    // The Devices view (an administrator's): hq with today's figures.
    d.click("button[data-view='devices']").await;
    d.wait("document.querySelector(\"#devices-table tr[data-name='hq']\")")
        .await;
    let cells = d
        .js("return [...document.querySelector(\"#devices-table tr[data-name='hq']\").children].map(td => td.textContent);")
        .await;
    assert_eq!(cells[1], json!("config"), "{cells}");
    assert_eq!(cells[3], json!("5"), "five pushes today: {cells}");
    assert_eq!(cells[5], json!("3"), "three recordings pending: {cells}");
    d.screenshot("web_devices.png").await;
    d.call(reqwest::Method::DELETE, "", None).await;
}
