//! The recordings queue on both backends (`store::testing::each_backend`),
//! and what differs on PostgreSQL: concurrent claimers, stale claims.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use super::*;
use crate::store::postgres::recordings::LEASE_MS;
use crate::store::reports::fixture;
use crate::store::testing::{each_backend, Backend};
use crate::store::Store;

/// Queues one row per `(device, due_ms)`, leg ids from 1.
fn queue(store: &Store, rows: &[(&str, i64)]) {
    let rows: Vec<(String, i64)> = rows.iter().map(|(d, t)| (d.to_string(), *t)).collect();
    store
        .writer
        .write_blocking(move |tx| {
            for (i, (device, due)) in rows.iter().enumerate() {
                let leg = i as i64 + 1;
                fixture::bare_legs(tx, device, leg..=leg)?;
                schedule(tx, leg, device, &format!("20240108/{leg}.wav"), None, *due)?;
            }
            Ok(())
        })
        .expect("queue");
}

fn claim(
    store: &Store,
    per_device: usize,
    max_concurrent: usize,
    after: Option<&str>,
    exclude: &HashSet<i64>,
) -> (Vec<(String, i64)>, Option<String>) {
    let limits = ClaimLimits {
        per_device,
        max_concurrent,
        lease_ms: LEASE_MS,
    };
    let (after, exclude) = (after.map(str::to_string), exclude.clone());
    let c = store
        .writer
        .write_blocking(move |tx| claim_due(tx, 100, limits, after.as_deref(), &exclude))
        .expect("claim");
    let jobs = c.jobs.into_iter().map(|r| (r.device, r.leg_id)).collect();
    (jobs, c.next_after)
}

fn sql(store: &Store, sql: &str) {
    let sql = sql.to_string();
    store
        .writer
        .write_blocking(move |tx| fixture::exec(tx, &sql))
        .expect("sql");
}

fn done(store: &Store, leg: i64) {
    sql(
        store,
        &format!("UPDATE recordings SET status = 'done' WHERE leg_id = {leg}"),
    );
}

fn by_leg(store: &Store, leg: i64) -> Recording {
    store
        .read_blocking(move |tx| {
            let id = with_status(tx, STATUSES, 1000)?
                .into_iter()
                .find(|r| r.leg_id == leg)
                .map(|r| r.id)
                .ok_or_else(|| StoreError::Corrupt(format!("no recording of leg {leg}")))?;
            get(tx, id)?.ok_or_else(|| StoreError::Corrupt("gone".into()))
        })
        .expect("recording")
}

fn j(d: &str, leg: i64) -> (String, i64) {
    (d.to_string(), leg)
}

#[test]
fn claim_due_takes_devices_in_turn_within_both_caps() {
    each_backend("claim_due_takes_devices_in_turn", |_, store| {
        // a: legs 1-4 due first; b: leg 5, due last; c: leg 6 due, leg 7 not yet.
        queue(
            store,
            &[
                ("a", 1),
                ("a", 2),
                ("a", 3),
                ("a", 4),
                ("b", 50),
                ("c", 10),
                ("c", 500),
            ],
        );
        let none = HashSet::new();
        let (jobs, next) = claim(store, 2, 3, None, &none);
        assert_eq!(
            jobs,
            [j("a", 1), j("b", 5), j("c", 6)],
            "one each, oldest first"
        );
        assert_eq!(next.as_deref(), Some("c"));
        assert!(
            claim(store, 2, 3, next.as_deref(), &none).0.is_empty(),
            "global cap"
        );
        done(store, 5);
        // The turn goes on after c: a (wrapping), as b and c have nothing due.
        let (jobs, next) = claim(store, 2, 3, Some("c"), &none);
        assert_eq!(jobs, [j("a", 2)]);
        assert_eq!(next.as_deref(), Some("a"));
        done(store, 1);
        done(store, 6);
        // a already fetches one: per_device 2 lets it take one more, not two.
        let (jobs, _) = claim(store, 2, 8, Some("a"), &none);
        assert_eq!(jobs, [j("a", 3)]);
    });
}

#[test]
fn claim_due_rotates_the_first_pick_and_skips_excluded_rows() {
    each_backend("claim_due_rotates_the_first_pick", |_, store| {
        queue(store, &[("a", 1), ("a", 1), ("b", 1), ("b", 1), ("c", 1)]);
        // Room for one: each claim serves the next device.
        let mut after = None;
        let mut order = Vec::new();
        for _ in 0..3 {
            let (jobs, next) = claim(store, 1, 1, after.as_deref(), &HashSet::new());
            let (device, leg) = jobs[0].clone();
            order.push(device);
            done(store, leg);
            after = next;
        }
        assert_eq!(order, ["a", "b", "c"]);
        let (jobs, _) = claim(store, 1, 8, after.as_deref(), &HashSet::from([2]));
        assert_eq!(jobs, [j("b", 4)], "a's only row left is excluded");
    });
}

