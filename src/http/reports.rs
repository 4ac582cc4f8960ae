//! `GET /reports/daily?date=&format=` (Perm::Reports) and
//! `GET /export/billing.csv?from=&to=[&per_leg=1][&bom=1][&tariffs=1]` and
//! `GET /export/billing.xlsx?…` (same rows, Perm::Billing). The billing CSV
//! is streamed from a blocking task through a bounded channel, so memory
//! stays flat whatever the range. Every request is a row of the audit log
//! (an export's once its last byte is out; docs/operations.md "Audit log").

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::AuditCtx;
use super::auth::{Caller, Perm};
use super::error::Query;
use super::{stream, AppError, AppState};
use crate::audit::Action;
use crate::reports::billing::{self, BillingOptions};
use crate::reports::daily::{self, DailyFormat};
use crate::reports::tariffs::Tariffs;
use crate::reports::{run, Catalog, Params, ReportError};
use crate::store::audit::Entry;

impl From<ReportError> for AppError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::BadDate(_)
            | ReportError::Range { .. }
            | ReportError::Format(_)
            | ReportError::TooManyRows { .. }
            | ReportError::Unknown { .. }
            | ReportError::NotReadOnly { .. } => AppError::BadRequest(e.to_string()),
            ReportError::DeviceLimited { .. } => AppError::Refused(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "yes" | "on"))
}

/// The report parameters of `caller`: limited to its devices, if it is.
fn params(
    st: &AppState,
    caller: &Caller,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Params, AppError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut p = Params::new(
        from,
        to,
        now_ms,
        st.cfg.calls.settle_seconds,
        st.cfg.queues.sla_seconds,
    )?;
    p.scratch_dir = Some(st.cfg.data_dir.clone());
    p.devices = caller.devices.clone();
    Ok(p)
}

fn catalog(st: &AppState) -> Result<Catalog, AppError> {
    Ok(Catalog::load(Some(&st.cfg.data_dir.join("reports")))?)
}

#[derive(Debug, Deserialize)]
pub struct DailyQuery {
    pub date: Option<String>,
    pub format: Option<String>,
}

/// The daily report; each request is a row of the audit log, whatever
/// its outcome (docs/operations.md "Audit log").
pub async fn daily(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    Query(q): Query<DailyQuery>,
) -> Response {
    let asked = q.date.as_deref().unwrap_or("yesterday");
    let day = run::resolve_day(asked, st.cfg.default_tz())
        .map(|d| d.to_string())
        .unwrap_or_else(|_| asked.to_string());
    let target = format!("daily {day} {}", q.format.as_deref().unwrap_or("html"));
    let resp = daily_of(&caller, &st, q).await.into_response();
    audit.record(&caller, Action::ReportDaily, target, resp.status());
    resp
}

async fn daily_of(caller: &Caller, st: &AppState, q: DailyQuery) -> Result<Response, AppError> {
    caller.require(Perm::Reports)?;
    let date = run::resolve_day(
        q.date.as_deref().unwrap_or("yesterday"),
        st.cfg.default_tz(),
    )?;
    let format: DailyFormat = q.format.as_deref().unwrap_or("html").parse()?;
    let p = params(st, caller, date, date)?;
    let cat = catalog(st)?;
    let settle = st.cfg.calls.settle_seconds;
    let (generated, _) = crate::store::now_stamp();
    let body = st
        .store
        .read(move |c| {
            Ok(daily::build(c, &cat, &p, settle, generated).and_then(|r| {
                let mut out = Vec::new();
                daily::write(&r, format, &mut out).map(|_| out)
            }))
        })
        .await??;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

#[derive(Debug, Deserialize)]
pub struct BillingQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub per_leg: Option<String>,
    pub bom: Option<String>,
    /// Apply `<data_dir>/tariffs.csv`.
    pub tariffs: Option<String>,
}

/// What both billing downloads need, checked before any byte is written:
/// the range and options, the audit row to write once the last byte is out,
/// and the file name offered.
struct Export {
    p: Params,
    opts: BillingOptions,
    cat: Catalog,
    row: Option<Entry>,
    auditor: crate::audit::Auditor,
    name: String,
}

async fn billing_request(
    caller: &Caller,
    audit: &AuditCtx,
    st: &AppState,
    q: &BillingQuery,
    target: &str,
    ext: &str,
) -> Result<Export, AppError> {
    caller.require(Perm::Billing)?;
    let (from, to) =
        crate::query::date_range(q.from.as_deref(), q.to.as_deref(), st.cfg.default_tz())?;
    let p = params(st, caller, from, to)?;
    let tariffs = if flag(&q.tariffs) {
        let path = st.cfg.data_dir.join("tariffs.csv");
        if !path.is_file() {
            return Err(AppError::NotFound(
                "no tariffs.csv in the data directory".into(),
            ));
        }
        Some(Tariffs::from_file(&path)?)
    } else {
        None
    };
    let opts = BillingOptions {
        per_leg: flag(&q.per_leg),
        bom: flag(&q.bom),
        tariffs,
    };
    let cat = catalog(st)?;
    let (c2, p2, o2) = (cat.clone(), p.clone(), opts.clone());
    st.store
        .read(move |c| Ok(billing::check(c, &c2, &p2, &o2)))
        .await??;
    Ok(Export {
        row: audit.entry(
            caller,
            Action::BillingExport,
            target.to_string(),
            StatusCode::OK,
        ),
        auditor: audit.auditor.clone(),
        name: billing::file_name(&p, &opts, ext),
        p,
        opts,
        cat,
    })
}

