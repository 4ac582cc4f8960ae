//! Call ids stay resolvable forever: when a late leg merges two provisional
//! calls into one, the ids handed out before (in the API, in links QA saved)
//! still answer, with the merged call. Real socket pushes, real HTTP API.

use serde_json::Value;

use crate::util::*;

fn leg(id: &str, visitor: Option<&str>, outer: Option<&str>) -> String {
    let mut x = cdr(id, visitor.unwrap_or(""), "13800138000");
    if visitor.is_none() {
        x = x.replace("<visitor id=\"\" />", "");
    }
    if let Some(o) = outer {
        x = x.replace(
            "<TimeStart>",
            &format!("<outer id=\"{o}\" />\n  <TimeStart>"),
        );
    }
    x
}

async fn json(ts: &TestServer, path: &str, tok: &str) -> (u16, Value) {
    let (code, body) = get(ts.api(), path, Some(tok)).await;
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_calls_merged_by_a_late_leg_still_resolve() {
    let ts = start().await;
    let tok = token(&ts, "qa").await;
    let day = "from=2017-03-09&to=2017-03-09";
    let push = |body: String| {
        let resp = raw_exchange(ts.ingest(), &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
        ts.derived();
    };
    push(leg("1-0", Some("7"), None));
    push(leg("2-0", None, Some("9")));
    let (_, v) = json(&ts, &format!("/api/calls?{day}"), &tok).await;
    let before: Vec<String> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 2, "two provisional calls: {v}");

    // The late leg carries both ids: one call now.
    push(leg("3-0", Some("7"), Some("9")));
    let (_, v) = json(&ts, &format!("/api/calls?{day}"), &tok).await;
    let after = v["calls"].as_array().unwrap();
    assert_eq!(after.len(), 1, "merged: {v}");
    let current = after[0]["id"].as_str().unwrap().to_string();
    assert_eq!(after[0]["leg_count"], 3);

    for old in &before {
        let (code, c) = json(&ts, &format!("/api/calls/{old}"), &tok).await;
        assert_eq!(code, 200, "old id {old} still resolves");
        assert_eq!(c["id"], current.as_str());
        assert_eq!(c["legs"].as_array().map(Vec::len), Some(3));
        if *old != current {
            assert_eq!(c["merged_from"], true);
        }
    }
    let (code, v) = json(&ts, "/api/calls/ffffffffffffffff", &tok).await;
    assert_eq!(code, 404);
    assert!(v["error"].is_string(), "404 is JSON: {v}");
    ts.running.stop().await;
}