#[test]
fn finishing_records_done_retry_missing_and_failed() {
    each_backend("finishing_records_outcomes", |_, store| {
        queue(store, &[("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
        let scheduled_again = store
            .writer
            .write_blocking(|tx| {
                schedule(tx, 1, "a", "20240108/other.wav", None, 0)?;
                counts(tx)
            })
            .expect("schedule");
        assert_eq!(scheduled_again[0], ("pending".to_string(), 4), "no-op");
        assert_eq!(store.read_blocking(next_due).expect("next"), Some(1));
        let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
        assert_eq!(jobs.len(), 4);
        assert_eq!(store.read_blocking(next_due).expect("next"), None);
        let ids: Vec<i64> = (1..=4).map(|leg| by_leg(store, leg).id).collect();
        let (i0, i1, i2, i3) = (ids[0], ids[1], ids[2], ids[3]);
        let archived = Archived {
            file: "a/1.wav".into(),
            originals: vec!["a/1.send.g729".into()],
            bytes: 44,
            duration_seconds: 1.5,
            sha256: "ff".into(),
            conversation: None,
        };
        let statuses = store
            .writer
            .write_blocking(move |tx| {
                finish_done(tx, i0, &archived)?;
                Ok([
                    finish_attempt_failed(tx, i1, "timeout", false, Some(777))?,
                    finish_attempt_failed(tx, i2, "404", true, None)?,
                    finish_attempt_failed(tx, i3, "500", false, None)?,
                ])
            })
            .expect("finish");
        assert_eq!(statuses, [PENDING, MISSING, FAILED]);
        let r = by_leg(store, 1);
        assert_eq!(
            (r.status.as_str(), r.file.as_deref(), r.originals.len()),
            (DONE, Some("a/1.wav"), 1)
        );
        assert_eq!((r.bytes, r.duration_seconds), (Some(44), Some(1.5)));
        assert_eq!((r.cdr_id.as_str(), r.attempts), ("cdr-1", 1));
        let r = by_leg(store, 2);
        assert_eq!((r.status.as_str(), r.due_ms), (PENDING, 777));
        assert_eq!(r.last_error.as_deref(), Some("timeout"));
        assert_eq!(by_leg(store, 3).not_found, 1);
        let counts = store.read_blocking(counts).expect("counts");
        let n = |s: &str| counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n);
        assert_eq!(
            [n(PENDING), n(FETCHING), n(DONE), n(MISSING), n(FAILED)],
            [Some(1), Some(0), Some(1), Some(1), Some(1)]
        );
        let gone = store
            .read_blocking(|tx| with_status(tx, &[FAILED, MISSING], 10))
            .expect("with_status");
        let legs: Vec<i64> = gone.iter().map(|r| r.leg_id).collect();
        assert_eq!(legs, [4, 3], "newest first");
        assert_eq!(store.read_blocking(next_due).expect("next"), Some(777));
    });
}

/// SQLite has one collector: every `fetching` row at start is its own,
/// cut by its stop. On PostgreSQL only rows whose lease is past go back:
/// another live collector may be fetching the others.
#[test]
fn reset_fetching_takes_back_only_what_no_live_collector_holds() {
    each_backend("reset_fetching_takes_back_stale_rows", |backend, store| {
        queue(store, &[("a", 1), ("b", 1)]);
        let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
        assert_eq!(jobs.len(), 2);
        if backend == Backend::Postgres {
            sql(
                store,
                "UPDATE recordings SET lease_until_ms = 0 WHERE leg_id = 1",
            );
        }
        let n = store.writer.write_blocking(reset_fetching).expect("reset");
        let (first, second) = (by_leg(store, 1), by_leg(store, 2));
        assert_eq!((first.status.as_str(), first.attempts), (PENDING, 0));
        match backend {
            Backend::Sqlite => {
                assert_eq!(n, 2);
                assert_eq!(second.status, PENDING);
            }
            Backend::Postgres => {
                assert_eq!(n, 1);
                assert_eq!((second.status.as_str(), second.attempts), (FETCHING, 1));
                // The attempt whose claim was taken back still archived
                // its file: the success stands, the row is not fetched again.
                let id = first.id;
                let a = Archived {
                    file: "late.wav".into(),
                    originals: Vec::new(),
                    bytes: 1,
                    duration_seconds: 0.1,
                    sha256: "00".into(),
                    conversation: None,
                };
                store
                    .writer
                    .write_blocking(move |tx| finish_done(tx, id, &a))
                    .expect("late success");
                assert_eq!(by_leg(store, 1).status, DONE);
                let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
                assert!(jobs.is_empty(), "{jobs:?}");
            }
        }
    });
}

/// The lease of a row a collector is still fetching is renewed by its
/// next claim, so the row is not taken back while the download runs.
#[test]
fn a_claim_renews_the_leases_of_the_collectors_own_rows() {
    each_backend("a_claim_renews_leases", |backend, store| {
        if backend != Backend::Postgres {
            return;
        }
        queue(store, &[("a", 1)]);
        assert_eq!(claim(store, 1, 8, None, &HashSet::new()).0, [j("a", 1)]);
        let lease = || {
            store
                .read_blocking(|tx| {
                    let pg = tx.pg().expect("postgres");
                    Ok(pg
                        .query_one("SELECT lease_until_ms FROM recordings", &[])?
                        .get::<_, i64>(0))
                })
                .expect("lease")
        };
        let now = crate::store::now_stamp().1;
        let first = lease();
        assert!(first >= now + LEASE_MS - 60_000);
        // Nearly past: another collector's start would soon take it back.
        sql(
            store,
            &format!("UPDATE recordings SET lease_until_ms = {}", now + 1000),
        );
        assert!(claim(store, 1, 8, None, &HashSet::new()).0.is_empty());
        assert!(lease() >= first, "renewed");
        assert_eq!(
            store.writer.write_blocking(reset_fetching).expect("reset"),
            0
        );
        assert_eq!(by_leg(store, 1).status, FETCHING);
    });
}

/// `[recordings] claim_lease_seconds`: a claim holds for the configured
/// lease, is renewed before half of a short one is gone, and lapses after
/// it (the rows of a collector that died are fetched again that soon).
#[test]
fn a_short_lease_is_honoured_renewed_and_lapses() {
    each_backend("a_short_lease", |backend, store| {
        if backend != Backend::Postgres {
            return;
        }
        queue(store, &[("a", 1)]);
        let claim_short = |lease_ms: i64| {
            let limits = ClaimLimits {
                per_device: 1,
                max_concurrent: 8,
                lease_ms,
            };
            store
                .writer
                .write_blocking(move |tx| claim_due(tx, 100, limits, None, &HashSet::new()))
                .expect("claim")
                .jobs
                .len()
        };
        let lease = || {
            store
                .read_blocking(|tx| {
                    let pg = tx.pg().expect("postgres");
                    Ok(pg
                        .query_one("SELECT lease_until_ms FROM recordings", &[])?
                        .get::<_, i64>(0))
                })
                .expect("lease")
        };
        let before = crate::store::now_stamp().1;
        assert_eq!(claim_short(4_000), 1);
        let first = lease();
        let after = crate::store::now_stamp().1;
        assert!(
            (before + 4_000..=after + 4_000).contains(&first),
            "{first} not 4 s after {before}..{after}"
        );
        // Not renewed while more than half of it is left …
        assert_eq!(claim_short(4_000), 0);
        assert_eq!(lease(), first);
        // … renewed once less is left.
        let now = crate::store::now_stamp().1;
        sql(
            store,
            &format!("UPDATE recordings SET lease_until_ms = {}", now + 1_000),
        );
        assert_eq!(claim_short(4_000), 0);
        assert!(lease() >= now + 4_000, "renewed");
        // Past: any claim takes the row back and claims it again.
        sql(
            store,
            &format!("UPDATE recordings SET lease_until_ms = {}", now - 1),
        );
        assert_eq!(claim_short(4_000), 1, "taken back once the lease lapsed");
        assert_eq!(by_leg(store, 1).attempts, 1, "the cut attempt not counted");
    });
}

/// Rows of other collectors: a live one's count against the device's cap
/// (not this collector's own), a dead one's (lease past) are claimed again.
#[test]
fn another_collectors_rows_count_per_device_and_come_back_when_stale() {
    each_backend("other_collectors_rows", |backend, store| {
        if backend != Backend::Postgres {
            return;
        }
        queue(store, &[("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
        let far = crate::store::now_stamp().1 + 3_600_000;
        sql(
            store,
            &format!(
                "UPDATE recordings SET status = 'fetching', attempts = 1, claimed_by = 'live',
                     lease_until_ms = {far} WHERE leg_id = 1;
                 UPDATE recordings SET status = 'fetching', attempts = 1, claimed_by = 'dead',
                     lease_until_ms = 5 WHERE leg_id = 3"
            ),
        );
        // max_concurrent 2 is this collector's own: both of its slots are free.
        // per_device 1: a is full (the live row); b's dead row is back and first due.
        let (jobs, _) = claim(store, 1, 2, None, &HashSet::new());
        assert_eq!(jobs, [j("b", 3)]);
        assert_eq!(
            by_leg(store, 3).attempts,
            1,
            "the cut attempt does not count"
        );
        assert_eq!(by_leg(store, 1).status, FETCHING);
        let (jobs, _) = claim(store, 2, 2, None, &HashSet::new());
        assert_eq!(jobs, [j("a", 2)], "one slot left of two");
    });
}

/// Two collectors claim at the same moment: the second skips what the
/// first holds, and the device the first is claiming from, until it
/// commits; afterwards it gets the rest, never the first's rows.
#[test]
fn concurrent_claims_on_postgres_never_share_a_row() {
    each_backend("concurrent_claims_never_share_a_row", |backend, store| {
        if backend != Backend::Postgres {
            return;
        }
        queue(store, &[("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
        let (held, taken) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let first = {
            let (store, held, taken) = (store.clone(), held.clone(), taken.clone());
            std::thread::spawn(move || {
                store.writer.write_blocking(move |tx| {
                    let limits = ClaimLimits {
                        per_device: 1,
                        max_concurrent: 1,
                        lease_ms: LEASE_MS,
                    };
                    // The barriers are passed whatever the claim gave, so
                    // that a failing claim fails the test instead of hanging it.
                    let c = claim_due(tx, 100, limits, None, &HashSet::new());
                    held.wait();
                    taken.wait();
                    Ok(c?.jobs.into_iter().map(|r| r.leg_id).collect::<Vec<_>>())
                })
            })
        };
        held.wait();
        let (second, _) = claim(store, 4, 100, None, &HashSet::new());
        taken.wait();
        let first = first.join().expect("first claimer").expect("first claim");
        assert_eq!(first, [1]);
        assert_eq!(second, [j("b", 3), j("b", 4)], "device a was being claimed");
        let (third, _) = claim(store, 4, 100, None, &HashSet::new());
        assert_eq!(third, [j("a", 2)], "the first's row is not claimed again");
    });
}

/// Many rounds of two claimers racing: every row is claimed exactly once.
#[test]
fn racing_claimers_on_postgres_claim_each_row_once() {
    each_backend("racing_claimers_claim_each_row_once", |backend, store| {
        if backend != Backend::Postgres {
            return;
        }
        let rows: Vec<(String, i64)> = (0..120).map(|i| (format!("d{}", i % 4), 1)).collect();
        let rows: Vec<(&str, i64)> = rows.iter().map(|(d, t)| (d.as_str(), *t)).collect();
        queue(store, &rows);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..400 {
                        let (jobs, _) = claim(&store, 3, 1000, None, &HashSet::new());
                        for (_, leg) in &jobs {
                            done(&store, *leg);
                        }
                        mine.extend(jobs.into_iter().map(|(_, leg)| leg));
                        if mine.len() >= 120 {
                            break;
                        }
                        let left = store.read_blocking(next_due).expect("next_due");
                        if left.is_none() {
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<i64> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("claimer"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=120).collect::<Vec<i64>>(), "each row once");
        let attempts = store
            .read_blocking(|tx| with_status(tx, &[DONE], 1000))
            .expect("rows");
        assert!(attempts.iter().all(|r| r.attempts == 1));
    });
}

/// The claim reads the queue through the index: per device, only the
/// rows it takes, however long the queue.
#[test]
fn claim_due_queries_use_the_device_index() {
    let c = rusqlite::Connection::open_in_memory().expect("db");
    let mut c = c;
    super::super::migrate::apply(&mut c).expect("schema");
    for sql in [
        "SELECT id FROM recordings WHERE status = 'pending' AND device = ?1 AND due_ms <= ?2
         ORDER BY due_ms, id",
        "SELECT device FROM recordings WHERE status = 'pending' AND device > ?1
         ORDER BY device LIMIT ?2",
    ] {
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params!["x", 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let plan = plan.join("; ");
        assert!(plan.contains("recordings_device_due"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }
}
