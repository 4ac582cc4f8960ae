//! The `/live` wall screen and the call detail's "What happened" in
//! headless Chromium (the `web_chromium` harness): signed in on the main
//! page, the wall screen shows a call within 2 s of its first event and
//! drops it within 2 s of its BYE, and the queue's waiting count rises and
//! falls; the call's detail then lists its events in words. Skips with a
//! printed reason without Chromium.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::calls_timeline::{agent_ring_of, answer_of, bye_of, push_xml, queue_of};
use crate::chromium::{have_chromium, start_driver, Driver};
use crate::util::*;

/// Waits until the JS expression `expr` is true, at most `limit` after
/// `since` (the event that should make it so); panics with the page's
/// text otherwise.
async fn within(d: &Driver, since: Instant, limit: Duration, what: &str, expr: &str) {
    loop {
        if d.js(&format!("return !!({expr});")).await == json!(true) {
            return;
        }
        if since.elapsed() > limit {
            let page = d.js("return document.body.innerText;").await;
            panic!("{what}: not within {limit:?} of the event\npage:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn figure(id: &str, value: &str) -> String {
    format!("document.querySelector('#{id}').textContent === '{value}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_and_what_happened_in_headless_chromium() {
    if !have_chromium("live_chromium") {
        return;
    }
    let ts = start().await;
    let tok = token(&ts, "qa").await;
    let base = format!("http://{}", ts.api());
    let tmp = tempfile::tempdir().expect("tempdir");
    let (profile, downloads) = (tmp.path().join("profile"), tmp.path().join("downloads"));
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let d = start_driver(&profile, &downloads).await;

    // Not signed in: the wall screen says where to sign in.
    d.open_fresh(format!("{base}/live")).await;
    d.wait("!document.querySelector('#live-signin').hidden")
        .await;
    // Signed in on the main page, the wall screen follows the session.
    d.open_fresh(format!("{base}/")).await;
    d.wait(
        "document.querySelector('#login-view') && !document.querySelector('#login-view').hidden",
    )
    .await;
    d.type_into("#token", &tok).await;
    d.click("#login-btn").await;
    d.wait("!document.querySelector('#calls-view').hidden")
        .await;
    d.open_fresh(format!("{base}/live")).await;
    d.wait(&format!(
        "document.querySelector('#live-state').textContent === 'live' && {}",
        figure("live-calls", "0")
    ))
    .await;

    let at = Instant::now();
    push_xml(&ts, &queue_of("77"));
    let two = Duration::from_secs(2);
    within(
        &d,
        at,
        two,
        "the queued call",
        &format!(
            "{} && {} && document.querySelector('#live-calls-table tr[data-caller=\"18201008888\"]')",
            figure("live-calls", "1"),
            figure("live-waiting", "1")
        ),
    )
    .await;
    d.wait(
        "document.querySelector('#queues-table tr[data-queue=\"6\"] .waiting').textContent === '1'",
    )
    .await;
    let at = Instant::now();
    push_xml(&ts, &agent_ring_of("77"));
    within(
        &d,
        at,
        two,
        "the queue emptied",
        &figure("live-waiting", "0"),
    )
    .await;
    let at = Instant::now();
    push_xml(&ts, &answer_of("77"));
    within(
        &d,
        at,
        two,
        "agent 200 on the call",
        &figure("live-agents", "1"),
    )
    .await;
    d.screenshot("live_wallboard.png").await;
    let at = Instant::now();
    push_xml(&ts, &bye_of("77"));
    within(
        &d,
        at,
        two,
        "the call gone",
        &format!(
            "{} && {}",
            figure("live-calls", "0"),
            figure("live-agents", "0")
        ),
    )
    .await;

    // The call's detail: what happened, in words.
    push_xml(&ts, &cdr("q-77", "77", "18201008888"));
    ts.derived();
    let list = get_json(ts.api(), "/api/calls?from=2017-03-09&to=2017-03-09", &tok).await;
    let id = list["calls"][0]["id"]
        .as_str()
        .expect("the call")
        .to_string();
    d.open_fresh(format!("{base}/#/calls/{id}")).await;
    d.wait("document.querySelectorAll('#what-happened li[data-attribute]').length === 4")
        .await;
    let lines = d
        .js("return [...document.querySelectorAll('#what-happened li .what')].map(e => e.textContent);")
        .await;
    let lines: Vec<&str> = lines
        .as_array()
        .expect("lines")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    assert_eq!(lines[..2], ["queued in 6", "rang 200"], "{lines:?}");
    assert!(lines[2].starts_with("answered by 200 after "), "{lines:?}");
    assert_eq!(lines[3], "hung up");
    d.screenshot("call_what_happened.png").await;

    // Both pages ran under the Content-Security-Policy without a violation.
    let violations = d.csp_violations().await;
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    d.call(reqwest::Method::DELETE, "", None).await;
    ts.running.stop().await;
}
