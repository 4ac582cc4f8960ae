//! The `queues` report (SQL, what finance and the daily report read) and the
//! queue figures of `/api/queues/summary` (Rust, `queues::figures`) say the
//! same thing about the same visits, and their counts equal the simulator's
//! truth. Two implementations of one definition: this test keeps them one.

use std::collections::BTreeMap;

use callvault::queues::figures;
use callvault::reports::{Catalog, Params, Table};
use callvault::sim::{generate, Scenario, SimConfig};

use crate::reports_util::{day, ingestor, push_with, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_report_equals_rust_figures_and_truth() {
    let ts = start().await;
    let plan = generate(&SimConfig {
        seed: 5,
        calls: 120,
        start: day().and_hms_opt(9, 0, 0).expect("time"),
        calls_per_hour: 240.0,
        scenarios: vec![
            Scenario::QueueAnswered,
            Scenario::QueueAbandoned,
            Scenario::QueueRejectedOffline,
            Scenario::QueueRejectedFull,
        ],
        ..SimConfig::default()
    });
    let ing = ingestor(&ts);
    for p in &plan.pushes {
        push_with(&ing, &p.body).await;
    }
    // Pushed now, so visits are dated by today's receive time (events carry no time).
    let tz = chrono_tz::Asia::Shanghai;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let conn = ts.db();
    let cat = Catalog::embedded().expect("catalog");
    let params =
        Params::new(today, today, chrono::Utc::now().timestamp_millis(), 0, 20).expect("params");
    let t =
        Table::query(&conn, cat.get("queues").expect("queues report"), &params).expect("report");
    let visits: Vec<_> =
        callvault::store::queues::between(&callvault::store::Tx::on_sqlite(&conn), today, today)
            .expect("visits")
            .into_iter()
            .map(|v| v.visit)
            .collect();
    let rust: BTreeMap<String, _> = figures(&visits, tz, 20)
        .into_iter()
        .map(|f| (f.group.clone(), f))
        .collect();

    let mut truth: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for v in &plan.truth.visits {
        let e = truth.entry(v.group.clone()).or_default();
        e[0] += 1;
        match v.outcome.as_str() {
            "answered" => e[1] += 1,
            "abandoned" => e[2] += 1,
            _ => e[3] += 1,
        }
    }
    assert_eq!(t.rows.len(), truth.len(), "one row per group: {:?}", t.rows);
    assert!(truth.len() >= 2, "several groups simulated");
    for i in 0..t.rows.len() {
        let g = t.text(i, "group");
        let n = |c: &str| t.num(i, c) as i64;
        let want = truth[&g];
        assert_eq!(
            [n("entered"), n("answered"), n("abandoned"), n("rejected")],
            want,
            "group {g} vs truth"
        );
        let f = &rust[&g];
        assert_eq!(n("entered"), f.entered, "group {g}");
        assert_eq!(n("answered"), f.answered);
        assert_eq!(n("abandoned"), f.abandoned);
        assert_eq!(n("rejected"), f.rejected_offline + f.rejected_full);
        assert_eq!(n("unknown"), f.unknown);
        assert_eq!(n("peak_queue_length"), f.peak_queue_length);
        assert_eq!(n("rejected_offline"), f.rejected_offline);
        assert_eq!(n("rejected_full"), f.rejected_full);
        assert_eq!(n("short_abandons"), f.short_abandons);
        let close = |col: &str, want: Option<f64>, tol: f64| {
            let got = t.cell_f64(i, col);
            match (got, want) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= tol,
                    "group {g} {col}: report {a} vs figures {b}"
                ),
                (a, b) => assert_eq!(
                    a.is_some(),
                    b.is_some(),
                    "group {g} {col}: report {a:?} vs figures {b:?}"
                ),
            }
        };
        close("asa_seconds", f.asa_seconds, 0.051);
        close("avg_wait_seconds", f.avg_wait_seconds, 0.051);
        close("max_wait_seconds", f.max_wait_seconds, 0.051);
        close("service_level", f.service_level, 0.0006);
        close("abandon_rate", f.abandon_rate, 0.0006);
        close("service_level_inclusive", f.service_level_inclusive, 0.0006);
    }
}
