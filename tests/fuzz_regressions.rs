//! Inputs the fuzz targets (`fuzz/`, README "Fuzzing") found to break
//! callvault, replayed where they did harm: over real sockets against a
//! real server, each asserting the clear refusal that replaced the failure.

use crate::util::*;

/// `api_query`: a `to` date of chrono's last day (`%Y` reads a signed year
/// up to 262142) made the call search, the legs and the queue visits add a
/// day past the end of the calendar and panic in the handler: the client
/// saw its connection dropped instead of an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_day_of_the_calendar_is_a_bad_request_not_a_panic() {
    let ts = start().await;
    let tok = token(&ts, "admin").await;
    for path in [
        "/api/calls?to=%2B262142-12-31",
        "/api/calls?from=2024-01-01&to=%2B262142-12-31",
        "/api/legs?from=%2B262142-12-31",
        "/api/queues/visits?to=%2B262142-12-31",
        "/api/queues/summary?to=%2B262142-12-31",
    ] {
        let (status, body) = get(ts.api(), path, Some(&tok)).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("too late"), "{path}: {body}");
    }
    // The day before still has a next day: an empty answer.
    let calls = get_json(
        ts.api(),
        "/api/calls?to=%2B262142-12-30&from=2024-01-01",
        &tok,
    )
    .await;
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(0), "{calls}");
    ts.running.stop().await;
}
