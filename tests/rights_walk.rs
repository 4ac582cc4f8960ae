//! Every route of the API listener × every role × no token, over a real
//! socket, against the rights table (`callvault::http::rights::RIGHTS`,
//! the README's route × role table): the status of each request is what
//! the table says, and each refusal is in the audit log. The table drives
//! the router's check and the handlers check again on their own, so a
//! table that says more (or less) than a handler allows fails here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use callvault::http::rights::{refusal, Need, RIGHTS};
use callvault::roles::ROLES;
use callvault::server;
use callvault::sim::recorder::{self, Faults};
use serde_json::Value;

use crate::recordings_fetch::{cdr_with, rec_config_at, spec};
use crate::util::*;

/// The walk's token of `role`, named `walk-{role}` (the audit rows' actor).
async fn role_token(running: &server::Running, role: &str) -> String {
    let (name, role) = (format!("walk-{role}"), role.to_string());
    running
        .store
        .writer
        .write(move |tx| callvault::store::tokens::create(tx, &name, &role))
        .await
        .expect("token")
}

/// The one call of 2017-03-09 and its recording's id, once fetched.
async fn fetched(api: std::net::SocketAddr, admin: &str) -> (String, i64) {
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

/// The request line's path of a row: its parameters filled with real ids,
/// and the query its route needs to answer 200.
fn real_path(path: &str, call: &str, rec: i64) -> String {
    let p = if path.starts_with("/api/recordings/") {
        path.replace("{id}", &rec.to_string())
    } else {
        path.replace("{id}", call).replace("{name}", "app.js")
    };
    let query = match path {
        "/reports/daily" => "?date=2017-03-09&format=json",
        "/export/billing.csv" | "/export/billing.xlsx" | "/api/legs" | "/api/calls" => {
            "?from=2017-03-09&to=2017-03-09"
        }
        p if p.starts_with("/api/queues/") => "?from=2017-03-09&to=2017-03-09",
        _ => "",
    };
    format!("{p}{query}")
}

/// Sum of the `count` of the refusal rows `rows` with `status` and `actor`.
fn refusals(rows: &[Value], status: u16, actor: Option<&str>) -> i64 {
    rows.iter()
        .filter(|r| r["status"] == status && r["actor"].as_str() == actor)
        .map(|r| r["count"].as_i64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_rights_table_says() {
    let rec = recorder::start(vec![spec("2101", "PCMU", 1)], Faults::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rec_config_at(dir.path(), &rec.base_url());
    cfg.calls.settle_seconds = 0;
    let running = server::start(cfg).await.expect("server starts");
    let api = running.api_addr;
    let resp = raw_exchange(
        running.ingest_addr,
        &om_request("POST", "/", &cdr_with("1-0", "2101", "PCMU")),
    );
    assert_eq!(status_of(&resp), 200, "{resp}");
    let mut tokens = BTreeMap::new();
    for role in ROLES {
        tokens.insert(*role, role_token(&running, role).await);
    }
    let (call, rec_id) = fetched(api, &tokens["admin"]).await;

    // A few rows said again here in words, so that the table itself is
    // checked too, not only the code against it.
    let need = |m: &str, p: &str| callvault::http::rights::need_of(m, p).expect("listed");
    assert_eq!(
        refusal(need("GET", "/api/recordings/{id}"), Some("finance")),
        Some(403)
    );
    assert_eq!(
        refusal(need("GET", "/export/billing.csv"), Some("qa")),
        Some(403)
    );
    assert_eq!(refusal(need("GET", "/api/calls"), None), Some(401));
    assert_eq!(
        refusal(need("GET", "/api/audit"), Some("reports")),
        Some(403)
    );

    let client = reqwest::Client::new();
    let mut expected: BTreeMap<(u16, Option<String>), i64> = BTreeMap::new();
    let mut wrong = Vec::new();
    for r in RIGHTS {
        let url = format!("http://{api}{}", real_path(r.path, &call, rec_id));
        let who = std::iter::once(None).chain(ROLES.iter().map(|r| Some(*r)));
        for role in who {
            let method = r.method.parse::<reqwest::Method>().expect("method");
            let mut req = client.request(method, &url);
            if let Some(role) = role {
                req = req.bearer_auth(&tokens[role]);
            }
            let resp = req.send().await.expect("request");
            let got = resp.status().as_u16();
            // The live wallboard's stream does not end: its status is enough.
            let body = if r.path == "/api/live" && got == 200 {
                Default::default()
            } else {
                resp.bytes().await.unwrap_or_default()
            };
            // Checked from loopback: /metrics needs nothing here.
            let table = match r.need {
                Need::LoopbackOr(_) => None,
                need => refusal(need, role),
            };
            let ok = match table {
                Some(status) => got == status,
                // Signing in without a token: let through by the table,
                // then the handler asks for one (400).
                None if r.method == "POST" && role.is_none() => got == 400,
                None => (200..300).contains(&got),
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {}: got {got}, the table says {} ({})",
                    r.method,
                    r.path,
                    role.unwrap_or("no token"),
                    table.map_or("allowed".to_string(), |s| s.to_string()),
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ));
            }
            if let Some(status) = table {
                let actor = role.map(|r| format!("walk-{r}"));
                *expected.entry((status, actor)).or_default() += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "routes that differ from the table:\n{}",
        wrong.join("\n")
    );

    // Each refusal is counted in the audit log: rows collapse per address,
    // minute, status and actor, so the counts add up per caller.
    let admin = tokens["admin"].clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(api, "/api/audit?action=auth.refused&limit=1000", &admin).await;
        let rows = v["entries"].as_array().expect("entries").clone();
        let got: BTreeMap<(u16, Option<String>), i64> = expected
            .keys()
            .map(|(s, a)| ((*s, a.clone()), refusals(&rows, *s, a.as_deref())))
            .collect();
        if got == expected {
            for r in rows.iter().filter(|r| r["status"] == 403) {
                assert_eq!(
                    r["role"].as_str(),
                    r["actor"].as_str().map(|a| &a[5..]),
                    "{r}"
                );
                assert!(r["target"].as_str().unwrap().starts_with("GET /"), "{r}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit refusals {got:?}, expected {expected:?}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
    rec.stop().await;
}
