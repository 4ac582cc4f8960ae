//! The audit log over real sockets, on SQLite and (with `CALLVAULT_TEST_PG`)
//! PostgreSQL (docs/operations.md "Audit log"): a play in many Range
//! requests is one row, exports and views are rows, refusals collapse per
//! address and minute, `GET /api/audit` filters and pages for admins only,
//! no API path changes a row, and the commands record their exports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault::config::Config;
use callvault::server::{self, Running};
use callvault::sim::recorder::{self, Faults};
use callvault::store::audit::{self as audit_rows, Entry};
use callvault::store::testing::TestDb;
use serde_json::Value;

use crate::recordings_fetch::{cdr_with, rec_config_at, spec};
use crate::util::*;

/// SQLite, then PostgreSQL when `CALLVAULT_TEST_PG` is set: the database
/// to point `[store] url` at (`None` for the SQLite file).
fn backends(test: &str) -> Vec<(&'static str, Option<TestDb>)> {
    let mut out = vec![("sqlite", None)];
    if let Some(db) = TestDb::fresh(test) {
        out.push(("postgres", Some(db)));
    }
    out
}

fn on_backend(cfg: &mut Config, db: &Option<TestDb>) {
    if let Some(db) = db {
        cfg.store.url = db.url().to_string();
    }
}

/// A token of `role` named `name` (the actor its rows carry).
async fn named_token(running: &Running, name: &str, role: &str) -> String {
    let (name, role) = (name.to_string(), role.to_string());
    running
        .store
        .writer
        .write(move |tx| callvault::store::tokens::create(tx, &name, &role))
        .await
        .expect("token")
}

async fn get_ranged(api: SocketAddr, path: &str, token: &str, range: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(format!("http://{api}{path}"))
        .bearer_auth(token)
        .header("Range", range)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    r.bytes().await.expect("body");
    status
}

