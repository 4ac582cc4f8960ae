//! Who is calling, and whether they still may. A handler names what it
//! needs by taking an extractor: `Caller` (a valid token or web session)
//! then calls `require(Perm::X)`.
//!
//! A request authenticates with `Authorization: Bearer TOKEN` (scripts)
//! or with the web page's session cookie (`session.rs`); nothing else — a
//! token in the URL (`?token=`) is refused, as it ends up in browser
//! history, access logs and Referer headers. Every request looks its
//! token or session up in the store, so a revoked or expired token is
//! refused at once (README "API tokens and sessions").
//!
//! A response that is still streaming (a long billing export, a
//! recording) when its token is revoked or expires, or when the web
//! session it came with is signed out, is cut within seconds: [`guard`]
//! wraps every authenticated response's body in a [`GuardedBody`] that
//! checks its caller every [`CHECK_EVERY`] against an in-memory set of
//! the tokens and sessions that exist, which is refreshed from the store
//! at most every [`RECHECK`] while such a body asks. The store,
//! not this process, is the truth: the token may have been revoked by
//! `callvault token revoke` (another process), or on PostgreSQL by any
//! collector.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use hyper::body::Frame;

use super::{AppError, AppState};
use crate::store::{sessions, tokens, Store};

use crate::roles::allows;
pub use crate::roles::Perm;

/// How often a streaming response checks that its caller is still valid.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How old the in-memory set of existing tokens may get before a check
/// reads it again from the store.
pub const RECHECK: Duration = Duration::from_secs(2);
/// `last_used_at` of a token and `last_seen_ms` of a session are written
/// at most this often (through the writer): coarse on purpose, never a
/// write per request.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    pub role: String,
    /// sha256 of the caller's token: what revocation is checked by.
    pub token_hash: String,
    /// When the token expires (never when `None`).
    pub expires_at: Option<DateTime<Utc>>,
    /// The session's hash, when the request came with the session cookie.
    pub session: Option<String>,
    /// The only devices whose calls the caller sees (README "API tokens
    /// and sessions"); empty: every device. Handlers pass it to the
    /// store's queries.
    pub devices: Vec<String>,
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

    fn of(t: &tokens::Found, session: Option<String>) -> Caller {
        Caller {
            name: t.name.clone(),
            role: t.role.clone(),
            token_hash: t.hash.clone(),
            expires_at: t.expires_at,
            session,
            devices: t.devices.clone(),
        }
    }
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
        .filter(|t| !t.is_empty())
}

/// The value of the session cookie, if the request carries one.
pub fn cookie_of(parts: &Parts) -> Option<String> {
    super::session::cookie_in(&parts.headers)
}

/// Unix ms before which a session's last use makes it idle (expired).
pub fn idle_before_ms(cfg: &crate::config::Config, now: DateTime<Utc>) -> i64 {
    now.timestamp_millis() - i64::from(cfg.api.session_idle_minutes) * 60_000
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ctx = parts.extensions.get::<AuthCtx>().cloned();
        // Found once per request: the rights check (`rights::enforce`) and
        // then the handler ask.
        if let Some((c, _)) = ctx.as_ref().and_then(|c| c.caller.get()) {
            return Ok(c.clone());
        }
        let now = Utc::now();
        let caller = if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            let token = bearer_of(parts).ok_or(AppError::Unauthorized)?;
            let found = state
                .store
                .read(move |tx| tokens::lookup(tx, &token, now))
                .await?
                .ok_or(AppError::Unauthorized)?;
            if let Some(ctx) = &ctx {
                ctx.shared.touch_token(&found, now);
            }
            Caller::of(&found, None)
        } else {
            let id = cookie_of(parts).ok_or(AppError::Unauthorized)?;
            let idle_before = idle_before_ms(&state.cfg, now);
            let s = state
                .store
                .read(move |tx| sessions::lookup(tx, &id, now, idle_before))
                .await?
                .ok_or(AppError::Unauthorized)?;
            if let Some(ctx) = &ctx {
                ctx.shared.touch_token(&s.token, now);
                ctx.shared.touch_session(&s, now);
            }
            Caller::of(&s.token, Some(s.hash))
        };
        if let Some(ctx) = ctx {
            let _ = ctx.caller.set((caller.clone(), Instant::now()));
        }
        Ok(caller)
    }
}

/// What the API listener keeps about authentication across requests.
pub struct AuthShared {
    store: Store,
    live: Mutex<Live>,
    /// When this process last wrote a token's `last_used_at` or a
    /// session's `last_seen_ms` (by key), so a burst of requests makes one
    /// write, not one each.
    touched: Mutex<HashMap<String, Instant>>,
}

/// The hashes of the tokens that existed when the store was last read.
struct Live {
    hashes: Arc<HashSet<String>>,
    /// When the read that gave `hashes` started (`None`: never read).
    read_at: Option<Instant>,
    reading: bool,
}

