//! The web page at `/`: one HTML page, a script and a style sheet, embedded
//! in the binary (no CDN, works offline). The page talks to the JSON API with
//! the token the user enters (kept in the browser's localStorage).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

pub async fn index() -> Response {
    page(INDEX, "text/html; charset=utf-8")
}

/// `/assets/{name}`: the page's script and style sheet.
pub async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => page(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => page(STYLE, "text/css; charset=utf-8"),
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
