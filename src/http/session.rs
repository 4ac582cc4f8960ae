//! `POST /api/session` and `DELETE /api/session`: the web page's sign-in
//! cookie, so that links the browser follows by itself (`<audio src>`,
//! downloads, the report frame) need no token in their URL. A token in a
//! URL ends up in browser history, proxy and server access logs, and the
//! Referer of the next request; a cookie does not.
//!
//! The cookie holds the token itself: `HttpOnly` (page scripts cannot read
//! it), `SameSite=Strict` (no other site can make the browser send it, so
//! no cross-site request is ever authenticated by it), no `Max-Age` (gone
//! with the browser session; the page creates it again at sign-in), and
//! `Secure` when a reverse proxy says the page came over HTTPS
//! (`X-Forwarded-Proto: https`: callvault itself serves plain HTTP, so
//! without a proxy `Secure` would stop the browser from sending it). Only a
//! token given in the `Authorization` header can create one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{bearer_of, Caller};
use super::AppError;

/// The cookie's name.
pub const COOKIE: &str = "callvault_session";

/// Sets the cookie to the bearer token of the request (which must be valid).
pub async fn create(
    caller: Caller,
    parts: axum::http::request::Parts,
) -> Result<Response, AppError> {
    let token = bearer_of(&parts).ok_or_else(|| {
        AppError::BadRequest("a session is created with Authorization: Bearer TOKEN".into())
    })?;
    // Tokens are URL-safe text; anything else cannot be a cookie value.
    let https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let value = HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .map_err(|_| AppError::BadRequest("token is not cookie-safe".into()))?;
    tracing::info!(caller = %caller.name, "web session started");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, value)]).into_response())
}

/// Clears the cookie (signing out); needs no token.
pub async fn delete() -> Response {
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, gone)]).into_response()
}
