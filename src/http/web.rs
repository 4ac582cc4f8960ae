//! The web page at `/` (and the wall screen at `/live`): HTML, a script and a style sheet each, embedded
//! in the binary (no CDN, works offline). The page talks to the JSON API
//! on its session cookie; `GET /api/today` tells it the devices' day.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::Caller;
use super::AppState;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");
const LIVE: &str = include_str!("../web/live.html");
const LIVE_JS: &str = include_str!("../web/live.js");
const LIVE_CSS: &str = include_str!("../web/live.css");

pub async fn index() -> Response {
    page(INDEX, "text/html; charset=utf-8")
}

/// `/live`: the wall screen (README "Live wallboard"). Like `/`, the page
/// itself needs no session; its stream, `GET /api/live`, does.
pub async fn live_page() -> Response {
    page(LIVE, "text/html; charset=utf-8")
}

/// `/assets/{name}`: the pages' scripts and style sheets.
pub async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => page(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => page(STYLE, "text/css; charset=utf-8"),
        "live.js" => page(LIVE_JS, "text/javascript; charset=utf-8"),
        "live.css" => page(LIVE_CSS, "text/css; charset=utf-8"),
        _ => super::AppError::NotFound("no such asset".into()).into_response(),
    }
}

fn page(body: &'static str, ctype: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/today`: today and yesterday in the configured `timezone`
/// (the devices' days, ARCHITECTURE.md "Time zones"), which the page's
/// date fields default to: the browser's own zone may be a day off.
pub async fn today(_caller: Caller, State(st): State<AppState>) -> Json<serde_json::Value> {
    let tz = st.cfg.default_tz();
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    Json(serde_json::json!({
        "timezone": tz.name(),
        "today": today.to_string(),
        "yesterday": yesterday.to_string(),
    }))
}
