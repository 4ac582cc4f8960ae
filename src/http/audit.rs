//! The audit log at the API edge (docs/operations.md "Audit log"):
//! the layer that records every 401/403/429 of this listener, the [`AuditCtx`]
//! handlers use to record what a caller read, and `GET /api/audit`
//! (admins only, `Perm::Audit`). Rows are written without the request
//! waiting (`crate::audit::record`); nothing on this listener changes or
//! deletes them (every route but the session's answers GET only).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;

use super::auth::{Caller, Perm};
use super::error::Query;
use super::{AppError, AppState};
use crate::audit::filter::{filter_of, AuditQuery};
use crate::audit::{self, Action, Auditor, View, Who};
use crate::store::audit::{self as rows, Entry};

/// What handlers record with: the listener's [`Auditor`] and the
/// request's peer address. Put on every request by [`layer`].
#[derive(Clone)]
pub struct AuditCtx {
    pub auditor: Auditor,
    pub ip: Option<String>,
}

impl AuditCtx {
    /// Who `caller` is, from this request.
    pub fn who(&self, caller: &Caller) -> Who {
        Who::token(&caller.name, &caller.role, self.ip.clone())
    }

    /// Records `action` on `target` by `caller` with the response's
    /// `status`. 401 and 403 are left to the refusals' row ([`layer`]),
    /// so a refusal is counted once.
    pub fn record(&self, caller: &Caller, action: Action, target: String, status: StatusCode) {
        if let Some(e) = self.entry(caller, action, target, status) {
            self.auditor.record(e);
        }
    }

    /// The row [`AuditCtx::record`] would write, if any.
    pub fn entry(
        &self,
        caller: &Caller,
        action: Action,
        target: String,
        status: StatusCode,
    ) -> Option<Entry> {
        if is_refusal(status) {
            return None;
        }
        Some(audit::entry(
            action,
            &self.who(caller),
            target,
            i64::from(status.as_u16()),
        ))
    }
}

fn is_refusal(status: StatusCode) -> bool {
    // 429: an address slowed for bad credentials (`throttle.rs`).
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status == StatusCode::TOO_MANY_REQUESTS
}

impl<S: Send + Sync> FromRequestParts<S> for AuditCtx {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<AuditCtx>()
            .cloned()
            .ok_or_else(|| AppError::Internal("the audit layer is not installed".into()))
    }
}

/// The state of [`layer`]: the app (to name the caller of a 403) and the auditor.
#[derive(Clone)]
pub struct LayerState {
    pub app: AppState,
    pub auditor: Auditor,
}

/// Gives each request its [`AuditCtx`], and records a 401 or 403 answer
/// as a refusal: collapsed with the others of its address and minute
/// (`audit::refusals`). A 403 names its caller (the token was valid); a
/// 401 has none. The route goes in the row, its query string never (it
/// may hold `?token=`).
pub async fn layer(State(s): State<LayerState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical().to_string());
    req.extensions_mut().insert(AuditCtx {
        auditor: s.auditor.clone(),
        ip: ip.clone(),
    });
    let route = format!("{} {}", req.method(), req.uri().path());
    // Kept to name the caller of a 403 (the request itself is gone by then).
    let (headers, uri) = (req.headers().clone(), req.uri().clone());
    let resp = next.run(req).await;
    let status = resp.status();
    if is_refusal(status) {
        let mut who = Who {
            ip,
            ..Default::default()
        };
        if status == StatusCode::FORBIDDEN {
            let mut parts = Request::new(()).into_parts().0;
            (parts.headers, parts.uri) = (headers, uri);
            if let Ok(c) = Caller::from_request_parts(&mut parts, &s.app).await {
                (who.actor, who.role) = (Some(c.name), Some(c.role));
            }
        }
        s.auditor.refused(audit::entry(
            Action::Refused,
            &who,
            route,
            i64::from(status.as_u16()),
        ));
    }
    resp
}

/// `GET /api/audit?actor=&action=&from=&to=&cursor=&limit=`: newest first,
/// `{"entries": [...], "next_cursor": ...}` (null on the last page).
pub async fn list(
    caller: Caller,
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    caller.require(Perm::Audit)?;
    let mut f = filter_of(&q, st.cfg.default_tz()).map_err(AppError::BadRequest)?;
    let limit = f.limit;
    f.limit += 1; // one more tells whether there is a next page
    let mut found = st.store.read(move |tx| rows::list(tx, &f)).await?;
    let next = if found.len() as i64 > limit {
        found.truncate(limit as usize);
        found.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let entries: Vec<View> = found.into_iter().map(View::from).collect();
    Ok(Json(
        serde_json::json!({ "entries": entries, "next_cursor": next }),
    ))
}
