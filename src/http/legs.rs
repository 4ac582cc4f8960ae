//! `GET /api/legs?from=&to=`: the stored CDR legs of device-local days.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::{Caller, Perm};
use super::error::Query;
use super::{AppError, AppState};
use crate::query::date_range;
use crate::store::legs;

/// The query of the day-range routes (legs, queue visits and figures).
#[derive(Debug, Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<i64>,
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
    let devices = caller.devices.clone();
    let rows = st
        .store
        .read(move |c| legs::between(c, (from, to), &devices, limit, &|d| cfg.device_tz(d)))
        .await?;
    Ok(Json(serde_json::json!({ "legs": rows })))
}
