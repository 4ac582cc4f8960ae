//! Login throttling: an address that keeps presenting bad credentials is
//! slowed down (README "API tokens and sessions").
//!
//! Every request that carries credentials — an `Authorization` header, the
//! session cookie, or a sign-in (`POST /api/session`) — and is answered
//! 401 counts as one failure of its address. Past `[api]
//! login_failures_per_minute` of them in a [`WINDOW`] (0: never slowed), every request with credentials from that address is
//! answered 429 with `Retry-After` *before* its credentials are looked at,
//! until the window has passed: a guesser would otherwise learn from a
//! 200 among the 429s that it hit. Requests without credentials (the page,
//! its assets, `/healthz`) are never slowed. The 429s are refusals for the
//! audit log like 401/403 (`http::audit::layer`, collapsed per address
//! and minute).
//!
//! The counts live in this process: with several collectors behind a load
//! balancer each slows the addresses it sees, which still bounds a
//! guesser to `collectors × login_failures_per_minute` tries per window.
//! The address is the TCP peer's: behind a reverse proxy every user shares
//! the proxy's, so there the limit belongs in the proxy and this one is
//! set to 0 (docs/operations.md "Behind a reverse proxy"). Memory is
//! bounded by [`MAX_ADDRESSES`]; past it the oldest entries go.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;

/// How long failures are remembered, and how long a slowed address waits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses remembered at once.
pub const MAX_ADDRESSES: usize = 10_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    /// When the first failure of the current window came.
    since: Instant,
}

/// The failures of each address, shared by every request of the listener.
pub struct Throttle {
    /// Failures in a window past which an address is slowed; 0: never.
    limit: u32,
    by_ip: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    pub fn new(limit: u32) -> Arc<Throttle> {
        Arc::new(Throttle {
            limit,
            by_ip: Mutex::default(),
        })
    }

    /// How long `ip` must still wait, when it is slowed.
    fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let f = map.get(&ip)?;
        let left = WINDOW.checked_sub(now.duration_since(f.since))?;
        (f.count >= self.limit && !left.is_zero()).then_some(left)
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&ip) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if map.len() >= MAX_ADDRESSES {
                // Still full of live windows: forget the oldest one.
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.since).map(|(ip, _)| *ip) {
                    map.remove(&oldest);
                }
            }
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(f.since) >= WINDOW {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count = f.count.saturating_add(1);
    }
}

/// Whether the request presents credentials (what a guesser must send).
fn has_credentials(req: &Request) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
        || super::session::cookie_in(req.headers()).is_some()
        || (req.method() == Method::POST && req.uri().path() == "/api/session")
}

/// The middleware: answers 429 to a slowed address, counts 401s.
pub async fn layer(State(t): State<Arc<Throttle>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let (Some(ip), true) = (ip, t.limit > 0 && has_credentials(&req)) else {
        return next.run(req).await;
    };
    let now = Instant::now();
    if let Some(left) = t.wait(ip, now) {
        return AppError::TooManyAttempts(left.as_secs().max(1)).into_response();
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        t.failed(ip, now);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u32 = 10;
    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn slows_an_address_after_max_failures_in_a_window() {
        let t = Throttle::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..LIMIT - 1 {
            t.failed(IP, t0);
        }
        assert_eq!(t.wait(IP, t0), None, "one failure short of the limit");
        t.failed(IP, t0);
        let left = t.wait(IP, t0 + Duration::from_secs(10)).expect("slowed");
        assert_eq!(left, WINDOW - Duration::from_secs(10));
        assert_eq!(t.wait(IP, t0 + WINDOW), None, "the window has passed");
    }

    #[test]
    fn failures_of_an_old_window_do_not_add_up() {
        let t = Throttle::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..LIMIT - 1 {
            t.failed(IP, t0);
        }
        t.failed(IP, t0 + WINDOW);
        assert_eq!(t.wait(IP, t0 + WINDOW), None);
    }

    #[test]
    fn remembers_at_most_max_addresses() {
        let t = Throttle::new(LIMIT);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            t.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        assert_eq!(t.by_ip.lock().unwrap().len(), MAX_ADDRESSES);
    }
}
