//! Report figures on a simulated day equal the figures computed from the
//! simulator's truth: calls by direction, answered/missed, talk and billable
//! seconds, per trunk, answering extensions, hourly profile, peak concurrency.

use std::collections::BTreeMap;

use callvault::reports::{Catalog, Params, Table};
use callvault::sim::TruthCall;

use crate::reports_util::{day, simulated_day, start};
use crate::util::{get, token};

fn params() -> Params {
    Params::new(
        day(),
        day(),
        chrono::Utc::now().timestamp_millis() + 1000,
        0,
        20,
    )
    .expect("params")
}

fn run(conn: &rusqlite::Connection, name: &str) -> Table {
    let cat = Catalog::embedded().expect("catalog");
    Table::query(conn, cat.get(name).expect("report"), &params()).expect(name)
}

#[derive(Debug, Default, PartialEq)]
struct Fig {
    calls: i64,
    answered: i64,
    missed: i64,
    talk: i64,
    billable: i64,
}

fn truth_by(
    calls: &[TruthCall],
    key: impl Fn(&TruthCall) -> Option<String>,
) -> BTreeMap<String, Fig> {
    let mut m: BTreeMap<String, Fig> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.start.date() == day()) {
        let Some(k) = key(c) else { continue };
        let f = m.entry(k).or_default();
        f.calls += 1;
        f.answered += i64::from(c.answered);
        f.missed += i64::from(!c.answered);
        f.talk += c.talk_seconds;
        f.billable += c.billable_seconds;
    }
    m
}

fn table_by(t: &Table, key: &str, skip: Option<&str>) -> BTreeMap<String, Fig> {
    (0..t.rows.len())
        .filter(|&i| skip != Some(t.text(i, key).as_str()))
        .map(|i| {
            let n = |c: &str| t.num(i, c) as i64;
            (
                t.text(i, key),
                Fig {
                    calls: n("calls"),
                    answered: n("answered"),
                    missed: n("missed"),
                    talk: n("talk_seconds"),
                    billable: n("billable_seconds"),
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_summary_equals_truth_by_direction() {
    let ts = start().await;
    let plan = simulated_day(&ts, 7, 240).await;
    let conn = ts.db();
    let got = table_by(&run(&conn, "daily_summary"), "direction", Some("all"));
    let want = truth_by(&plan.truth.calls, |c| Some(c.direction.clone()));
    assert_eq!(want.len(), 4, "all four directions simulated: {want:?}");
    assert_eq!(got, want);

    let total = run(&conn, "daily_summary");
    let all = (0..total.rows.len())
        .find(|&i| total.text(i, "direction") == "all")
        .expect("all row");
    let n_today = plan
        .truth
        .calls
        .iter()
        .filter(|c| c.start.date() == day())
        .count();
    assert_eq!(total.num(all, "calls") as usize, n_today);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_trunk_and_answering_extensions_equal_truth() {
    let ts = start().await;
    let plan = simulated_day(&ts, 11, 200).await;
    let conn = ts.db();
    let mut got = table_by(&run(&conn, "per_trunk"), "trunk", None);
    for f in got.values_mut() {
        f.missed = f.calls - f.answered;
    }
    let want = truth_by(&plan.truth.calls, |c| {
        c.trunk.clone().filter(|t| !t.is_empty())
    });
    assert!(!want.is_empty());
    assert_eq!(got, want);

    let ext = run(&conn, "per_extension");
    let got: BTreeMap<String, i64> = (0..ext.rows.len())
        .map(|i| (ext.text(i, "extension"), ext.num(i, "answered") as i64))
        .filter(|(_, n)| *n > 0)
        .collect();
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for c in plan.truth.calls.iter().filter(|c| c.start.date() == day()) {
        if let Some(a) = &c.answered_by {
            *want.entry(a.clone()).or_default() += 1;
        }
    }
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_profile_and_peak_concurrent_equal_truth() {
    let ts = start().await;
    let plan = simulated_day(&ts, 3, 240).await;
    let conn = ts.db();
    let today: Vec<&TruthCall> = plan
        .truth
        .calls
        .iter()
        .filter(|c| c.start.date() == day())
        .collect();
    assert!(today.len() > 200);

    let hourly = run(&conn, "hourly_profile");
    assert_eq!(hourly.rows.len(), 24);
    for h in 0..24usize {
        let want = today
            .iter()
            .filter(|c| chrono::Timelike::hour(&c.start) as usize == h)
            .count();
        assert_eq!(hourly.num(h, "calls") as usize, want, "hour {h}");
    }

    // Brute force: at each start instant, how many calls are up (start <= t < end).
    let peak = run(&conn, "peak_concurrent");
    assert_eq!(peak.rows.len(), 24);
    for h in 0..24u32 {
        let hs = day().and_hms_opt(h, 0, 0).expect("hour");
        let he = hs + chrono::Duration::hours(1);
        let up =
            |t: chrono::NaiveDateTime| today.iter().filter(|c| c.start <= t && t < c.end).count();
        let mut want = up(hs);
        for c in &today {
            if c.start >= hs && c.start < he {
                want = want.max(up(c.start));
            }
        }
        assert_eq!(
            peak.num(h as usize, "peak_concurrent") as usize,
            want,
            "hour {h}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_report_over_http_matches_truth_and_is_self_contained() {
    let ts = start().await;
    let plan = simulated_day(&ts, 5, 150).await;
    let today: Vec<&TruthCall> = plan
        .truth
        .calls
        .iter()
        .filter(|c| c.start.date() == day())
        .collect();
    let tok = token(&ts, "reports").await;

    let (status, body) = get(
        ts.api(),
        "/reports/daily?date=2024-01-08&format=json",
        Some(&tok),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let h = &v["headline"];
    assert_eq!(h["calls"], today.len());
    assert_eq!(h["answered"], today.iter().filter(|c| c.answered).count());
    assert_eq!(h["missed"], today.iter().filter(|c| !c.answered).count());
    assert_eq!(
        h["talk_seconds"],
        today.iter().map(|c| c.talk_seconds).sum::<i64>()
    );

    let (status, html) = get(
        ts.api(),
        "/reports/daily?date=2024-01-08&format=html",
        Some(&tok),
    )
    .await;
    assert_eq!(status, 200);
    let html = String::from_utf8(html).expect("utf-8");
    assert!(html.matches("<svg").count() >= 4, "charts inline");
    let external = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !external.contains("http://") && !external.contains("https://"),
        "no external assets"
    );
    assert!(!external.contains("<script"), "no scripts");

    let (status, csv) = get(
        ts.api(),
        "/reports/daily?date=2024-01-08&format=csv",
        Some(&tok),
    )
    .await;
    assert_eq!(status, 200);
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(&csv[..]);
    assert!(rd.records().all(|r| r.is_ok()));

    let qa = token(&ts, "qa").await;
    assert_eq!(
        get(ts.api(), "/reports/daily?date=2024-01-08", Some(&qa))
            .await
            .0,
        403
    );
    assert_eq!(
        get(ts.api(), "/reports/daily?date=2024-02-31", Some(&tok))
            .await
            .0,
        400
    );
    assert_eq!(
        get(
            ts.api(),
            "/reports/daily?date=2024-01-08&format=pdf",
            Some(&tok)
        )
        .await
        .0,
        400
    );
}
