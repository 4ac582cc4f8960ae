//! The devices' figures that `callvault devices` and `GET /api/devices`
//! show (README "Devices"), and the `callvault_devices_silent` gauge: one
//! row per configured or registered device and per unregistered sender,
//! read from the store (`store::devices`, `store::device_figures`). What
//! "today", "silent" and "clock skew" mean is decided here, once for the
//! CLI and the API.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone};
use serde::Serialize;

use crate::config::Config;
use crate::store::device_figures::{self, Tally};
use crate::store::{devices, Result, Tx};

/// Pushes looked at to learn how often a device usually pushes.
const GAP_PUSHES: i64 = 200;
/// Fewer pushes than this: too few to say what is usual.
const GAP_MIN_PUSHES: usize = 10;
/// Never silent before this long without a push, however busy the device.
const SILENT_FLOOR_MS: i64 = 5 * 60 * 1000;
/// CDRs whose end time is compared with their receive time.
const SKEW_LEGS: i64 = 50;

/// One device or sender, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// `None` for an unregistered sender.
    pub name: Option<String>,
    /// config | registered | unregistered
    pub kind: &'static str,
    pub mac: Option<String>,
    /// The address(es) it pushes from, comma separated.
    pub address: Option<String>,
    /// Its IANA zone: its "today" is this zone's day.
    pub timezone: String,
    pub today: String,
    /// Stored pushes in all (held pushes for an unregistered sender).
    pub pushes: i64,
    pub last_push: Option<String>,
    /// Pushes taken today (stored, or held for an unregistered sender).
    pub pushes_today: i64,
    /// Pushes refused today (quarantined), in all and by reason.
    pub refused_today: i64,
    pub refusals_today: BTreeMap<String, i64>,
    /// Recordings still to fetch (waiting or being fetched), and those
    /// that failed or were not on the device.
    pub recordings_pending: i64,
    pub recordings_failed: i64,
    pub recordings_missing: i64,
    /// Stored pushes not yet derived into legs and calls.
    pub derive_backlog: i64,
    /// Median of (CDR end time − receive time) over its latest 50 CDRs:
    /// positive when its clock is ahead of the collector's; a large
    /// negative value also shows pushes that came late.
    pub clock_skew_seconds: Option<i64>,
    /// The gap between its pushes that 95 % of its latest 200 gaps do not
    /// exceed; `None` below 10 pushes.
    pub usual_gap_seconds: Option<i64>,
    /// Time since its last push.
    pub silent_for_seconds: Option<i64>,
    /// Silent for more than twice its usual gap (and at least 5 minutes).
    pub silent: bool,
}

/// A configured or registered device: what identifies it.
struct Known {
    name: String,
    kind: &'static str,
    mac: Option<String>,
    sources: Vec<String>,
    tz: chrono_tz::Tz,
}

fn known(cfg: &Config, conn: &Tx) -> Result<Vec<Known>> {
    let mut out: Vec<Known> = cfg
        .devices
        .iter()
        .map(|d| Known {
            name: d.name.clone(),
            kind: "config",
            mac: d.mac.clone(),
            sources: d.allowed_sources(),
            tz: cfg.device_tz(&d.name),
        })
        .collect();
    for d in devices::active(conn)? {
        out.push(Known {
            tz: cfg.device_tz(&d.name),
            sources: d.ip.clone().into_iter().collect(),
            name: d.name,
            kind: "registered",
            mac: d.mac,
        });
    }
    Ok(out)
}

/// The first instant (unix ms) of the day `now_ms` falls on in `tz`.
fn day_start(tz: chrono_tz::Tz, now_ms: i64) -> (NaiveDate, i64) {
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let day = now.with_timezone(&tz).date_naive();
    // A day may start at 01:00 where the clocks skip midnight.
    let start = (0..3)
        .find_map(|h| {
            tz.from_local_datetime(&day.and_hms_opt(h, 0, 0)?)
                .earliest()
        })
        .map_or(now_ms, |t| t.timestamp_millis());
    (day, start)
}

/// What kind of refusal a quarantine reason is: its words before the
/// detail ("authentication failed: replayed" → "authentication failed").
pub fn reason_kind(status: i64, reason: Option<&str>) -> String {
    let text = reason.unwrap_or("");
    let cut = text.find([':', '(', ';']).unwrap_or(text.len());
    let kind = text[..cut].trim();
    if kind.is_empty() {
        format!("HTTP {status}")
    } else {
        kind.to_string()
    }
}

