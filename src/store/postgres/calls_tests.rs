//! The calls, search, detail and queue-visit store functions on both
//! backends: each test runs the same steps on SQLite and PostgreSQL
//! (`store::testing::each_backend`), asserts what they must give, and then
//! that both backends gave exactly the same (every value rendered to text).

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::model::{CallFacts, Direction, Leg, Outcome, Visit};
use crate::store::call_search::{search_page, CallFilter, CallView};
use crate::store::testing::{each_backend, Backend};
use crate::store::{call_detail, calls, queues, Result, Tx};

fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 5, 6)
        .and_then(|d| d.and_hms_opt(h, m, s))
        .expect("time")
}

fn leg(cdr: &str, visitor: Option<&str>, start: NaiveDateTime, secs: i64) -> Leg {
    Leg {
        cdr_id: cdr.into(),
        callid: format!("c{cdr}"),
        visitor_id: visitor.map(String::from),
        outer_id: None,
        leg_type: "IN".into(),
        route: "IP".into(),
        cpn: "0123".into(),
        cdpn: "200".into(),
        time_start: start,
        time_end: start + chrono::Duration::seconds(secs),
        duration: secs,
        trunk_number: "9001".into(),
        recording: None,
        rec_codec: None,
        mac: Some("00:0e:a9".into()),
    }
}

fn facts(id: &str, caller: &str, start: NaiveDateTime, cdrs: &[&str]) -> CallFacts {
    CallFacts {
        id: id.into(),
        device: "om".into(),
        direction: Direction::Inbound,
        forwarded_out: false,
        caller: caller.into(),
        callee: "200".into(),
        extensions: vec!["200".into(), "201".into()],
        answered_by: Some("200".into()),
        trunk: Some("9001".into()),
        route: "IP".into(),
        start,
        end: start + chrono::Duration::seconds(60),
        talk_seconds: 50,
        billable_seconds: 60,
        answered: true,
        leg_cdr_ids: cdrs.iter().map(|c| c.to_string()).collect(),
        billed_number: Some("013800138000".into()),
    }
}

fn by_cdr_id(a: &Leg, b: &Leg) -> std::cmp::Ordering {
    a.cdr_id.cmp(&b.cdr_id)
}

fn store_legs(tx: &Tx, legs: &[Leg]) -> Result<Vec<i64>> {
    legs.iter()
        .enumerate()
        .map(|(i, l)| {
            calls::store_leg_for_test(tx, "om", 1_714_990_000_000 + i as i64, l, chrono_tz::UTC)
        })
        .collect()
}

/// Runs `steps` on both backends and asserts they gave the same lines.
fn same_on_both(test: &str, steps: fn(&Tx) -> Result<Vec<String>>) {
    let mut got: Vec<(Backend, Vec<String>)> = Vec::new();
    each_backend(test, |backend, store| {
        let lines = store.writer.write_blocking(steps).expect("steps");
        got.push((backend, lines));
    });
    for (backend, lines) in &got[1..] {
        assert_eq!(
            lines, &got[0].1,
            "{test}: {backend:?} differs from {:?}",
            got[0].0
        );
    }
}

