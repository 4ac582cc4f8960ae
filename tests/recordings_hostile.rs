//! The fetcher against recorders that misbehave on purpose (README "Fetcher
//! limits"): redirects that point elsewhere, bodies without end, answers
//! that trickle, a disk below its floor, and one device's backlog that must
//! not starve another device. Real servers on loopback, real archives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use callvault::config::DeviceConfig;
use callvault::server;
use callvault::sim::recorder::{self, Faults};

use crate::recordings_fetch::{all_files, cdr_with, rec_config_at, rec_path, spec, Rig};
use crate::util::*;

/// Serves `app` on a loopback port for the rest of the test.
async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/mcc/Recorder/")
}

/// Files under the data directory other than the archive database itself.
fn stray_files(data_dir: &Path) -> Vec<PathBuf> {
    all_files(data_dir)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("callvault.sqlite"))
        })
        .collect()
}

/// A server answering every request with `answer`, counting requests.
async fn counting_server(answer: fn() -> Response) -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            answer()
        }
    });
    (serve(app).await, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_refused_and_never_followed() {
    let s = spec("3001", "PCMU", 1);
    let wav = || {
        let files = recorder::files_for(&spec("3001", "PCMU", 1), &Faults::default());
        ([(header::CONTENT_TYPE, "audio/wav")], files[0].1.clone()).into_response()
    };
    let (target, target_hits) = counting_server(wav).await;
    let location = format!("{}{}", base_url(target), s.path);
    let app = Router::new().fallback(move || {
        let location = location.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, location)]).into_response() }
    });
    let redirector = serve(app).await;
    let rig = Rig::start_at(&base_url(redirector), |c| c.recordings.max_attempts = 1).await;
    rig.push(&cdr_with("1-0", "3001", "PCMU"));
    rig.wait_status("1-0", "failed").await;
    let (_, attempts, err, file, _) = rig.row("1-0").unwrap();
    let err = err.unwrap();
    assert_eq!((attempts, file), (1, None));
    assert!(
        err.contains("redirect refused") && err.contains("302"),
        "{err}"
    );
    assert!(
        err.contains(&target.to_string()),
        "names the Location: {err}"
    );
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect target got no request"
    );
    assert!(stray_files(rig.dir.path()).is_empty());
    rig.running.stop().await;
}