/// Every entry of `GET /api/audit?{query}`, following the cursor.
async fn audit(api: SocketAddr, admin: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_q = match &cursor {
            Some(c) => format!("/api/audit?{query}&cursor={c}"),
            None => format!("/api/audit?{query}"),
        };
        let v = get_json(api, &page_q, admin).await;
        out.extend(v["entries"].as_array().expect("entries").iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// The entries of `query` once `done` holds for them (rows are written
/// after the answer, off the request's path), within 20 s.
async fn audit_when(
    api: SocketAddr,
    admin: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = audit(api, admin, query).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "audit rows of {query} not as expected in 20 s: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one call of 2017-03-09 and its first recording's id, once fetched.
async fn fetched_recording(api: SocketAddr, admin: &str) -> (String, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = get_json(api, "/api/calls?from=2017-03-09", admin).await;
        if let Some(id) = calls["calls"][0]["id"].as_str() {
            let d = get_json(api, &format!("/api/calls/{id}"), admin).await;
            if d["recordings"][0]["status"] == "done" {
                return (id.to_string(), d["recordings"][0]["id"].as_i64().unwrap());
            }
        }
        assert!(Instant::now() < deadline, "no fetched recording in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_views_exports_and_refusals_are_audited_on_both_backends() {
    for (backend, db) in backends("plays_views_exports_and_refusals_are_audited") {
        let rec = recorder::start(vec![spec("2101", "PCMU", 2)], Faults::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = rec_config_at(dir.path(), &rec.base_url());
        on_backend(&mut cfg, &db);
        let running = server::start(cfg).await.expect("server starts");
        let api = running.api_addr;
        let resp = raw_exchange(
            running.ingest_addr,
            &om_request("POST", "/", &cdr_with("1-0", "2101", "PCMU")),
        );
        assert_eq!(status_of(&resp), 200, "{resp}");
        let admin = named_token(&running, "root-desk", "admin").await;
        let (call, rec_id) = fetched_recording(api, &admin).await;

        // A QA listener plays the recording: the player asks in pieces,
        // by id and through its call.
        let qa = named_token(&running, "qa-desk", "qa").await;
        let by_id = format!("/api/recordings/{rec_id}");
        for range in ["bytes=0-99", "bytes=100-199", "bytes=200-", "bytes=0-"] {
            assert_eq!(get_ranged(api, &by_id, &qa, range).await, 206, "{backend}");
        }
        let by_call = format!("/api/calls/{call}/recording");
        assert_eq!(get_ranged(api, &by_call, &qa, "bytes=50-").await, 206);
        let (code, _) = get(api, &format!("/api/calls/{call}"), Some(&qa)).await;
        assert_eq!(code, 200);

        // Finance: a recording is refused; a billing export and the daily report are not.
        let fin = named_token(&running, "fin-desk", "finance").await;
        let (code, _) = get(api, &by_id, Some(&fin)).await;
        assert_eq!(code, 403);
        let (code, body) = get(
            api,
            "/export/billing.csv?from=2017-03-09&to=2017-03-09",
            Some(&fin),
        )
        .await;
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let (code, _) = get(api, "/export/billing.csv?from=March", Some(&fin)).await;
        assert_eq!(code, 400);
        let (code, _) = get(
            api,
            "/reports/daily?date=2017-03-09&format=json",
            Some(&fin),
        )
        .await;
        assert_eq!(code, 200);

        // Fifty requests with a token that is none of ours.
        for _ in 0..50 {
            let (code, _) = get(api, "/api/calls", Some("cv_not_a_token")).await;
            assert_eq!(code, 401);
        }

        let qa_rows = audit_when(api, &admin, "actor=qa-desk", |r| r.len() >= 2).await;
        // Let a late duplicate show, if the dedup were broken.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let plays = audit(api, &admin, "actor=qa-desk&action=recording.play").await;
        assert_eq!(plays.len(), 1, "{backend}: one play: {qa_rows:#?}");
        let p = &plays[0];
        assert_eq!(p["target"], format!("recording {rec_id}"));
        assert_eq!(p["status"], 200);
        assert_eq!(p["role"], "qa");
        assert_eq!(p["ip"], "127.0.0.1");
        assert_eq!(p["count"], 1);
        assert!(p["detail"].as_str().unwrap().contains("1-0"), "{p}");
        let views = audit(api, &admin, "actor=qa-desk&action=call.view").await;
        assert_eq!(views.len(), 1);
        assert_eq!(views[0]["target"], format!("call {call}"));
        assert_eq!(
            audit(api, &admin, "actor=qa-desk").await.len(),
            2,
            "nothing else recorded of the QA listener"
        );

        let fin_rows = audit_when(api, &admin, "actor=fin-desk", |r| r.len() >= 4).await;
        let of = |action: &str| -> Vec<&Value> {
            fin_rows.iter().filter(|r| r["action"] == action).collect()
        };
        let refused = of("auth.refused");
        assert_eq!(refused.len(), 1, "{fin_rows:#?}");
        assert_eq!(refused[0]["status"], 403);
        assert_eq!(refused[0]["target"], format!("GET {by_id}"));
        assert_eq!(refused[0]["role"], "finance");
        let exports = of("billing.export");
        assert_eq!(exports.len(), 2, "{fin_rows:#?}");
        // Newest first: the refused range, then the export.
        assert_eq!(exports[0]["status"], 400);
        assert_eq!(exports[1]["status"], 200);
        assert_eq!(exports[1]["target"], "billing.csv 2017-03-09..2017-03-09");
        assert!(
            exports[1]["detail"].as_str().unwrap().ends_with(" rows"),
            "{fin_rows:#?}"
        );
        let daily = of("report.daily");
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0]["target"], "daily 2017-03-09 json");
        assert_eq!(daily[0]["status"], 200);

        // The fifty bad tokens: one row a minute, counting all of them.
        let anon = |rows: &[Value]| -> Vec<Value> {
            rows.iter()
                .filter(|r| r["actor"].is_null() && r["status"] == 401)
                .cloned()
                .collect()
        };
        let bad = audit_when(api, &admin, "action=auth.refused", |r| {
            anon(r)
                .iter()
                .map(|r| r["count"].as_i64().unwrap())
                .sum::<i64>()
                >= 50
        })
        .await;
        let bad = anon(&bad);
        assert!(bad.len() <= 2, "{backend}: {bad:#?}");
        assert_eq!(
            bad.iter()
                .map(|r| r["count"].as_i64().unwrap())
                .sum::<i64>(),
            50
        );
        assert_eq!(bad[0]["ip"], "127.0.0.1");
        assert_eq!(bad[0]["target"], "GET /api/calls");
        running.stop().await;
        rec.stop().await;
    }
}

fn entry(time: &str, actor: &str, action: &str) -> Entry {
    Entry {
        time_ms: chrono::DateTime::parse_from_rfc3339(time)
            .unwrap()
            .timestamp_millis(),
        actor: Some(actor.into()),
        role: Some("qa".into()),
        ip: Some("192.0.2.9".into()),
        action: action.into(),
        target: "recording 1".into(),
        status: 200,
        count: 1,
        detail: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_api_filters_pages_is_for_admins_and_changes_nothing() {
    for (backend, db) in backends("audit_api_filters_pages_is_for_admins") {
        let running = start_with(|c| on_backend(c, &db)).await;
        let api = running.running.api_addr;
        let rows = [
            entry("2024-01-07T15:00:00Z", "ann", "call.view"),
            entry("2024-01-07T16:30:00Z", "bob", "call.view"),
            entry("2024-01-08T09:00:00Z", "ann", "recording.play"),
            entry("2024-01-08T15:59:00Z", "ann", "call.view"),
            entry("2024-01-08T16:00:00Z", "bob", "billing.export"),
        ];
        for e in rows.clone() {
            running
                .running
                .store
                .writer
                .write(move |tx| audit_rows::insert(tx, &e))
                .await
                .unwrap();
        }
        let admin = named_token(&running.running, "root-desk", "admin").await;
        let targets = |rows: &[Value]| -> Vec<(String, String)> {
            rows.iter()
                .map(|r| {
                    (
                        r["actor"].as_str().unwrap().to_string(),
                        r["time"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let ann = audit(api, &admin, "actor=ann").await;
        assert_eq!(
            targets(&ann),
            [
                ("ann".into(), "2024-01-08T15:59:00.000Z".into()),
                ("ann".into(), "2024-01-08T09:00:00.000Z".into()),
                ("ann".into(), "2024-01-07T15:00:00.000Z".into()),
            ],
            "{backend}: newest first"
        );
        assert_eq!(
            audit(api, &admin, "actor=ann&action=call.view").await.len(),
            2
        );
        // A date is a day of the configured zone (Asia/Shanghai: 16:00Z the day before).
        let day = audit(api, &admin, "from=2024-01-08&to=2024-01-08").await;
        assert_eq!(day.len(), 3, "{day:#?}");
        let window = audit(
            api,
            &admin,
            "from=2024-01-08T09:00:00Z&to=2024-01-08T16:00:00Z",
        )
        .await;
        assert_eq!(window.len(), 2, "to is exclusive: {window:#?}");

        // Pages of two follow each other without a gap or a repeat.
        let first = get_json(api, "/api/audit?limit=2", &admin).await;
        assert_eq!(first["entries"].as_array().unwrap().len(), 2);
        assert!(first["next_cursor"].is_string());
        let all = audit(api, &admin, "limit=2").await;
        let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(ids, sorted, "ids descending, no repeats");
        assert!(ids.len() >= 5);

        for bad in [
            "from=yesterday",
            "action=recording.erase",
            "limit=0",
            "cursor=abc",
        ] {
            let (code, body) = get(api, &format!("/api/audit?{bad}"), Some(&admin)).await;
            assert_eq!(code, 400, "{bad}: {}", String::from_utf8_lossy(&body));
        }
        for role in ["finance", "qa", "reports"] {
            let t = named_token(&running.running, &format!("{role}-desk"), role).await;
            let (code, _) = get(api, "/api/audit", Some(&t)).await;
            assert_eq!(code, 403, "{role}");
        }
        let (code, _) = get(api, "/api/audit", None).await;
        assert_eq!(code, 401);

        // No path of the API changes or deletes a row.
        let before = audit(api, &admin, "action=call.view").await;
        let client = reqwest::Client::new();
        for (method, path) in [
            ("DELETE", "/api/audit".to_string()),
            ("POST", "/api/audit".to_string()),
            ("PUT", "/api/audit".to_string()),
            ("PATCH", "/api/audit".to_string()),
            ("DELETE", format!("/api/audit/{}", before[0]["id"])),
            ("PUT", format!("/api/audit/{}", before[0]["id"])),
            ("DELETE", "/api/audit?actor=ann".to_string()),
        ] {
            let r = client
                .request(method.parse().unwrap(), format!("http://{api}{path}"))
                .bearer_auth(&admin)
                .body(r#"{"status": 0}"#)
                .send()
                .await
                .unwrap();
            assert!(
                [404, 405].contains(&r.status().as_u16()),
                "{method} {path}: {}",
                r.status()
            );
        }
        assert_eq!(audit(api, &admin, "action=call.view").await, before);
        assert_eq!(audit(api, &admin, "actor=bob").await.len(), 2);
        running.running.stop().await;
    }
}

fn callvault(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run callvault");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn commands_record_their_exports_and_audit_lists_them() {
    for (backend, db) in backends("commands_record_their_exports") {
        let dir = tempfile::tempdir().unwrap();
        let url = db.as_ref().map(|d| d.url().to_string());
        let mut env = vec![("USER", "auditor-test")];
        if let Some(u) = &url {
            env.push(("CALLVAULT_STORE_URL", u.as_str()));
        }
        let csv = dir.path().join("billing.csv");
        callvault(
            dir.path(),
            &env,
            &[
                "export",
                "billing",
                "--from",
                "2024-01-08",
                "-o",
                csv.to_str().unwrap(),
            ],
        );
        let json = callvault(dir.path(), &env, &["audit", "--format", "json"]);
        let rows: Vec<Value> = serde_json::from_str(&json).expect("JSON");
        assert_eq!(rows.len(), 1, "{backend}: {json}");
        assert_eq!(rows[0]["actor"], "cli");
        assert_eq!(rows[0]["action"], "billing.export");
        assert_eq!(rows[0]["target"], "billing.csv 2024-01-08..2024-01-08");
        assert_eq!(rows[0]["status"], 0);
        assert!(
            rows[0]["detail"].as_str().unwrap().contains("auditor-test"),
            "{json}"
        );
        let table = callvault(dir.path(), &env, &["audit", "--actor", "cli"]);
        assert!(table.contains("billing.export"), "{table}");
        let none = callvault(
            dir.path(),
            &env,
            &["audit", "--format", "csv", "--action", "call.view"],
        );
        assert_eq!(none.lines().count(), 1, "only the header: {none}");
    }
}

#[test]
fn migrate_store_copies_the_audit_log() {
    let Some(pg) = TestDb::fresh("migrate_store_copies_the_audit_log") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = callvault::store::Store::open(&dir.path().join("callvault.sqlite")).unwrap();
    let mut refusal = entry("2024-01-08T09:00:00Z", "ann", "auth.refused");
    refusal.count = 7;
    for e in [
        entry("2024-01-07T15:00:00Z", "ann", "call.view"),
        entry("2024-01-08T08:00:00Z", "bob", "recording.play"),
    ] {
        sqlite
            .writer
            .write_blocking(move |tx| audit_rows::insert(tx, &e))
            .unwrap();
    }
    sqlite
        .writer
        .write_blocking(move |tx| audit_rows::add_collapsed(tx, "k", &refusal))
        .unwrap();
    let all = audit_rows::Filter {
        limit: 100,
        ..Default::default()
    };
    let (f1, f2) = (all.clone(), all.clone());
    let before = sqlite
        .read_blocking(move |tx| audit_rows::list(tx, &f1))
        .unwrap();
    drop(sqlite);
    callvault(dir.path(), &[], &["migrate-store", "--to", pg.url()]);
    let target = pg.store();
    let after = target
        .read_blocking(move |tx| audit_rows::list(tx, &f2))
        .unwrap();
    assert_eq!(after, before, "the same rows, ids and counts");
    // A refusal counted on PostgreSQL after the copy adds to its row.
    let more = {
        let mut e = entry("2024-01-08T09:00:30Z", "ann", "auth.refused");
        e.count = 3;
        e
    };
    target
        .writer
        .write_blocking(move |tx| audit_rows::add_collapsed(tx, "k", &more))
        .unwrap();
    let after = target
        .read_blocking(move |tx| audit_rows::list(tx, &all))
        .unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].entry.count, 10);
}