#[test]
fn calls_rows_links_and_legs_are_the_same_on_both_backends() {
    same_on_both("calls_rows", |tx| {
        let mut out = Vec::new();
        let t = at(9, 0, 0);
        let ids = store_legs(
            tx,
            &[
                leg("a", Some("v1"), t, 60),
                leg("b", Some("v1"), t, 40),
                leg("c", Some("v1"), t, 30),
                leg("d", None, at(10, 0, 0), 20),
            ],
        )?;
        let [a, b, c, d] = ids[..] else {
            panic!("four legs: {ids:?}")
        };
        assert!(a < b && b < c && c < d, "ids in insertion order: {ids:?}");
        let links = |l: &[(i64, &str)]| -> Vec<(i64, String)> {
            l.iter().map(|(i, s)| (*i, s.to_string())).collect()
        };
        let s1 = calls::put_call(
            tx,
            None,
            &facts("A", "0123", t, &["a", "b"]),
            &links(&[(a, "A"), (b, "B")]),
            5,
        )?;
        let s2 = calls::put_call(
            tx,
            None,
            &facts("D", "0456", at(10, 0, 0), &["d"]),
            &links(&[(d, "D")]),
            6,
        )?;
        assert_eq!((s1, s2), (1, 2), "new rows numbered from 1");
        assert_eq!(calls::call_seq_of_leg(tx, a)?, Some(s1));
        assert_eq!(calls::call_seq_of_leg(tx, c)?, None);
        assert_eq!(calls::leg_ids_of_seq(tx, s1)?, vec![a, b]);
        assert_eq!(calls::leg_ids_of_call(tx, "A")?, vec![a, b]);
        assert_eq!(calls::resolve_id(tx, "B")?.as_deref(), Some("A"));
        assert_eq!(calls::resolve_id(tx, "A")?.as_deref(), Some("A"));
        assert_eq!(calls::resolve_id(tx, "nope")?, None);
        // Rewritten in place under a new id, one leg added: the old links stay.
        let again = calls::put_call(
            tx,
            Some(s1),
            &facts("C", "0123", t, &["a", "b", "c"]),
            &links(&[(c, "C")]),
            7,
        )?;
        assert_eq!(again, s1);
        assert_eq!(calls::leg_ids_of_seq(tx, s1)?, vec![a, b, c]);
        assert_eq!(calls::resolve_id(tx, "A")?.as_deref(), Some("C"));
        assert_eq!(calls::leg_ids_of_call(tx, "A")?, Vec::<i64>::new());
        // Legs: in the order asked, a missing one skipped.
        let got = calls::call_legs_by_ids(tx, &[c, 999_999, a])?;
        assert_eq!(got.iter().map(|l| l.id).collect::<Vec<_>>(), vec![c, a]);
        assert_eq!(got[1].leg, leg("a", Some("v1"), t, 60));
        let page = calls::call_legs_page(tx, a, 2)?;
        assert_eq!(
            page.iter()
                .map(|(dev, l)| (dev.as_str(), l.id))
                .collect::<Vec<_>>(),
            vec![("om", b), ("om", c)]
        );
        let stored = calls::legs_by_ids(tx, &[d, a], &|_| chrono_tz::Europe::Paris)?;
        assert_eq!(stored.iter().map(|l| l.id).collect::<Vec<_>>(), vec![a, d]);
        assert_eq!(stored[0].time_start, "2024-05-06T09:00:00+02:00");
        let keys = ["v:v1".to_string()];
        calls::insert_keys(tx, "om", a, &keys, 100, 160)?;
        calls::insert_keys(tx, "om", a, &keys, 100, 160)?;
        assert_eq!(calls::candidates(tx, "om", &keys, 0, 200, 0)?, vec![a]);
        for l in &got {
            out.push(format!("{} {:?} {}", l.id, l.leg, l.received_ms));
        }
        for (dev, l) in &page {
            out.push(format!("{dev} {} {:?} {}", l.id, l.leg, l.received_ms));
        }
        for l in &stored {
            out.push(serde_json::to_string(l).expect("json"));
        }
        calls::delete_call(tx, s2)?;
        assert_eq!(calls::resolve_id(tx, "D")?, None);
        assert_eq!(calls::leg_ids_of_call(tx, "D")?, Vec::<i64>::new());
        // The last number, freed, is taken again (SQLite's rowid rule).
        let s3 = calls::put_call(tx, None, &facts("E", "0789", t, &["e"]), &[], 9)?;
        assert_eq!(s3, s2);
        calls::create_lookup_indexes(tx)?;
        calls::drop_lookup_indexes(tx)?;
        calls::create_lookup_indexes(tx)?;
        calls::clear(tx)?;
        assert_eq!(calls::leg_ids_of_seq(tx, s1)?, Vec::<i64>::new());
        assert_eq!(
            calls::candidates(tx, "om", &keys, 0, 200, 0)?,
            Vec::<i64>::new()
        );
        let after_clear = calls::put_call(
            tx,
            None,
            &facts("A", "0123", t, &["a"]),
            &links(&[(a, "A")]),
            8,
        )?;
        assert_eq!(after_clear, 1, "numbering starts again after a clear");
        Ok(out)
    });
}

