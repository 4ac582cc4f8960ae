//! Who may put records in the archive: pushes from senders that match no
//! device are stored raw and held (200, nothing derived, nothing fetched),
//! listed by `callvault devices` and `/healthz`; `devices add` registers a
//! sender and its held pushes are derived by the running server, as a
//! rebuild would; a registered MAC from a foreign address is refused.
//! Real sockets (sources bound to other loopback addresses), a real server
//! and the real binary for the CLI.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use callvault::config::DeviceConfig;

use crate::reports_util::callvault;
use crate::util::*;

/// Sends `body` as an OM push from source address `from`; the status.
pub fn push_from(to: SocketAddr, from: &str, body: &str) -> u16 {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let src: IpAddr = from.parse().expect("ip");
    sock.bind(&SocketAddr::new(src, 0).into())
        .expect("bind source");
    sock.connect(&to.into()).expect("connect");
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&om_request("POST", "/omapi", body))
        .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    status_of(&String::from_utf8_lossy(&out))
}

fn with_mac(cdr_xml: &str, mac: &str) -> String {
    cdr_xml.replace("</Cdr>", &format!("  <MAC>{mac}</MAC>\n</Cdr>"))
}

/// The configured device `hq` pushes from 127.0.0.1 with its MAC.
async fn server() -> TestServer {
    start_with(|c| {
        c.ingest.accept_unknown_devices = false;
        // Billable at once; recordings wait (they would be fetched from an
        // address that is not a recorder here).
        c.calls.settle_seconds = 0;
        c.recordings.fetch_delay_seconds = 3600;
        c.devices.push(DeviceConfig {
            name: "hq".into(),
            mac: Some("00:0E:A9:00:00:01".into()),
            push_from: vec!["127.0.0.1".into()],
            ..Default::default()
        });
    })
    .await
}

