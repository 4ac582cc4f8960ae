//! Bearer tokens and roles. A handler names what it needs by taking an
//! extractor: `Caller` (any valid token) then calls `require(Perm::X)`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{AppError, AppState};
use crate::store::tokens;

use crate::roles::allows;
pub use crate::roles::Perm;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: String,
}

impl Caller {
    /// Whether the caller's role allows `perm`.
    pub fn may(&self, perm: Perm) -> bool {
        allows(&self.role, perm)
    }

    /// Refuses the request (403) unless the caller's role allows `perm`.
    pub fn require(&self, perm: Perm) -> Result<(), AppError> {
        if self.may(perm) {
            Ok(())
        } else {
            Err(AppError::Forbidden(self.role.clone()))
        }
    }
}

/// The token of a request: `Authorization: Bearer …`, else the web page's
/// session cookie (`session.rs`), else `?token=` (kept for scripts and
/// bookmarks; the web page no longer puts tokens in URLs).
pub fn token_of(parts: &Parts) -> Option<String> {
    if parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        return bearer_of(parts);
    }
    cookie_of(parts).or_else(|| {
        parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
    })
}

/// The token of `Authorization: Bearer …`.
pub fn bearer_of(parts: &Parts) -> Option<String> {
    let v = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(|t| t.trim().to_string())
}

/// The value of the session cookie, if the request carries one.
fn cookie_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == super::session::COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(parts).ok_or(AppError::Unauthorized)?;
        let found = state.store.read(move |c| tokens::lookup(c, &token)).await?;
        let (name, role) = found.ok_or(AppError::Unauthorized)?;
        Ok(Caller { name, role })
    }
}
