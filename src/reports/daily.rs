//! The daily report (docs/reports.md): one device-local day of settled calls —
//! totals by direction, hourly profile, peak concurrent calls, per extension,
//! per trunk, queue figures, recording coverage and the recordings that are
//! missing. Each section is one named report of the catalog run for that day,
//! so `report run NAME` and the daily report always agree.

use std::io::Write;

use chrono::NaiveDate;
use serde::Serialize;

use super::{Catalog, Params, ReportError, Result, Table};
use crate::store::reports::ReportReader;

/// (report name, section title), in the order shown.
pub const SECTIONS: &[(&str, &str)] = &[
    ("daily_summary", "Totals by direction"),
    ("hourly_profile", "Calls by hour"),
    ("peak_concurrent", "Peak concurrent calls per hour"),
    ("per_extension", "Per extension"),
    ("per_trunk", "Per trunk"),
    ("queues", "Queues"),
    ("recording_coverage", "Recording coverage"),
    ("recordings_missing", "Recordings missing or failed"),
];

/// Output formats of the daily report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DailyFormat {
    Csv,
    Json,
    Html,
}

impl std::str::FromStr for DailyFormat {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<DailyFormat> {
        match s {
            "csv" => Ok(DailyFormat::Csv),
            "json" => Ok(DailyFormat::Json),
            "html" => Ok(DailyFormat::Html),
            other => Err(ReportError::Format(other.to_string())),
        }
    }
}

impl DailyFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            DailyFormat::Csv => "text/csv; charset=utf-8",
            DailyFormat::Json => "application/json",
            DailyFormat::Html => "text/html; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            DailyFormat::Csv => "csv",
            DailyFormat::Json => "json",
            DailyFormat::Html => "html",
        }
    }
}

/// The figures at the top of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Headline {
    pub calls: i64,
    pub answered: i64,
    pub missed: i64,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    pub peak_concurrent: i64,
    pub queue_entered: i64,
    pub queue_answered: i64,
    pub recordings: i64,
    pub recordings_fetched: i64,
    pub recordings_missing: i64,
    pub recordings_failed: i64,
}

/// One section: a named report's rows for the day.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub title: String,
    pub table: Table,
}

#[derive(Debug, Clone)]
pub struct DailyReport {
    pub date: NaiveDate,
    /// RFC 3339 UTC.
    pub generated_at: String,
    pub settle_seconds: i64,
    pub sla_seconds: i64,
    pub headline: Headline,
    pub sections: Vec<Section>,
}

impl DailyReport {
    pub fn section(&self, name: &str) -> Option<&Table> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.table)
    }
}

fn sum(t: Option<&Table>, col: &str) -> i64 {
    t.map_or(0, |t| (0..t.rows.len()).map(|r| t.num(r, col) as i64).sum())
}

fn headline(r: &DailyReport) -> Headline {
    let summary = r.section("daily_summary");
    let all = summary.and_then(|t| (0..t.rows.len()).find(|&i| t.text(i, "direction") == "all"));
    let pick = |col: &str| match (summary, all) {
        (Some(t), Some(i)) => t.num(i, col) as i64,
        _ => 0,
    };
    let peak = r.section("peak_concurrent");
    let cov = r.section("recording_coverage");
    Headline {
        calls: pick("calls"),
        answered: pick("answered"),
        missed: pick("missed"),
        talk_seconds: pick("talk_seconds"),
        billable_seconds: pick("billable_seconds"),
        peak_concurrent: peak.map_or(0, |t| {
            (0..t.rows.len())
                .map(|i| t.num(i, "peak_concurrent") as i64)
                .max()
                .unwrap_or(0)
        }),
        queue_entered: sum(r.section("queues"), "entered"),
        queue_answered: sum(r.section("queues"), "answered"),
        recordings: sum(cov, "recordings"),
        recordings_fetched: sum(cov, "fetched"),
        recordings_missing: sum(cov, "missing"),
        recordings_failed: sum(cov, "failed"),
    }
}

/// Runs every section for `p.from` (the report covers `p.from..=p.to`, one day in practice).
pub fn build<'c>(
    db: impl Into<ReportReader<'c>>,
    catalog: &Catalog,
    p: &Params,
    settle_seconds: i64,
    generated_at: String,
) -> Result<DailyReport> {
    let db: ReportReader<'c> = db.into();
    let mut sections = Vec::with_capacity(SECTIONS.len());
    for (name, title) in SECTIONS {
        let report = catalog.get(name)?;
        sections.push(Section {
            name: name.to_string(),
            title: title.to_string(),
            table: Table::query(db, report, p)?,
        });
    }
    let mut r = DailyReport {
        date: p.from,
        generated_at,
        settle_seconds,
        sla_seconds: p.sla_seconds,
        headline: Headline::default(),
        sections,
    };
    r.headline = headline(&r);
    Ok(r)
}

