//! `callvault report list | run | daily` end to end, and every reports/*.sql
//! running on a simulated archive (with recordings and queue visits rows).

use std::path::Path;

use callvault::reports::{run, Catalog, Params};

use crate::reports_util::{
    assert_xlsx_matches_csv, callvault, day, simulated_day, start, xlsx_cells,
};

#[test]
fn report_list_shows_every_sql_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = callvault(dir.path(), &["report", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let reports = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    let mut n = 0;
    for f in std::fs::read_dir(reports).expect("reports dir") {
        let p = f.expect("entry").path();
        if p.extension().is_some_and(|x| x == "sql") {
            let stem = p.file_stem().and_then(|s| s.to_str()).expect("stem");
            assert!(
                text.lines().any(|l| l.starts_with(stem)),
                "{stem} not listed:\n{text}"
            );
            n += 1;
        }
    }
    assert!(n >= 10);
}

#[test]
fn report_daily_bad_date_exits_non_zero_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("daily.html");
    let o = out_file.to_str().expect("utf-8 path");
    for bad in ["2024-13-45", "tomorrow-ish", ""] {
        let out = callvault(dir.path(), &["report", "daily", "--date", bad, "-o", o]);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid date"), "{err}");
    }
    assert!(!out_file.exists());
    let out = callvault(
        dir.path(),
        &["report", "run", "no_such_report", "--from", "2024-01-08"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown report"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_runs_on_a_simulated_archive() {
    let ts = start().await;
    simulated_day(&ts, 9, 150).await;
    // Recording rows in every status, conversation figures of the done ones, and
    // queue visits, so every join is exercised.
    let conn = ts.db();
    conn.execute_batch(
        "INSERT OR REPLACE INTO recordings (leg_id, device, path, codec, status, attempts, due_ms, last_error, updated_at)
           SELECT id, device, recording, rec_codec,
                  CASE id % 4 WHEN 0 THEN 'done' WHEN 1 THEN 'missing' WHEN 2 THEN 'failed' ELSE 'pending' END,
                  id % 4, 0, CASE id % 4 WHEN 2 THEN 'HTTP 500 from recorder' END, '2024-01-08T10:00:00Z'
           FROM legs WHERE recording IS NOT NULL;
         INSERT OR REPLACE INTO conversations (recording_id, status, agent_talk_seconds,
             customer_talk_seconds, talk_ratio, overtalk_seconds, longest_silence_seconds,
             silence_seconds, interruptions, agent_first_word_seconds, segments, computed_at)
           SELECT id, 'ok', 10.5, 8.25, 0.56, 1.5, 3.25, 6.0, 2, 0.75, '[]', '2024-01-08T10:00:00Z'
           FROM recordings WHERE status = 'done';
         INSERT OR REPLACE INTO queue_visits (key, device, grp, group_number, party_kind, party_id, entered_at,
             entered_local, entry_count, outcome, agent, wait_seconds)
           VALUES ('d:1', 'd', '6', '600', 'visitor', '1', '2024-01-08T02:00:00Z', '2024-01-08 10:00:00', 1, 'answered', '201', 12),
                  ('d:2', 'd', '6', '600', 'visitor', '2', '2024-01-08T02:01:00Z', '2024-01-08 10:01:00', 2, 'answered', '202', 30),
                  ('d:3', 'd', '6', '600', 'visitor', '3', '2024-01-08T02:02:00Z', '2024-01-08 10:02:00', 3, 'abandoned', NULL, 8),
                  ('d:4', 'd', '6', NULL, 'visitor', '4', '2024-01-08T02:03:00Z', '2024-01-08 10:03:00', 0, 'rejected_full', NULL, 0);",
    )
    .expect("fixture rows");

    let p = Params::new(
        day(),
        day(),
        chrono::Utc::now().timestamp_millis() + 1000,
        0,
        20,
    )
    .expect("params");
    let cat = Catalog::embedded().expect("catalog");
    for r in cat.list() {
        let mut out = Vec::new();
        let n =
            run::write_json(&conn, r, &p, &mut out).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(n as usize), "{}", r.name);
        let mut csv_out = Vec::new();
        run::write_csv(&conn, r, &p, &mut csv_out, false)
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
        assert!(n > 0, "{} gave no rows on a busy day", r.name);
        // The workbook of every report says what its CSV says, typed.
        let mut xlsx = Vec::new();
        let rows =
            run::write_xlsx(&conn, r, &p, &mut xlsx).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        assert_eq!(rows, n, "{}", r.name);
        let (cells, formulas) = xlsx_cells(&xlsx);
        assert!(!formulas, "{}", r.name);
        assert_xlsx_matches_csv(&cells, &csv_out);
    }

    let q = run::Table::query(&conn, cat.get("queues").expect("queues"), &p).expect("queues");
    assert_eq!(
        (
            q.num(0, "entered"),
            q.num(0, "answered"),
            q.num(0, "abandoned"),
            q.num(0, "rejected")
        ),
        (4.0, 2.0, 1.0, 1.0)
    );
    assert_eq!(
        (
            q.num(0, "asa_seconds"),
            q.num(0, "max_wait_seconds"),
            q.num(0, "service_level")
        ),
        (21.0, 30.0, 0.5)
    );
    let missing =
        run::Table::query(&conn, cat.get("recordings_missing").expect("r"), &p).expect("r");
    assert!((0..missing.rows.len()).any(|i| missing.text(i, "reason") == "HTTP 500 from recorder"));
    assert!((0..missing.rows.len())
        .all(|i| ["missing", "failed"].contains(&missing.text(i, "status").as_str())));

    // The same through the CLI, and the daily report written to a file.
    let data = ts.dir.path();
    let out = callvault(
        data,
        &[
            "report",
            "run",
            "daily_summary",
            "--from",
            "2024-01-08",
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v.as_array().is_some_and(|a| a.len() >= 5));
    let html = data.join("daily.html");
    let out = callvault(
        data,
        &[
            "report",
            "daily",
            "--date",
            "2024-01-08",
            "--format",
            "html",
            "-o",
            html.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&html).expect("html written");
    assert!(text.contains("<svg") && text.contains("Recordings missing or failed"));

    // `-o FILE.xlsx` picks the workbook; it matches the CSV of the same run.
    let xlsx = data.join("per_extension.xlsx");
    let args = ["report", "run", "per_extension", "--from", "2024-01-08"];
    let out = callvault(
        data,
        &[&args[..], &["-o", xlsx.to_str().expect("utf-8")]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = callvault(data, &args);
    assert!(csv.status.success());
    let (cells, _) = xlsx_cells(&std::fs::read(&xlsx).expect("xlsx written"));
    assert_xlsx_matches_csv(&cells, &csv.stdout);
}
