//! Hostile pushes against a real `callvault serve` child process: memory
//! per push stays a small multiple of `max_body_bytes` whatever the body's
//! shape (peak RSS read from /proc), and a push of more documents than
//! `max_documents` is refused with 413 and kept. Signed pushes: the default
//! validity window, and single-use nonces across a restart.

use std::net::SocketAddr;

use callvault::config::DeviceConfig;

use crate::util::*;

/// Peak resident memory of `pid` so far, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// The cloud platform's click-to-call CDR (seeds/004) with `n` legs.
fn cloud_cdr(n: usize) -> String {
    let legs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"callSid":"CA{i:08}","from":"01062236000","to":"13800138000","startTime":"20190814122700","stopTime":"20190814122716","duration":"14"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"conversationSid":"CV1","recordingUrl":"http://x/r.wav","cdrs":[{}]}}"#,
        legs.join(",")
    )
}

fn post(addr: SocketAddr, body: &str) -> u16 {
    let req = format!(
        "POST /push HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    status_of(&raw_exchange(addr, req.as_bytes()))
}

#[test]
fn hostile_pushes_take_bounded_memory_and_too_many_documents_are_413() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, addr) = serve_child(dir.path(), &[]);
    let pid = child.id();
    // What one push may add to the server's peak memory: a small multiple
    // of max_body_bytes (1 MiB). The 3,000-leg cloud CDR once took 1 GiB.
    // Each refused body is also written to the archive, whose SQLite page
    // cache (64 MiB a connection) grows with it, and the allocator keeps
    // what a thread freed for a while: measured 3-17 MiB a push when the
    // whole suite runs beside it, so the bound leaves room for that and
    // still fails by far on the old 1 GiB behaviour.
    const PER_PUSH: u64 = 32 << 20;
    const ALL: u64 = 128 << 20;
    // Warm up first (the first writes open the archive's connections and
    // start the stages), so that what follows measures the pushes.
    let small = cloud_cdr(3);
    for _ in 0..5 {
        assert_eq!(post(addr, &small), 200);
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let start = peak_rss(pid);
    let mut last = start;
    let mut figures = Vec::new();
    let mut check = |what: &str, body: &str, status: u16| {
        assert_eq!(post(addr, body), status, "{what}");
        let peak = peak_rss(pid);
        figures.push((what.to_string(), body.len(), peak - last));
        assert!(
            peak - last < PER_PUSH,
            "{what}: peak RSS +{} KiB",
            (peak - last) >> 10
        );
        last = peak;
    };

    check("cloud cdrs[3] (held)", &small, 200);
    let full = cloud_cdr(3_000);
    assert!(
        full.len() > 300_000 && full.len() < 1 << 20,
        "{}",
        full.len()
    );
    check("cloud cdrs[3000]", &full, 413);
    // OM: thousands of documents in one body.
    let one = cdr("1-0", "1", "13800000000");
    let om: String = (0..(1 << 20) / one.len())
        .map(|i| one.replace("\"1-0\"", &format!("\"{i}-0\"")))
        .collect();
    check("OM <Cdr> x2000", &om, 413);
    // Shapes of many values: tiny objects, one huge array, one Event with
    // a quarter of a million elements, deep nesting.
    let tiny = format!("[{}]", vec![r#"{"event":"x"}"#; 70_000].join(","));
    check("[{event}] x70000", &tiny, 413);
    let wide = format!(r#"{{"event":"x","a":[{}]}}"#, vec!["0"; 500_000].join(","));
    check("{event, a:[0 x500000]}", &wide, 413);
    let many = format!(
        r#"<Event attribute="RING">{}</Event>"#,
        "<a/>".repeat(250_000)
    );
    check("<Event> of <a/> x250000", &many, 400);
    check("[ x524288", &"[".repeat(1 << 19), 413);
    check("[ x5000", &"[".repeat(5_000), 400);

    for (what, bytes, grew) in &figures {
        eprintln!(
            "{what:<26} body {bytes:>7} B  peak RSS +{:>5.1} MiB",
            *grew as f64 / 1048576.0
        );
    }
    let peak = peak_rss(pid);
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "peak RSS {:.1} MiB, from {:.1} MiB at start",
        peak as f64 / 1048576.0,
        start as f64 / 1048576.0
    );
    assert!(peak < start + ALL, "peak RSS {} MiB", peak >> 20);
    let c = rusqlite::Connection::open(dir.path().join("callvault.sqlite")).expect("archive");
    let (status, reason, len): (u16, String, i64) = c
        .query_row(
            "SELECT status, reason, length(body) FROM pushes WHERE outcome = 'quarantined' ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the full-size push is kept");
    assert_eq!(status, 413);
    assert!(reason.contains("more than 1000 documents"), "{reason}");
    assert_eq!(len as usize, full.len(), "kept whole");
    let held: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pushes WHERE outcome = 'held'",
            [],
            |r| r.get(0),
        )
        .expect("held");
    assert_eq!(
        held, 6,
        "the small ones are kept, held (unregistered sender)"
    );
}

fn signed_busy(password: &str, nonce: &str, ts: i64) -> String {
    format!(
        "<Event attribute=\"BUSY\"><ext id=\"201\"/></Event>\n<Auth><nonce>{nonce}</nonce><timestamp>{ts}</timestamp><signature>{}</signature></Auth>",
        md5_sign(password, nonce, &ts.to_string())
    )
}

fn signing_device(single_use: bool, timeout: Option<u64>) -> DeviceConfig {
    DeviceConfig {
        name: "hq".into(),
        push_from: vec!["127.0.0.1".into()],
        server_password: Some("s3cret".into()),
        auth_timeout: timeout,
        auth_nonce_single_use: single_use,
        ..Default::default()
    }
}

fn push(ts: &TestServer, body: &str) -> u16 {
    status_of(&raw_exchange(ts.ingest(), &om_request("POST", "/", body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_expire_after_300_s_by_default() {
    let ts = start_with(|c| c.devices.push(signing_device(false, None))).await;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(push(&ts, &signed_busy("s3cret", "N1", now - 290)), 200);
    assert_eq!(push(&ts, &signed_busy("s3cret", "N2", now - 310)), 401);
    // Reuse within the window is the device's right unless single-use is set.
    assert_eq!(push(&ts, &signed_busy("s3cret", "N1", now - 290)), 200);
    ts.running.stop().await;
    // An explicit 0 still means "never expires".
    let ts = start_with(|c| c.devices.push(signing_device(false, Some(0)))).await;
    assert_eq!(
        push(&ts, &signed_busy("s3cret", "N3", now - 86_400 * 365)),
        200
    );
    ts.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_nonces_refuse_replays_across_a_restart() {
    let ts = start_with(|c| c.devices.push(signing_device(true, None))).await;
    let now = chrono::Utc::now().timestamp();
    let first = signed_busy("s3cret", "A1", now);
    assert_eq!(push(&ts, &first), 200);
    assert_eq!(push(&ts, &first), 401, "replayed");
    assert_eq!(
        push(&ts, &signed_busy("s3cret", "A2", now)),
        200,
        "a fresh nonce"
    );
    let dir = ts.dir;
    ts.running.stop().await;

    let mut cfg = test_config(dir.path());
    cfg.devices.push(signing_device(true, None));
    let running = callvault::server::start(cfg).await.expect("restart");
    let resp = raw_exchange(running.ingest_addr, &om_request("POST", "/", &first));
    assert_eq!(
        status_of(&resp),
        401,
        "still a replay after the restart: {resp}"
    );
    assert!(resp.contains("nonce already used"), "{resp}");
    running.stop().await;
    let c = open_derived(&dir.path().join("callvault.sqlite"));
    let refused: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pushes WHERE outcome = 'quarantined' AND status = 401 AND reason LIKE '%nonce already used%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(refused, 2, "both replays kept");
}
