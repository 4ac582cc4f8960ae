//! `GET /api/calls` (search with cursor paging) and `GET /api/calls/{id}`.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::auth::{Caller, Perm};
use super::error::{Path, Query};
use super::legs::date_range;
use super::{AppError, AppState};
use crate::store::calls::{self as db, CallFilter};
use crate::store::legs::LOCAL_FMT;

#[derive(Debug, Deserialize)]
pub struct Search {
    pub from: Option<String>,
    pub to: Option<String>,
    pub number: Option<String>,
    pub ext: Option<String>,
    pub direction: Option<String>,
    pub answered: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn encode_cursor(start_local: &str, id: &str) -> String {
    B64.encode(format!("{start_local}\n{id}"))
}

fn decode_cursor(c: &str) -> Result<(String, String), AppError> {
    let bad = || AppError::BadRequest("invalid cursor".into());
    let bytes = B64.decode(c).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (a, b) = s.split_once('\n').ok_or_else(bad)?;
    Ok((a.to_string(), b.to_string()))
}

/// Turns query parameters into a store filter (shared by the CLI).
pub fn filter_from(q: &Search, tz: chrono_tz::Tz) -> Result<CallFilter, AppError> {
    let (from, to) = date_range(q.from.as_deref(), q.to.as_deref(), tz)?;
    let answered = match q.answered.as_deref() {
        None | Some("") => None,
        Some("1" | "true" | "yes") => Some(true),
        Some("0" | "false" | "no") => Some(false),
        Some(o) => {
            return Err(AppError::BadRequest(format!(
                "answered must be true or false, not {o:?}"
            )))
        }
    };
    if let Some(d) = q.direction.as_deref().filter(|d| !d.is_empty()) {
        if !["inbound", "outbound", "internal", "callback"].contains(&d) {
            return Err(AppError::BadRequest(format!(
                "direction must be inbound, outbound, internal or callback, not {d:?}"
            )));
        }
    }
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
    Ok(CallFilter {
        from: from
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .format(LOCAL_FMT)
            .to_string(),
        to: (to + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .format(LOCAL_FMT)
            .to_string(),
        number: nonempty(&q.number),
        ext: nonempty(&q.ext),
        direction: nonempty(&q.direction),
        answered,
        settled_before_ms: None,
        after: q
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    })
}

pub async fn search(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<Search>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let mut f = filter_from(&q, st.cfg.default_tz())?;
    let limit = f.limit;
    f.limit += 1; // one more tells whether there is a next page
    let cfg = st.cfg.clone();
    let settle_ms = cfg.calls.settle_seconds * 1000;
    let mut rows = st
        .store
        .read(move |c| {
            let now = chrono::Utc::now().timestamp_millis();
            let mut out = Vec::new();
            db::search(c, &f, &mut |r| {
                out.push(db::call_from_row(r, &|d| cfg.device_tz(d), now, settle_ms)?);
                Ok(())
            })?;
            Ok(out)
        })
        .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|c| encode_cursor(&c.start_local, &c.id))
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "calls": rows, "next_cursor": next }),
    ))
}

pub async fn detail(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::ReadCalls)?;
    let cfg = st.cfg.clone();
    let settle_ms = cfg.calls.settle_seconds * 1000;
    let found = st
        .store
        .read(move |c| {
            let Some(cur) = db::resolve_id(c, &id)? else {
                return Ok(None);
            };
            let now = chrono::Utc::now().timestamp_millis();
            let tz = |d: &str| cfg.device_tz(d);
            let Some(call) = db::get(c, &cur, &tz, now, settle_ms)? else {
                return Ok(None);
            };
            let leg_ids = db::leg_ids_of_call(c, &cur)?;
            let mut legs = db::legs_by_ids(c, &leg_ids, &tz)?;
            legs.sort_by(|a, b| crate::calls::leg_order(&a.leg, &b.leg));
            let recs = db::recordings_of_call(c, &cur)?;
            let visits = crate::store::queues::of_call(c, &cur)?;
            Ok(Some((call, legs, recs, visits, id != cur)))
        })
        .await?;
    let (call, legs, recs, visits, redirected) =
        found.ok_or_else(|| AppError::NotFound("no such call".into()))?;
    let mut v = serde_json::to_value(&call).map_err(|e| AppError::Internal(e.to_string()))?;
    v["legs"] = serde_json::to_value(&legs).map_err(|e| AppError::Internal(e.to_string()))?;
    v["recordings"] = serde_json::to_value(&recs).map_err(|e| AppError::Internal(e.to_string()))?;
    v["queue_visits"] =
        serde_json::to_value(&visits).map_err(|e| AppError::Internal(e.to_string()))?;
    if redirected {
        v["merged_from"] = serde_json::Value::Bool(true);
    }
    Ok(Json(v))
}
