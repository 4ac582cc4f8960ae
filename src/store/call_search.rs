//! The call search: [`CallFilter`] in, [`CallRow`]s out in start order,
//! one at a time (the CLI streams a whole range) or a page (the API pages
//! with a keyset cursor on `(start_local, id)`).

use chrono::NaiveDateTime;
use rusqlite::{params_from_iter, Row};
use serde::Serialize;

use super::legs::{self, LOCAL_FMT};
use super::{Result, StoreError, Tx};

/// A call row as the API shows it (the detail view adds legs, recordings
/// and queue visits: `call_detail`).
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub id: String,
    pub device: String,
    pub direction: String,
    pub forwarded_out: bool,
    pub caller: String,
    pub callee: String,
    pub extensions: Vec<String>,
    pub answered_by: Option<String>,
    pub trunk: Option<String>,
    pub route: String,
    pub start: String,
    pub end: String,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    pub answered: bool,
    pub settled: bool,
    pub leg_count: i64,
    /// Its recordings at a glance (docs/recordings.md): `done` when one is
    /// playable, else `pending` (still being fetched), `failed`, `missing`
    /// or `purged`; `null` when no leg of the call was recorded.
    pub recording: Option<String>,
    /// The device-local start as stored: the search cursor's first half.
    #[serde(skip)]
    pub start_local: String,
    #[serde(skip)]
    pub last_change_ms: i64,
}

/// How rows are shown: each device's time zone (for the ISO times) and
/// when a call counts as settled (its last change `[calls] settle_seconds`
/// before `now_ms`).
pub struct CallView<'a> {
    pub cfg: &'a crate::config::Config,
    pub now_ms: i64,
}

