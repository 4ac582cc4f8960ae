//! `GET /api/live`: the live wallboard as Server-Sent Events (README
//! "Live wallboard"). Each `floor` event carries the whole floor as JSON
//! (`live::Snapshot`): one on connect, one on each change. A comment line
//! every [`KEEP_ALIVE`] keeps proxies from closing a quiet stream.
//!
//! The stream wakes every [`WAKE`] even when nothing changed: that is when
//! `auth::guard` checks the caller again, so a revoked token or a signed
//! out session ends it within seconds, as a download.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use super::auth::{Caller, Perm};
use super::{AppError, AppState};
use crate::live::feed::Published;

/// How often a quiet stream wakes (and its caller is checked).
pub const WAKE: Duration = Duration::from_secs(1);
/// How often a quiet stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(caller: Caller, State(st): State<AppState>) -> Result<Response, AppError> {
    caller.require(Perm::ReadCalls)?;
    let events = floor_events(st.live.subscribe(), caller.devices.clone());
    Ok(Sse::new(events).into_response())
}

struct Watcher {
    rx: watch::Receiver<Arc<Published>>,
    devices: Vec<String>,
    sent_first: bool,
    wake: tokio::time::Interval,
    quiet: Duration,
}

/// The floor now, then on each change, as SSE events for a caller limited
/// to `devices` (every device when empty); ends when the feed does.
pub fn floor_events(
    rx: watch::Receiver<Arc<Published>>,
    devices: Vec<String>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let mut wake = tokio::time::interval(WAKE);
    wake.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let w = Watcher {
        rx,
        devices,
        sent_first: false,
        wake,
        quiet: Duration::ZERO,
    };
    stream::unfold(w, |mut w| async move {
        if !w.sent_first {
            w.sent_first = true;
            let p = w.rx.borrow_and_update().clone();
            return Some((Ok(floor(&p, &w.devices)), w));
        }
        loop {
            tokio::select! {
                changed = w.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    w.quiet = Duration::ZERO;
                    let p = w.rx.borrow_and_update().clone();
                    return Some((Ok(floor(&p, &w.devices)), w));
                }
                _ = w.wake.tick() => {
                    w.quiet += WAKE;
                    if w.quiet >= KEEP_ALIVE {
                        w.quiet = Duration::ZERO;
                        return Some((Ok(Event::default().comment("keep-alive")), w));
                    }
                }
            }
        }
    })
}

fn floor(p: &Published, devices: &[String]) -> Event {
    Event::default()
        .event("floor")
        .id(p.seq.to_string())
        .data(p.json_for(devices))
}
