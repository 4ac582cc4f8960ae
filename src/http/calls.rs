//! `GET /api/calls` (search with cursor paging, and the total of all
//! pages), `GET /api/calls/{id}` and its timeline `GET /api/calls/{id}/events`.
//! The query's parameters are parsed by `crate::query` (shared with the
//! CLI); the rows and the detail come typed from the store.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::audit::AuditCtx;
use super::auth::{Caller, Perm};
use super::error::{Path, Query};
use super::{AppError, AppState};
use crate::audit::Action;
use crate::query::{encode_cursor, filter_from, Search};
use crate::store::call_detail;
use crate::store::call_search::{self, CallView, TOTAL_CAP};

pub async fn search(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Search>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let mut f = filter_from(&q, st.cfg.default_tz())?;
    f.devices = caller.devices.clone();
    let limit = f.limit;
    f.limit += 1; // one more tells whether there is a next page
    let cfg = st.cfg.clone();
    let (mut rows, total) = st
        .store
        .read(move |c| {
            let view = CallView::now(&cfg);
            let rows = call_search::search_page(c, &f, &view)?;
            Ok((rows, call_search::count(c, &f, TOTAL_CAP)?))
        })
        .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|c| encode_cursor(&c.start_local, &c.id))
    } else {
        None
    };
    // `total`: every call the filters match (all pages), counted up to
    // TOTAL_CAP; `total_capped` says the real number is larger.
    Ok(Json(serde_json::json!({
        "calls": rows,
        "next_cursor": next,
        "total": total,
        "total_capped": total >= TOTAL_CAP,
    })))
}

/// `GET /api/calls/{id}`; every view is a row of the audit log
/// (docs/operations.md "Audit log"), found or not.
pub async fn detail(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let target = format!("call {id}");
    let resp = detail_of(&caller, st, id).await.into_response();
    audit.record(&caller, Action::CallView, target, resp.status());
    resp
}

async fn detail_of(
    caller: &Caller,
    st: AppState,
    id: String,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let cfg = st.cfg.clone();
    let devices = caller.devices.clone();
    // A call of a device the token is not limited to is "no such call"
    // (404, not 403), so its id tells nothing.
    let mut found = st
        .store
        .read(move |c| {
            let view = CallView::now(&cfg);
            call_detail::detail(c, &id, &view, crate::calls::leg_order, &devices)
        })
        .await?
        .ok_or_else(|| AppError::NotFound("no such call".into()))?;
    if !caller.may(Perm::Diagnostics) {
        found.hide_error_text();
    }
    // Through a `Value`: its keys are sorted, as this route has always sent them.
    Ok(Json(serde_json::to_value(&found)?))
}

/// `GET /api/calls/{id}/events`: the call's timeline (docs/calls.md
/// "Timeline"), with the rights of `GET /api/calls/{id}`: another
/// device's call, for a device-limited token, is 404 as an unknown one.
pub async fn events(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::calls::timeline::Timeline>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let cfg = st.cfg.clone();
    let devices = caller.devices.clone();
    st.store
        .read(move |c| {
            let view = CallView::now(&cfg);
            crate::calls::timeline::of_call(c, &id, &view, &devices)
        })
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound("no such call".into()))
}
