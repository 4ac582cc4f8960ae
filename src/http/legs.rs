//! `GET /api/legs?from=&to=`: the stored CDR legs of device-local days.

use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;

use super::auth::{Caller, Perm};
use super::error::Query;
use super::{AppError, AppState};
use crate::store::legs;

#[derive(Debug, Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<i64>,
}

/// Parses `from`/`to` (`YYYY-MM-DD`, device local; `to` inclusive; either
/// missing = the other; both missing = today in the default zone).
pub fn date_range(
    from: Option<&str>,
    to: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let parse = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| AppError::BadRequest(format!("invalid date {s:?}: expected YYYY-MM-DD")))
    };
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let (f, t) = match (from, to) {
        (Some(f), Some(t)) => (parse(f)?, parse(t)?),
        (Some(f), None) => (parse(f)?, parse(f)?),
        (None, Some(t)) => (parse(t)?, parse(t)?),
        (None, None) => (today, today),
    };
    if t < f {
        return Err(AppError::BadRequest("`to` is before `from`".into()));
    }
    Ok((f, t))
}

pub async fn list(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Range>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), st.cfg.default_tz())?;
    let limit = q.limit.unwrap_or(10_000).clamp(1, 100_000);
    let cfg = st.cfg.clone();
    let rows = st
        .store
        .read(move |c| legs::between(c, from, to, limit, &|d| cfg.device_tz(d)))
        .await?;
    Ok(Json(serde_json::json!({ "legs": rows })))
}
