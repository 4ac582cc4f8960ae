//! `POST /api/session`, `GET /api/session` and `DELETE /api/session`: the
//! web page's sign-in. Links the browser follows by itself (`<audio src>`,
//! downloads, the report frame) cannot send an `Authorization` header; they
//! ride on this cookie, so no token is ever put in a URL.
//!
//! The cookie holds an opaque random session id, never the token: the
//! archive keeps only the id's sha256 (`store::sessions`), tied to the
//! token that opened it, so every collector of a PostgreSQL archive knows
//! it, signing out deletes it server-side (the old cookie value is then
//! refused), and revoking the token or letting it expire ends it. It ends
//! too after `[api] session_idle_minutes` without a request.
//!
//! The cookie is `HttpOnly` (page scripts cannot read it), `SameSite=Strict`
//! (no other site can make the browser send it, so no cross-site request
//! is ever authenticated by it), without `Max-Age` (gone with the browser
//! session), and `Secure` when the page came over HTTPS: callvault's own
//! (`[api] tls_cert`), or a reverse proxy in front that says
//! `X-Forwarded-Proto: https` (over plain HTTP, `Secure` would stop the
//! browser from sending it at all).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::audit::AuditCtx;
use super::auth::{bearer_of, cookie_of, idle_before_ms, Caller};
use super::{AppError, AppState};
use crate::audit::{Action, Who};
use crate::store::{sessions, tokens};

/// The cookie's name.
pub const COOKIE: &str = "callvault_session";

/// The value of the session cookie among `headers`, if there is one.
pub fn cookie_in(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The body `POST /api/session` may carry instead of a bearer header.
#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

/// Signs in: the token comes as `Authorization: Bearer TOKEN` or as the
/// JSON body `{"token": "…"}`. Answers who the caller is and sets the
/// session cookie; a wrong, revoked or expired token is a 401.
pub async fn create(
    State(st): State<AppState>,
    audit: AuditCtx,
    parts: Parts,
    body: Bytes,
) -> Result<Response, AppError> {
    let token = match bearer_of(&parts) {
        Some(t) => t,
        None if parts.headers.contains_key(header::AUTHORIZATION) => {
            return Err(AppError::Unauthorized)
        }
        None => {
            let sign_in: SignIn = serde_json::from_slice(&body).map_err(|_| {
                AppError::BadRequest(
                    "sign in with Authorization: Bearer TOKEN or the JSON body {\"token\": \"…\"}"
                        .into(),
                )
            })?;
            sign_in.token.trim().to_string()
        }
    };
    let now = Utc::now();
    let idle_before = idle_before_ms(&st.cfg, now);
    let (found, id) = st
        .store
        .writer
        .write(move |tx| {
            let Some(found) = tokens::lookup(tx, &token, now)? else {
                return Ok(None);
            };
            let id = sessions::create(tx, found.id, now, idle_before)?;
            Ok(Some((found, id)))
        })
        .await?
        .ok_or(AppError::Unauthorized)?;
    let secure = if behind_https(&parts) { "; Secure" } else { "" };
    let cookie = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .map_err(|e| AppError::Internal(format!("session cookie: {e}")))?;
    tracing::info!(token = %found.name, "web session started");
    let who = Who::token(&found.name, &found.role, audit.ip.clone());
    audit.auditor.record(crate::audit::entry(
        Action::SessionStart,
        &who,
        found.name.clone(),
        200,
    ));
    let who = serde_json::json!({
        "name": found.name,
        "role": found.role,
        "expires_at": found.expires_at.map(tokens::stamp),
        "idle_minutes": st.cfg.api.session_idle_minutes,
    });
    Ok((StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(who)).into_response())
}

/// Who the caller is (the page asks this when it loads, to know whether
/// its cookie still holds a session).
pub async fn current(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": caller.name,
        "role": caller.role,
        "expires_at": caller.expires_at.map(tokens::stamp),
        "via": if caller.session.is_some() { "session" } else { "bearer" },
    }))
}

/// Signs out: deletes the cookie's session from the archive (the cookie's
/// value is refused from now on, wherever it was copied to) and clears
/// the cookie. Needs no valid session: signing out twice is fine.
pub async fn delete(
    State(st): State<AppState>,
    audit: AuditCtx,
    parts: Parts,
) -> Result<Response, AppError> {
    if let Some(id) = cookie_of(&parts) {
        let ended = st
            .store
            .writer
            .write(move |tx| sessions::delete(tx, &id))
            .await?;
        if ended {
            tracing::info!("web session ended (signed out)");
            let who = Who {
                ip: audit.ip.clone(),
                ..Default::default()
            };
            audit.auditor.record(crate::audit::entry(
                Action::SessionEnd,
                &who,
                "session",
                204,
            ));
        }
    }
    let secure = if behind_https(&parts) { "; Secure" } else { "" };
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, gone)]).into_response())
}

/// Whether the request came over HTTPS: our own TLS, or a reverse proxy
/// that says so.
fn behind_https(parts: &Parts) -> bool {
    if parts
        .extensions
        .get::<super::tls::ServedOverTls>()
        .is_some()
    {
        return true;
    }
    parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}
