//! The audit log's rules (docs/operations.md "Audit log"): which actions
//! are recorded ([`Action`]), how a row is made ([`entry`]), and how it is
//! written without making anyone wait for it ([`record`]); the store keeps
//! the rows (`store::audit`).
//!
//! The API listener keeps an [`Auditor`]: besides writing rows it makes one
//! row of a recording played in many Range requests (`plays`) and collapses
//! refusals per address and minute (`refusals`), both in bounded memory.
//!
//! A row that cannot be written is logged (with what it recorded) and
//! counted in `callvault_audit_write_failures_total`; it is never dropped
//! silently, and it never fails or delays the request it records.
//!
//! Token and session changes are recorded where they happen: a command
//! calls `record_blocking(&store, entry(Action::TokenCreate, &Who::cli(),
//! name, 0))` (or `Action::TokenRevoke`); a handler takes
//! `http::audit::AuditCtx` and calls `ctx.record(&caller,
//! Action::SessionStart, target, status)` (`Action::SessionEnd` has no
//! caller: `ctx.auditor.record(entry(Action::SessionEnd, &Who { ip:
//! ctx.ip.clone(), ..Default::default() }, "session", 204))`).

pub mod filter;
mod plays;
mod refusals;
pub mod time;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::store::audit::{self as rows, Entry};
use crate::store::Store;

pub use plays::Plays;
pub use refusals::Refusals;

/// What a row records. `as_str` is the stored name (and the `action`
/// filter of `GET /api/audit` and `callvault audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A recording served to a player (Range requests): one row per play.
    RecordingPlay,
    /// A recording served whole (a download).
    RecordingDownload,
    /// `GET /api/calls/{id}`.
    CallView,
    /// A billing export (CSV or XLSX; HTTP or `callvault export billing`).
    BillingExport,
    /// The daily report (any format; HTTP or `callvault report daily`).
    ReportDaily,
    /// A named report run by `callvault report run`.
    ReportRun,
    /// A 401 or 403 of the API listener (collapsed per address and minute).
    Refused,
    /// An API token created.
    TokenCreate,
    /// An API token revoked.
    TokenRevoke,
    /// A web session started (`POST /api/session`).
    SessionStart,
    /// A web session ended (`DELETE /api/session`).
    SessionEnd,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::RecordingPlay,
        Action::RecordingDownload,
        Action::CallView,
        Action::BillingExport,
        Action::ReportDaily,
        Action::ReportRun,
        Action::Refused,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::SessionStart,
        Action::SessionEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::RecordingPlay => "recording.play",
            Action::RecordingDownload => "recording.download",
            Action::CallView => "call.view",
            Action::BillingExport => "billing.export",
            Action::ReportDaily => "report.daily",
            Action::ReportRun => "report.run",
            Action::Refused => "auth.refused",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::SessionStart => "session.start",
            Action::SessionEnd => "session.end",
        }
    }

    /// The action named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did it: the token's name and role (none when the request had no
/// valid token) and the peer address (none for commands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub actor: Option<String>,
    pub role: Option<String>,
    pub ip: Option<String>,
}

impl Who {
    /// A caller with a valid token.
    pub fn token(name: &str, role: &str, ip: Option<String>) -> Who {
        Who {
            actor: Some(name.to_string()),
            role: Some(role.to_string()),
            ip,
        }
    }

    /// A `callvault` command: actor `cli` (the OS user goes in the row's
    /// detail, see [`cli_user`]).
    pub fn cli() -> Who {
        Who {
            actor: Some(CLI_ACTOR.into()),
            role: None,
            ip: None,
        }
    }
}

/// The actor of rows written by `callvault` commands.
pub const CLI_ACTOR: &str = "cli";

/// The OS user running a command, as far as the environment says.
pub fn cli_user() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// Longest target or detail kept: a row stays small whatever a request's
/// path was.
const MAX_TEXT: usize = 300;

