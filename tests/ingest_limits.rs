//! The ingest listener's limits for sources that are not registered
//! devices (README "Limits"), over real sockets: unregistered clients bind
//! other loopback addresses (Linux routes all of 127/8 to `lo`), the
//! registered device pushes from 127.0.0.1.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use callvault::config::{Config, DeviceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::*;

/// The device registered at 127.0.0.1 (what `is_registered_source` knows).
fn registered(c: &mut Config) {
    c.devices.push(DeviceConfig {
        name: "hq".into(),
        push_from: vec!["127.0.0.1".into()],
        ..Default::default()
    });
}

/// A connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .expect("bind a loopback address");
    s.connect(to).await.expect("connect")
}

/// Whether the server closed `s` (what it sent before is read and dropped).
fn closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Sends `req` from `from` and reads the reply until the server closes.
async fn exchange_from(from: &str, to: SocketAddr, req: &[u8]) -> String {
    let mut s = connect_from(from, to).await;
    s.write_all(req).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads from `s` until a whole reply head (and its short body) is in.
async fn read_reply(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&out).contains("\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Soft RLIMIT_NOFILE raised to what `need` descriptors take (the hard
/// limit permitting): client and server sockets live in this one process.
fn raise_nofile(need: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < need {
            r.rlim_cur = need.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Polls until `want` of `socks` are closed by the server (or 15 s pass);
/// returns which are.
async fn wait_closed(socks: &[TcpStream], want: usize) -> Vec<bool> {
    let mut state = vec![false; socks.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (s, c) in socks.iter().zip(state.iter_mut()) {
            *c = *c || closed(s);
        }
        let n = state.iter().filter(|c| **c).count();
        if n >= want || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 2,000 idle connections from one unregistered address, then a push from
/// the registered device: answered 200 within a second, with the caps as
/// configured (`per_ip`: the per-address cap, 0 = none, so that the global
/// cap of 1,024 is what fills).
async fn idle_flood_then_registered_push(per_ip: usize) {
    const IDLE: usize = 2_000;
    raise_nofile(8 * IDLE as u64);
    let ts = start_with(|c| {
        registered(c);
        c.ingest.max_connections = 1024;
        c.ingest.max_connections_per_ip = per_ip;
        // The idle ones must outlive the test, whatever the machine's load.
        c.ingest.header_timeout_seconds = 120;
    })
    .await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect_from("127.0.0.2", ts.ingest()).await);
    }
    // Per-address cap: the first `per_ip` stay, the others are refused at
    // once. Global cap: every newcomer closes the oldest idle connection.
    let expect_open = |i: usize| {
        if per_ip > 0 {
            i < per_ip
        } else {
            i >= IDLE - 1024
        }
    };
    let want_closed = (0..IDLE).filter(|i| !expect_open(*i)).count();
    let state = wait_closed(&idle, want_closed).await;
    let wrong: Vec<usize> = (0..IDLE).filter(|i| state[*i] == expect_open(*i)).collect();
    assert!(
        wrong.is_empty(),
        "per_ip {per_ip}: connections not as expected (open/closed): {:?}…",
        &wrong[..wrong.len().min(20)]
    );

    let req = om_request("POST", "/omapi", &cdr("77-0", "7", "18201000007"));
    let started = Instant::now();
    let push = exchange_from("127.0.0.1", ts.ingest(), &req);
    let resp = tokio::time::timeout(Duration::from_secs(1), push)
        .await
        .unwrap_or_else(|_| panic!("per_ip {per_ip}: registered push not answered within 1 s"));
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE device = 'hq' AND outcome = 'stored'"),
        1
    );
    if per_ip == 0 {
        // At the cap, the registered device's connection was admitted by
        // closing the oldest idle one left.
        let first_left = IDLE - 1024;
        assert!(
            wait_closed(&idle[first_left..first_left + 1], 1).await[0],
            "the oldest idle connection made room for the registered device"
        );
        // Closed in the same step as that one, had they been.
        let others = idle[first_left + 1..].iter().filter(|s| closed(s)).count();
        assert_eq!(others, 0, "only one made room");
    }
    drop(idle);
    ts.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_per_address_cap_do_not_delay_a_registered_device() {
    idle_flood_then_registered_push(32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_global_cap_do_not_delay_a_registered_device() {
    idle_flood_then_registered_push(0).await;
}

/// At the global cap the oldest idle connections are closed to make room,
/// never one delivering a push (headers read, body still coming).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_global_cap_a_push_in_progress_stays_and_the_oldest_idle_go() {
    let ts = start_with(|c| {
        c.ingest.max_connections = 8;
        c.ingest.max_connections_per_ip = 0;
        c.ingest.header_timeout_seconds = 120;
        c.ingest.body_timeout_seconds = 60;
    })
    .await;
    let body = cdr("88-0", "8", "18201000008");
    let mut pushing = connect_from("127.0.0.7", ts.ingest()).await;
    pushing
        .write_all(
            format!(
                "POST /omapi HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // hyper answers 100 Continue when the handler starts reading the body:
    // from then on the connection is delivering a push.
    let cont = read_reply(&mut pushing).await;
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");
    let (first, rest) = body.split_at(body.len() / 2);
    pushing.write_all(first.as_bytes()).await.unwrap();

    // The oldest connection of all is the one pushing; then 12 idle ones
    // from four addresses, on a cap of 8: the 5 oldest idle make room.
    let mut idle = Vec::new();
    for i in 0..12 {
        idle.push(connect_from(&format!("127.0.0.{}", 3 + i % 4), ts.ingest()).await);
    }
    let state = wait_closed(&idle, 5).await;
    assert_eq!(
        state,
        (0..12).map(|i| i < 5).collect::<Vec<_>>(),
        "the five oldest idle connections closed, the others open"
    );
    assert!(!closed(&pushing), "the push in progress is not cut");

    // The body keeps trickling in, within the body timeout.
    for piece in rest.as_bytes().chunks(rest.len() / 3 + 1) {
        pushing.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = read_reply(&mut pushing).await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM legs WHERE cdr_id = '88-0'"),
        1
    );
    ts.running.stop().await;
}

/// An unregistered source over its push or byte rate is answered 429 with
/// a reason, and the refusal is quarantined (its body's first KiB); the
/// registered device pushing far faster is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rate_an_unregistered_source_gets_429_and_a_quarantine_row() {
    let ts = start_with(|c| {
        registered(c);
        c.ingest.unregistered_pushes_per_minute = 5;
        c.ingest.unregistered_bytes_per_minute = 4_000;
    })
    .await;
    for i in 0..5 {
        let resp = exchange_from(
            "127.0.0.2",
            ts.ingest(),
            &om_request("POST", "/", &cdr(&format!("{i}-0"), "1", "1")),
        )
        .await;
        assert_eq!(status_of(&resp), 200, "push {i}: {resp}");
    }
    let junk = format!("<Cdr id=\"9-0\">{}", "x".repeat(3000));
    let resp = exchange_from("127.0.0.2", ts.ingest(), &om_request("POST", "/", &junk)).await;
    assert_eq!(status_of(&resp), 429, "{resp}");
    assert!(
        resp.contains("rate limit: more than 5 pushes a minute from this unregistered source"),
        "{resp}"
    );
    let (status, reason, len, body): (u16, String, usize, Vec<u8>) = ts
        .db()
        .query_row(
            "SELECT status, reason, length(body), body FROM pushes
             WHERE source = '127.0.0.2' AND outcome = 'quarantined'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(status, 429);
    assert!(reason.contains("pushes a minute"), "{reason}");
    assert_eq!(len, 1024, "the body's first KiB is kept");
    assert_eq!(&body[..], &junk.as_bytes()[..1024]);

    // Bytes: 3,000 of 4,000 a minute pass, the next 3,000 do not.
    for (i, want) in [(0, 200), (1, 429)] {
        let big = format!("{}{}", cdr(&format!("3{i}-0"), "1", "1"), " ".repeat(2_500));
        let resp = exchange_from("127.0.0.3", ts.ingest(), &om_request("POST", "/", &big)).await;
        assert_eq!(status_of(&resp), want, "{resp}");
        if want == 429 {
            assert!(resp.contains("4000 bytes a minute"), "{resp}");
        }
    }
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM pushes WHERE source = '127.0.0.3' AND status = 429
             AND reason LIKE '%bytes a minute%'"
        ),
        1
    );

    // The registered device: 200 pushes in a burst, never refused.
    for i in 0..200 {
        let resp = raw_exchange(
            ts.ingest(),
            &om_request("POST", "/", &cdr(&format!("5{i}-0"), "2", "2")),
        );
        assert_eq!(status_of(&resp), 200, "registered push {i}: {resp}");
    }
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE device = 'hq' AND outcome = 'stored'"),
        200
    );
    ts.running.stop().await;
}

/// Refused junk from an unregistered source: whole until the source's
/// quarantine budget is spent, then the first KiB, and the row says so.
/// Accepted pushes and a registered device's refusals stay whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_quarantine_budget_a_source_keeps_only_the_first_kib_of_refusals() {
    let ts = start_with(|c| {
        registered(c);
        c.ingest.quarantine_bytes_per_hour = 250_000;
    })
    .await;
    let junk = format!("<Cdr id=\"1-0\">{}", "x".repeat(100_000 - 14));
    assert_eq!(junk.len(), 100_000);
    for _ in 0..5 {
        let resp = exchange_from("127.0.0.2", ts.ingest(), &om_request("POST", "/", &junk)).await;
        assert_eq!(status_of(&resp), 400, "{resp}");
    }
    let rows: Vec<(usize, String)> = {
        let db = ts.db();
        let mut st = db
            .prepare(
                "SELECT length(body), reason FROM pushes WHERE source = '127.0.0.2' ORDER BY id",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let note = "; body truncated to 1024 bytes (quarantine budget of this source exhausted)";
    let lens: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(lens, [100_000, 100_000, 1024, 1024, 1024]);
    for (i, (_, reason)) in rows.iter().enumerate() {
        assert_eq!(reason.ends_with(note), i >= 2, "row {i}: {reason}");
    }

    // An accepted push from the same source is stored whole.
    let padded = format!("{}{}", cdr("2-0", "1", "1"), " ".repeat(100_000));
    let resp = exchange_from("127.0.0.2", ts.ingest(), &om_request("POST", "/", &padded)).await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    // The registered device: its refusal and its push, both whole.
    let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &junk));
    assert_eq!(status_of(&resp), 400, "{resp}");
    let padded_hq = format!("{}{}", cdr("3-0", "1", "1"), " ".repeat(100_000));
    let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &padded_hq));
    assert_eq!(status_of(&resp), 200, "{resp}");
    let db = ts.db();
    let len_of = |sql: &str| -> usize { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        len_of("SELECT length(body) FROM pushes WHERE source = '127.0.0.2' AND outcome = 'stored'"),
        padded.len()
    );
    assert_eq!(
        len_of(
            "SELECT length(body) FROM pushes WHERE source = '127.0.0.1' AND outcome = 'quarantined'"
        ),
        junk.len()
    );
    assert_eq!(
        len_of("SELECT length(body) FROM pushes WHERE device = 'hq' AND outcome = 'stored'"),
        padded_hq.len()
    );
    ts.running.stop().await;
}

/// Half a request line, then nothing: closed after `header_timeout_seconds`.
/// The same timer closes a kept-alive connection idle after its reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_idle_keep_alive_are_closed_after_the_header_timeout() {
    let ts = start_with(|c| c.ingest.header_timeout_seconds = 1).await;
    let closes = |mut s: TcpStream| async move {
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    let mut stalled = TcpStream::connect(ts.ingest()).await.unwrap();
    stalled.write_all(b"GET /omapi HT").await.unwrap();
    assert!(
        closes(stalled).await,
        "stalled headers: still open after 15 s"
    );

    let mut kept = TcpStream::connect(ts.ingest()).await.unwrap();
    for i in 0..2 {
        let body = cdr(&format!("{i}-0"), "1", "1");
        let req = format!(
            "POST /omapi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        kept.write_all(req.as_bytes()).await.unwrap();
        let resp = read_reply(&mut kept).await;
        assert_eq!(
            status_of(&resp),
            200,
            "request {i} on the kept-alive connection: {resp}"
        );
    }
    assert!(closes(kept).await, "idle keep-alive: still open after 15 s");
    ts.running.stop().await;
}
