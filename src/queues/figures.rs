//! Daily queue figures per (device, waiting group, local day) and per agent,
//! computed from inferred [`Visit`]s. Definitions: docs/queues.md.
//!
//! A visit belongs to the local day (device time zone) of its `entered_at`.
//! Ratios whose denominator is zero are `None`, never 0 or NaN.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::{Outcome, Visit};

/// Abandons within this many seconds count as short (caller misdialled or
/// gave up at once; often excluded by call-centre managers).
pub const SHORT_ABANDON_SECONDS: f64 = 5.0;

/// Figures of one waiting group on one local day of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDayFigures {
    pub device: String,
    /// Waiting group id (`waiting group`).
    pub group: String,
    /// Group number, if any visit of the day carried it.
    pub group_number: Option<String>,
    pub day: NaiveDate,
    pub entered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub rejected_offline: i64,
    pub rejected_full: i64,
    pub unknown: i64,
    /// Still waiting when the figures were computed.
    pub waiting: i64,
    pub asa_seconds: Option<f64>,
    pub avg_wait_seconds: Option<f64>,
    pub max_wait_seconds: Option<f64>,
    pub service_level: Option<f64>,
    pub service_level_inclusive: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub short_abandons: i64,
    /// Largest `waiting count` the device reported.
    pub peak_queue_length: i64,
    /// Largest number of this day's visits waiting at the same instant.
    pub peak_concurrent_visits: i64,
}

/// Calls one agent took from one group's queue on one local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDayCount {
    pub device: String,
    pub group: String,
    pub day: NaiveDate,
    pub agent: String,
    pub answered: i64,
    /// Average wait of the calls this agent took.
    pub avg_wait_seconds: Option<f64>,
}

type DayKey = (String, String, NaiveDate);

fn day_key(v: &Visit, tz: Tz) -> DayKey {
    (
        v.device.clone(),
        v.group.clone(),
        v.entered_at.with_timezone(&tz).date_naive(),
    )
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Figures per (device, group, local day), sorted by that key.
/// `sla_seconds` is config `queues.sla_seconds`: answered with wait <= it.
pub fn figures(visits: &[Visit], tz: Tz, sla_seconds: i64) -> Vec<GroupDayFigures> {
    let mut groups: BTreeMap<DayKey, Vec<&Visit>> = BTreeMap::new();
    for v in visits {
        groups.entry(day_key(v, tz)).or_default().push(v);
    }
    groups
        .into_iter()
        .map(|((device, group, day), vs)| group_day(device, group, day, &vs, sla_seconds))
        .collect()
}

fn group_day(
    device: String,
    group: String,
    day: NaiveDate,
    vs: &[&Visit],
    sla_seconds: i64,
) -> GroupDayFigures {
    let with = |o: Outcome| vs.iter().filter(|v| v.outcome == o).count();
    let waits = |pred: &dyn Fn(Outcome) -> bool| -> Vec<f64> {
        vs.iter()
            .filter(|v| pred(v.outcome))
            .filter_map(|v| v.wait_seconds)
            .collect()
    };
    let answered_waits = waits(&|o| o == Outcome::Answered);
    let abandoned_waits = waits(&|o| o == Outcome::Abandoned);
    let waited = waits(&|o| matches!(o, Outcome::Answered | Outcome::Abandoned | Outcome::Unknown));
    let (answered, abandoned, unknown) = (
        with(Outcome::Answered),
        with(Outcome::Abandoned),
        with(Outcome::Unknown),
    );
    let sla = sla_seconds as f64;
    let within_sla = answered_waits.iter().filter(|w| **w <= sla).count();
    GroupDayFigures {
        group_number: vs.iter().rev().find_map(|v| v.group_number.clone()),
        device,
        group,
        day,
        entered: count(vs.len()),
        answered: count(answered),
        abandoned: count(abandoned),
        rejected_offline: count(with(Outcome::RejectedOffline)),
        rejected_full: count(with(Outcome::RejectedFull)),
        unknown: count(unknown),
        waiting: count(with(Outcome::Waiting)),
        asa_seconds: mean(&answered_waits),
        avg_wait_seconds: mean(&waited),
        max_wait_seconds: waited.iter().copied().reduce(f64::max),
        service_level: ratio(within_sla, answered),
        service_level_inclusive: ratio(within_sla, answered + abandoned + unknown),
        abandon_rate: ratio(abandoned, answered + abandoned),
        short_abandons: count(
            abandoned_waits
                .iter()
                .filter(|w| **w <= SHORT_ABANDON_SECONDS)
                .count(),
        ),
        peak_queue_length: vs.iter().map(|v| v.entry_count).max().unwrap_or(0),
        peak_concurrent_visits: peak_concurrent(vs),
    }
}

/// Sweep over [entered, ended) of the visits that were queued (rejections
/// never were). A visit answered in the instant it entered still occupied
/// the queue, so it is given one nanosecond; a still-waiting visit never
/// leaves. Exits sort before entries at the same instant, so back-to-back
/// visits do not overlap.
fn peak_concurrent(vs: &[&Visit]) -> i64 {
    let mut points: Vec<(DateTime<Utc>, i8)> = Vec::new();
    for v in vs {
        if matches!(v.outcome, Outcome::RejectedOffline | Outcome::RejectedFull) {
            continue;
        }
        points.push((v.entered_at, 1));
        if let Some(end) = v.ended_at {
            let end = if end > v.entered_at {
                Some(end)
            } else {
                v.entered_at.checked_add_signed(TimeDelta::nanoseconds(1))
            };
            if let Some(end) = end {
                points.push((end, -1));
            }
        }
    }
    points.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, delta) in points {
        now += i64::from(delta);
        peak = peak.max(now);
    }
    peak
}

