//! Ingest answers after committing the raw push; legs, events and calls
//! are derived from committed pushes afterwards, with a durable cursor.
//! These tests stop at the seam: pushes committed by an ingest with no
//! derivation running (a crash right after the 200) must be derived by the
//! next start, and a push that cannot be derived must not stop the others.

use std::sync::Arc;

use callvault::config::Config;
use callvault::ingest::Ingestor;
use callvault::store::{pushes, Store};

use crate::util::*;

fn event(attribute: &str, visitor: &str) -> String {
    format!(
        r#"<Event attribute="{attribute}"><visitor id="{visitor}" from="18201008888" to="200"/></Event>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_committed_but_not_derived_are_derived_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    {
        // Ingest without the derivation installed: what a crash between
        // the commit (the device has its 200) and the derivation leaves.
        let store = Store::open(&cfg.db_path()).unwrap();
        let ing = Ingestor::new(store.clone(), Arc::new(cfg.clone()));
        for body in [
            cdr("1-0", "48", "18201008888"),
            event("RING", "48"),
            cdr("2-0", "48", "200"),
        ] {
            let reply = ing.accept(incoming(&body)).await;
            assert_eq!(reply.status, 200, "{:?}", reply.reason);
        }
        let c = rusqlite::Connection::open(cfg.db_path()).unwrap();
        assert_eq!(
            pushes::derive_backlog(&callvault::store::Tx::on_sqlite(&c)).unwrap(),
            3
        );
        let legs: i64 = c
            .query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(legs, 0, "nothing derived yet");
    }
    let running = callvault::server::start(cfg.clone()).await.unwrap();
    let ts = TestServer {
        running,
        dir,
        pg: None,
    };
    assert_eq!(ts.count("SELECT COUNT(*) FROM legs"), 2);
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM events WHERE attribute = 'RING'"),
        1
    );
    // The two legs share a visitor id and overlap: one call.
    assert_eq!(ts.count("SELECT COUNT(*) FROM calls"), 1);
    assert_eq!(
        ts.count("SELECT push_id FROM derive_cursor"),
        ts.count("SELECT MAX(id) FROM pushes")
    );
    ts.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_cannot_be_derived_is_marked_and_the_next_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg: Config = test_config(dir.path());
    {
        // A stored row the parser refuses (as if a parser change made an
        // archived push unreadable), then a good push.
        let store = Store::open(&cfg.db_path()).unwrap();
        store
            .writer
            .write(|tx| {
                pushes::insert(
                    tx,
                    &pushes::NewPush {
                        received_at: "2024-01-01T00:00:00.000Z".into(),
                        received_ms: 1_704_067_200_000,
                        source: "127.0.0.1".into(),
                        device: Some("127.0.0.1".into()),
                        method: "POST".into(),
                        path: "/".into(),
                        query: None,
                        body: b"<Cdr id=\"9-0\"><TimeStart>not a time".to_vec(),
                        outcome: pushes::Outcome::Stored,
                        status: 200,
                        reason: None,
                        sender_mac: None,
                    },
                )
            })
            .await
            .unwrap();
        let ing = Ingestor::new(store.clone(), Arc::new(cfg.clone()));
        let reply = ing.accept(incoming(&cdr("1-0", "48", "18201008888"))).await;
        assert_eq!(reply.status, 200);
    }
    let running = callvault::server::start(cfg.clone()).await.unwrap();
    let ts = TestServer {
        running,
        dir,
        pg: None,
    };
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM legs WHERE cdr_id = '1-0'"),
        1
    );
    let err: String = ts
        .db()
        .query_row("SELECT derive_error FROM pushes WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(err.contains("push 1"), "{err}");
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM pushes WHERE derive_error IS NOT NULL"),
        1
    );
    let (_, metrics) = get(ts.api(), "/metrics", None).await;
    assert!(
        String::from_utf8_lossy(&metrics).contains("callvault_derive_failures_total"),
        "failure counted in /metrics"
    );
    ts.running.stop().await;
}
