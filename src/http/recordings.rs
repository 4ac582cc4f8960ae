//! `GET /api/calls/{id}/recording` (the call's primary recording) and
//! `GET /api/recordings/{id}`: the archived WAV, streamed from the
//! recordings store (`file:` or `s3://`, see [`RecordingStore`]), with HTTP
//! Range support (a ranged read of the file or object, never the whole of
//! it). The sha256 is checked before it is served (once per version of the
//! file or object: cached by size and mtime or ETag). A
//! recording not fetched yet is a 409 with its status; the fetch error's
//! text only for admins (`Perm::Diagnostics`). Each play or download is
//! a row of the audit log (docs/operations.md "Audit log").

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::audit::AuditCtx;
use super::auth::{Caller, Perm};
use super::error::Path as UrlPath;
use super::{AppError, AppState};
use crate::audit::Action;
use crate::store::call_detail;
use crate::store::recordings::{self as rec_store, Recording};

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). Multiple ranges and
/// malformed headers are ignored (the whole file is served, as allowed).
pub fn parse_range(header: Option<&str>, len: u64) -> RangeReq {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(0) => RangeReq::Unsatisfiable,
            Ok(_) if len == 0 => RangeReq::Unsatisfiable,
            Ok(n) => RangeReq::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Err(_) => RangeReq::Full,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let end = match b {
        "" => u64::MAX,
        b => match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeReq::Full,
        },
    };
    if start >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part {
        start,
        end: end.min(len - 1),
    }
}

pub async fn by_call(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    caller.require(Perm::Recordings)?;
    // None: no such call (or one of a device the token is not limited
    // to); Some((call, None)): a call without a recording.
    let devices = caller.devices.clone();
    let found = st
        .store
        .read(move |c| {
            let Some(call) = call_detail::resolve_visible(c, &id, &devices)? else {
                return Ok(None);
            };
            let rec = rec_store::primary_of_call(c, &call)?;
            Ok(Some((call, rec)))
        })
        .await?;
    match found {
        Some((call, Some(rec))) => {
            Ok(
                served_and_audited(&st, &caller, &audit, rec, &headers, format!("call {call}"))
                    .await,
            )
        }
        Some((_, None)) => Err(AppError::NotFound("the call has no recording".into())),
        None => Err(AppError::NotFound("no such call".into())),
    }
}

pub async fn by_id(
    caller: Caller,
    audit: AuditCtx,
    State(st): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    caller.require(Perm::Recordings)?;
    let missing = || AppError::NotFound("no such recording".into());
    let id: i64 = id.parse().map_err(|_| missing())?;
    let devices = caller.devices.clone();
    let rec = st
        .store
        .read(move |c| rec_store::get_of(c, id, &devices))
        .await?
        .ok_or_else(missing)?;
    let detail = format!("device {} CDR {}", rec.device, rec.cdr_id);
    Ok(served_and_audited(&st, &caller, &audit, rec, &headers, detail).await)
}

/// Serves `rec` and records it in the audit log: a play (the request had
/// a `Range`) or a download, one row per play however many Range requests
/// it takes (`audit::Auditor::play`); a part served (206) counts as 200.
async fn served_and_audited(
    st: &AppState,
    caller: &Caller,
    audit: &AuditCtx,
    rec: Recording,
    headers: &HeaderMap,
    detail: String,
) -> Response {
    let id = rec.id;
    let resp = match serve(st, caller, rec, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = match resp.status() {
        StatusCode::PARTIAL_CONTENT => StatusCode::OK,
        s => s,
    };
    let action = if headers.contains_key(header::RANGE) {
        Action::RecordingPlay
    } else {
        Action::RecordingDownload
    };
    if let Some(e) = audit.entry(caller, action, format!("recording {id}"), status) {
        audit.auditor.play(crate::audit::with_detail(e, detail), id);
    }
    resp
}

async fn serve(
    st: &AppState,
    caller: &Caller,
    rec: Recording,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    if rec.status != rec_store::DONE {
        return Err(AppError::RecordingNotReady {
            status: rec.status,
            attempts: rec.attempts,
            last_error: rec.last_error,
            show_error: caller.may(Perm::Diagnostics),
        });
    }
    let internal = |m: String| AppError::Internal(format!("recording {}: {m}", rec.id));
    let rel = rec
        .file
        .as_deref()
        .ok_or_else(|| internal("done but no file".into()))?;
    let store = &st.recordings;
    let expected = rec.sha256.clone().unwrap_or_default();
    let len = store
        .verified_len(rel, &expected)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        RangeReq::Full => (StatusCode::OK, 0, len),
        RangeReq::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeReq::Unsatisfiable => return Err(AppError::RangeNotSatisfiable { len }),
    };
    let bytes = store
        .open_range(rel, start, count)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let body = Body::from_stream(bytes);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{expected}\"")) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    let name = rel.rsplit('/').next().unwrap_or("recording.wav");
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_range_forms() {
        assert_eq!(parse_range(None, 100), RangeReq::Full);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeReq::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeReq::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeReq::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-500"), 100),
            RangeReq::Part { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-5000"), 100),
            RangeReq::Part { start: 50, end: 99 }
        );
    }

    #[test]
    fn parse_range_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeReq::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=-0"), 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), RangeReq::Unsatisfiable);
    }

    #[test]
    fn parse_range_ignores_malformed_and_multi() {
        for h in [
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=5",
        ] {
            assert_eq!(parse_range(Some(h), 100), RangeReq::Full, "{h}");
        }
    }
}