/// Calls taken from the queue per (device, group, local day, agent), sorted
/// by that key.
pub fn agent_counts(visits: &[Visit], tz: Tz) -> Vec<AgentDayCount> {
    // (calls, waits): a wait is missing only on hand-made visits, so the
    // calls are counted apart from the waits averaged.
    let mut per: BTreeMap<(DayKey, String), (usize, Vec<f64>)> = BTreeMap::new();
    for v in visits.iter().filter(|v| v.outcome == Outcome::Answered) {
        let Some(agent) = &v.agent else { continue };
        let slot = per.entry((day_key(v, tz), agent.clone())).or_default();
        slot.0 += 1;
        slot.1.extend(v.wait_seconds);
    }
    per.into_iter()
        .map(
            |(((device, group, day), agent), (n, waits))| AgentDayCount {
                device,
                group,
                day,
                agent,
                answered: count(n),
                avg_wait_seconds: mean(&waits),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// 2024-01-01T00:00:00Z = 08:00 in Asia/Shanghai.
    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200 + secs, 0)
            .single()
            .expect("valid time")
    }

    fn visit(n: i64, entered: i64, outcome: Outcome, wait: Option<f64>) -> Visit {
        let waited = !matches!(outcome, Outcome::Waiting);
        Visit {
            key: format!("hq:{n}"),
            device: "hq".into(),
            group: "6".into(),
            group_number: None,
            party_kind: "visitor".into(),
            party_id: n.to_string(),
            caller: None,
            callid: None,
            entered_at: t(entered),
            entry_count: 1,
            outcome,
            agent: (outcome == Outcome::Answered).then(|| "200".to_string()),
            ended_at: waited.then(|| t(entered + wait.unwrap_or(0.0) as i64)),
            wait_seconds: wait,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn one(visits: &[Visit]) -> GroupDayFigures {
        let f = figures(visits, chrono_tz::Asia::Shanghai, 20);
        assert_eq!(f.len(), 1, "{f:?}");
        f.into_iter().next().expect("one group-day")
    }

    fn mixed_day() -> Vec<Visit> {
        vec![
            visit(1, 0, Outcome::Answered, Some(10.0)),
            visit(2, 100, Outcome::Answered, Some(30.0)),
            visit(3, 200, Outcome::Abandoned, Some(3.0)),
            visit(4, 300, Outcome::Abandoned, Some(40.0)),
            visit(5, 400, Outcome::Unknown, Some(3600.0)),
            visit(6, 500, Outcome::RejectedFull, Some(0.0)),
            visit(7, 600, Outcome::RejectedOffline, Some(0.0)),
            visit(8, 700, Outcome::Waiting, None),
        ]
    }

    #[test]
    fn figures_counts_outcomes() {
        let f = one(&mixed_day());
        assert_eq!(f.day, day("2024-01-01"));
        assert_eq!(
            (f.entered, f.answered, f.abandoned, f.unknown),
            (8, 2, 2, 1)
        );
        assert_eq!((f.rejected_full, f.rejected_offline, f.waiting), (1, 1, 1));
    }

    #[test]
    fn figures_computes_waits() {
        let f = one(&mixed_day());
        assert_eq!(f.asa_seconds, Some(20.0));
        assert_eq!(
            f.avg_wait_seconds,
            Some((10.0 + 30.0 + 3.0 + 40.0 + 3600.0) / 5.0)
        );
        assert_eq!(f.max_wait_seconds, Some(3600.0));
        assert_eq!(f.short_abandons, 1);
    }

    #[test]
    fn figures_computes_service_level_and_abandon_rate() {
        let f = one(&mixed_day());
        assert_eq!(f.service_level, Some(0.5));
        assert_eq!(f.service_level_inclusive, Some(0.2));
        assert_eq!(f.abandon_rate, Some(0.5));
    }

    #[test]
    fn figures_counts_wait_equal_to_sla_as_within() {
        let f = one(&[visit(1, 0, Outcome::Answered, Some(20.0))]);
        assert_eq!(f.service_level, Some(1.0));
    }

    #[test]
    fn figures_zero_denominators_are_none() {
        let f = one(&[visit(1, 0, Outcome::RejectedFull, Some(0.0))]);
        assert_eq!(f.asa_seconds, None);
        assert_eq!(f.avg_wait_seconds, None);
        assert_eq!(f.max_wait_seconds, None);
        assert_eq!((f.service_level, f.service_level_inclusive), (None, None));
        assert_eq!(f.abandon_rate, None);
    }

    #[test]
    fn figures_split_by_local_day() {
        // 15:00Z = 23:00 Jan 1 in Shanghai, 17:00Z = 01:00 Jan 2.
        let visits = [
            visit(1, 15 * 3600, Outcome::Answered, Some(5.0)),
            visit(2, 17 * 3600, Outcome::Answered, Some(5.0)),
        ];
        let days: Vec<_> = figures(&visits, chrono_tz::Asia::Shanghai, 20)
            .into_iter()
            .map(|f| (f.day, f.answered))
            .collect();
        assert_eq!(days, vec![(day("2024-01-01"), 1), (day("2024-01-02"), 1)]);
    }

    #[test]
    fn figures_peak_queue_length_is_max_entry_count() {
        let mut full = visit(2, 50, Outcome::RejectedFull, Some(0.0));
        full.entry_count = 30;
        let f = one(&[visit(1, 0, Outcome::Answered, Some(9.0)), full]);
        assert_eq!(f.peak_queue_length, 30);
    }

    #[test]
    fn figures_peak_concurrent_counts_overlaps_only() {
        let f = one(&[
            visit(1, 0, Outcome::Answered, Some(100.0)),   // [0, 100)
            visit(2, 50, Outcome::Abandoned, Some(100.0)), // [50, 150)
            visit(3, 100, Outcome::Answered, Some(20.0)),  // [100, 120): after 1
            visit(4, 110, Outcome::RejectedFull, Some(0.0)),
        ]);
        assert_eq!(f.peak_concurrent_visits, 2);
    }

    #[test]
    fn figures_peak_concurrent_counts_instant_answers() {
        let f = one(&[
            visit(1, 0, Outcome::Answered, Some(100.0)),
            visit(2, 60, Outcome::Answered, Some(0.0)),
            visit(3, 60, Outcome::Waiting, None),
        ]);
        // At 60 s: visit 1, the instant answer 2, and 3.
        assert_eq!(f.peak_concurrent_visits, 3);
    }

    #[test]
    fn agent_counts_counts_answered_per_agent() {
        let mut other = visit(3, 300, Outcome::Answered, Some(8.0));
        other.agent = Some("201".into());
        let visits = [
            visit(1, 0, Outcome::Answered, Some(10.0)),
            visit(2, 100, Outcome::Answered, Some(30.0)),
            other,
            visit(4, 400, Outcome::Abandoned, Some(3.0)),
        ];
        let counts: Vec<_> = agent_counts(&visits, chrono_tz::Asia::Shanghai)
            .into_iter()
            .map(|a| (a.agent, a.answered, a.avg_wait_seconds))
            .collect();
        assert_eq!(
            counts,
            vec![("200".into(), 2, Some(20.0)), ("201".into(), 1, Some(8.0))]
        );
    }
}