/// 8 KiB chunks for ever, or until the client goes away.
fn endless() -> Response {
    let chunk = Bytes::from(vec![0x55u8; 8192]);
    let body = Body::from_stream(futures_util::stream::repeat_with(move || {
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    ([(header::CONTENT_TYPE, "audio/wav")], body).into_response()
}

/// 100 KiB, announced in Content-Length.
fn announced_100k() -> Response {
    (
        [(header::CONTENT_TYPE, "audio/wav")],
        vec![0x55u8; 100 << 10],
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_beyond_max_bytes_is_cut_off_and_leaves_nothing() {
    for (case, answer) in [
        ("endless", endless as fn() -> Response),
        ("announced", announced_100k),
    ] {
        let (addr, hits) = counting_server(answer).await;
        let rig = Rig::start_at(&base_url(addr), |c| c.recordings.max_bytes = 64 << 10).await;
        rig.push(&cdr_with("1-0", "3002", "PCMU"));
        rig.wait_status("1-0", "failed").await;
        let (_, attempts, err, file, _) = rig.row("1-0").unwrap();
        let err = err.unwrap();
        assert!(
            err.contains("max_bytes") && err.contains("65536"),
            "{case}: {err}"
        );
        assert_eq!(
            (attempts, file),
            (1, None),
            "{case}: too large is not retried"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{case}");
        assert_eq!(
            stray_files(rig.dir.path()),
            Vec::<PathBuf>::new(),
            "{case}: no partial file"
        );
        rig.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_recorder_fails_at_the_download_deadline() {
    // One byte every 100 ms: never idle long enough for a read timeout.
    let trickle = || {
        let body = Body::from_stream(futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"R")), ()))
        }));
        ([(header::CONTENT_TYPE, "audio/wav")], body).into_response()
    };
    let (addr, _) = counting_server(trickle).await;
    let rig = Rig::start_at(&base_url(addr), |c| {
        c.recordings.download_timeout_seconds = 1;
        c.recordings.max_attempts = 1;
    })
    .await;
    rig.push(&cdr_with("1-0", "3003", "PCMU"));
    rig.wait_status("1-0", "failed").await;
    let err = rig.row("1-0").unwrap().2.unwrap();
    assert!(
        err.contains("download_timeout_seconds") && err.contains("after 1 s"),
        "{err}"
    );
    assert_eq!(stray_files(rig.dir.path()), Vec::<PathBuf>::new());
    rig.running.stop().await;
}

async fn healthz(api: SocketAddr) -> serde_json::Value {
    let (code, body) = get(api, "/healthz", None).await;
    assert_eq!(code, 200);
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_disk_floor_fetching_pauses_and_ingest_goes_on() {
    let rec = recorder::start(vec![spec("3004", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    // A floor no temp dir has: real statvfs, real floor.
    let rig = Rig::start(&rec, |c| c.recordings.min_free_bytes = u64::MAX / 2).await;
    rig.push(&cdr_with("1-0", "3004", "PCMU"));
    assert_eq!(rig.status("1-0"), "pending", "the push was stored");
    let api = rig.running.api_addr;
    let mut paused = serde_json::Value::Null;
    for _ in 0..100 {
        paused = healthz(api).await["recordings_paused"].clone();
        if !paused.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = paused.as_str().expect("recordings_paused is the reason");
    assert!(reason.contains("min_free_bytes"), "{reason}");
    // Several of the fetcher's checks later, still nothing was tried.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, attempts, _, _, _) = rig.row("1-0").unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    assert_eq!(
        rec.requests(&rec_path("3004")),
        0,
        "no request reached the recorder"
    );
    assert_eq!(healthz(api).await["status"], "ok", "ingest is not affected");
    // Another push is still answered 200 and stored.
    rig.push(&cdr_with("2-0", "3004", "PCMU"));
    assert_eq!(rig.status("2-0"), "pending");

    // Restarted with the floor off, the same archive fetches.
    rig.running.stop().await;
    let cfg = rec_config_at(rig.dir.path(), &rec.base_url());
    let rig = Rig {
        running: server::start(cfg).await.expect("restart"),
        dir: rig.dir,
        pg: None,
    };
    rig.wait_status("1-0", "done").await;
    assert!(healthz(rig.running.api_addr).await["recordings_paused"].is_null());
    rig.running.stop().await;
    rec.stop().await;
}

const BRANCH_MAC: &str = "00:0E:A9:00:00:42";

/// The CDR of leg `i` of the busy device: its own call (callid, visitor)
/// and recording.
fn busy_cdr(i: usize) -> String {
    cdr(
        &format!("{i}-0"),
        &format!("{}", 1000 + i),
        &format!("{}", 100_000 + i),
    )
    .replace(
        "<callid>32818</callid>",
        &format!("<callid>{}</callid>", 40_000 + i),
    )
    .replace("<RecCodec>G729</RecCodec>", "<RecCodec>PCMU</RecCodec>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_devices_backlog_does_not_starve_another() {
    const BACKLOG: usize = 5000;
    let specs = (0..BACKLOG)
        .map(|i| spec(&format!("{}", 100_000 + i), "PCMU", 1))
        .collect();
    // The busy device answers slowly: its backlog lasts minutes.
    let busy = recorder::start(
        specs,
        Faults {
            delay: Some(Duration::from_millis(200)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let branch = recorder::start(vec![spec("9999", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&busy, |c| {
        c.devices.push(DeviceConfig {
            name: "branch".into(),
            mac: Some(BRANCH_MAC.into()),
            push_from: vec!["127.0.0.1".into()],
            recorder_url: Some(branch.base_url()),
            ..Default::default()
        });
    })
    .await;
    let ingest = rig.running.ingest_addr;
    let pushed = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        for i in 0..BACKLOG {
            let resp = raw_exchange(ingest, &om_request("POST", "/", &busy_cdr(i)));
            assert_eq!(status_of(&resp), 200, "{resp}");
        }
    })
    .await
    .unwrap();
    eprintln!("{BACKLOG} pushes answered in {:?}", pushed.elapsed());
    let db = rusqlite::Connection::open(rig.dir.path().join("callvault.sqlite")).unwrap();
    let derived = eventually(120, || {
        callvault::store::pushes::derive_backlog(&callvault::store::Tx::on_sqlite(&db)).unwrap()
            == 0
    })
    .await;
    assert!(derived, "the pushes were not derived in 120 s");
    eprintln!("{BACKLOG} pushes derived in {:?}", pushed.elapsed());
    // Due after every job of the busy device.
    let body = cdr_with("b-0", "9999", "PCMU").replace(
        "<Cdr id=\"b-0\">",
        &format!("<Cdr id=\"b-0\">\n  <MAC>{BRANCH_MAC}</MAC>"),
    );
    rig.push(&body);
    let count = |sql: &str| -> i64 { rig.db().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM recordings WHERE device = 'branch'"),
        1
    );
    let ok = eventually(30, || rig.status("b-0") == "done").await;
    let left = count("SELECT COUNT(*) FROM recordings WHERE device = 'hq' AND status = 'pending'");
    eprintln!("branch recording done while hq still had {left} pending");
    assert!(ok, "branch recording is {:?}", rig.row("b-0"));
    assert!(
        left >= (BACKLOG / 2) as i64,
        "done while the busy device still has thousands pending ({left})"
    );
    rig.running.stop().await;
    busy.stop().await;
    branch.stop().await;
}
