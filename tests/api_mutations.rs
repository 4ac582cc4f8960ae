//! Every API route with its query parameters replaced by odd values (dates
//! that do not exist or are centuries away, reversed ranges, negative and
//! huge limits, broken cursors, unknown formats, encoded junk): each answer
//! is a success or a 4xx with a JSON error — never a 5xx — and the server
//! keeps answering. Over a real socket, on an archive with calls in it.

use rand::{Rng, SeedableRng};

use crate::util::*;

const ODD: &[&str] = &[
    "",
    "2024-01-08",
    "2024-02-30",
    "2024-13-01",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "1970-01-01",
    "yesterday",
    "today",
    "-1",
    "0",
    "99999999999999999999",
    "%FF%FE",
    "%00",
    "abc",
    "2024-01-08T00:00:00Z",
    "%E4%B8%AD%E6%96%87",
    "csv",
    "json",
    "html",
    "xml",
    "1",
    "true",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_query_values_get_an_answer_never_a_server_error() {
    let ts = start().await;
    for i in 0..20 {
        let body = cdr(
            &format!("{i}20240108100000-0"),
            &format!("{}", i % 5 + 1),
            "1820100",
        )
        .replace("20170309", "20240108");
        let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
    }
    ts.derived();
    let tok = token(&ts, "admin").await;
    let routes: &[(&str, &[&str])] = &[
        ("/api/legs", &["from", "to"]),
        (
            "/api/calls",
            &[
                "from",
                "to",
                "number",
                "ext",
                "direction",
                "answered",
                "limit",
                "cursor",
            ],
        ),
        ("/api/queues/visits", &["from", "to"]),
        ("/api/queues/summary", &["from", "to"]),
        (
            "/export/billing.csv",
            &["from", "to", "per_leg", "bom", "tariffs"],
        ),
        ("/reports/daily", &["date", "format"]),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut next = move |n: usize| rng.random_range(0..n);
    let mut answered = std::collections::BTreeMap::new();
    for case in 0..400 {
        let (route, params) = routes[case % routes.len()];
        let mut query = Vec::new();
        for p in params {
            if next(3) > 0 {
                query.push(format!("{p}={}", ODD[next(ODD.len())]));
            }
        }
        let path = format!("{route}?{}", query.join("&"));
        let (code, body) = get(ts.api(), &path, Some(&tok)).await;
        assert!(
            code < 500,
            "{path}: {code} {}",
            String::from_utf8_lossy(&body)
        );
        if code >= 400 {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{path}: {code} without a JSON error"));
            assert!(
                v["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{path}: {v}"
            );
        }
        *answered.entry(code).or_insert(0) += 1;
    }
    // Both kinds, or the odd values are not reaching the parsers.
    assert!(
        answered.get(&200).copied().unwrap_or(0) > 40,
        "{answered:?}"
    );
    assert!(
        answered.get(&400).copied().unwrap_or(0) > 40,
        "{answered:?}"
    );
    // Calls by odd ids too.
    for id in ["", "x", "..%2F..%2Fetc", "%00", &"9".repeat(5000)] {
        for tail in ["", "/recording"] {
            let path = format!("/api/calls/{id}{tail}");
            let (code, _) = get(ts.api(), &path, Some(&tok)).await;
            assert!(code < 500, "{path}: {code}");
        }
    }
    // Other methods and unknown routes: JSON errors too.
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/api/calls"),
        (reqwest::Method::DELETE, "/api/legs"),
        (reqwest::Method::GET, "/api/nothing-here"),
    ] {
        let resp = client
            .request(method.clone(), format!("http://{}{path}", ts.api()))
            .bearer_auth(&tok)
            .send()
            .await
            .expect("request");
        let code = resp.status().as_u16();
        let body = resp.bytes().await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(
            matches!(code, 404 | 405) && v["error"].is_string(),
            "{method} {path}: {code} {v}"
        );
    }
    let (code, _) = get(ts.api(), "/healthz", None).await;
    assert_eq!(code, 200, "still serving");
    ts.running.stop().await;
}

// The session cookie's tests are in auth_tokens.rs (with the rest of
// tokens and sessions).
