//! Helpers of the report tests: a test server whose archive holds simulated
//! traffic pushed through the real ingest path, with calls built by the same
//! code `rebuild` uses, settled at once (settle_seconds = 0).

#![allow(dead_code)]

use std::sync::Arc;

use callvault::config::Config;
use callvault::sim::{generate, Plan, SimConfig};
use chrono::NaiveDate;

use crate::util::{self, TestServer};

pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 8).expect("date")
}

/// The configuration the test server runs with (settle at once).
pub fn config(ts: &TestServer) -> Arc<Config> {
    let mut cfg = util::test_config(ts.dir.path());
    cfg.calls.settle_seconds = 0;
    Arc::new(cfg)
}

pub async fn start() -> TestServer {
    util::start_with(|c| c.calls.settle_seconds = 0).await
}

/// Pushes one body through the real ingest path; panics unless stored.
pub async fn push(ts: &TestServer, body: &str) {
    push_with(&ingestor(ts), body).await
}

/// The real ingest pipeline (with its live hooks) over the test server's archive.
pub fn ingestor(ts: &TestServer) -> callvault::ingest::Ingestor {
    callvault::server::ingestor(&ts.running.store, &config(ts))
        .expect("ingestor")
        .0
}

/// Pushes one body through `ing`; panics unless stored.
pub async fn push_with(ing: &callvault::ingest::Ingestor, body: &str) {
    let reply = ing.accept(util::incoming(body)).await;
    assert_eq!(
        reply.status, 200,
        "push refused: {:?}\n{body}",
        reply.reason
    );
}

/// Waits until the pushes answered so far are derived (legs, calls, visits).
pub async fn derived(ts: &TestServer) {
    ts.running.store.writer.drain().await.expect("derive");
}

/// Recomputes the calls from the stored legs (what `rebuild` does).
pub async fn rebuild(ts: &TestServer) {
    derived(ts).await;
    let store = ts.running.store.clone();
    tokio::task::spawn_blocking(move || {
        callvault::calls::live::rebuild_store(
            &store,
            callvault::calls::live::REBUILD_BATCH_LEGS,
            &mut |_, _| {},
        )
    })
    .await
    .expect("join")
    .expect("rebuild");
}

/// One simulated day of traffic (starting 08:00 on [`day`]), pushed and grouped.
pub async fn simulated_day(ts: &TestServer, seed: u64, calls: usize) -> Plan {
    let sim = SimConfig {
        seed,
        calls,
        start: day().and_hms_opt(8, 0, 0).expect("time"),
        calls_per_hour: 60.0,
        ..SimConfig::default()
    };
    let plan = generate(&sim);
    let ing = ingestor(ts);
    for p in &plan.pushes {
        push_with(&ing, &p.body).await;
    }
    rebuild(ts).await;
    plan
}

/// A CDR leg document (manual §2.6 shape); `cpn` is inserted as is (XML-escape it yourself).
#[allow(clippy::too_many_arguments)]
pub fn cdr(
    id: &str,
    ty: &str,
    outer: &str,
    cpn: &str,
    cdpn: &str,
    start: &str,
    end: &str,
    duration: i64,
) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="{id}">
  <callid>{id}</callid>
  <outer id="{outer}" />
  <TimeStart>{start}</TimeStart>
  <Type>{ty}</Type>
  <Route>IP</Route>
  <CPN>{cpn}</CPN>
  <CDPN>{cdpn}</CDPN>
  <TimeEnd>{end}</TimeEnd>
  <Duration>{duration}</Duration>
  <TrunkNumber>02161205555</TrunkNumber>
</Cdr>
"#
    )
}

/// Reads the first worksheet of an .xlsx file: its cells, and whether any
/// cell holds a formula.
pub fn xlsx_cells(bytes: &[u8]) -> (Vec<Vec<calamine::Data>>, bool) {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec()))
            .expect("an .xlsx file");
    let name = book.sheet_names()[0].clone();
    let cells = book
        .worksheet_range(&name)
        .expect("sheet")
        .rows()
        .map(<[calamine::Data]>::to_vec)
        .collect();
    let formulas = book
        .worksheet_formula(&name)
        .expect("formulas")
        .cells()
        .any(|(_, _, f)| !f.is_empty());
    (cells, formulas)
}

/// The workbook's cells say what the CSV says, typed: text as text (the CSV
/// may carry it with the leading `'` of a neutralised formula), numbers as
/// numbers, `YYYY-MM-DD[ HH:MM:SS]` as dates, NULL as empty. Returns the
/// header.
pub fn assert_xlsx_matches_csv(cells: &[Vec<calamine::Data>], csv: &[u8]) -> Vec<String> {
    use calamine::{Data, DataType};
    let mut rd = csv::Reader::from_reader(csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv));
    let names: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("record")).collect();
    let header: Vec<String> = cells[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(header, names);
    assert_eq!(cells.len(), rows.len() + 1, "header and the CSV's rows");
    for (row, want) in cells[1..].iter().zip(&rows) {
        // calamine ends a row at its last cell; the rest are empty.
        for (i, name) in names.iter().enumerate() {
            let cell = row.get(i).unwrap_or(&Data::Empty);
            let csv = &want[i];
            let same = match cell {
                Data::String(s) => s == csv || format!("'{s}") == csv,
                Data::Float(f) => csv.parse::<f64>().ok() == Some(*f),
                Data::DateTime(_) => {
                    let t = cell.as_datetime().expect("a date");
                    let form = if csv.len() == 10 {
                        "%Y-%m-%d"
                    } else {
                        "%Y-%m-%d %H:%M:%S"
                    };
                    t.format(form).to_string() == csv
                }
                Data::Empty => csv.is_empty(),
                other => panic!("{name}: unexpected cell {other:?}"),
            };
            assert!(same, "{name}: xlsx {cell:?}, csv {csv:?}");
        }
    }
    header
}

/// Runs the callvault binary on the data directory `data` (calls settle at
/// once, so a test's calls are in the billing files).
pub fn callvault<S: AsRef<std::ffi::OsStr>>(
    data: &std::path::Path,
    args: &[S],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .env("CALLVAULT_CALLS_SETTLE_SECONDS", "0")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run callvault")
}
