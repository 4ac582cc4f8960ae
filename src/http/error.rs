//! The one error type at the HTTP edge: `{"error": "..."}` with a fitting
//! status; every refusal of every route goes through it. Internal errors
//! are logged in full and shown to the client as a short message only
//! (ARCHITECTURE.md, "Errors").

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A parameter is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The token's role may not use this route.
    #[error("role {0} may not use this route")]
    Forbidden(String),
    /// Too many bad credentials from this address lately (`throttle.rs`):
    /// try again after this many seconds.
    #[error("too many failed sign-in attempts from this address; try again in {0} s")]
    TooManyAttempts(u64),
    /// 403 with its reason (a device-limited token asking for a report
    /// file whose SQL cannot be limited to its devices).
    #[error("{0}")]
    Refused(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A method other than GET (and the session's POST/DELETE): every route
    /// of this API is read-only.
    #[error("method not allowed: this API only answers GET")]
    MethodNotAllowed,
    /// A recording exists but has no archived file yet (pending, failed,
    /// missing): 409 with its status and attempts. `last_error` (the fetch
    /// error's text, which names device URLs and local paths) is sent only
    /// when `show_error` (an admin asked); otherwise it goes to the log.
    #[error("recording is {status}")]
    RecordingNotReady {
        status: String,
        attempts: i64,
        last_error: Option<String>,
        show_error: bool,
    },
    /// A `Range` beyond the end of a file of `len` bytes.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    /// Anything else; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<crate::query::FilterError> for AppError {
    fn from(e: crate::query::FilterError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("json: {e}"))
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Refused(_) => StatusCode::FORBIDDEN,
            AppError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RecordingNotReady { .. } => StatusCode::CONFLICT,
            AppError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({ "error": self.to_string() });
        let mut headers = HeaderMap::new();
        match self {
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error while serving a request");
            }
            AppError::RecordingNotReady {
                status: state,
                attempts,
                last_error,
                show_error,
            } => {
                body["status"] = state.into();
                body["attempts"] = attempts.into();
                if show_error {
                    body["last_error"] = last_error.into();
                } else if let Some(e) = last_error {
                    tracing::debug!(error = %e, "recording not served: not fetched");
                }
            }
            AppError::TooManyAttempts(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            AppError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            AppError::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        (status, headers, Json(body)).into_response()
    }
}

/// `axum::extract::Query`, refusing a malformed query string (`limit=abc`)
/// with the JSON error of every other refusal; axum's own is plain text.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

/// `axum::extract::Path`, with the JSON error (a call id that is not
/// UTF-8 once decoded, say).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reply(e: AppError) -> (StatusCode, HeaderMap, serde_json::Value) {
        let r = e.into_response();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&body).expect("json"),
        )
    }

    fn not_ready(show_error: bool) -> AppError {
        AppError::RecordingNotReady {
            status: "failed".into(),
            attempts: 3,
            last_error: Some("HTTP 500 for http://10.0.0.9/rec/1.wav".into()),
            show_error,
        }
    }

    #[tokio::test]
    async fn recording_not_ready_shows_the_error_text_to_admins_only() {
        let (status, _, v) = reply(not_ready(false)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            v,
            serde_json::json!({"error": "recording is failed", "status": "failed", "attempts": 3})
        );
        let (_, _, v) = reply(not_ready(true)).await;
        assert_eq!(v["last_error"], "HTTP 500 for http://10.0.0.9/rec/1.wav");
    }

    #[tokio::test]
    async fn internal_error_hides_its_detail() {
        let (status, _, v) = reply(AppError::Internal("/var/lib/x: disk".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v, serde_json::json!({"error": "internal error"}));
    }

    #[tokio::test]
    async fn refusals_with_headers_keep_them() {
        let (status, h, _) = reply(AppError::MethodNotAllowed).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(h[header::ALLOW], "GET, HEAD");
        let (status, h, v) = reply(AppError::RangeNotSatisfiable { len: 10 }).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h[header::CONTENT_RANGE], "bytes */10");
        assert_eq!(v["error"], "range not satisfiable");
    }
}
