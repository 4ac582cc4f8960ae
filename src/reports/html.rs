//! The daily report as one self-contained HTML file: inline CSS, inline SVG
//! charts (hourly calls, answered vs missed, queue waits, top extensions,
//! peak concurrent calls) and every section as a table. No scripts, no
//! external assets: it can be mailed, archived and opened offline.

use std::fmt::Write as _;

use super::daily::DailyReport;
use super::svg::{bar_chart, escape, hbar_chart, Series};
use super::Table;

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;margin:1.5rem;color:#222;background:#fff}
h1{font-size:1.4rem;margin:0 0 .2rem} h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#666;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:7.5rem}
.card b{display:block;font-size:1.3rem} .card span{color:#666;font-size:.8rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
.chart .ct{font-size:13px;font-weight:600;fill:#222} .chart .ax{font-size:10px;fill:#555}
table{border-collapse:collapse;font-size:.85rem;margin-bottom:.5rem}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4} .empty{color:#888;font-style:italic}
@media print{.charts{display:block}}
"#;

const BLUE: &str = "#3b73b9";
const GREEN: &str = "#3c9a5f";
const RED: &str = "#c8553d";
const GREY: &str = "#8a8f98";

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><b>{}</b><span>{}</span></div>"#,
        escape(value),
        escape(label)
    );
}

fn minutes(secs: i64) -> String {
    format!("{:.1}", secs as f64 / 60.0)
}

fn table_html(out: &mut String, t: &Table) {
    if t.rows.is_empty() {
        out.push_str(r#"<p class="empty">No rows.</p>"#);
        return;
    }
    out.push_str("<table><thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for (i, row) in t.rows.iter().enumerate() {
        out.push_str("<tr>");
        for (c, v) in t.columns.iter().zip(row) {
            let class = if v.is_number() { r#" class="n""# } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(&t.text(i, c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn charts(r: &DailyReport) -> String {
    let mut out = String::from(r#"<div class="charts">"#);
    if let Some(t) = r.section("hourly_profile") {
        let labels: Vec<String> = (0..t.rows.len()).map(|i| t.text(i, "hour")).collect();
        let col = |c: &str| (0..t.rows.len()).map(|i| t.num(i, c)).collect::<Vec<_>>();
        out.push_str(&bar_chart(
            "Calls by hour",
            &labels,
            &[
                Series::new("answered", GREEN, col("answered")),
                Series::new("missed", RED, col("missed")),
            ],
            true,
        ));
    }
    if let Some(t) = r.section("daily_summary") {
        let rows: Vec<usize> = (0..t.rows.len())
            .filter(|&i| t.text(i, "direction") != "all")
            .collect();
        let labels: Vec<String> = rows.iter().map(|&i| t.text(i, "direction")).collect();
        let col = |c: &str| rows.iter().map(|&i| t.num(i, c)).collect::<Vec<_>>();
        out.push_str(&bar_chart(
            "Answered vs missed by direction",
            &labels,
            &[
                Series::new("answered", GREEN, col("answered")),
                Series::new("missed", RED, col("missed")),
            ],
            false,
        ));
    }
    if let Some(t) = r.section("queues").filter(|t| !t.rows.is_empty()) {
        let labels: Vec<String> = (0..t.rows.len())
            .map(|i| {
                let n = t.text(i, "group_number");
                if n.is_empty() {
                    format!("group {}", t.text(i, "group"))
                } else {
                    format!("{} ({})", t.text(i, "group"), n)
                }
            })
            .collect();
        let col = |c: &str| (0..t.rows.len()).map(|i| t.num(i, c)).collect::<Vec<_>>();
        out.push_str(&bar_chart(
            "Queue waits (seconds)",
            &labels,
            &[
                Series::new("average speed of answer", BLUE, col("asa_seconds")),
                Series::new("average wait", GREY, col("avg_wait_seconds")),
                Series::new("longest wait", RED, col("max_wait_seconds")),
            ],
            false,
        ));
    }
    if let Some(t) = r.section("per_extension") {
        let mut items: Vec<(String, f64)> = (0..t.rows.len())
            .map(|i| (t.text(i, "extension"), t.num(i, "calls")))
            .collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items.truncate(10);
        out.push_str(&hbar_chart("Top extensions (calls)", &items, BLUE));
    }
    if let Some(t) = r.section("peak_concurrent") {
        let labels: Vec<String> = (0..t.rows.len()).map(|i| t.text(i, "hour")).collect();
        let vals = (0..t.rows.len())
            .map(|i| t.num(i, "peak_concurrent"))
            .collect();
        out.push_str(&bar_chart(
            "Peak concurrent calls",
            &labels,
            &[Series::new("peak", BLUE, vals)],
            true,
        ));
    }
    out.push_str("</div>");
    out
}

/// The whole HTML document.
pub fn render(r: &DailyReport) -> String {
    let h = &r.headline;
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Daily call report {d}</title><style>{STYLE}</style></head><body><h1>Daily call report {d}</h1><p class="meta">Device-local day {d}. Settled calls only (no change for {s} s). Generated {g}. Queue service level: answered within {sla} s.</p><div class="cards">"#,
        d = r.date,
        s = r.settle_seconds,
        g = escape(&r.generated_at),
        sla = r.sla_seconds
    );
    card(&mut out, "calls", &h.calls.to_string());
    card(&mut out, "answered", &h.answered.to_string());
    card(&mut out, "missed", &h.missed.to_string());
    card(&mut out, "talk minutes", &minutes(h.talk_seconds));
    card(&mut out, "billable minutes", &minutes(h.billable_seconds));
    card(&mut out, "peak concurrent", &h.peak_concurrent.to_string());
    card(
        &mut out,
        "queued / answered",
        &format!("{} / {}", h.queue_entered, h.queue_answered),
    );
    card(
        &mut out,
        "recordings fetched / missing / failed",
        &format!(
            "{} / {} / {}",
            h.recordings_fetched, h.recordings_missing, h.recordings_failed
        ),
    );
    out.push_str("</div>");
    out.push_str(&charts(r));
    for s in &r.sections {
        let _ = write!(
            out,
            r#"<h2 id="{}">{}</h2>"#,
            escape(&s.name),
            escape(&s.title)
        );
        table_html(&mut out, &s.table);
    }
    out.push_str("</body></html>\n");
    out
}