fn attachment(content_type: &str, name: &str) -> [(header::HeaderName, String); 3] {
    [
        (header::CONTENT_TYPE, content_type.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ]
}

/// `GET /export/billing.xlsx`: the same rows as the CSV in an Excel
/// workbook. The rows are written to the worksheet's temporary file first,
/// so every failure (too many rows included) is still a status code; then
/// the zip is streamed as it is made, and memory stays flat.
pub async fn billing_xlsx(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    Query(q): Query<BillingQuery>,
) -> Response {
    let target = billing_target("billing.xlsx", &st, &q);
    let r = billing_xlsx_of(&caller, &audit, &st, &q, &target).await;
    answered(&caller, &audit, target, r)
}

async fn billing_xlsx_of(
    caller: &Caller,
    audit: &AuditCtx,
    st: &AppState,
    q: &BillingQuery,
    target: &str,
) -> Result<Response, AppError> {
    let x = billing_request(caller, audit, st, q, target, "xlsx").await?;
    let (p, opts, cat) = (x.p.clone(), x.opts.clone(), x.cat.clone());
    let (rows, sheet) = st
        .store
        .read(move |c| Ok(billing::xlsx_rows(c, &cat, &p, &opts)))
        .await??;
    let (mut w, body) = stream::channel();
    let who = caller.name.clone();
    let name = x.name.clone();
    tokio::task::spawn_blocking(move || {
        let done = sheet
            .finish(&mut w)
            .map(|()| rows)
            .map_err(|e| e.to_string());
        finished(x, w, &who, "billing export (xlsx)", done);
    });
    Ok((attachment(XLSX_TYPE, &name), body).into_response())
}

/// The media type of an .xlsx file.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub async fn billing_csv(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    Query(q): Query<BillingQuery>,
) -> Response {
    let target = billing_target("billing.csv", &st, &q);
    let r = billing_csv_of(&caller, &audit, &st, &q, &target).await;
    answered(&caller, &audit, target, r)
}

async fn billing_csv_of(
    caller: &Caller,
    audit: &AuditCtx,
    st: &AppState,
    q: &BillingQuery,
    target: &str,
) -> Result<Response, AppError> {
    let x = billing_request(caller, audit, st, q, target, "csv").await?;
    let (mut w, body) = stream::channel();
    let store = st.store.clone();
    let who = caller.name.clone();
    let name = x.name.clone();
    tokio::task::spawn_blocking(move || {
        // The store's error (no connection) and the export's (a failed
        // row or write) end the body the same way.
        let done = store
            .read_blocking(|c| Ok(billing::write(c, &x.cat, &x.p, &x.opts, &mut w)))
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        finished(x, w, &who, "billing export", done);
    });
    Ok((attachment("text/csv; charset=utf-8", &name), body).into_response())
}

/// The end of a streamed export: logged, the body cut when it stopped
/// short (the client sees an incomplete download, not a complete-looking
/// file), and its audit row written with the rows sent or why it stopped.
fn finished(x: Export, w: stream::ChannelWriter, who: &str, what: &str, done: Result<u64, String>) {
    match &done {
        Ok(rows) => {
            tracing::info!(rows, from = %x.p.from, to = %x.p.to, caller = %who, "{what}");
        }
        Err(e) => {
            tracing::warn!(error = %e, "{what} stopped");
            w.abort("billing export failed");
        }
    }
    export_done(&x.auditor, x.row, done);
}

/// The answer to an export request: the stream, or the error's answer,
/// recorded in the audit log (an export refused before its first byte).
fn answered(
    caller: &Caller,
    audit: &AuditCtx,
    target: String,
    r: Result<Response, AppError>,
) -> Response {
    r.unwrap_or_else(|e| {
        let resp = e.into_response();
        audit.record(caller, Action::BillingExport, target, resp.status());
        resp
    })
}

/// The audit target of a billing export: the file and its days (as asked
/// when they do not parse).
fn billing_target(file: &str, st: &AppState, q: &BillingQuery) -> String {
    let mut t =
        match crate::query::date_range(q.from.as_deref(), q.to.as_deref(), st.cfg.default_tz()) {
            Ok((from, to)) => format!("{file} {from}..{to}"),
            Err(_) => format!(
                "{file} {}..{}",
                q.from.as_deref().unwrap_or(""),
                q.to.as_deref().unwrap_or("")
            ),
        };
    for (on, name) in [(&q.per_leg, "per_leg"), (&q.tariffs, "tariffs")] {
        if flag(on) {
            t.push(' ');
            t.push_str(name);
        }
    }
    t
}

/// Records a streamed export once its last byte is out (or it stopped):
/// 200 with the rows sent, or 500 with why it stopped (the client got a
/// cut file).
fn export_done(auditor: &crate::audit::Auditor, row: Option<Entry>, done: Result<u64, String>) {
    let Some(mut row) = row else { return };
    let detail = match done {
        Ok(rows) => format!("{rows} rows"),
        Err(e) => {
            row.status = 500;
            format!("stopped: {e}")
        }
    };
    auditor.record(crate::audit::with_detail(row, detail));
}
