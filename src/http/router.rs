//! The API/web listener's router: the routes of `rights::RIGHTS` (who
//! may use each is said there), each with its handler ([`handler`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};

use super::auth::Perm;
use super::{
    audit, calls, devices, legs, live, queues, recordings, reports, rights, session, web, AppError,
};
use crate::config::Config;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cfg: Arc<Config>,
    /// Why the recording fetcher is paused (disk below `min_free_bytes`), if it is.
    pub recordings_paused: crate::recordings::PauseState,
    /// Where archived recordings are read from (`[recordings] store`).
    pub recordings: crate::recordings::storage::RecordingStore,
    /// The live wallboard's floor, kept by one task per server
    /// (`live::feed`), which `GET /api/live` streams.
    pub live: crate::live::Feed,
}

pub fn api_router(state: AppState) -> Router {
    // Every response to an authenticated request ends when its token is
    // revoked or expires (auth.rs).
    let auth = super::auth::AuthShared::new(state.store.clone());
    // Records 401/403 and hands handlers what they record reads with
    // (docs/operations.md "Audit log").
    let audit_layer = audit::LayerState {
        auditor: crate::audit::Auditor::start(state.store.clone()),
        app: state.clone(),
    };
    let mut router = Router::new();
    for r in rights::RIGHTS {
        router = router.route(r.path, handler(r.method, r.path));
    }
    router
        // Each request is checked against its route's row of the table
        // before its handler runs.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rights::enforce,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            super::auth::guard,
        ))
        // Inside the audit layer, so that its 429s are audited as refusals.
        .layer(axum::middleware::from_fn_with_state(
            super::throttle::Throttle::new(state.cfg.api.login_failures_per_minute),
            super::throttle::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            audit_layer,
            audit::layer,
        ))
        .layer(axum::middleware::from_fn(super::headers::security))
        .with_state(state)
}

/// The handler of `method` on `path`: only the rows of `rights::RIGHTS`
/// are asked for. A row without a handler here stops the server at its
/// start (every test that starts one would fail), never silently.
fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/healthz") => get(healthz),
        ("GET", "/metrics") => get(metrics),
        ("POST", "/api/session") => post(session::create),
        ("GET", "/api/session") => get(session::current),
        ("DELETE", "/api/session") => delete(session::delete),
        ("GET", "/api/legs") => get(legs::list),
        ("GET", "/api/calls") => get(calls::search),
        ("GET", "/api/calls/{id}") => get(calls::detail),
        ("GET", "/api/calls/{id}/events") => get(calls::events),
        ("GET", "/api/live") => get(live::stream),
        ("GET", "/live") => get(web::live_page),
        ("GET", "/api/queues/visits") => get(queues::visits),
        ("GET", "/api/queues/summary") => get(queues::summary),
        ("GET", "/api/calls/{id}/recording") => get(recordings::by_call),
        ("GET", "/api/recordings/{id}") => get(recordings::by_id),
        ("GET", "/") => get(web::index),
        ("GET", "/assets/{name}") => get(web::asset),
        ("GET", "/reports/daily") => get(reports::daily),
        ("GET", "/export/billing.csv") => get(reports::billing_csv),
        ("GET", "/export/billing.xlsx") => get(reports::billing_xlsx),
        ("GET", "/api/audit") => get(audit::list),
        ("GET", "/api/devices") => get(devices::list),
        ("GET", "/api/today") => get(web::today),
        ("GET", "/api/openapi.json") => get(super::openapi::get),
        _ => panic!("rights::RIGHTS lists {method} {path}, which has no handler in router.rs"),
    }
}

async fn healthz(State(st): State<AppState>) -> Response {
    if !st.store.writer.durable() {
        // Every push is being refused (503) until a restart: say so loudly.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "storage_failed",
                "reason": "an fsync of the archive's WAL failed; fix the disk and restart",
                "recordings_paused": st.recordings_paused.reason()})),
        )
            .into_response();
    }
    let figures = st
        .store
        .read(|c| {
            Ok((
                crate::store::pushes::derive_backlog(c)?,
                crate::store::devices::unregistered_count(c)?,
            ))
        })
        .await;
    // PostgreSQL: rows in a DEFAULT partition mean the monthly partitions
    // fell behind (nothing is lost; the operator should look).
    let default_rows: i64 = match st.store.default_partition_rows().await {
        Ok(rows) => rows.iter().map(|(_, n)| n).sum(),
        Err(e) => return AppError::Internal(e.to_string()).into_response(),
    };
    metrics::gauge!("callvault_default_partition_rows").set(default_rows as f64);
    match figures {
        // The backlog: pushes answered but not yet turned into legs/events
        // and calls (non-zero only during and just after a burst).
        // Unregistered senders: their pushes are kept but held out of
        // billing until `callvault devices add`. Ingest goes on while
        // recording fetching is paused (disk below its floor): still "ok",
        // with the reason for the operator.
        Ok((backlog, unregistered)) => {
            let mut body = serde_json::json!({"status": "ok",
                "derive_backlog": backlog, "unregistered_senders": unregistered,
                "recordings_paused": st.recordings_paused.reason()});
            if st.store.is_postgres() {
                body["backend"] = "postgres".into();
                body["default_partition_rows"] = default_rows.into();
                body["derives_here"] = st.store.writer.is_leader().into();
            }
            Json(body).into_response()
        }
        Err(e) => AppError::Internal(e.to_string()).into_response(),
    }
}

/// Prometheus text; no token needed from loopback, a reports/admin token otherwise.
async fn metrics(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Result<Response, AppError> {
    if !peer.ip().to_canonical().is_loopback() {
        let (mut parts, _) = req.into_parts();
        let caller =
            <super::auth::Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, &st,
            )
            .await?;
        caller.require(Perm::Reports)?;
    }
    match st.store.read(crate::store::pushes::derive_backlog).await {
        Ok(n) => metrics::gauge!("callvault_derive_backlog_pushes").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "could not read the derive backlog"),
    }
    let cfg = st.cfg.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    match st
        .store
        .read(move |c| crate::device_status::silent_count(&cfg, c, now_ms))
        .await
    {
        Ok(n) => metrics::gauge!("callvault_devices_silent").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "could not read the devices' silence"),
    }
    let body = crate::telemetry::metrics_handle().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// Every route of this API is read-only: say so in JSON like every error.
async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}
