//! The traffic model: lays out `calls` calls (Poisson arrivals, overlapping
//! so visitor/outer ids really recycle), then turns their timelines into the
//! pushes the device sends, in send order, with Cdr ids assigned the way the
//! device does (`<seq><TimeEnd>-0`, seq counting CDRs in push order).

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::dialogue::Halves;
use super::scenarios::Scenario;
use super::timeline::{CallPlan, Ctx, Item};
use super::truth::Truth;
use super::xml::{auth_xml, cdr_xml, event_xml, signature};
use crate::model::{Auth, OM_TIME_FORMAT};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Same seed → identical plan.
    pub seed: u64,
    /// Number of calls.
    pub calls: usize,
    /// Device local time at which the first call arrives.
    pub start: NaiveDateTime,
    /// Mean arrival rate (calls per hour, Poisson arrivals). High rates make
    /// calls overlap; an arrival that finds no free id waits for one.
    pub calls_per_hour: f64,
    /// `<MAC>` put inside every message (API_MAC=yes), if set.
    pub mac: Option<String>,
    /// API_SERVER_PASSWORD: when set every push carries an `<Auth>` block.
    pub server_password: Option<String>,
    /// The device's time zone, for the Auth timestamp (unix time).
    pub timezone: Tz,
    /// Scenarios to draw from (weighted by `Scenario::weight`); empty = all.
    pub scenarios: Vec<Scenario>,
    /// Size of the visitor/outer id pool (ids 1..=size).
    pub id_pool_size: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            calls: 100,
            start: NaiveDate::from_ymd_opt(2024, 1, 8)
                .and_then(|d| d.and_hms_opt(9, 0, 0))
                .unwrap_or_default(),
            calls_per_hour: 120.0,
            mac: None,
            server_password: None,
            timezone: chrono_tz::Asia::Shanghai,
            scenarios: Vec::new(),
            id_pool_size: 99,
        }
    }
}

/// What a push carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushKind {
    Cdr,
    Event,
}

/// One HTTP push of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Device local time at which it is sent (an event at its moment, a CDR at its TimeEnd).
    pub at: NaiveDateTime,
    /// Complete XML document as the device sends it, declaration included.
    pub body: String,
    pub kind: PushKind,
}

/// A recording file the simulated recorder must serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSpec {
    /// Exactly the CDR's `<Recording>` value (`YYYYMMDD/<file>.wav`).
    pub path: String,
    /// `G729`, `PCMU` or `PCMA`.
    pub codec: String,
    /// Talk length, = the leg's Duration.
    pub seconds: u32,
}

/// Everything one simulation run produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sorted by `at` (stable: equal times keep the device's emission order).
    pub pushes: Vec<Push>,
    pub recordings: Vec<RecordingSpec>,
    pub truth: Truth,
}

/// Exponential inter-arrival gap in whole seconds.
fn gap_seconds(rng: &mut StdRng, calls_per_hour: f64) -> i64 {
    let rate = if calls_per_hour.is_finite() && calls_per_hour > 0.0 {
        calls_per_hour
    } else {
        60.0
    };
    let u: f64 = rng.random();
    (-(1.0 - u).ln() * 3600.0 / rate).round().min(86_400.0) as i64
}

fn pick_scenario(rng: &mut StdRng, mix: &[Scenario]) -> Scenario {
    let total: u32 = mix.iter().map(|s| s.weight()).sum();
    let mut x = rng.random_range(0..total.max(1));
    for s in mix {
        if x < s.weight() {
            return *s;
        }
        x -= s.weight();
    }
    mix.first().copied().unwrap_or(Scenario::IpInbound)
}

/// Unix time of a device-local moment.
fn unix_time(tz: Tz, at: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&at).earliest() {
        Some(t) => t.timestamp(),
        // A local time skipped by a DST jump: take it as UTC+8 (Shanghai).
        None => at.and_utc().timestamp() - 8 * 3600,
    }
}

/// Lays out the calls and renders the pushes. Deterministic for a seed.
pub fn generate(cfg: &SimConfig) -> Plan {
    let mut ctx = Ctx::new(cfg.seed, cfg.id_pool_size);
    let mix: Vec<Scenario> = if cfg.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cfg.scenarios.clone()
    };
    let mut calls: Vec<CallPlan> = Vec::with_capacity(cfg.calls);
    let mut t = cfg.start;
    for i in 0..cfg.calls {
        if i > 0 {
            t += chrono::TimeDelta::seconds(gap_seconds(&mut ctx.rng, cfg.calls_per_hour));
        }
        let sc = pick_scenario(&mut ctx.rng, &mix);
        t = ctx.earliest_with_ids(sc.ids_needed(), t);
        ctx.begin(t);
        let call = sc.run(&mut ctx, t);
        ctx.finish(call.end().unwrap_or(t));
        calls.push(call);
    }
    render(cfg, &mut ctx.rng, calls)
}

