//! Serving archived recordings: by id and by call (primary recording),
//! Range requests, 409 while not fetched, sha256 check, and the CLI tools.

use callvault::sim::recorder::{self, Faults};

use crate::recordings_fetch::{cdr_with, spec, Rig};
use crate::util::*;

pub async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token);
    if let Some(r) = range {
        rb = rb.header("Range", r);
    }
    rb.send().await.expect("request")
}

fn rec_id(rig: &Rig, cdr_id: &str) -> i64 {
    rig.db()
        .query_row(
            "SELECT r.id FROM recordings r JOIN legs l ON l.id = r.leg_id WHERE l.cdr_id = ?1",
            [cdr_id],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_by_id_serves_ranges_and_checks_sha256() {
    let rec = recorder::start(vec![spec("2001", "PCMU", 2)], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    rig.push(&cdr_with("1-0", "2001", "PCMU"));
    rig.wait_status("1-0", "done").await;
    let id = rec_id(&rig, "1-0");
    let file = rig.archive_file(&rig.row("1-0").unwrap().3.unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let api = rig.running.api_addr;
    let tok = crate::util::token_on(&rig.running, "qa").await;

    let r = get_with(api, &format!("/api/recordings/{id}"), &tok, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(
        r.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    let r = get_with(
        api,
        &format!("/api/recordings/{id}"),
        &tok,
        Some("bytes=100-199"),
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes[100..200].to_vec());

    let r = get_with(
        api,
        &format!("/api/recordings/{id}"),
        &tok,
        Some("bytes=-10"),
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        bytes[bytes.len() - 10..].to_vec()
    );

    let r = get_with(
        api,
        &format!("/api/recordings/{id}"),
        &tok,
        Some(&format!("bytes={}-", bytes.len())),
    )
    .await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );

    let (code, body) = get(api, "/api/recordings/99999", Some(&tok)).await;
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&body).contains("\"error\""));
    let (code, _) = get(api, &format!("/api/recordings/{id}"), None).await;
    assert_eq!(code, 401);
    let fin = crate::util::token_on(&rig.running, "finance").await;
    let (code, _) = get(api, &format!("/api/recordings/{id}"), Some(&fin)).await;
    assert_eq!(code, 403);

    // A file changed on disk after archiving is refused.
    let mut changed = bytes.clone();
    changed.push(0);
    std::fs::write(&file, changed).unwrap();
    let (code, body) = get(api, &format!("/api/recordings/{id}"), Some(&tok)).await;
    assert_eq!(code, 500);
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"{"error":"internal error"}"#
    );
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_recording_answers_409_with_its_status() {
    let rec = recorder::start(vec![spec("2002", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |c| c.recordings.fetch_delay_seconds = 3600).await;
    rig.push(&cdr_with("2-0", "2002", "PCMU"));
    assert_eq!(rig.status("2-0"), "pending");
    let tok = crate::util::token_on(&rig.running, "qa").await;
    let (code, body) = get(
        rig.running.api_addr,
        &format!("/api/recordings/{}", rec_id(&rig, "2-0")),
        Some(&tok),
    )
    .await;
    assert_eq!(code, 409);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "pending");
    assert!(v["error"].as_str().unwrap().contains("pending"));
    assert_eq!(
        rec.requests(&crate::recordings_fetch::rec_path("2002")),
        0,
        "not fetched before the delay"
    );
    rig.running.stop().await;
    rec.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_recording_is_the_answering_extensions_leg() {
    let specs = vec![spec("2003", "PCMU", 3), spec("2004", "PCMU", 1)];
    let rec = recorder::start(specs, Faults::default()).await.unwrap();
    let rig = Rig::start(&rec, |_| {}).await;
    // Two legs of one call: the longer one (trunk leg, CDPN 888) and the answering extension 200.
    rig.push(
        &cdr_with("3-0", "2003", "PCMU")
            .replace("<CDPN>200</CDPN>", "<CDPN>888</CDPN>")
            .replace("<Duration>2</Duration>", "<Duration>9</Duration>"),
    );
    rig.push(&cdr_with("4-0", "2004", "PCMU"));
    rig.wait_status("3-0", "done").await;
    rig.wait_status("4-0", "done").await;
    // The live calls stage merged both legs (same visitor id, same time) into one call.
    let db = rig.db();
    let (call, answered_by): (String, Option<String>) = db
        .query_row(
            "SELECT c.id, c.answered_by FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
             JOIN legs l ON l.id = cl.leg_id WHERE l.cdr_id = '4-0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(answered_by.as_deref(), Some("200"));
    let n: i64 = db
        .query_row("SELECT COUNT(DISTINCT call_seq) FROM call_legs", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1, "one logical call");
    let tok = crate::util::token_on(&rig.running, "qa").await;
    let want = std::fs::read(rig.archive_file(&rig.row("4-0").unwrap().3.unwrap())).unwrap();
    let r = get_with(
        rig.running.api_addr,
        &format!("/api/calls/{call}/recording"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        want,
        "the answering extension's leg, not the longest"
    );
    // An alias id of the call resolves too; without answered_by the longest leg wins.
    db.execute("UPDATE calls SET answered_by = NULL", [])
        .unwrap();
    let longest = std::fs::read(rig.archive_file(&rig.row("3-0").unwrap().3.unwrap())).unwrap();
    let alias: String = db
        .query_row(
            "SELECT MAX(cl.leg_call_id) FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq WHERE cl.leg_call_id <> c.id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let r = get_with(
        rig.running.api_addr,
        &format!("/api/calls/{alias}/recording"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), longest);
    let (code, _) = get(
        rig.running.api_addr,
        "/api/calls/nope/recording",
        Some(&tok),
    )
    .await;
    assert_eq!(code, 404);
    rig.running.stop().await;
    rec.stop().await;
}

fn callvault_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(args)
        .output()
        .expect("run callvault")
}

#[cfg(feature = "g729")]
#[test]
fn merge_g729_cli_writes_wav_and_fails_clearly() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/g729");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wav");
    let (send, recv) = (data.join("agent.dat"), data.join("customer.dat"));
    let o = callvault_cmd(&[
        "merge-g729",
        send.to_str().unwrap(),
        recv.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--layout",
        "stereo",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(hound::WavReader::open(&out).unwrap().spec().channels, 2);
    let garbage = dir.path().join("g.dat");
    std::fs::write(&garbage, b"<html><body>Not Found</body></html>").unwrap();
    let o = callvault_cmd(&[
        "merge-g729",
        garbage.to_str().unwrap(),
        recv.to_str().unwrap(),
        "-o",
        dir.path().join("x.wav").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("send half"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.path().join("x.wav").exists());
    let o = callvault_cmd(&[
        "merge-g729",
        "/nonexistent/a.dat",
        recv.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_cli_status_and_fetch() {
    let rec = recorder::start(vec![spec("2005", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    let rig = Rig::start(&rec, |c| c.recordings.fetch_delay_seconds = 3600).await;
    rig.push(&cdr_with("5-0", "2005", "PCMU"));
    rig.running.stop().await;
    let data = rig.dir.path().to_str().unwrap().to_string();
    let cfg_path = rig.dir.path().join("c.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[[device]]\nname = \"hq\"\nrecorder_url = \"{}\"\n",
            rec.base_url()
        ),
    )
    .unwrap();
    let cfg = cfg_path.to_str().unwrap();
    let o = tokio::task::spawn_blocking({
        let (d, c) = (data.clone(), cfg.to_string());
        move || callvault_cmd(&["recordings", "fetch", "--data", &d, "--config", &c])
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("attempted 0"),
        "delay respected without --now"
    );
    let o = tokio::task::spawn_blocking({
        let (d, c) = (data.clone(), cfg.to_string());
        move || callvault_cmd(&["recordings", "fetch", "--now", "--data", &d, "--config", &c])
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 done"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = callvault_cmd(&["recordings", "status", "--data", &data]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["done", "1"]),
        "{out}"
    );
    rec.stop().await;
}