impl<'a> CallView<'a> {
    /// The view of the calls as of now, by the configured devices' zones.
    pub fn now(cfg: &'a crate::config::Config) -> CallView<'a> {
        CallView {
            cfg,
            now_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    pub(super) fn tz_of(&self, device: &str) -> chrono_tz::Tz {
        self.cfg.device_tz(device)
    }

    fn settle_ms(&self) -> i64 {
        self.cfg.calls.settle_seconds * 1000
    }
}

/// The columns of a call row; the last is the status of its best
/// recording (done, then pending, failed, missing, purged). Read
/// `FROM calls` without an alias.
pub(super) const CALL_COLS: &str = concat!(
    "id, device, direction, forwarded_out, caller, callee, extensions, answered_by, trunk, route,
    start_local, end_local, talk_seconds, billable_seconds, answered, leg_count, last_change_ms, ",
    "(SELECT r.status FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
      WHERE cl.call_seq = calls.seq
      ORDER BY CASE r.status WHEN 'done' THEN 0 WHEN 'pending' THEN 1 WHEN 'fetching' THEN 1
        WHEN 'failed' THEN 2 WHEN 'missing' THEN 3 ELSE 4 END LIMIT 1)"
);

/// Whether a call has a recorded leg (any status), for the
/// `has_recording` filter: the same SQL on both backends, by the call_legs
/// index on `call_seq` and the recordings' unique `leg_id`.
pub(super) const HAS_RECORDING: &str = "EXISTS (SELECT 1 FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id WHERE cl.call_seq = calls.seq)";

/// The total of a search is counted up to this many calls (a search
/// over a year of a busy archive would otherwise read every row of the
/// range): beyond it the API says `total_capped` (docs/calls.md).
pub const TOTAL_CAP: i64 = 100_000;

/// A `CALL_COLS` row as read, before the view's formatting: what each
/// backend reads off its row.
pub(super) struct RawCall {
    pub id: String,
    pub device: String,
    pub direction: String,
    pub forwarded_out: bool,
    pub caller: String,
    pub callee: String,
    pub extensions: String,
    pub answered_by: Option<String>,
    pub trunk: Option<String>,
    pub route: String,
    pub start_local: String,
    pub end_local: String,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    pub answered: bool,
    pub leg_count: i64,
    pub last_change_ms: i64,
    pub recording: Option<String>,
}

impl RawCall {
    /// The row as shown: ISO times in the device's zone, extensions
    /// decoded, settled or not as of the view's now.
    pub(super) fn shown(self, view: &CallView) -> CallRow {
        let tz = view.tz_of(&self.device);
        let iso = |s: String| {
            NaiveDateTime::parse_from_str(&s, LOCAL_FMT)
                .map(|t| legs::local_iso(tz, t))
                .unwrap_or(s)
        };
        CallRow {
            id: self.id,
            direction: self.direction,
            forwarded_out: self.forwarded_out,
            caller: self.caller,
            callee: self.callee,
            extensions: serde_json::from_str(&self.extensions).unwrap_or_default(),
            answered_by: self.answered_by,
            trunk: self.trunk,
            route: self.route,
            start: iso(self.start_local.clone()),
            end: iso(self.end_local),
            talk_seconds: self.talk_seconds,
            billable_seconds: self.billable_seconds,
            answered: self.answered,
            leg_count: self.leg_count,
            // A fetch under way is still pending to whoever reads the list.
            recording: self.recording.map(|s| {
                if s == "fetching" {
                    "pending".to_string()
                } else {
                    s
                }
            }),
            settled: view.now_ms - self.last_change_ms >= view.settle_ms(),
            device: self.device,
            start_local: self.start_local,
            last_change_ms: self.last_change_ms,
        }
    }
}

/// Maps a `CALL_COLS` row.
pub(super) fn call_from_row(r: &Row, view: &CallView) -> rusqlite::Result<CallRow> {
    Ok(RawCall {
        id: r.get(0)?,
        device: r.get(1)?,
        direction: r.get(2)?,
        forwarded_out: r.get(3)?,
        caller: r.get(4)?,
        callee: r.get(5)?,
        extensions: r.get(6)?,
        answered_by: r.get(7)?,
        trunk: r.get(8)?,
        route: r.get(9)?,
        start_local: r.get(10)?,
        end_local: r.get(11)?,
        talk_seconds: r.get(12)?,
        billable_seconds: r.get(13)?,
        answered: r.get(14)?,
        leg_count: r.get(15)?,
        last_change_ms: r.get(16)?,
        recording: r.get(17)?,
    }
    .shown(view))
}

/// Filters of the call search (all optional).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Device-local `YYYY-MM-DD HH:MM:SS` bounds: `start_local >= from`, `< to`.
    pub from: String,
    pub to: String,
    /// Matches caller, callee or an extension (substring).
    pub number: Option<String>,
    /// An extension involved.
    pub ext: Option<String>,
    pub direction: Option<String>,
    pub answered: Option<bool>,
    /// Calls with (`true`) or without (`false`) a recorded leg, whatever
    /// its recording's status.
    pub has_recording: Option<bool>,
    /// Calls with a recording whose conversation figures match.
    pub conversation: ConversationFilter,
    /// Only settled calls (`last_change_ms <= settled_before_ms`).
    pub settled_before_ms: Option<i64>,
    /// Keyset cursor: (start_local, id) strictly after this.
    pub after: Option<(String, String)>,
    pub limit: i64,
    /// Only these devices' calls (a device-limited token); empty: every device.
    pub devices: Vec<String>,
}

/// Conditions on a call's conversation figures (docs/recordings.md
/// "Conversation figures"): a call matches when one of its recordings'
/// figures meets every condition given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationFilter {
    pub longest_silence_min: Option<f64>,
    pub overtalk_min: Option<f64>,
    pub talk_ratio_min: Option<f64>,
    pub talk_ratio_max: Option<f64>,
}

impl ConversationFilter {
    /// `(column comparison, value)` of each condition given; the value
    /// binds to `{}`.
    pub(super) fn conditions(&self) -> Vec<(&'static str, f64)> {
        [
            ("v.longest_silence_seconds >= {}", self.longest_silence_min),
            ("v.overtalk_seconds >= {}", self.overtalk_min),
            ("v.talk_ratio >= {}", self.talk_ratio_min),
            ("v.talk_ratio <= {}", self.talk_ratio_max),
        ]
        .into_iter()
        .filter_map(|(c, v)| v.map(|v| (c, v)))
        .collect()
    }
}

