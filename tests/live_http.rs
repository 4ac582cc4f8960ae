//! `GET /api/live` (Server-Sent Events) over a real socket: a call appears
//! on its first event and leaves on BYE, a queue's waiting count rises and
//! falls (§2.5.7, §4.12), the floor is rebuilt from the stored events
//! after a restart (on SQLite and on PostgreSQL), a device-limited token
//! sees its devices only, revoking the token or signing out ends the
//! stream within seconds, and stopping the server ends it too.

use std::time::{Duration, Instant};

use callvault::config::DeviceConfig;
use callvault::server;
use serde_json::Value;

use crate::calls_timeline::{agent_ring_of, answer_of, bye_of, push_xml, queue_of};
use crate::util::*;

const BRANCH_MAC: &str = "00:0E:A9:00:00:0C";

/// A client of the stream: reads `floor` events as they come.
pub struct Live {
    resp: reqwest::Response,
    buf: String,
}

impl Live {
    /// Opens the stream with a bearer token or a cookie; panics unless 200.
    pub async fn open(
        api: std::net::SocketAddr,
        token: Option<&str>,
        cookie: Option<&str>,
    ) -> Live {
        let mut rb = reqwest::Client::new().get(format!("http://{api}/api/live"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(c) = cookie {
            rb = rb.header("Cookie", c);
        }
        let resp = rb.send().await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Live {
            resp,
            buf: String::new(),
        }
    }

    /// The next floor, or `None` when the stream ended (or `limit` passed).
    pub async fn next(&mut self, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                if block.lines().any(|l| l == "event: floor") {
                    return Some(serde_json::from_str(&data.join("\n")).expect("floor JSON"));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) | Err(_) => return None,
            }
        }
    }

    /// Floors until one satisfies `cond` (panics after 10 s).
    pub async fn until(&mut self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = Value::Null;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Some(f) if cond(&f) => return f,
                Some(f) => last = f,
                None => break,
            }
        }
        panic!("no floor with {what} within 10 s; the last: {last}");
    }

    /// Whether the stream ends within `limit`.
    pub async fn ends_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn n(v: &Value, key: &str) -> usize {
    v[key].as_array().map_or(0, Vec::len)
}

