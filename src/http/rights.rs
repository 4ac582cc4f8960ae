//! Who may use which route of the API/web listener: one table, [`RIGHTS`].
//! The router registers exactly the routes listed here (`router.rs`) and
//! checks each request against its row before the handler runs
//! ([`enforce`]), so a route cannot be added without saying who may use
//! it. The README's route × role table is rendered from it
//! ([`readme_table`]; `tests/rights_readme.rs` fails when the README
//! differs, and rewrites it with `UPDATE_README=1`).
//!
//! Handlers keep their own `caller.require(…)` as a second check: the
//! rights walk (`tests/rights_walk.rs`) then fails when the table and the
//! code disagree.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::AppState;
use crate::roles::{allows, Perm, ROLES};

/// What a request needs to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: answered without a token.
    Nothing,
    /// A valid token or session, of any role.
    Token,
    /// A token or session whose role allows the permission.
    Perm(Perm),
    /// Nothing from loopback; from elsewhere as [`Need::Perm`].
    LoopbackOr(Perm),
}

/// One route: its method, its path as the router writes it, what it needs,
/// and what else its handler checks or does that a reader should know.
#[derive(Debug, Clone, Copy)]
pub struct Right {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
    pub note: &'static str,
}

const fn right(method: &'static str, path: &'static str, need: Need, note: &'static str) -> Right {
    Right {
        method,
        path,
        need,
        note,
    }
}

/// Every route of `api_router`, in the README's order.
pub const RIGHTS: &[Right] = &[
    right("GET", "/healthz", Need::Nothing, "liveness and backlog"),
    right(
        "GET",
        "/metrics",
        Need::LoopbackOr(Perm::Reports),
        "no token from loopback",
    ),
    right(
        "POST",
        "/api/session",
        Need::Nothing,
        "signs in: the handler checks the token it is given (401 if wrong)",
    ),
    right("GET", "/api/session", Need::Token, "who the caller is"),
    right(
        "DELETE",
        "/api/session",
        Need::Nothing,
        "signs out; needs no valid session",
    ),
    right(
        "GET",
        "/api/legs",
        Need::Perm(Perm::ReadCalls),
        "device-limited tokens: their devices only",
    ),
    right(
        "GET",
        "/api/calls",
        Need::Perm(Perm::ReadCalls),
        "device-limited tokens: their devices only",
    ),
    right(
        "GET",
        "/api/calls/{id}",
        Need::Perm(Perm::ReadCalls),
        "fetch errors' text for admin only; another device's call is 404",
    ),
    right(
        "GET",
        "/api/calls/{id}/events",
        Need::Perm(Perm::ReadCalls),
        "the call's timeline; another device's call is 404",
    ),
    right(
        "GET",
        "/api/calls/{id}/recording",
        Need::Perm(Perm::Recordings),
        "another device's call is 404",
    ),
    right(
        "GET",
        "/api/recordings/{id}",
        Need::Perm(Perm::Recordings),
        "fetch errors' text for admin only; another device's recording is 404",
    ),
    right(
        "GET",
        "/api/queues/visits",
        Need::Perm(Perm::ReadCalls),
        "device-limited tokens: their devices only",
    ),
    right(
        "GET",
        "/api/queues/summary",
        Need::Perm(Perm::ReadCalls),
        "device-limited tokens: their devices only",
    ),
    right(
        "GET",
        "/api/live",
        Need::Perm(Perm::ReadCalls),
        "Server-Sent Events; device-limited tokens: their devices only; ends within seconds of a revocation or sign-out",
    ),
    right(
        "GET",
        "/export/billing.csv",
        Need::Perm(Perm::Billing),
        "device-limited tokens: their devices only; a report file is 403 for them",
    ),
    right(
        "GET",
        "/export/billing.xlsx",
        Need::Perm(Perm::Billing),
        "as billing.csv",
    ),
    right(
        "GET",
        "/reports/daily",
        Need::Perm(Perm::Reports),
        "as billing.csv",
    ),
    right("GET", "/api/audit", Need::Perm(Perm::Audit), "admin only"),
    right(
        "GET",
        "/api/devices",
        Need::Perm(Perm::Diagnostics),
        "admin only: every sender's pushes, refusals, recordings, clock skew",
    ),
    right(
        "GET",
        "/api/today",
        Need::Token,
        "today and yesterday in the devices' time zone",
    ),
    right(
        "GET",
        "/api/openapi.json",
        Need::Nothing,
        "this table as an OpenAPI 3 document",
    ),
    right("GET", "/", Need::Nothing, "the web page"),
    right(
        "GET",
        "/live",
        Need::Nothing,
        "the wall screen page (its stream needs the session)",
    ),
    right(
        "GET",
        "/assets/{name}",
        Need::Nothing,
        "the pages' scripts and style sheets",
    ),
];