/// Calls for the search: the same start for several (the cursor's tie is
/// broken by id), callers with letters of both cases, `%`, `_` and `\`.
fn search_calls(tx: &Tx) -> Result<()> {
    let callers = [
        ("k1", "Alice", at(8, 0, 0)),
        ("k0", "ALICE 5", at(8, 0, 0)),
        ("k2", "Émile", at(8, 0, 0)),
        ("k3", "50%_off", at(8, 30, 0)),
        ("k4", "a\\b", at(9, 0, 0)),
        ("k5", "5012", at(9, 30, 0)),
        ("k6", "émile", at(23, 59, 59)),
    ];
    for (i, (id, caller, start)) in callers.iter().enumerate() {
        let mut f = facts(id, caller, *start, &[id]);
        if i % 2 == 1 {
            f.direction = Direction::Outbound;
            f.answered = false;
            f.extensions = vec!["2011".into()];
        }
        calls::put_call(tx, None, &f, &[], 1_000 * i as i64)?;
    }
    Ok(())
}

#[test]
fn search_filters_order_and_pages_are_the_same_on_both_backends() {
    same_on_both("call_search", |tx| {
        search_calls(tx)?;
        let cfg = crate::config::Config::default();
        let view = CallView {
            cfg: &cfg,
            now_ms: 4_500,
        };
        let day = CallFilter {
            from: "2024-05-06 00:00:00".into(),
            to: "2024-05-07 00:00:00".into(),
            limit: 100,
            ..CallFilter::default()
        };
        let ids = |f: &CallFilter| -> Result<Vec<String>> {
            Ok(search_page(tx, f, &view)?
                .into_iter()
                .map(|c| c.id)
                .collect())
        };
        let with = |g: &dyn Fn(&mut CallFilter)| {
            let mut f = day.clone();
            g(&mut f);
            f
        };
        assert_eq!(ids(&day)?, ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]);
        // ASCII letters either case; other letters as they are.
        assert_eq!(
            ids(&with(&|f| f.number = Some("alice".into())))?,
            ["k0", "k1"]
        );
        assert_eq!(ids(&with(&|f| f.number = Some("émile".into())))?, ["k6"]);
        // `%` and `_` are wildcards, `\` is a character, as in SQLite's LIKE.
        assert_eq!(ids(&with(&|f| f.number = Some("5_1".into())))?, ["k5"]);
        assert_eq!(ids(&with(&|f| f.number = Some("0%o".into())))?, ["k3"]);
        assert_eq!(ids(&with(&|f| f.number = Some("a\\b".into())))?, ["k4"]);
        assert_eq!(
            ids(&with(&|f| f.ext = Some("2011".into())))?,
            ["k0", "k3", "k5"]
        );
        assert_eq!(
            ids(&with(&|f| f.ext = Some("201".into())))?,
            ["k1", "k2", "k4", "k6"]
        );
        assert_eq!(
            ids(&with(&|f| f.direction = Some("outbound".into())))?,
            ["k0", "k3", "k5"]
        );
        assert_eq!(
            ids(&with(&|f| f.answered = Some(true)))?,
            ["k1", "k2", "k4", "k6"]
        );
        assert_eq!(
            ids(&with(&|f| f.settled_before_ms = Some(2_000)))?,
            ["k0", "k1", "k2"]
        );
        assert_eq!(
            ids(&with(&|f| f.to = "2024-05-06 09:00:00".into()))?,
            ["k0", "k1", "k2", "k3"]
        );
        // Keyset pages of two, then the rest with no limit (the CLI's).
        let mut paged = Vec::new();
        let mut f = with(&|f| f.limit = 2);
        loop {
            let page = search_page(tx, &f, &view)?;
            let Some(last) = page.last() else { break };
            f.after = Some((last.start_local.clone(), last.id.clone()));
            paged.extend(page.iter().map(|c| c.id.clone()));
        }
        assert_eq!(paged, ids(&day)?);
        let rest = with(&|f| {
            f.limit = i64::MAX;
            f.after = Some(("2024-05-06 08:00:00".into(), "k1".into()));
        });
        assert_eq!(ids(&rest)?, ["k2", "k3", "k4", "k5", "k6"]);
        let mut out: Vec<String> = search_page(tx, &day, &view)?
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    serde_json::to_string(c).expect("json"),
                    c.start_local,
                    c.last_change_ms,
                    c.settled
                )
            })
            .collect();
        let one = call_detail::get(tx, "k3", &view)?.expect("k3");
        out.push(format!("{one:?}"));
        assert!(call_detail::get(tx, "nope", &view)?.is_none());
        Ok(out)
    });
}

