//! CDR legs: idempotent insert on (device, Cdr id), conflicts kept apart,
//! and the typed reads the API and the calls stage use.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Result, Tx};
use crate::log_throttle::LogThrottle;
use crate::model::{Leg, LegType};
use std::time::Duration;

/// A leg whose TimeEnd is this far from the receive time is flagged (device clocks can be wrong).
const SKEW_FLAG_SECS: i64 = 86_400;

/// What `insert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new leg, with its row id.
    New(i64),
    /// The same Cdr id with the same content was already stored: nothing to do.
    Duplicate(i64),
    /// The same Cdr id with different content: kept in `leg_conflicts`, the first version stays.
    Conflict(i64),
}

/// The time zone's view of a device-local time. Ambiguous or skipped local
/// times (DST changes) take the earliest valid instant.
pub fn local_to_utc(tz: chrono_tz::Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        chrono::LocalResult::Single(d) => d.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(t + chrono::Duration::hours(1)))
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&t)),
    }
}

pub fn content_hash(leg: &Leg) -> String {
    let json = serde_json::to_vec(leg).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..16])
}

pub const LOCAL_FMT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses a stored `LOCAL_FMT` time. The common shape is read digit by digit
/// (chrono's format-string parser dominated rebuild profiles); anything else
/// goes through chrono, so the result is the same as `parse_from_str`.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let fast = (|| {
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b' '
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
        date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)
    })();
    fast.or_else(|| NaiveDateTime::parse_from_str(s, LOCAL_FMT).ok())
}

static SKEW_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));

pub fn insert(
    tx: &Tx,
    device: &str,
    push_id: i64,
    received_ms: i64,
    leg: &Leg,
    tz: chrono_tz::Tz,
) -> Result<Inserted> {
    let hash = content_hash(leg);
    let start_utc = local_to_utc(tz, leg.time_start);
    let end_utc = local_to_utc(tz, leg.time_end);
    let skewed = (end_utc.timestamp_millis() - received_ms).abs() / 1000 > SKEW_FLAG_SECS;
    let mut st = tx.prepare_cached(
        "INSERT INTO legs (device, cdr_id, push_id, received_ms, callid, visitor_id, outer_id, leg_type, route,
                           cpn, cdpn, time_start, time_end, start_utc, end_utc, duration, trunk_number,
                           recording, rec_codec, mac, clock_skewed, content_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
         ON CONFLICT (device, cdr_id) DO NOTHING",
    )?;
    let n = st.execute(params![
        device,
        leg.cdr_id,
        push_id,
        received_ms,
        leg.callid,
        leg.visitor_id,
        leg.outer_id,
        leg.leg_type.as_str(),
        leg.route,
        leg.cpn,
        leg.cdpn,
        leg.time_start.format(LOCAL_FMT).to_string(),
        leg.time_end.format(LOCAL_FMT).to_string(),
        start_utc.to_rfc3339(),
        end_utc.to_rfc3339(),
        leg.duration,
        leg.trunk_number,
        leg.recording,
        leg.rec_codec,
        leg.mac,
        skewed,
        hash,
    ])?;
    if n == 1 {
        if skewed {
            metrics::counter!("callvault_legs_clock_skewed_total").increment(1);
            // A device whose clock is off (or that sends a day's backlog at
            // once) flags every leg: one line a minute per device.
            if let Some(left_out) = SKEW_LOG.admit(device) {
                tracing::warn!(device, cdr_id = %leg.cdr_id, time_end = %leg.time_end, more_since_last_line = left_out,
                    "leg time is more than a day away from receive time (device clock off, or a late re-send); flagged clock_skewed");
            }
        }
        return Ok(Inserted::New(tx.last_insert_rowid()));
    }
    let (id, existing): (i64, String) = tx
        .prepare_cached("SELECT id, content_hash FROM legs WHERE device = ?1 AND cdr_id = ?2")?
        .query_row(params![device, leg.cdr_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if existing == hash {
        return Ok(Inserted::Duplicate(id));
    }
    tx.prepare_cached(
        "INSERT INTO leg_conflicts (device, cdr_id, push_id, leg_json) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        device,
        leg.cdr_id,
        push_id,
        serde_json::to_string(leg).unwrap_or_default()
    ])?;
    tracing::warn!(device, cdr_id = %leg.cdr_id, "re-push of a Cdr id with different content kept as a conflict");
    Ok(Inserted::Conflict(id))
}

/// A stored leg with its archive metadata, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredLeg {
    pub id: i64,
    pub device: String,
    pub cdr_id: String,
    pub callid: String,
    pub visitor_id: Option<String>,
    pub outer_id: Option<String>,
    #[serde(rename = "type")]
    pub leg_type: LegType,
    pub route: String,
    pub cpn: String,
    pub cdpn: String,
    /// ISO 8601 with the device's offset.
    pub time_start: String,
    pub time_end: String,
    pub duration: i64,
    pub trunk_number: String,
    pub recording: Option<String>,
    pub rec_codec: Option<String>,
    pub mac: Option<String>,
    pub clock_skewed: bool,
    pub received_at: String,
    #[serde(skip)]
    pub received_ms: i64,
    #[serde(skip)]
    pub leg: Leg,
}