fn waiting(v: &Value) -> i64 {
    v["queues"].as_array().map_or(0, |q| {
        q.iter().map(|q| q["waiting"].as_i64().unwrap()).sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_follows_calls_and_queues_then_is_rebuilt_after_a_restart() {
    for b in backends("live_follows_calls_and_queues") {
        let backend = b.backend();
        let ts = start_on(b, |_| {}).await;
        let tok = token(&ts, "reports").await;
        let mut live = Live::open(ts.api(), Some(&tok), None).await;
        let first = live
            .next(Duration::from_secs(5))
            .await
            .expect("a floor on connect");
        assert_eq!((n(&first, "calls"), n(&first, "queues")), (0, 0), "{first}");

        push_xml(&ts, &queue_of("77"));
        let f = live.until("visitor 77 queued", |f| waiting(f) == 1).await;
        assert_eq!(f["calls"][0]["caller"], "18201008888", "{backend:?}: {f}");
        assert_eq!(f["calls"][0]["state"], "queued");
        assert_eq!(f["queues"][0]["queue"], "6");
        push_xml(&ts, &queue_of("17"));
        let f = live.until("two waiting", |f| waiting(f) == 2).await;
        assert_eq!(n(&f, "calls"), 2);

        push_xml(&ts, &agent_ring_of("77"));
        live.until("one waiting", |f| waiting(f) == 1).await;
        push_xml(&ts, &answer_of("77"));
        let f = live
            .until("agent 200 on a call", |f| n(f, "agents") == 1)
            .await;
        assert_eq!(f["agents"][0]["extension"], "200");
        assert_eq!(f["agents"][0]["with"], "18201008888");
        push_xml(&ts, &bye_of("77"));
        let f = live.until("77 gone", |f| n(f, "calls") == 1).await;
        assert_eq!((n(&f, "agents"), waiting(&f)), (0, 1), "{f}");
        // §4.12: 17 leaves the queue; the BYE names the queue's number, 3.
        push_xml(&ts, &fixture("4.12-bye-2-visitor-leaves.xml"));
        live.until("an empty floor", |f| n(f, "calls") == 0 && waiting(f) == 0)
            .await;

        // Left on the floor at the stop: 31 ringing, 48 queued in 6 (whose
        // number is now known).
        push_xml(&ts, &fixture("2.5.3.3-answer-2-visitor-to-ext.xml"));
        push_xml(&ts, &queue_of("48"));
        live.until("31 talking and 48 waiting", |f| n(f, "calls") == 2)
            .await;
        drop(live);
        ts.derived();
        let TestServer { running, dir, pg } = ts;
        running.stop().await;
        let mut cfg = test_config(dir.path());
        if let Some(db) = &pg {
            cfg.store.url = db.url().to_string();
        }
        let running = server::start(cfg).await.expect("restarts");
        let mut live = Live::open(running.api_addr, Some(&tok), None).await;
        let f = live
            .until("the floor of before the stop", |f| n(f, "calls") == 2)
            .await;
        assert_eq!(waiting(&f), 1, "{backend:?}: {f}");
        assert_eq!(n(&f, "agents"), 1, "{backend:?}: {f}");
        assert_eq!(f["agents"][0]["with"], "13012345678");
        assert_eq!(f["queues"][0]["number"], "3", "{backend:?}: {f}");
        drop(live);
        running.stop().await;
        drop((dir, pg));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_shows_a_limited_token_its_devices_and_ends_on_revocation_or_sign_out() {
    let ts = start_with(|c| {
        c.devices.push(DeviceConfig {
            name: "hq".into(),
            push_from: vec!["127.0.0.1".into()],
            ..Default::default()
        });
        c.devices.push(DeviceConfig {
            name: "branch".into(),
            mac: Some(BRANCH_MAC.into()),
            push_from: vec!["127.0.0.1".into()],
            ..Default::default()
        });
    })
    .await;
    let (code, _) = get(ts.api(), "/api/live", None).await;
    assert_eq!(code, 401);
    let limited = |name: &'static str, devices: Vec<String>| {
        let store = ts.running.store.clone();
        async move {
            store
                .writer
                .write(move |tx| {
                    callvault::store::tokens::create_unique(tx, name, "qa", None, &devices)
                })
                .await
                .expect("token")
                .expect("a new name")
        }
    };
    let all = limited("all", vec![]).await;
    let branch = limited("branch-only", vec!["branch".into()]).await;
    let mut sees_all = Live::open(ts.api(), Some(&all), None).await;
    let mut sees_branch = Live::open(ts.api(), Some(&branch), None).await;

    push_xml(&ts, &agent_ring_of("5"));
    let at_branch = agent_ring_of("6").replace(
        "<Event attribute=\"RING\">",
        &format!("<Event attribute=\"RING\">\n<MAC>{BRANCH_MAC}</MAC>"),
    );
    push_xml(&ts, &at_branch);
    let f = sees_all
        .until("both devices' calls", |f| n(f, "calls") == 2)
        .await;
    let mut devices: Vec<&str> = f["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["device"].as_str().unwrap())
        .collect();
    devices.sort();
    assert_eq!(devices, ["branch", "hq"]);
    let f = sees_branch
        .until("branch's call", |f| n(f, "calls") == 1)
        .await;
    assert_eq!(f["calls"][0]["device"], "branch", "{f}");
    // Every later floor too.
    push_xml(&ts, &bye_of("5"));
    sees_all
        .until("hq's call gone", |f| n(f, "calls") == 1)
        .await;

    // Revoked: the stream ends within seconds; the other goes on.
    ts.running
        .store
        .writer
        .write(|tx| callvault::store::tokens::revoke(tx, "branch-only"))
        .await
        .expect("revoke");
    assert!(
        sees_branch.ends_within(Duration::from_secs(10)).await,
        "the revoked token's stream goes on"
    );
    assert!(
        !sees_all.ends_within(Duration::from_secs(2)).await,
        "the other token's stream ended"
    );

    // A session's stream ends when it signs out.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{}/api/session", ts.api()))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "token": all }).to_string())
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut by_session = Live::open(ts.api(), None, Some(&cookie)).await;
    assert!(by_session.next(Duration::from_secs(5)).await.is_some());
    let out = client
        .delete(format!("http://{}/api/session", ts.api()))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("sign out");
    assert!(out.status().is_success(), "{}", out.status());
    assert!(
        by_session.ends_within(Duration::from_secs(10)).await,
        "the signed-out session's stream goes on"
    );
    // A stream still open does not hold up the server's stop: it ends.
    tokio::time::timeout(Duration::from_secs(20), ts.running.stop())
        .await
        .expect("the server stops with a stream open");
    assert!(sees_all.ends_within(Duration::from_secs(5)).await);
}

/// Two collectors on one PostgreSQL archive: whichever took a push, both
/// streams show the whole floor (the floor is read from the stored
/// events, which one collector derives for all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collector_shows_the_whole_floor_on_postgres() {
    let Some(db) = callvault::store::testing::TestDb::fresh("live_two_collectors") else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let start = |dir: &std::path::Path| {
        let mut cfg = test_config(dir);
        cfg.store.url = db.url().to_string();
        server::start(cfg)
    };
    let a = start(dir_a.path()).await.expect("collector a");
    let b = start(dir_b.path()).await.expect("collector b");
    let tok = token_on(&a, "qa").await;
    let mut on_a = Live::open(a.api_addr, Some(&tok), None).await;
    let mut on_b = Live::open(b.api_addr, Some(&tok), None).await;
    for (ingest, body) in [
        (a.ingest_addr, queue_of("77")),
        (b.ingest_addr, agent_ring_of("5")),
    ] {
        let resp = raw_exchange(ingest, &om_request("POST", "/", &body));
        assert_eq!(status_of(&resp), 200, "{resp}");
    }
    for live in [&mut on_a, &mut on_b] {
        let f = live.until("both calls", |f| n(f, "calls") == 2).await;
        assert_eq!(waiting(&f), 1, "{f}");
    }
    drop((on_a, on_b));
    b.stop().await;
    a.stop().await;
}
