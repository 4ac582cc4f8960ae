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

/// The column values of a new leg, as both backends store them.
pub(in crate::store) struct NewLeg<'a> {
    pub device: &'a str,
    pub push_id: i64,
    pub received_ms: i64,
    pub leg: &'a Leg,
    pub time_start: String,
    pub time_end: String,
    pub start_utc: String,
    pub end_utc: String,
    pub skewed: bool,
    pub hash: String,
}

pub fn insert(
    tx: &Tx,
    device: &str,
    push_id: i64,
    received_ms: i64,
    leg: &Leg,
    tz: chrono_tz::Tz,
) -> Result<Inserted> {
    let start_utc = local_to_utc(tz, leg.time_start);
    let end_utc = local_to_utc(tz, leg.time_end);
    let new = NewLeg {
        device,
        push_id,
        received_ms,
        leg,
        time_start: leg.time_start.format(LOCAL_FMT).to_string(),
        time_end: leg.time_end.format(LOCAL_FMT).to_string(),
        start_utc: start_utc.to_rfc3339(),
        end_utc: end_utc.to_rfc3339(),
        skewed: (end_utc.timestamp_millis() - received_ms).abs() / 1000 > SKEW_FLAG_SECS,
        hash: content_hash(leg),
    };
    let pg = tx.pg();
    let added = match pg {
        Some(pg) => super::postgres::legs::insert_new(pg, &new)?,
        None => insert_new(tx, &new)?,
    };
    if let Some(id) = added {
        if new.skewed {
            metrics::counter!("callvault_legs_clock_skewed_total").increment(1);
            // A device whose clock is off (or that sends a day's backlog at
            // once) flags every leg: one line a minute per device.
            if let Some(left_out) = SKEW_LOG.admit(device) {
                tracing::warn!(device, cdr_id = %leg.cdr_id, time_end = %leg.time_end, more_since_last_line = left_out,
                    "leg time is more than a day away from receive time (device clock off, or a late re-send); flagged clock_skewed");
            }
        }
        return Ok(Inserted::New(id));
    }
    let (id, existing) = match pg {
        Some(pg) => super::postgres::legs::existing(pg, device, &leg.cdr_id)?,
        None => tx
            .prepare_cached("SELECT id, content_hash FROM legs WHERE device = ?1 AND cdr_id = ?2")?
            .query_row(params![device, leg.cdr_id], |r| Ok((r.get(0)?, r.get(1)?)))?,
    };
    if existing == new.hash {
        return Ok(Inserted::Duplicate(id));
    }
    let json = serde_json::to_string(leg).unwrap_or_default();
    match pg {
        Some(pg) => {
            super::postgres::legs::insert_conflict(pg, device, &leg.cdr_id, push_id, &json)?
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO leg_conflicts (device, cdr_id, push_id, leg_json) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![device, leg.cdr_id, push_id, json])?;
        }
    }
    tracing::warn!(device, cdr_id = %leg.cdr_id, "re-push of a Cdr id with different content kept as a conflict");
    Ok(Inserted::Conflict(id))
}