pub const SELECT_COLS: &str = "id, device, cdr_id, callid, visitor_id, outer_id, leg_type, route, cpn, cdpn,
     time_start, time_end, duration, trunk_number, recording, rec_codec, mac, clock_skewed, received_ms";

/// Maps a row selected with `SELECT_COLS`; `tz_of` gives each device's zone.
pub fn from_row(r: &Row, tz_of: &dyn Fn(&str) -> chrono_tz::Tz) -> rusqlite::Result<StoredLeg> {
    let device: String = r.get(1)?;
    let tz = tz_of(&device);
    let parse = |i: usize| -> rusqlite::Result<NaiveDateTime> {
        let s: String = r.get(i)?;
        NaiveDateTime::parse_from_str(&s, LOCAL_FMT).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let (ts, te) = (parse(10)?, parse(11)?);
    let received_ms: i64 = r.get(18)?;
    let leg = Leg {
        cdr_id: r.get(2)?,
        callid: r.get(3)?,
        visitor_id: r.get(4)?,
        outer_id: r.get(5)?,
        leg_type: r.get::<_, String>(6)?.into(),
        route: r.get(7)?,
        cpn: r.get(8)?,
        cdpn: r.get(9)?,
        time_start: ts,
        time_end: te,
        duration: r.get(12)?,
        trunk_number: r.get(13)?,
        recording: r.get(14)?,
        rec_codec: r.get(15)?,
        mac: r.get(16)?,
    };
    Ok(StoredLeg {
        id: r.get(0)?,
        device,
        cdr_id: leg.cdr_id.clone(),
        callid: leg.callid.clone(),
        visitor_id: leg.visitor_id.clone(),
        outer_id: leg.outer_id.clone(),
        leg_type: leg.leg_type.clone(),
        route: leg.route.clone(),
        cpn: leg.cpn.clone(),
        cdpn: leg.cdpn.clone(),
        time_start: local_iso(tz, ts),
        time_end: local_iso(tz, te),
        duration: leg.duration,
        trunk_number: leg.trunk_number.clone(),
        recording: leg.recording.clone(),
        rec_codec: leg.rec_codec.clone(),
        mac: leg.mac.clone(),
        clock_skewed: r.get(17)?,
        received_at: Utc
            .timestamp_millis_opt(received_ms)
            .single()
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        received_ms,
        leg,
    })
}

/// Device-local time as ISO 8601 with the zone's offset at that moment.
pub fn local_iso(tz: chrono_tz::Tz, t: NaiveDateTime) -> String {
    local_to_utc(tz, t).with_timezone(&tz).to_rfc3339()
}

/// Legs that started on device-local days `from..=to`, in start order.
pub fn between(
    conn: &Tx,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Vec<StoredLeg>> {
    let sql = format!(
        "SELECT {SELECT_COLS} FROM legs WHERE time_start >= ?1 AND time_start < ?2 ORDER BY time_start, id LIMIT ?3"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let lo = from.format("%Y-%m-%d").to_string();
    let hi = (to + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let rows = st.query_map(params![lo, hi, limit], |r| from_row(r, tz_of))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn by_cdr_id(
    conn: &Tx,
    device: &str,
    cdr_id: &str,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Option<StoredLeg>> {
    let sql = format!("SELECT {SELECT_COLS} FROM legs WHERE device = ?1 AND cdr_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![device, cdr_id], |r| from_row(r, tz_of))
        .optional()?)
}

pub fn count(conn: &Tx) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))?)
}