/// Sorts every item of every call into send order, numbers the CDRs,
/// renders the XML (+ MAC, + Auth) and fills the truth's Cdr ids.
fn render(cfg: &SimConfig, rng: &mut StdRng, mut calls: Vec<CallPlan>) -> Plan {
    // Items are moved out of the calls (not cloned): thousands per run.
    let mut order: Vec<(NaiveDateTime, usize, usize, Item)> = calls
        .iter_mut()
        .enumerate()
        .flat_map(|(c, call)| {
            std::mem::take(&mut call.items)
                .into_iter()
                .enumerate()
                .map(move |(i, item)| (item.at(), c, i, item))
        })
        .collect();
    order.sort_by_key(|(at, c, i, _)| (*at, *c, *i));
    let mut pushes = Vec::with_capacity(order.len());
    let mut recordings = Vec::new();
    let mut seq: u64 = 1;
    for (at, c, _, item) in order {
        let (body, kind) = match item {
            Item::Leg(mut leg) => {
                leg.cdr_id = format!("{seq}{}-0", leg.time_end.format(OM_TIME_FORMAT));
                seq += 1;
                leg.mac.clone_from(&cfg.mac);
                if let (Some(path), Some(codec)) = (&leg.recording, &leg.rec_codec) {
                    recordings.push(RecordingSpec {
                        path: path.clone(),
                        codec: codec.clone(),
                        seconds: u32::try_from(leg.duration).unwrap_or(0),
                    });
                }
                let body = cdr_xml(&leg);
                calls[c].truth.device_cdr_ids.push(leg.cdr_id);
                (body, PushKind::Cdr)
            }
            Item::Event { mut ev, .. } => {
                ev.mac.clone_from(&cfg.mac);
                (event_xml(&ev), PushKind::Event)
            }
        };
        let body = match &cfg.server_password {
            Some(pw) => {
                let nonce = format!("{:08X}", rng.random::<u32>());
                let timestamp = unix_time(cfg.timezone, at).to_string();
                let signature = signature(pw, &nonce, &timestamp);
                body + &auth_xml(&Auth {
                    nonce,
                    timestamp,
                    signature,
                })
            }
            None => body,
        };
        pushes.push(Push { at, body, kind });
    }
    let mut truth = Truth {
        recordings: recordings
            .iter()
            .filter(|r| r.codec.eq_ignore_ascii_case("G729"))
            .map(|r| Halves::for_spec(r).truth(&r.path))
            .collect(),
        ..Truth::default()
    };
    for call in calls {
        let mut t = call.truth;
        t.device_cdr_ids.sort();
        if let Some(mut v) = call.visit {
            v.cdr_ids = t.device_cdr_ids.clone();
            truth.visits.push(v);
        }
        truth.calls.push(t);
    }
    Plan {
        pushes,
        recordings,
        truth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn unix_time_uses_shanghai_offset() {
        let at = NaiveDateTime::parse_from_str("20170627134450", OM_TIME_FORMAT).expect("time");
        // 2017-06-27 13:44:50 +08:00 = 1498542290 (the manual's §4.5 timestamp).
        assert_eq!(unix_time(chrono_tz::Asia::Shanghai, at), 1498542290);
    }

    #[test]
    fn pick_scenario_respects_restricted_mix() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..50 {
            assert_eq!(
                pick_scenario(&mut rng, &[Scenario::Callback]),
                Scenario::Callback
            );
        }
    }

    #[test]
    fn gap_seconds_tolerates_bad_rate() {
        let mut rng = StdRng::seed_from_u64(9);
        assert!(gap_seconds(&mut rng, f64::NAN) >= 0);
        assert!(gap_seconds(&mut rng, -3.0) >= 0);
    }

    #[test]
    fn generate_numbers_cdrs_in_push_order() {
        let plan = generate(&SimConfig {
            calls: 20,
            ..SimConfig::default()
        });
        let seqs: Vec<u64> = plan
            .pushes
            .iter()
            .filter(|p| p.kind == PushKind::Cdr)
            .filter_map(|p| {
                let id = p.body.split("<Cdr id=\"").nth(1)?.split('"').next()?;
                id.get(..id.len().checked_sub(16)?)?.parse().ok()
            })
            .collect();
        assert!(!seqs.is_empty());
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
}