impl AuthShared {
    pub fn new(store: Store) -> Arc<AuthShared> {
        Arc::new(AuthShared {
            store,
            live: Mutex::new(Live {
                hashes: Arc::new(HashSet::new()),
                read_at: None,
                reading: false,
            }),
            touched: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a caller authenticated at `since` with the token hashing to
    /// `hash` and expiring at `expires` may still be answered. A token is
    /// taken as revoked only when a read of the store that started after
    /// `since` no longer found it; until such a read is in, the caller
    /// stays valid (and a read is started).
    pub fn still_valid(
        self: &Arc<Self>,
        hash: &str,
        expires: Option<DateTime<Utc>>,
        since: Instant,
    ) -> bool {
        if expires.is_some_and(|t| t <= Utc::now()) {
            return false;
        }
        let (hashes, read_at) = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            (live.hashes.clone(), live.read_at)
        };
        let fresh = read_at.is_some_and(|at| at.elapsed() < RECHECK);
        if !fresh || read_at.is_some_and(|at| at < since) {
            self.read_live();
        }
        match read_at {
            Some(at) if at >= since => hashes.contains(hash),
            _ => true,
        }
    }

    /// Reads the existing tokens' hashes from the store in the background
    /// (one read at a time).
    fn read_live(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if live.reading {
                return;
            }
            live.reading = true;
        }
        let me = self.clone();
        rt.spawn(async move {
            let started = Instant::now();
            let read = me.store.read(tokens::live_hashes).await;
            let mut live = me.live.lock().unwrap_or_else(|p| p.into_inner());
            live.reading = false;
            match read {
                Ok(hashes) => {
                    live.hashes = Arc::new(hashes);
                    live.read_at = Some(started);
                }
                // Streams go on until a read succeeds: a store that is
                // briefly unreachable should not cut every download.
                Err(e) => tracing::warn!(error = %e, "could not re-check the API tokens"),
            }
        });
    }

    /// Whether `key` is due a write (none by this process for `TOUCH_EVERY`).
    fn due(&self, key: String) -> bool {
        let now = Instant::now();
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if touched.len() > 10_000 {
            touched.retain(|_, t| now.duration_since(*t) < TOUCH_EVERY);
        }
        match touched.get(&key) {
            Some(t) if now.duration_since(*t) < TOUCH_EVERY => false,
            _ => {
                touched.insert(key, now);
                true
            }
        }
    }

    fn touch_token(&self, t: &tokens::Found, now: DateTime<Utc>) {
        let recent = t
            .last_used_at
            .is_some_and(|at| (now - at).to_std().is_ok_and(|d| d < TOUCH_EVERY));
        if recent || !self.due(format!("t:{}", t.hash)) {
            return;
        }
        let (store, id) = (self.store.clone(), t.id);
        tokio::spawn(async move {
            if let Err(e) = store
                .writer
                .write(move |tx| tokens::touch(tx, id, now))
                .await
            {
                tracing::warn!(error = %e, "could not record a token's last use");
            }
        });
    }

    fn touch_session(&self, s: &sessions::Session, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let recent = now_ms - s.last_seen_ms < TOUCH_EVERY.as_millis() as i64;
        if recent || !self.due(format!("s:{}", s.hash)) {
            return;
        }
        let (store, hash) = (self.store.clone(), s.hash.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .writer
                .write(move |tx| sessions::touch(tx, &hash, now_ms))
                .await
            {
                tracing::warn!(error = %e, "could not record a session's last use");
            }
        });
    }
}

/// Put in each request's extensions by [`guard`]: where the `Caller`
/// extractor finds the shared state, and leaves the caller it found.
#[derive(Clone)]
struct AuthCtx {
    shared: Arc<AuthShared>,
    caller: Arc<OnceLock<(Caller, Instant)>>,
}

/// Middleware of the API listener: a response to an authenticated request
/// gets a [`GuardedBody`], so it ends when its caller's token does.
pub async fn guard(
    State(shared): State<Arc<AuthShared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = Arc::new(OnceLock::new());
    req.extensions_mut().insert(AuthCtx {
        shared: shared.clone(),
        caller: slot.clone(),
    });
    let resp = next.run(req).await;
    match slot.get() {
        Some((caller, since)) => {
            let (hash, expires, since) = (caller.token_hash.clone(), caller.expires_at, *since);
            let session = caller.session.clone();
            resp.map(|inner| {
                Body::new(GuardedBody {
                    inner,
                    shared,
                    hash,
                    session,
                    expires,
                    since,
                    next_check: since + CHECK_EVERY,
                    ended: false,
                })
            })
        }
        None => resp,
    }
}

/// A response body that ends with an error (the client sees a cut
/// transfer, never a complete-looking file) once its caller's token is
/// revoked or expired. Checked when the body is asked for its next chunk,
/// at most every [`CHECK_EVERY`]: an `Instant` comparison per chunk.
pub struct GuardedBody {
    inner: Body,
    shared: Arc<AuthShared>,
    hash: String,
    /// The session's hash when the request came with the session cookie:
    /// signing out ends its responses too.
    session: Option<String>,
    expires: Option<DateTime<Utc>>,
    since: Instant,
    next_check: Instant,
    ended: bool,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let now = Instant::now();
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            let session_ended = self
                .session
                .as_deref()
                .is_some_and(|h| !self.shared.still_valid(h, None, self.since));
            if session_ended
                || !self
                    .shared
                    .still_valid(&self.hash, self.expires, self.since)
            {
                self.ended = true;
                tracing::info!(
                    "response cut: its token was revoked or has expired, or its session ended"
                );
                return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::other(
                    "the caller's token was revoked or has expired",
                )))));
            }
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