async fn healthz_unregistered(ts: &TestServer) -> i64 {
    let (code, body) = get(ts.api(), "/healthz", None).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["unregistered_senders"].as_i64().expect("field")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_sender_is_held_until_devices_add_derives_it() {
    let ts = server().await;
    let data = ts.dir.path().to_path_buf();
    // The branch office's PBX, not configured: three calls with recordings.
    for i in 0..3 {
        let body = cdr(&format!("{i}-0"), &format!("{}", 100 + i), "13800000000");
        assert_eq!(push_from(ts.ingest(), "127.0.0.2", &body), 200);
    }
    // A push naming a MAC no device has, from hq's own address (a second
    // PBX behind the same NAT): unregistered too.
    let stranger = with_mac(&cdr("9-0", "900", "13900000000"), "00-0e-a9-00-00-99");
    assert_eq!(push_from(ts.ingest(), "127.0.0.1", &stranger), 200);
    ts.derived();
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE outcome = 'held' AND device IS NULL"),
        4
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 0, "nothing derived");
    assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 0, "nothing billed");
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM recordings"),
        0,
        "nothing fetched"
    );
    assert_eq!(healthz_unregistered(&ts).await, 2);

    // (The CLI reads the archive; hq is in the test server's config only.)
    let list = callvault(&data, &["devices", "list", "--json"]);
    assert!(list.status.success(), "{list:?}");
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let kinds: Vec<(String, String, i64)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_string(),
                r["address"].as_str().unwrap_or("").to_string(),
                r["pushes"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("unregistered".into(), "127.0.0.2".into(), 3)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("unregistered".into(), "127.0.0.1".into(), 1)),
        "{kinds:?}"
    );

    // Registered from another process while the server runs: derived
    // without a restart and without the device pushing again.
    let add = callvault(
        &data,
        &["devices", "add", "--name", "branch", "--ip", "127.0.0.2"],
    );
    assert!(add.status.success(), "{add:?}");
    assert!(
        String::from_utf8_lossy(&add.stdout).contains("3 held pushes"),
        "{add:?}"
    );
    assert!(
        eventually(20, || ts
            .count("SELECT COUNT(*) FROM legs WHERE device = 'branch'")
            == 3)
        .await,
        "held pushes derived after devices add"
    );
    ts.derived();
    assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 3);
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM recordings WHERE device = 'branch'"),
        3,
        "its recordings are fetched now"
    );
    assert_eq!(
        healthz_unregistered(&ts).await,
        1,
        "the NAT stranger is still held"
    );
    // Billed: the billing export has its calls.
    let tok = token(&ts, "finance").await;
    let (code, csv) = get(
        ts.api(),
        "/export/billing.csv?from=2017-03-09&to=2017-03-09",
        Some(&tok),
    )
    .await;
    assert_eq!(code, 200);
    let csv = String::from_utf8_lossy(&csv);
    assert_eq!(csv.matches("13800000000").count(), 3, "{csv}");
    assert!(
        !csv.contains("13900000000"),
        "the held call is not billed: {csv}"
    );

    // Its next push is derived at once; after `devices remove` pushes are
    // held again and what was derived stays.
    assert_eq!(
        push_from(ts.ingest(), "127.0.0.2", &cdr("3-0", "103", "13800000000")),
        200
    );
    ts.derived();
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM legs WHERE device = 'branch'"),
        4
    );
    let rm = callvault(&data, &["devices", "remove", "branch"]);
    assert!(rm.status.success(), "{rm:?}");
    assert!(
        eventually(20, || {
            push_from(
                ts.ingest(),
                "127.0.0.2",
                &cdr(&format!("r{}", rand_id()), "104", "1"),
            ) == 200
                && ts.count(
                    "SELECT COUNT(*) FROM pushes WHERE outcome = 'held' AND source = '127.0.0.2'",
                ) > 0
        })
        .await,
        "pushes held again after devices remove"
    );
    // (Pushes in the second before the server noticed were still derived.)
    ts.derived();
    let kept = ts.count("SELECT COUNT(*) FROM legs WHERE device = 'branch'");
    assert!(kept >= 4, "what was derived stays");
    assert_eq!(
        push_from(ts.ingest(), "127.0.0.2", &cdr("last-0", "105", "1")),
        200
    );
    ts.derived();
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM legs WHERE device = 'branch'"),
        kept
    );
    let calls_live = rows_as_text(&ts.db(), "SELECT * FROM calls ORDER BY id");
    ts.running.stop().await;

    // rebuild makes the same calls from what was derived.
    let rebuild = callvault(&data, &["rebuild"]);
    assert!(rebuild.status.success(), "{rebuild:?}");
    let c = open_derived(&data.join("callvault.sqlite"));
    assert_eq!(
        rows_as_text(&c, "SELECT * FROM calls ORDER BY id"),
        calls_live
    );
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_mac_from_a_foreign_address_is_refused() {
    let ts = server().await;
    let spoof = with_mac(&cdr("1-0", "1", "1"), "00:0E:A9:00:00:01");
    assert_eq!(push_from(ts.ingest(), "127.0.0.3", &spoof), 403);
    // From its own address, the same MAC is hq.
    assert_eq!(push_from(ts.ingest(), "127.0.0.1", &spoof), 200);
    ts.derived();
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE outcome = 'quarantined' AND status = 403 AND source = '127.0.0.3'"),
        1
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM legs WHERE device = 'hq'"), 1);
    ts.running.stop().await;
}

/// Held pushes are derived in push order, also across a restart: a
/// device registered while the server is stopped gets its pushes derived
/// by the next start (the registry is checked against the archive first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_registered_while_stopped_are_derived_at_start() {
    let ts = server().await;
    let data = ts.dir.path().to_path_buf();
    for i in 0..2 {
        assert_eq!(
            push_from(ts.ingest(), "127.0.0.4", &cdr(&format!("{i}-0"), "5", "1")),
            200
        );
    }
    ts.running.stop().await;
    let add = callvault(
        &data,
        &["devices", "add", "--name", "annex", "--ip", "127.0.0.4"],
    );
    assert!(add.status.success(), "{add:?}");
    let mut cfg = test_config(&data);
    cfg.ingest.accept_unknown_devices = false;
    let running = callvault::server::start(cfg).await.expect("restart");
    let db = data.join("callvault.sqlite");
    let legs = || -> i64 {
        open_derived(&db)
            .query_row(
                "SELECT COUNT(*) FROM legs WHERE device = 'annex'",
                [],
                |r| r.get(0),
            )
            .expect("legs")
    };
    assert!(eventually(20, || legs() == 2).await, "derived at start");
    running.stop().await;
}
