//! What `serve` logs, as an operator's log shipper sees it: `[log] format
//! = "json"` gives one JSON object per line from the first line on, and an
//! API listening beyond loopback without TLS is warned about.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn json_logs_carry_the_warning_about_an_api_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--data")
        .arg(dir.path())
        .arg("serve")
        .env("CALLVAULT_INGEST_LISTEN", "127.0.0.1:0")
        // Every address of this machine, port chosen by the system.
        .env("CALLVAULT_API_LISTEN", "0.0.0.0:0")
        .env("CALLVAULT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callvault serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut warned = None;
    let mut serving = false;
    while Instant::now() < deadline && (warned.is_none() || !serving) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\nbefore: {lines:#?}"));
        assert!(v["timestamp"].is_string() && v["target"].is_string(), "{v}");
        let msg = v["message"].as_str().unwrap_or_default();
        if msg.contains("without TLS") {
            assert_eq!(v["level"], "WARN", "{v}");
            assert_eq!(v["listen"], "0.0.0.0:0", "the event's fields are kept: {v}");
            warned = Some(v.clone());
        }
        serving |= msg == "callvault serving";
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned.is_some(), "no TLS warning in: {lines:#?}");
    assert!(serving, "no start line in: {lines:#?}");
}
