//! `GET /api/openapi.json` over a real socket describes every route the
//! router serves (the router registers exactly `rights::RIGHTS`), and no
//! other.

use std::collections::BTreeSet;

use callvault::http::rights::RIGHTS;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_of_the_router() {
    let ts = start().await;
    let api = ts.running.api_addr;
    let (code, body) = get(api, "/api/openapi.json", None).await;
    assert_eq!(code, 200, "no token needed to read the description");
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routed: BTreeSet<(String, String)> = RIGHTS
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(described, routed);
    // Each described route is served: a request to it is not the router's
    // 404 for an unknown route (the admin token passes every check).
    let admin = token(&ts, "admin").await;
    for (method, path) in &routed {
        if method != "GET" {
            continue;
        }
        let path = path.replace("{id}", "1").replace("{name}", "app.js");
        if path == "/api/live" {
            // A stream that does not end: its status says it is served.
            let resp = reqwest::Client::new()
                .get(format!("http://{api}{path}"))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
            continue;
        }
        let (code, body) = get(api, &path, Some(&admin)).await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("no such route"),
            "{method} {path}: {code} {text}"
        );
    }
    let (code, _) = get(api, "/api/not-a-route", Some(&admin)).await;
    assert_eq!(code, 404);
    ts.running.stop().await;
}