/// The head of the conversation filter's EXISTS (the same SQL on both
/// backends); each condition is appended with ` AND `, then `)`.
pub(super) const HAS_CONVERSATION: &str = "EXISTS (SELECT 1 FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
    JOIN conversations v ON v.recording_id = r.id WHERE cl.call_seq = calls.seq AND v.status = 'ok'";

/// Calls in start order matching `f`, handed to `each` one at a time (a
/// whole range is never held in memory); stops at the first error of `each`.
pub fn search<E: From<StoreError>>(
    conn: &Tx,
    f: &CallFilter,
    view: &CallView,
    each: &mut dyn FnMut(CallRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    if let Some(pg) = conn.pg() {
        return super::postgres::call_search::search(pg, f, view, each);
    }
    let (mut sql, mut args) = where_sql(f, true);
    sql.insert_str(0, &format!("SELECT {CALL_COLS} FROM calls WHERE "));
    args.push(f.limit.into());
    sql.push_str(&format!(" ORDER BY start_local, id LIMIT ?{}", args.len()));
    let db = |e: rusqlite::Error| E::from(StoreError::from(e));
    let mut st = conn.prepare(&sql).map_err(db)?;
    let mut rows = st.query(params_from_iter(args.iter())).map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        each(call_from_row(r, view).map_err(db)?)?;
    }
    Ok(())
}

/// The WHERE clause of `f` (without `WHERE`) and its values: the day
/// range, the filters, and with `cursor` the keyset cursor.
fn where_sql(f: &CallFilter, cursor: bool) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = "start_local >= ?1 AND start_local < ?2".to_string();
    let mut args: Vec<rusqlite::types::Value> = vec![f.from.clone().into(), f.to.clone().into()];
    // Each condition binds its value as the next numbered parameter.
    let mut cond = |clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace("?N", &format!("?{}", args.len())));
    };
    if let Some(n) = &f.number {
        cond(
            " AND (caller LIKE ?N OR callee LIKE ?N OR extensions LIKE ?N)",
            format!("%{n}%").into(),
        );
    }
    if let Some(e) = &f.ext {
        cond(" AND extensions LIKE ?N", format!("%\"{e}\"%").into());
    }
    if let Some(d) = &f.direction {
        cond(" AND direction = ?N", d.clone().into());
    }
    if let Some(a) = f.answered {
        cond(" AND answered = ?N", (a as i64).into());
    }
    if let Some(ms) = f.settled_before_ms {
        cond(" AND last_change_ms <= ?N", ms.into());
    }
    if !f.devices.is_empty() {
        cond(
            &format!(" AND {}", super::scope::sqlite_clause("device", "?N")),
            super::scope::sqlite_value(&f.devices).into(),
        );
    }
    if let Some(has) = f.has_recording {
        sql.push_str(if has { " AND " } else { " AND NOT " });
        sql.push_str(HAS_RECORDING);
    }
    let figures = f.conversation.conditions();
    if !figures.is_empty() {
        sql.push_str(" AND ");
        sql.push_str(HAS_CONVERSATION);
        for (c, v) in figures {
            args.push(v.into());
            sql.push_str(" AND ");
            sql.push_str(&c.replace("{}", &format!("?{}", args.len())));
        }
        sql.push(')');
    }
    if let (true, Some((s, id))) = (cursor, &f.after) {
        args.push(s.clone().into());
        let a = args.len();
        args.push(id.clone().into());
        let b = args.len();
        sql.push_str(&format!(
            " AND (start_local > ?{a} OR (start_local = ?{a} AND id > ?{b}))"
        ));
    }
    (sql, args)
}

/// How many calls match `f` (its cursor and limit aside), counted up to
/// `cap`: the same WHERE as the search, so the same rows.
pub fn count(conn: &Tx, f: &CallFilter, cap: i64) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::call_search::count(pg, f, cap);
    }
    let (wh, mut args) = where_sql(f, false);
    args.push(cap.into());
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM calls WHERE {wh} LIMIT ?{})",
        args.len()
    );
    Ok(conn
        .prepare(&sql)?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?)
}

/// The calls of [`search`] collected (a page of at most `f.limit`).
pub fn search_page(conn: &Tx, f: &CallFilter, view: &CallView) -> Result<Vec<CallRow>> {
    let mut out = Vec::new();
    search::<StoreError>(conn, f, view, &mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}