/// Stores `new` unless its (device, Cdr id) is known; its row id if stored.
fn insert_new(tx: &Tx, new: &NewLeg) -> Result<Option<i64>> {
    let leg = new.leg;
    let mut st = tx.prepare_cached(
        "INSERT INTO legs (device, cdr_id, push_id, received_ms, callid, visitor_id, outer_id, leg_type, route,
                           cpn, cdpn, time_start, time_end, start_utc, end_utc, duration, trunk_number,
                           recording, rec_codec, mac, clock_skewed, content_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
         ON CONFLICT (device, cdr_id) DO NOTHING",
    )?;
    let n = st.execute(params![
        new.device,
        leg.cdr_id,
        new.push_id,
        new.received_ms,
        leg.callid,
        leg.visitor_id,
        leg.outer_id,
        leg.leg_type.as_str(),
        leg.route,
        leg.cpn,
        leg.cdpn,
        new.time_start,
        new.time_end,
        new.start_utc,
        new.end_utc,
        leg.duration,
        leg.trunk_number,
        leg.recording,
        leg.rec_codec,
        leg.mac,
        new.skewed,
        new.hash,
    ])?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
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

/// The columns of [`SELECT_COLS`], as either backend reads them.
pub(in crate::store) struct LegRow {
    pub id: i64,
    pub device: String,
    pub cdr_id: String,
    pub callid: String,
    pub visitor_id: Option<String>,
    pub outer_id: Option<String>,
    pub leg_type: String,
    pub route: String,
    pub cpn: String,
    pub cdpn: String,
    pub time_start: String,
    pub time_end: String,
    pub duration: i64,
    pub trunk_number: String,
    pub recording: Option<String>,
    pub rec_codec: Option<String>,
    pub mac: Option<String>,
    pub clock_skewed: bool,
    pub received_ms: i64,
}

impl LegRow {
    /// The leg as the API shows it; `Err` names the column (its index in
    /// `SELECT_COLS`) whose stored time does not parse.
    pub(in crate::store) fn into_stored(
        self,
        tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
    ) -> std::result::Result<StoredLeg, (usize, chrono::ParseError)> {
        let tz = tz_of(&self.device);
        let ts = NaiveDateTime::parse_from_str(&self.time_start, LOCAL_FMT).map_err(|e| (10, e))?;
        let te = NaiveDateTime::parse_from_str(&self.time_end, LOCAL_FMT).map_err(|e| (11, e))?;
        let leg = Leg {
            cdr_id: self.cdr_id,
            callid: self.callid,
            visitor_id: self.visitor_id,
            outer_id: self.outer_id,
            leg_type: self.leg_type.into(),
            route: self.route,
            cpn: self.cpn,
            cdpn: self.cdpn,
            time_start: ts,
            time_end: te,
            duration: self.duration,
            trunk_number: self.trunk_number,
            recording: self.recording,
            rec_codec: self.rec_codec,
            mac: self.mac,
        };
        Ok(StoredLeg {
            id: self.id,
            device: self.device,
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
            clock_skewed: self.clock_skewed,
            received_at: Utc
                .timestamp_millis_opt(self.received_ms)
                .single()
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            received_ms: self.received_ms,
            leg,
        })
    }
}

/// Maps a SQLite row selected with `SELECT_COLS`; `tz_of` gives each
/// device's zone. (PostgreSQL rows: `store::postgres::legs::from_row`.)
pub fn from_row(r: &Row, tz_of: &dyn Fn(&str) -> chrono_tz::Tz) -> rusqlite::Result<StoredLeg> {
    let row = LegRow {
        id: r.get(0)?,
        device: r.get(1)?,
        cdr_id: r.get(2)?,
        callid: r.get(3)?,
        visitor_id: r.get(4)?,
        outer_id: r.get(5)?,
        leg_type: r.get(6)?,
        route: r.get(7)?,
        cpn: r.get(8)?,
        cdpn: r.get(9)?,
        time_start: r.get(10)?,
        time_end: r.get(11)?,
        duration: r.get(12)?,
        trunk_number: r.get(13)?,
        recording: r.get(14)?,
        rec_codec: r.get(15)?,
        mac: r.get(16)?,
        clock_skewed: r.get(17)?,
        received_ms: r.get(18)?,
    };
    row.into_stored(tz_of).map_err(|(i, e)| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Device-local time as ISO 8601 with the zone's offset at that moment.
pub fn local_iso(tz: chrono_tz::Tz, t: NaiveDateTime) -> String {
    local_to_utc(tz, t).with_timezone(&tz).to_rfc3339()
}

/// Legs that started on device-local days `from..=to`, in start order, of
/// `devices` (every device when empty: `store::scope`).
pub fn between(
    conn: &Tx,
    (from, to): (NaiveDate, NaiveDate),
    devices: &[String],
    limit: i64,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Vec<StoredLeg>> {
    let lo = from.format("%Y-%m-%d").to_string();
    let hi = (to + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    if let Some(pg) = conn.pg() {
        return super::postgres::legs::between(pg, &lo, &hi, devices, limit, tz_of);
    }
    let sql = format!(
        "SELECT {SELECT_COLS} FROM legs WHERE time_start >= ?1 AND time_start < ?2 AND {}
         ORDER BY time_start, id LIMIT ?3",
        super::scope::sqlite_clause("device", "?4")
    );
    let mut st = conn.prepare_cached(&sql)?;
    let devices = super::scope::sqlite_value(devices);
    let rows = st.query_map(params![lo, hi, limit, devices], |r| from_row(r, tz_of))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn by_cdr_id(
    conn: &Tx,
    device: &str,
    cdr_id: &str,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Option<StoredLeg>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::legs::by_cdr_id(pg, device, cdr_id, tz_of);
    }
    let sql = format!("SELECT {SELECT_COLS} FROM legs WHERE device = ?1 AND cdr_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![device, cdr_id], |r| from_row(r, tz_of))
        .optional()?)
}

pub fn count(conn: &Tx) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::legs::count(pg);
    }
    Ok(conn.query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))?)
}

#[cfg(test)]
pub(in crate::store) mod tests {
    use super::*;
    use crate::store::testing::each_backend;

    /// A push for the legs to point at (its id).
    pub(in crate::store) fn a_push(tx: &Tx) -> Result<i64> {
        let (received_at, received_ms) = crate::store::now_stamp();
        crate::store::pushes::insert(
            tx,
            &crate::store::pushes::NewPush {
                received_at,
                received_ms,
                source: "127.0.0.1".into(),
                device: Some("om".into()),
                method: "POST".into(),
                path: "/".into(),
                query: None,
                body: Vec::new(),
                outcome: crate::store::pushes::Outcome::Quarantined,
                status: 400,
                reason: None,
                sender_mac: None,
            },
        )
    }

    fn leg(cdr_id: &str, cpn: &str) -> Leg {
        let t = |s: &str| parse_local(s).expect("time");
        Leg {
            cdr_id: cdr_id.into(),
            callid: "32818".into(),
            visitor_id: Some("48".into()),
            outer_id: None,
            leg_type: LegType::from("IN".to_string()),
            route: "IP".into(),
            cpn: cpn.into(),
            cdpn: "200".into(),
            time_start: t("2024-03-09 16:27:08"),
            time_end: t("2024-03-09 16:27:13"),
            duration: 2,
            trunk_number: "888".into(),
            recording: Some("20240309/a.wav".into()),
            rec_codec: Some("G729".into()),
            mac: None,
        }
    }

    /// A leg is unique per (device, Cdr id) for good: re-pushed a month
    /// later (another partition on PostgreSQL) it is a duplicate, and with
    /// other content a conflict kept apart; the first version stays.
    #[test]
    fn a_leg_repushed_in_a_later_month_is_a_duplicate() {
        each_backend(
            "a_leg_repushed_in_a_later_month_is_a_duplicate",
            |_, store| {
                let now = chrono::Utc::now().timestamp_millis();
                let later = now + 40 * 86_400_000;
                let tz: chrono_tz::Tz = "Asia/Shanghai".parse().expect("tz");
                let (first, again, other, second) = store
                    .writer
                    .write_blocking(move |tx| {
                        let (p1, p2, p3) = (a_push(tx)?, a_push(tx)?, a_push(tx)?);
                        Ok((
                            insert(tx, "om", p1, now, &leg("1-0", "18201008888"), tz)?,
                            insert(tx, "om", p2, later, &leg("1-0", "18201008888"), tz)?,
                            insert(tx, "om", p3, later, &leg("1-0", "13900000000"), tz)?,
                            insert(tx, "cc", p3, later, &leg("1-0", "13900000000"), tz)?,
                        ))
                    })
                    .expect("insert");
                let Inserted::New(id) = first else {
                    panic!("first push: {first:?}");
                };
                assert_eq!(again, Inserted::Duplicate(id));
                assert_eq!(other, Inserted::Conflict(id));
                assert!(matches!(second, Inserted::New(i) if i != id), "{second:?}");
                let tz_of = move |_: &str| tz;
                store
                    .read_blocking(|tx| {
                        assert_eq!(count(tx)?, 2);
                        let got = by_cdr_id(tx, "om", "1-0", &tz_of)?.expect("stored");
                        assert_eq!((got.id, got.cpn.as_str()), (id, "18201008888"));
                        assert_eq!(got.time_start, "2024-03-09T16:27:08+08:00");
                        assert_eq!(got.time_end, "2024-03-09T16:27:13+08:00");
                        assert_eq!(got.received_ms, now);
                        assert!(got.received_at.ends_with('Z'), "{}", got.received_at);
                        assert!(
                            got.clock_skewed,
                            "the leg ended long before its receive time"
                        );
                        assert_eq!(got.leg, leg("1-0", "18201008888"));
                        assert!(by_cdr_id(tx, "om", "2-0", &tz_of)?.is_none());
                        let day = NaiveDate::from_ymd_opt(2024, 3, 9).expect("day");
                        let on_day = between(tx, (day, day), &[], 10, &tz_of)?;
                        let ids: Vec<(&str, i64)> =
                            on_day.iter().map(|l| (l.device.as_str(), l.id)).collect();
                        assert_eq!(ids.len(), 2);
                        assert_eq!(ids[0], ("om", id));
                        let before = day.pred_opt().expect("day");
                        assert!(between(tx, (before, before), &[], 10, &tz_of)?.is_empty());
                        Ok(())
                    })
                    .expect("read");
            },
        );
    }
}
