//! The ingest listener. The device is the HTTP client (OM manual §1.2): GET or
//! POST, body or query string, any path, HTTP/1.0 without Host, short or
//! pipelined long connections. We answer 200 with an empty body once the
//! message is committed.
//!
//! A source that is not a registered device is held to push and byte rates
//! (`ingest::limits`): over them it is answered 429 before its body is
//! read, and the refusal quarantined with the body's first KiB.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;

use crate::ingest::limits::{RateLimited, QUARANTINE_KEPT_WHEN_OVER};
use crate::ingest::{BodyEnd, Incoming, Ingestor};

pub fn ingest_router(ingestor: Ingestor) -> Router {
    Router::new().fallback(push).with_state(ingestor)
}

async fn push(
    State(ing): State<Ingestor>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let limit = ing.config().ingest.max_body_bytes;
    let (parts, body) = req.into_parts();
    // A device sends ~500 bytes at once. Without a limit a sender that
    // stops half-way (Content-Length larger than what it sends) held its
    // connection and file descriptor for ever, and enough of them stop all
    // ingest; the headers have hyper's own timeout (`serve_device`).
    let wait = std::time::Duration::from_secs(ing.config().ingest.body_timeout_seconds);
    let ip = peer.ip().to_canonical();
    // Only unregistered sources are rate limited (and pay for the look-up).
    let rated = (!ing.is_registered_source(ip)).then(|| {
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            .min(limit as u64);
        declared + parts.uri.query().map_or(0, |q| q.len() as u64)
    });
    let mut over = None;
    if let Some(declared) = rated {
        if let Err(why) = ing.limits().admit_push(ip, declared) {
            over = Some(why);
        }
    }
    let mut buf = Vec::new();
    // Over a rate the body is not read on: its first KiB is enough to
    // tell what was refused (and the connection is closed after the reply).
    let read_at_most = if over.is_some() {
        QUARANTINE_KEPT_WHEN_OVER.min(limit)
    } else {
        limit
    };
    let body_end = tokio::time::timeout(wait, read_limited(body, read_at_most, &mut buf))
        .await
        .unwrap_or(BodyEnd::Stalled);
    if let (Some(declared), None) = (rated, over) {
        let query = parts.uri.query().map_or(0, |q| q.len() as u64);
        ing.limits()
            .settle_bytes(ip, declared, buf.len() as u64 + query);
    }
    let incoming = Incoming {
        source: ip.to_string(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        body: buf,
        body_end,
    };
    // The device may close the socket without reading our reply. The
    // listener half-closes (serve_device), so this future is not dropped
    // then; and even if it were, `accept` queues the write in its first
    // poll, before any await, and a queued write is committed whether or
    // not anyone waits for it (store::writer).
    let reply = match over {
        None => ing.accept(incoming).await,
        Some(why) => {
            let cfg = &ing.config().ingest;
            let reason = match why {
                RateLimited::Pushes => format!(
                    "rate limit: more than {} pushes a minute from this unregistered source",
                    cfg.unregistered_pushes_per_minute
                ),
                RateLimited::Bytes => format!(
                    "rate limit: more than {} bytes a minute from this unregistered source",
                    cfg.unregistered_bytes_per_minute
                ),
            };
            ing.refuse(incoming, 429, why.metric_reason(), reason).await
        }
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.reason {
        Some(r) => (status, format!("{r}\n")).into_response(),
        None => status.into_response(),
    }
}

/// Reads into `buf` at most `limit` bytes; `TooLarge` when the body was
/// longer (we keep its start for the quarantine and stop reading). What
/// came stays in `buf` if the caller stops waiting.
async fn read_limited(mut body: Body, limit: usize, buf: &mut Vec<u8>) -> BodyEnd {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return BodyEnd::Broken;
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let room = limit - buf.len();
                buf.extend_from_slice(&data[..room]);
                return BodyEnd::TooLarge;
            }
            buf.extend_from_slice(&data);
        }
    }
    BodyEnd::Whole
}