/// The report as JSON: `{date, …, headline, sections: [{name, title, columns, rows: [{col: value}]}]}`.
pub fn to_json(r: &DailyReport) -> serde_json::Value {
    let sections: Vec<serde_json::Value> = r
        .sections
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "title": s.title,
                "columns": s.table.columns,
                "rows": s.table.objects(),
            })
        })
        .collect();
    serde_json::json!({
        "date": r.date,
        "generated_at": r.generated_at,
        "settle_seconds": r.settle_seconds,
        "sla_seconds": r.sla_seconds,
        "headline": r.headline,
        "sections": sections,
    })
}

/// Writes the report as JSON (see [`to_json`]).
pub fn write_json(r: &DailyReport, out: &mut dyn Write) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_json(r))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the report as CSV: each section starts with its own header row whose
/// first field is `section`; every data row starts with the section's name.
pub fn write_csv(r: &DailyReport, out: &mut dyn Write, bom: bool) -> Result<()> {
    if bom {
        out.write_all(super::run::BOM)?;
    }
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
    w.write_record(["section", "date", "generated_at"])?;
    w.write_record(["report", &r.date.to_string(), &r.generated_at])?;
    for s in &r.sections {
        w.write_field("section")?;
        for c in &s.table.columns {
            w.write_field(c)?;
        }
        w.write_record(None::<&[u8]>)?;
        for (i, _) in s.table.rows.iter().enumerate() {
            w.write_field(&s.name)?;
            for c in &s.table.columns {
                w.write_field(super::run::spreadsheet_safe(&s.table.text(i, c)).as_ref())?;
            }
            w.write_record(None::<&[u8]>)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Writes the report in `format`.
pub fn write(r: &DailyReport, format: DailyFormat, out: &mut dyn Write) -> Result<()> {
    match format {
        DailyFormat::Csv => write_csv(r, out, false),
        DailyFormat::Json => write_json(r, out),
        DailyFormat::Html => {
            out.write_all(super::html::render(r).as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DailyReport {
        let rows = "INSERT INTO calls VALUES (1,'a','d','inbound',0,'138','888','[\"200\"]','200','888','IP',
               '2024-01-08 09:00:00','2024-01-08 09:01:40',100,0,1,2,0,NULL);
             INSERT INTO calls VALUES (2,'b','d','outbound',0,'200','139','[\"200\"]',NULL,'888','IP',
               '2024-01-08 09:00:30','2024-01-08 09:02:00',0,50,0,1,0,'139');";
        let d = NaiveDate::from_ymd_opt(2024, 1, 8).expect("date");
        let p = Params::new(d, d, 1_000_000, 120, 20).expect("params");
        crate::store::reports::with_scratch_archive(rows, |db| {
            build(
                db,
                &Catalog::embedded().expect("catalog"),
                &p,
                120,
                "now".into(),
            )
        })
        .expect("builds")
    }

    #[test]
    fn build_fills_headline() {
        let h = report().headline;
        assert_eq!(
            (
                h.calls,
                h.answered,
                h.missed,
                h.talk_seconds,
                h.peak_concurrent
            ),
            (2, 1, 1, 100, 2)
        );
    }

    #[test]
    fn write_csv_sections_parse_back() {
        let mut out = Vec::new();
        write_csv(&report(), &mut out, false).expect("csv");
        let mut rd = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(&out[..]);
        let rows: Vec<csv::StringRecord> = rd
            .records()
            .collect::<std::result::Result<_, _>>()
            .expect("parses");
        let summary: Vec<_> = rows.iter().filter(|r| &r[0] == "daily_summary").collect();
        assert_eq!(summary.len(), 3);
        assert_eq!(
            rows.iter().filter(|r| &r[0] == "section").count(),
            SECTIONS.len() + 1
        );
    }

    #[test]
    fn write_json_has_every_section() {
        let mut out = Vec::new();
        write_json(&report(), &mut out).expect("json");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid");
        assert_eq!(v["sections"].as_array().map(Vec::len), Some(SECTIONS.len()));
        assert_eq!(v["headline"]["calls"], 2);
        assert_eq!(v["sections"][0]["rows"][0]["direction"], "inbound");
    }
}
