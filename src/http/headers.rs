//! Security headers on every response of the API/web listener (README "HTTP
//! API"): the page runs only its own script (no inline script, no eval), may
//! be framed only by itself (the daily report opens in a frame of the page),
//! sends no Referer (a URL with a call id should not leak to another site),
//! and browsers must not guess content types.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Scripts only from this origin. Inline styles stay allowed: the daily
/// report's HTML carries its own `<style>` so that the file a cron job
/// writes opens alone; style is not a way to run code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// Adds the headers to a response that does not set them itself.
pub async fn security(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}