fn clip(s: String) -> String {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A row of `action` by `who` on `target` with `status` (HTTP status, or a
/// command's exit status), now.
pub fn entry(action: Action, who: &Who, target: impl Into<String>, status: i64) -> Entry {
    Entry {
        time_ms: chrono::Utc::now().timestamp_millis(),
        actor: who.actor.clone(),
        role: who.role.clone(),
        ip: who.ip.clone(),
        action: action.as_str().into(),
        target: clip(target.into()),
        status,
        count: 1,
        detail: None,
    }
}

/// `e` with a short note.
pub fn with_detail(mut e: Entry, detail: impl Into<String>) -> Entry {
    e.detail = Some(clip(detail.into()));
    e
}

/// The metric counting rows that could not be written.
pub const WRITE_FAILURES: &str = "callvault_audit_write_failures_total";

fn failed(e: &Entry, error: &crate::store::StoreError) {
    metrics::counter!(WRITE_FAILURES).increment(1);
    tracing::error!(%error, action = %e.action, actor = ?e.actor, ip = ?e.ip, target = %e.target,
        status = e.status, count = e.count, "audit row not written");
}

/// Off only in the audit benchmark (`benches/audit.rs`), which measures
/// what auditing costs an export or a download by running the same
/// requests with it on and off in one process. No configuration key or
/// command reaches it: a deployment cannot turn its audit log off.
static BENCHMARK_OFF: AtomicBool = AtomicBool::new(false);

/// For `benches/audit.rs` only (see [`BENCHMARK_OFF`]): `false` makes
/// [`record`], [`record_blocking`] and the [`Auditor`] keep nothing.
#[doc(hidden)]
pub fn set_enabled_for_benchmark(on: bool) {
    BENCHMARK_OFF.store(!on, Ordering::Relaxed);
}

fn off() -> bool {
    BENCHMARK_OFF.load(Ordering::Relaxed)
}

/// Writes `e` through the store's writer without waiting for it: from
/// async code (a handler, a streaming export's task) the write runs on a
/// task of its own; outside a runtime it is written at once
/// ([`record_blocking`]). A failure is logged and counted.
pub fn record(store: &Store, e: Entry) {
    if off() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            let store = store.clone();
            rt.spawn(async move {
                let row = e.clone();
                if let Err(err) = store
                    .writer
                    .write_statement(move |tx| rows::insert(tx, &row))
                    .await
                {
                    failed(&e, &err);
                }
            });
        }
        Err(_) => record_blocking(store, e),
    }
}

/// Writes `e` and waits until it is committed: for commands, which exit
/// right after (a spawned write would die with them). A failure is logged
/// and counted, and returned.
pub fn record_blocking(store: &Store, e: Entry) {
    if off() {
        return;
    }
    let row = e.clone();
    if let Err(err) = store
        .writer
        .write_blocking(move |tx| rows::insert(tx, &row))
    {
        failed(&e, &err);
    }
}

/// The oldest time (unix ms) kept under `[retention] audit_days = days`
/// at `now_ms`; `None` when rows are kept for ever (0).
pub fn retention_cutoff_ms(days: u32, now_ms: i64) -> Option<i64> {
    (days > 0).then(|| now_ms - i64::from(days) * 86_400_000)
}

/// The API listener's audit state: plays seen lately and refusals not yet
/// written. Cheap to clone; the refusals are written by a task of their
/// own (see `refusals`), which stops once every clone is gone.
#[derive(Clone)]
pub struct Auditor {
    store: Store,
    plays: Arc<Plays>,
    refusals: Arc<Refusals>,
    _alive: Arc<refusals::Alive>,
}

impl Auditor {
    /// The auditor of a listener on `store`; starts the refusals' writer
    /// on the current tokio runtime.
    pub fn start(store: Store) -> Auditor {
        let refusals = Arc::new(Refusals::default());
        let alive = refusals::spawn_writer(store.clone(), refusals.clone());
        Auditor {
            store,
            plays: Arc::new(Plays::default()),
            refusals,
            _alive: alive,
        }
    }

    /// Writes `e` (see [`record`]).
    pub fn record(&self, e: Entry) {
        record(&self.store, e);
    }

    /// Writes `e`, a request of recording `recording`, unless the same
    /// actor was served the same recording (with the same status) within
    /// the last 30 minutes: a play in many Range requests is one row.
    pub fn play(&self, e: Entry, recording: i64) {
        if off() {
            return;
        }
        let key = (e.actor.clone().unwrap_or_default(), recording, e.status);
        if self.plays.first(key, std::time::Instant::now()) {
            self.record(e);
        }
    }

    /// Adds a refusal `e` to its address's row of this minute.
    pub fn refused(&self, e: Entry) {
        if off() {
            return;
        }
        self.refusals.add(e);
    }
}

/// An audit row as `GET /api/audit` and `callvault audit --format json`
/// show it: the stored row with its time in RFC 3339.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: i64,
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub entry: Entry,
}

impl From<rows::Row> for View {
    fn from(r: rows::Row) -> View {
        let time = chrono::DateTime::from_timestamp_millis(r.entry.time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        View {
            id: r.id,
            time,
            entry: r.entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_and_include_the_token_and_session_ones() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        for name in [
            "token.create",
            "token.revoke",
            "session.start",
            "session.end",
        ] {
            assert!(Action::parse(name).is_some(), "{name}");
        }
        assert_eq!(Action::parse("recording.delete"), None);
    }

    #[test]
    fn long_targets_are_clipped_on_a_char_boundary() {
        let e = entry(Action::Refused, &Who::default(), "é".repeat(400), 401);
        assert!(e.target.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(e.target.ends_with('…'));
    }

    #[test]
    fn retention_cutoff() {
        assert_eq!(retention_cutoff_ms(0, 1_000), None);
        assert_eq!(
            retention_cutoff_ms(2, 200_000_000),
            Some(200_000_000 - 172_800_000)
        );
    }
}
