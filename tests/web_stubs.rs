//! Stand-ins for API routes other branches add (`/api/calls`, `/api/calls/{id}`,
//! `/api/calls/{id}/recording`), used by the Chromium test ONLY when the real
//! router does not have them yet. Minimal: token checked, whole-file responses.

#![allow(dead_code)]

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use callvault::http::auth::{Caller, Perm};
use callvault::http::{AppError, AppState};
use callvault::store::calls::{self as db, CallFilter};

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/calls", get(list))
        .route("/api/calls/{id}", get(one))
        .route("/api/calls/{id}/recording", get(recording))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct Q {
    from: String,
    to: String,
    number: Option<String>,
    ext: Option<String>,
    direction: Option<String>,
    answered: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(caller: Caller, State(st): State<AppState>, Query(q): Query<Q>) -> Response {
    if let Err(e) = caller.require(Perm::ReadCalls) {
        return e.into_response();
    }
    let next_day =
        chrono::NaiveDate::parse_from_str(&q.to, "%Y-%m-%d").map(|d| d.succ_opt().unwrap_or(d));
    let Ok(next_day) = next_day else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let f = CallFilter {
        from: q.from.clone(),
        to: next_day.to_string(),
        number: q.number.filter(|s| !s.is_empty()),
        ext: q.ext.filter(|s| !s.is_empty()),
        direction: q.direction.filter(|s| !s.is_empty()),
        answered: q.answered,
        settled_before_ms: None,
        after: q.cursor.and_then(|c| {
            c.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        }),
        limit: limit + 1,
    };
    let cfg = st.cfg.clone();
    let rows = st
        .store
        .read(move |c| {
            let mut out = Vec::new();
            let now = chrono::Utc::now().timestamp_millis();
            db::search(c, &f, &mut |r| {
                out.push(db::call_from_row(r, &|d| cfg.device_tz(d), now, 0)?);
                Ok(())
            })?;
            Ok(out)
        })
        .await
        .unwrap_or_default();
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = more
        .then(|| rows.last().map(|r| format!("{}|{}", r.start_local, r.id)))
        .flatten();
    Json(serde_json::json!({"calls": rows, "next_cursor": next})).into_response()
}

fn detail(
    c: &rusqlite::Connection,
    id: &str,
    cfg: &callvault::config::Config,
) -> callvault::store::Result<serde_json::Value> {
    let now = chrono::Utc::now().timestamp_millis();
    let call = c
        .prepare(&format!(
            "SELECT {} FROM calls WHERE id = ?1",
            db::CALL_COLS
        ))?
        .query_row([id], |r| {
            db::call_from_row(r, &|d| cfg.device_tz(d), now, 0)
        })?;
    let ids = db::leg_ids_of_call(c, id)?;
    let legs = db::legs_by_ids(c, &ids, &|d| cfg.device_tz(d))?;
    let mut recs = Vec::new();
    for l in &ids {
        let mut st = c.prepare("SELECT id, leg_id, path, codec, status, attempts, last_error, file FROM recordings WHERE leg_id = ?1")?;
        let mut rows = st.query([l])?;
        while let Some(r) = rows.next()? {
            recs.push(serde_json::json!({
                "id": r.get::<_, i64>(0)?, "leg_id": r.get::<_, i64>(1)?, "path": r.get::<_, String>(2)?,
                "codec": r.get::<_, Option<String>>(3)?, "status": r.get::<_, String>(4)?,
                "attempts": r.get::<_, i64>(5)?, "last_error": r.get::<_, Option<String>>(6)?,
                "file": r.get::<_, Option<String>>(7)?,
            }));
        }
    }
    let mut v = serde_json::to_value(&call).unwrap_or_default();
    v["legs"] = serde_json::to_value(&legs).unwrap_or_default();
    v["recordings"] = serde_json::Value::Array(recs);
    Ok(v)
}

async fn one(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    caller.require(Perm::ReadCalls)?;
    let cfg = st.cfg.clone();
    Ok(match st.store.read(move |c| detail(c, &id, &cfg)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn recording(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    caller.require(Perm::Recordings)?;
    let cfg = st.cfg.clone();
    let found = st.store.read(move |c| detail(c, &id, &cfg)).await.ok();
    let file = found.as_ref().and_then(|v| {
        v["recordings"]
            .as_array()?
            .iter()
            .find(|r| r["status"] == "done")?["file"]
            .as_str()
            .map(str::to_string)
    });
    let Some(file) = file else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    Ok(
        match tokio::fs::read(st.cfg.recordings_dir().join(file)).await {
            Ok(bytes) => (
                [
                    (header::CONTENT_TYPE, "audio/wav"),
                    (header::ACCEPT_RANGES, "none"),
                ],
                bytes,
            )
                .into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        },
    )
}
