//! `callvault demo` as a newcomer runs it: the real binary, real sockets, a
//! real archive directory. It must print a working web address and token,
//! ingest yesterday's simulated day, fetch its recordings from the simulated
//! recorder, and stop cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::get_json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_calls_and_recordings_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["--data", data.to_str().expect("utf-8 path"), "demo"])
        .args(["--listen", "127.0.0.1:0", "--ingest", "127.0.0.1:0"])
        .args([
            "--backfill-calls",
            "30",
            "--calls-per-hour",
            "3600",
            "--speed",
            "50",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    for l in out.lines() {
        let l = l.expect("line");
        let last = l.starts_with("cv_");
        lines.push(l);
        if last {
            break;
        }
    }
    let web = lines
        .iter()
        .find(|l| l.contains("web page:"))
        .expect("web line");
    let url = web.split_whitespace().last().expect("url").to_string();
    let (base, tok_in_url) = url.split_once("/#token=").expect("token in the link");
    let token = lines.last().expect("token line").clone();
    assert_eq!(tok_in_url, token, "the link carries the printed token");

    let http = reqwest::Client::new();
    let yesterday = (chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();
    let page = http.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    // Yesterday's day is pushed at start; its calls appear and their recordings get fetched.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (calls, done) = loop {
        let body = http
            .get(format!(
                "{base}/api/calls?from={yesterday}&to={yesterday}&limit=1000"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("calls")
            .bytes()
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        let calls = v["calls"].as_array().map(Vec::len).unwrap_or(0);
        let st = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args([
                "--data",
                data.to_str().unwrap_or_default(),
                "recordings",
                "status",
            ])
            .output()
            .expect("status");
        let text = String::from_utf8_lossy(&st.stdout).to_string();
        let done = text
            .lines()
            .find(|l| l.starts_with("done"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        if (calls == 30 && done > 0) || Instant::now() > deadline {
            break (calls, done);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(calls, 30, "yesterday's 30 calls are in the archive");
    assert!(
        done > 0,
        "recordings were fetched from the simulated recorder"
    );

    // Yesterday's pushes kept their timing: the daily report of that day
    // has its queue visits, with waits of seconds (not the milliseconds of
    // a day pushed at once).
    let body = http
        .get(format!("{base}/reports/daily?date={yesterday}&format=json"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("report")
        .bytes()
        .await
        .expect("report body");
    let report: Value = serde_json::from_slice(&body).expect("report json");
    let queues = report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == "queues")
        .expect("queues section");
    let rows = queues["rows"].as_array().expect("rows");
    let entered: i64 = rows.iter().filter_map(|r| r["entered"].as_i64()).sum();
    let longest = rows
        .iter()
        .filter_map(|r| r["max_wait_seconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        entered > 0,
        "queued calls on the demo's first day: {queues}"
    );
    assert!(longest >= 1.0, "waits of seconds: {queues}");

    // The demo's G.729 calls say espeak-ng dialogues: once fetched, a call
    // has conversation figures with speech on both sides (the QA view's
    // timeline).
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("the demo's address");
    let deadline = Instant::now() + Duration::from_secs(60);
    let conversation = loop {
        let v = get_json(
            addr,
            &format!("/api/calls?from={yesterday}&to={yesterday}&talk_ratio_min=0&limit=1"),
            &token,
        )
        .await;
        if let Some(id) = v["calls"][0]["id"].as_str() {
            let d = get_json(addr, &format!("/api/calls/{id}"), &token).await;
            break d["conversation"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no demo call got conversation figures: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let sides: Vec<&str> = conversation["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter_map(|s| s["side"].as_str())
        .collect();
    assert!(
        sides.contains(&"agent") && sides.contains(&"customer"),
        "{conversation}"
    );
    assert!(
        conversation["agent_talk_seconds"].as_f64() > Some(0.5),
        "{conversation}"
    );

    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "demo exits 0 on SIGTERM, got {st}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