/// How often the device usually pushes and whether it has gone quiet:
/// (usual gap, time since the last push, silent), from its latest pushes'
/// receive times, newest first.
fn silence(times: &[i64], now_ms: i64) -> (Option<i64>, Option<i64>, bool) {
    let Some(&last) = times.first() else {
        return (None, None, false);
    };
    let quiet = (now_ms - last).max(0);
    if times.len() < GAP_MIN_PUSHES {
        return (None, Some(quiet), false);
    }
    let mut gaps: Vec<i64> = times.windows(2).map(|w| (w[0] - w[1]).max(0)).collect();
    gaps.sort_unstable();
    let usual = gaps[(gaps.len() - 1) * 95 / 100];
    let silent = quiet > (2 * usual).max(SILENT_FLOOR_MS);
    (Some(usual), Some(quiet), silent)
}

/// The median of (end − received) in seconds over CDR times.
fn skew(legs: &[(String, i64)]) -> Option<i64> {
    let mut d: Vec<i64> = legs
        .iter()
        .filter_map(|(end, received)| {
            let end = chrono::DateTime::parse_from_rfc3339(end).ok()?;
            Some(end.timestamp_millis() - received)
        })
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some((d[d.len() / 2] as f64 / 1000.0).round() as i64)
}

fn iso_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Tallies of the pushes since each zone's midnight, read once per zone.
struct Days {
    read: Vec<(i64, Vec<Tally>)>,
}

impl Days {
    fn since(&mut self, conn: &Tx, since_ms: i64) -> Result<&[Tally]> {
        if let Some(i) = self.read.iter().position(|(s, _)| *s == since_ms) {
            return Ok(&self.read[i].1);
        }
        self.read
            .push((since_ms, device_figures::tally_since(conn, since_ms)?));
        Ok(&self.read[self.read.len() - 1].1)
    }
}

/// Adds refused tallies to a row.
fn refusals<'a>(row: &mut DeviceRow, tallies: impl Iterator<Item = &'a Tally>) {
    for t in tallies.filter(|t| t.outcome == "quarantined") {
        row.refused_today += t.pushes;
        *row.refusals_today
            .entry(reason_kind(t.status, t.reason.as_deref()))
            .or_default() += t.pushes;
    }
}

/// Every device and sender with its figures as of `now_ms`: configured
/// devices, then registered ones, then unregistered senders (those with
/// held pushes, then addresses whose pushes were only refused today).
pub fn rows(cfg: &Config, conn: &Tx, now_ms: i64) -> Result<Vec<DeviceRow>> {
    let known = known(cfg, conn)?;
    let counts = devices::push_counts(conn)?;
    let waiting = device_figures::recordings_waiting(conn)?;
    let backlog = device_figures::backlog_by_device(conn)?;
    let mut days = Days { read: Vec::new() };
    let mut out = Vec::new();
    let empty = |name: Option<String>, kind, tz: chrono_tz::Tz| {
        let (day, _) = day_start(tz, now_ms);
        DeviceRow {
            name,
            kind,
            mac: None,
            address: None,
            timezone: tz.name().to_string(),
            today: day.to_string(),
            pushes: 0,
            last_push: None,
            pushes_today: 0,
            refused_today: 0,
            refusals_today: BTreeMap::new(),
            recordings_pending: 0,
            recordings_failed: 0,
            recordings_missing: 0,
            derive_backlog: 0,
            clock_skew_seconds: None,
            usual_gap_seconds: None,
            silent_for_seconds: None,
            silent: false,
        }
    };
    for k in &known {
        let mut row = empty(Some(k.name.clone()), k.kind, k.tz);
        row.mac = k.mac.clone();
        row.address = Some(k.sources.join(",")).filter(|a| !a.is_empty());
        if let Some((_, n, last)) = counts.iter().find(|(d, _, _)| *d == k.name) {
            row.pushes = *n;
            row.last_push = Some(last.clone());
        }
        let tallies = days.since(conn, day_start(k.tz, now_ms).1)?;
        let mine = |t: &&Tally| match &t.device {
            Some(d) => *d == k.name,
            None => t.outcome == "quarantined" && k.sources.contains(&t.source),
        };
        row.pushes_today = tallies
            .iter()
            .filter(mine)
            .filter(|t| t.outcome == "stored")
            .map(|t| t.pushes)
            .sum();
        refusals(&mut row, tallies.iter().filter(mine));
        for (d, status, n) in &waiting {
            if *d == k.name {
                match status.as_str() {
                    "pending" => row.recordings_pending += n,
                    "failed" => row.recordings_failed += n,
                    _ => row.recordings_missing += n,
                }
            }
        }
        row.derive_backlog = backlog
            .iter()
            .find(|(d, _)| *d == k.name)
            .map_or(0, |(_, n)| *n);
        row.clock_skew_seconds = skew(&device_figures::recent_leg_times(conn, &k.name, SKEW_LEGS)?);
        let times = device_figures::recent_push_times(conn, &k.name, GAP_PUSHES)?;
        let (usual, quiet, silent) = silence(&times, now_ms);
        row.usual_gap_seconds = usual.map(|ms| ms / 1000);
        row.silent_for_seconds = quiet.map(|ms| ms / 1000);
        row.silent = silent;
        if row.last_push.is_none() {
            row.last_push = times.first().and_then(|&ms| iso_ms(ms));
        }
        out.push(row);
    }
    // Senders that are no device: their held pushes, and their refusals
    // when they name no device's address.
    let tz = cfg.default_tz();
    let tallies = days.since(conn, day_start(tz, now_ms).1)?.to_vec();
    let claimed = |source: &str| known.iter().any(|k| k.sources.iter().any(|s| s == source));
    let mut listed: Vec<String> = Vec::new();
    for s in devices::unregistered(conn)? {
        let mut row = empty(None, "unregistered", tz);
        row.mac = s.mac;
        row.pushes = s.pushes;
        row.last_push = Some(s.last_push);
        let from = |t: &&Tally| t.device.is_none() && t.source == s.source;
        row.pushes_today = tallies
            .iter()
            .filter(from)
            .filter(|t| t.outcome == "held")
            .map(|t| t.pushes)
            .sum();
        if !claimed(&s.source) && !listed.contains(&s.source) {
            refusals(&mut row, tallies.iter().filter(from));
        }
        listed.push(s.source.clone());
        row.address = Some(s.source);
        out.push(row);
    }
    let mut refused_only: BTreeMap<&str, (Vec<&Tally>, i64)> = BTreeMap::new();
    for t in &tallies {
        if t.device.is_none()
            && t.outcome == "quarantined"
            && !claimed(&t.source)
            && !listed.contains(&t.source)
        {
            let e = refused_only.entry(&t.source).or_default();
            e.0.push(t);
            e.1 = e.1.max(t.last_ms);
        }
    }
    for (source, (ts, last_ms)) in refused_only {
        let mut row = empty(None, "unregistered", tz);
        row.address = Some(source.to_string());
        row.last_push = iso_ms(last_ms);
        refusals(&mut row, ts.into_iter());
        out.push(row);
    }
    Ok(out)
}

