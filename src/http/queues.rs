//! `GET /api/queues/visits` and `GET /api/queues/summary`.

use axum::extract::State;
use axum::Json;

use super::auth::{Caller, Perm};
use super::error::Query;
use super::legs::Range;
use super::{AppError, AppState};
use crate::query::date_range;
use crate::queues::{agent_counts, figures, Visit};
use crate::store::queues as db;

pub async fn visits(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Range>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), st.cfg.default_tz())?;
    let devices = caller.devices.clone();
    let rows = st
        .store
        .read(move |c| db::between_of(c, from, to, &devices))
        .await?;
    Ok(Json(serde_json::json!({ "visits": rows })))
}

pub async fn summary(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Range>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let tz = st.cfg.default_tz();
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), tz)?;
    let devices = caller.devices.clone();
    let rows = st
        .store
        .read(move |c| db::between_of(c, from, to, &devices))
        .await?;
    let visits: Vec<Visit> = rows.into_iter().map(|v| v.visit).collect();
    let groups = figures(&visits, tz, st.cfg.queues.sla_seconds);
    let agents = agent_counts(&visits, tz);
    Ok(Json(
        serde_json::json!({ "groups": groups, "agents": agents, "sla_seconds": st.cfg.queues.sla_seconds }),
    ))
}