fn visit(key: &str, kind: &str, party: &str, entered: NaiveDateTime) -> Visit {
    Visit {
        key: key.into(),
        device: "om".into(),
        group: "sales".into(),
        group_number: None,
        party_kind: kind.into(),
        party_id: party.into(),
        caller: Some("0123".into()),
        callid: None,
        entered_at: Utc.from_utc_datetime(&entered),
        entry_count: 1,
        outcome: Outcome::Waiting,
        agent: None,
        ended_at: None,
        wait_seconds: None,
    }
}

#[test]
fn queue_visits_and_call_details_are_the_same_on_both_backends() {
    same_on_both("queue_visits", |tx| {
        let t = at(9, 0, 0);
        let ids = store_legs(
            tx,
            &[
                leg("a", Some("v1"), t, 60),
                leg("b", Some("v1"), t + chrono::Duration::seconds(1), 60),
            ],
        )?;
        let links = vec![(ids[0], "A".to_string()), (ids[1], "B".to_string())];
        calls::put_call(tx, None, &facts("A", "0123", t, &["a", "b"]), &links, 5)?;
        let utc = chrono_tz::UTC;
        // Entered 5 s before the legs start: linked (the tolerance), to the
        // first leg by Cdr id.
        queues::upsert(
            tx,
            &visit("om:1", "visitor", "v1", t - chrono::Duration::seconds(5)),
            utc,
        )?;
        // 6 s before: not linked.
        queues::upsert(
            tx,
            &visit("om:2", "visitor", "v1", t - chrono::Duration::seconds(6)),
            utc,
        )?;
        queues::upsert(tx, &visit("om:3", "ext", "200", t), utc)?;
        queues::upsert(tx, &visit("om:4", "visitor", "v2", at(9, 1, 5)), utc)?;
        let mut ended = visit("om:3", "ext", "200", t);
        ended.outcome = Outcome::Answered;
        ended.agent = Some("201".into());
        ended.ended_at = Some(Utc.from_utc_datetime(&at(9, 0, 30)));
        ended.wait_seconds = Some(30.5);
        ended.group = "ignored on update".into();
        queues::upsert(tx, &ended, utc)?;
        // A leg of v2 ending 5 s before its entry links it; v1's linked one stays.
        queues::link_leg(tx, "om", "v2", at(8, 0, 0), at(9, 1, 0), "B")?;
        queues::link_leg(tx, "om", "v1", at(8, 0, 0), at(9, 1, 0), "X")?;
        let day = NaiveDate::from_ymd_opt(2024, 5, 6).expect("day");
        let all = queues::between(tx, day, day)?;
        let shown: Vec<(String, Option<String>)> = all
            .iter()
            .map(|v| (v.visit.key.clone(), v.call_id.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                ("om:2".to_string(), Some("X".to_string())),
                ("om:1".into(), Some("A".into())),
                ("om:3".into(), None),
                ("om:4".into(), Some("B".into())),
            ]
        );
        assert_eq!(all[2].visit.group, "sales");
        assert_eq!(all[2].visit.wait_seconds, Some(30.5));
        assert_eq!(all[2].visit.outcome, Outcome::Answered);
        let next = day.succ_opt().expect("day");
        assert!(queues::between(tx, next, next)?.is_empty());
        let of_call: Vec<String> = queues::of_call(tx, "A")?
            .into_iter()
            .map(|v| v.visit.key)
            .collect();
        assert_eq!(of_call, ["om:1", "om:4"]);
        let cfg = crate::config::Config::default();
        let view = CallView {
            cfg: &cfg,
            now_ms: 0,
        };
        let detail =
            call_detail::detail(tx, "B", &view, by_cdr_id, &[])?.expect("found by a leg's id");
        assert!(detail.merged_from);
        assert_eq!(detail.legs.len(), 2);
        assert!(call_detail::detail(tx, "nope", &view, by_cdr_id, &[])?.is_none());
        let mut out: Vec<String> = all
            .iter()
            .map(|v| serde_json::to_string(v).expect("json"))
            .collect();
        out.push(serde_json::to_string(&detail).expect("json"));
        queues::clear(tx)?;
        assert!(queues::between(tx, day, day)?.is_empty());
        Ok(out)
    });
}