/// How many configured or registered devices are silent now (the gauge
/// `callvault_devices_silent`); cheaper than [`rows`]: only the latest
/// pushes of each device are read.
pub fn silent_count(cfg: &Config, conn: &Tx, now_ms: i64) -> Result<i64> {
    let mut n = 0;
    for k in known(cfg, conn)? {
        let times = device_figures::recent_push_times(conn, &k.name, GAP_PUSHES)?;
        if silence(&times, now_ms).2 {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_silent_past_twice_its_usual_gap() {
        // A push a minute for 20 minutes, newest first.
        let t0 = 1_700_000_000_000;
        let times: Vec<i64> = (0..20).rev().map(|i| t0 + i * 60_000).collect();
        let last = times[0];
        let (usual, quiet, silent) = silence(&times, last + 4 * 60_000);
        assert_eq!((usual, quiet, silent), (Some(60_000), Some(240_000), false));
        // Twice the usual gap but under the floor: not yet.
        assert!(!silence(&times, last + 5 * 60_000).2);
        assert!(silence(&times, last + 5 * 60_000 + 1).2);
        // Too few pushes to know what is usual: never marked.
        assert_eq!(
            silence(&times[..5], last + 3_600_000),
            (None, Some(3_600_000), false)
        );
        assert_eq!(silence(&[], last), (None, None, false));
    }

    #[test]
    fn skew_is_the_median_of_end_minus_receive() {
        let legs = [
            (
                "2024-01-08T02:00:00Z".to_string(),
                1_704_679_200_000 - 120_000,
            ),
            (
                "2024-01-08T02:00:00Z".to_string(),
                1_704_679_200_000 - 118_000,
            ),
            // A late push (an hour after the call ended) does not move it.
            (
                "2024-01-08T02:00:00Z".to_string(),
                1_704_679_200_000 + 3_600_000,
            ),
            ("not a time".to_string(), 0),
        ];
        assert_eq!(skew(&legs), Some(118));
        assert_eq!(skew(&[]), None);
    }

    #[test]
    fn reasons_are_kinds_without_their_detail() {
        assert_eq!(
            reason_kind(401, Some("authentication failed: replayed")),
            "authentication failed"
        );
        assert_eq!(
            reason_kind(413, Some("body exceeds max_body_bytes (1024 bytes)")),
            "body exceeds max_body_bytes"
        );
        assert_eq!(reason_kind(400, None), "HTTP 400");
    }

    #[test]
    fn the_day_starts_at_local_midnight() {
        // 2024-01-08 20:00 UTC is already the 9th in Shanghai (UTC+8).
        let now = 1_704_744_000_000;
        let (day, start) = day_start(chrono_tz::Asia::Shanghai, now);
        assert_eq!(day.to_string(), "2024-01-09");
        assert_eq!(start, 1_704_729_600_000); // 2024-01-08T16:00:00Z
    }
}