/// The row of `method` on the route `path` (as the router writes it).
pub fn need_of(method: &str, path: &str) -> Option<Need> {
    RIGHTS
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.need)
}

/// Whether a caller with `role` (`None`: no token) is let through by
/// `need`, from an address that is not loopback.
pub fn lets_through(need: Need, role: Option<&str>) -> bool {
    match (need, role) {
        (Need::Nothing, _) => true,
        (_, None) => false,
        (Need::Token, Some(_)) => true,
        (Need::Perm(p) | Need::LoopbackOr(p), Some(role)) => allows(role, p),
    }
}

/// The status the check gives a caller with `role` (`None`: no token).
pub fn refusal(need: Need, role: Option<&str>) -> Option<u16> {
    if lets_through(need, role) {
        None
    } else if role.is_none() {
        Some(401)
    } else {
        Some(403)
    }
}

/// Middleware of every route (`route_layer`): refuses a request its
/// route's row does not let through, before the handler runs. HEAD is
/// checked as GET (axum answers it with the GET handler). A method with
/// no row has no handler either (the router registers rows only): it goes
/// on to the router's 405.
pub async fn enforce(
    State(st): State<AppState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let method = match req.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let Some(need) = matched.and_then(|m| need_of(method, m.as_str())) else {
        return next.run(req).await;
    };
    let perm = match need {
        Need::Nothing => return next.run(req).await,
        Need::LoopbackOr(p) => {
            let local = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|c| c.0.ip().to_canonical().is_loopback());
            if local {
                return next.run(req).await;
            }
            Some(p)
        }
        Need::Perm(p) => Some(p),
        Need::Token => None,
    };
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &st).await {
        Ok(c) => {
            if let Some(Err(e)) = perm.map(|p| c.require(p)) {
                return e.into_response();
            }
        }
        Err(e) => return e.into_response(),
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The columns of the README table after method and route.
const WHO: &[&str] = &["no token", "admin", "finance", "qa", "reports"];

/// The README's route × role table (between its marker comments): for
/// each route and caller, `yes`, or the status the caller gets (`401`,
/// `403`), and the row's note.
pub fn readme_table() -> String {
    let mut out = String::from("| Method | Route |");
    for w in WHO {
        out.push_str(&format!(" {w} |"));
    }
    out.push_str(" Notes |\n|---|---|");
    out.push_str(&"---|".repeat(WHO.len()));
    out.push_str("---|\n");
    for r in RIGHTS {
        out.push_str(&format!("| {} | `{}` |", r.method, r.path));
        let roles = std::iter::once(None).chain(ROLES.iter().map(|r| Some(*r)));
        for role in roles {
            let cell = match refusal(r.need, role) {
                None => "yes".to_string(),
                Some(s) => s.to_string(),
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push_str(&format!(" {} |\n", r.note.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_columns_are_no_token_then_every_role() {
        assert_eq!(&WHO[1..], ROLES);
    }

    #[test]
    fn every_route_is_listed_once() {
        for (i, a) in RIGHTS.iter().enumerate() {
            for b in &RIGHTS[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn refusals_are_401_without_a_token_and_403_for_a_role() {
        let billing = need_of("GET", "/export/billing.csv").expect("listed");
        assert_eq!(refusal(billing, None), Some(401));
        assert_eq!(refusal(billing, Some("qa")), Some(403));
        assert_eq!(refusal(billing, Some("finance")), None);
        assert_eq!(refusal(Need::Nothing, None), None);
        assert_eq!(refusal(Need::Token, Some("qa")), None);
    }
}
