//! The simulated device's state while calls are laid out one after another:
//! the visitor/outer id pool, which extensions are busy, the call-number
//! counters, queue occupancy, plus the small builders scenarios use to write
//! a call's timeline (events at their moment, legs pushed at their TimeEnd).

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeDelta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::truth::{TruthCall, TruthVisit};
use super::xml::{recording_path, RecSide};
use crate::model::{Event, Leg, Party};

/// A recycled visitor/outer id is handed out again only this many seconds
/// after its previous call ended. The device may recycle at once (§5.6 Q3),
/// but the grouping spec joins legs whose spans come within TOL = 5 s, so an
/// id reused sooner would make two calls indistinguishable by the spec's own
/// rules; 6 s keeps the truth well defined while still recycling hard.
pub const RECYCLE_GAP_SECONDS: i64 = 6;

/// Extensions of the simulated device.
pub const EXTENSIONS: std::ops::RangeInclusive<u32> = 200..=229;
/// IP trunk numbers (manual examples use 02161208234 and 888).
pub const IP_TRUNKS: [&str; 2] = ["02161208234", "888"];
/// Analog (FXO) trunk numbers.
pub const ANALOG_TRUNKS: [&str; 2] = ["02161205555", "02161205556"];
/// IP trunk accounts used for two-way callback (§2.6.5 uses 50015/50016).
pub const CB_TRUNKS: [&str; 2] = ["50015", "50016"];

/// A page-configured extension group with its queue (§2.5.7, §4.12).
pub struct QueueGroup {
    /// `<waiting group>`: internal id.
    pub id: &'static str,
    /// Dialable group number, `<ext id>` on an abandon BYE.
    pub number: &'static str,
    pub agents: std::ops::RangeInclusive<u32>,
    /// The trunk the group's callers come in on (`to` of the visitor).
    pub trunk: &'static str,
}

pub const GROUPS: [QueueGroup; 2] = [
    QueueGroup {
        id: "6",
        number: "3",
        agents: 201..=205,
        trunk: "888",
    },
    QueueGroup {
        id: "7",
        number: "4",
        agents: 206..=210,
        trunk: "02161208234",
    },
];

/// Seconds after `t`.
pub fn secs(t: NaiveDateTime, n: i64) -> NaiveDateTime {
    t + TimeDelta::seconds(n)
}

/// One thing the device sends: an event at its moment, or a leg whose CDR is
/// pushed at its TimeEnd (its `cdr_id` is assigned once all calls are laid out).
// Most items are events; boxing the leg would only add an allocation per leg.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Item {
    Event { at: NaiveDateTime, ev: Event },
    Leg(Leg),
}

impl Item {
    pub fn at(&self) -> NaiveDateTime {
        match self {
            Item::Event { at, .. } => *at,
            Item::Leg(l) => l.time_end,
        }
    }
}

/// One simulated call: what it sends (in emission order for equal times)
/// and what it meant.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub items: Vec<Item>,
    pub truth: TruthCall,
    pub visit: Option<TruthVisit>,
}

impl CallPlan {
    /// Last moment the call sends anything: ids and extensions are busy until then.
    pub fn end(&self) -> Option<NaiveDateTime> {
        self.items.iter().map(Item::at).max()
    }
}

/// What a leg needs beyond the numbers; durations derive from `answered`.
pub struct LegSpec<'a> {
    pub leg_type: &'a str,
    pub route: &'a str,
    pub cpn: &'a str,
    pub cdpn: &'a str,
    pub trunk: &'a str,
    pub start: NaiveDateTime,
    /// When talk began; `None` = not answered (Duration 0).
    pub answered: Option<NaiveDateTime>,
    pub end: NaiveDateTime,
    pub visitor: Option<&'a str>,
    pub outer: Option<&'a str>,
    pub callid: u32,
    /// Internal call number written in hex into the recording name.
    pub rec_id: u32,
    /// Parties named in the recording file and which side is recorded;
    /// `None` = this leg type is never recorded (FI/FW in the manual).
    pub rec: Option<(&'a str, &'a str, RecSide)>,
}

/// Generator state shared by all scenarios.
pub struct Ctx {
    pub rng: StdRng,
    /// busy_until per pool id (index = id − 1); `None` = never used.
    ids: Vec<Option<NaiveDateTime>>,
    ext_busy: HashMap<String, NaiveDateTime>,
    cdr_callid: u32,
    event_callid: u32,
    queue_spans: HashMap<&'static str, Vec<(NaiveDateTime, NaiveDateTime)>>,
    now: NaiveDateTime,
    held_ids: Vec<usize>,
    held_exts: Vec<String>,
    /// Recording codec of the call being built (`None` = not recorded).
    pub codec: Option<&'static str>,
}

/// Far future: marks an id or extension held by the call being built.
const HELD: NaiveDateTime = NaiveDateTime::MAX;

impl Ctx {
    pub fn new(seed: u64, id_pool_size: u32) -> Self {
        Ctx {
            rng: StdRng::seed_from_u64(seed),
            ids: vec![None; id_pool_size.max(2) as usize],
            ext_busy: HashMap::new(),
            cdr_callid: 32800,
            event_callid: 16400,
            queue_spans: HashMap::new(),
            now: NaiveDateTime::MIN,
            held_ids: Vec::new(),
            held_exts: Vec::new(),
            codec: None,
        }
    }

    /// Whether an id or extension last busy until `busy` may be used at `t`.
    fn free_at(busy: Option<NaiveDateTime>, t: NaiveDateTime) -> bool {
        busy.is_none_or(|b| b != HELD && secs(b, RECYCLE_GAP_SECONDS) <= t)
    }

    /// Earliest moment ≥ `t` at which `n` pool ids are free (the device
    /// cannot take a call without an id, so an overloaded arrival waits).
    pub fn earliest_with_ids(&self, n: usize, t: NaiveDateTime) -> NaiveDateTime {
        let mut free_from: Vec<NaiveDateTime> = self
            .ids
            .iter()
            .map(|b| match b {
                Some(b) => secs(*b, RECYCLE_GAP_SECONDS).max(t),
                None => t,
            })
            .collect();
        free_from.sort();
        free_from
            .get(n.saturating_sub(1))
            .copied()
            .unwrap_or(t)
            .max(t)
    }

    /// Starts laying out a call arriving at `t`.
    pub fn begin(&mut self, t: NaiveDateTime) {
        self.now = t;
        self.held_ids.clear();
        self.held_exts.clear();
        self.codec = match self.rng.random_range(0..10) {
            0..=3 => Some("G729"),
            4..=5 => Some("PCMU"),
            6..=7 => Some("PCMA"),
            _ => None,
        };
    }

    /// Frees what the call held, from its last moment on.
    pub fn finish(&mut self, end: NaiveDateTime) {
        for i in self.held_ids.drain(..) {
            self.ids[i] = Some(end);
        }
        for e in self.held_exts.drain(..) {
            self.ext_busy.insert(e, end);
        }
    }

    /// Lowest free visitor/outer id: recycling as eagerly as allowed makes
    /// the id-reuse paths of the grouping work hard.
    pub fn take_id(&mut self) -> String {
        let now = self.now;
        let idx = self
            .ids
            .iter()
            .position(|b| Self::free_at(*b, now))
            // generate() waits until enough ids are free; this is unreachable
            // in practice but must not panic.
            .unwrap_or(0);
        self.ids[idx] = Some(HELD);
        self.held_ids.push(idx);
        (idx + 1).to_string()
    }

    /// A free extension from `range`, not in `exclude`; busy ones only when
    /// every candidate is busy (overload).
    pub fn take_ext(&mut self, range: std::ops::RangeInclusive<u32>, exclude: &[&str]) -> String {
        let now = self.now;
        let all: Vec<String> = range
            .map(|n| n.to_string())
            .filter(|e| !exclude.contains(&e.as_str()))
            .collect();
        let free: Vec<&String> = all
            .iter()
            // Same gap as for ids: an extension calling the same peer again
            // within TOL would let two internal calls join (spec rule 3).
            .filter(|e| Self::free_at(self.ext_busy.get(*e).copied(), now))
            .collect();
        let pool: Vec<&String> = if free.is_empty() {
            all.iter().collect()
        } else {
            free
        };
        let pick = pool
            .get(self.rng.random_range(0..pool.len().max(1)))
            .map(|s| (*s).clone())
            .unwrap_or_else(|| "200".to_string());
        self.ext_busy.insert(pick.clone(), HELD);
        self.held_exts.push(pick.clone());
        pick
    }

    /// Next CDR call number; `n` consecutive numbers (a CB pair uses two).
    pub fn cdr_callids(&mut self, n: u32) -> u32 {
        let c = self.cdr_callid;
        self.cdr_callid = self.cdr_callid.wrapping_add(n);
        c
    }

    /// Next event call number: a separate counter, since event and CDR
    /// callids differ (§5.6 Q3).
    pub fn event_callid(&mut self) -> String {
        let c = self.event_callid;
        self.event_callid = self.event_callid.wrapping_add(1);
        c.to_string()
    }

    /// Outside number: mobile or Shanghai landline.
    pub fn external_number(&mut self) -> String {
        if self.rng.random_bool(0.5) {
            let p = ["13", "15", "18"][self.rng.random_range(0..3)];
            format!("{p}{:09}", self.rng.random_range(0..1_000_000_000u32))
        } else {
            format!(
                "021{:08}",
                self.rng.random_range(10_000_000..100_000_000u32)
            )
        }
    }

    pub fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.rng.random_range(0..options.len())]
    }

    pub fn rng_bool(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }

    /// Talk time: exponential around `mean`, clipped to a sane span.
    pub fn talk(&mut self, mean: f64) -> i64 {
        let u: f64 = self.rng.random();
        ((-(1.0 - u).ln() * mean) as i64).clamp(3, 1800)
    }

    /// Callers already waiting in `group` at `t`, then records this caller's
    /// stay so later arrivals see it.
    pub fn queue_enter(
        &mut self,
        group: &'static str,
        t: NaiveDateTime,
        exit: Option<NaiveDateTime>,
    ) -> usize {
        let spans = self.queue_spans.entry(group).or_default();
        // Arrivals are nearly monotone, so spans long gone can be dropped.
        spans.retain(|(_, out)| secs(*out, 600) > t);
        let waiting = spans
            .iter()
            .filter(|(enter, out)| *enter <= t && *out > t)
            .count();
        if let Some(out) = exit {
            spans.push((t, out));
        }
        waiting
    }

    /// Builds a leg; Duration = end − answer; a recording only when the call
    /// is recorded, the leg type is, and someone talked.
    pub fn leg(&self, s: LegSpec<'_>) -> Leg {
        let duration = s
            .answered
            .map(|a| (s.end - a).num_seconds().max(0))
            .unwrap_or(0);
        let recording = match (self.codec, s.rec, s.answered) {
            (Some(_), Some((a, b, side)), Some(at)) if duration > 0 => {
                Some(recording_path(a, b, at, s.rec_id, side))
            }
            _ => None,
        };
        Leg {
            cdr_id: String::new(),
            callid: s.callid.to_string(),
            visitor_id: s.visitor.map(str::to_string),
            outer_id: s.outer.map(str::to_string),
            leg_type: s.leg_type.into(),
            route: s.route.to_string(),
            cpn: s.cpn.to_string(),
            cdpn: s.cdpn.to_string(),
            time_start: s.start,
            time_end: s.end,
            duration,
            trunk_number: s.trunk.to_string(),
            rec_codec: recording.as_ref().and(self.codec.map(str::to_string)),
            recording,
            mac: None,
        }
    }
}

fn party(tag: &str, attrs: &[(&str, &str)]) -> Party {
    Party::with_attrs(tag, attrs)
}

/// `<ext id="…" />`.
pub fn ext(id: &str) -> Party {
    party("ext", &[("id", id)])
}

/// An outside caller as events show it.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub id: String,
    pub from: String,
    pub to: String,
    pub callid: String,
}

/// `<visitor id from to callid />`.
pub fn visitor(v: &Visitor) -> Party {
    party(
        "visitor",
        &[
            ("id", &v.id),
            ("from", &v.from),
            ("to", &v.to),
            ("callid", &v.callid),
        ],
    )
}

/// `<visitor id="…" />` without details (QUEUE full example, §2.5.7).
pub fn visitor_bare(id: &str) -> Party {
    party("visitor", &[("id", id)])
}

/// `<outer id from to trunk callid />`.
pub fn outer(id: &str, from: &str, to: &str, trunk: &str, callid: &str) -> Party {
    party(
        "outer",
        &[
            ("id", id),
            ("from", from),
            ("to", to),
            ("trunk", trunk),
            ("callid", callid),
        ],
    )
}

/// `<outer to="…" />` (ALERT / BYE type 1, §2.5.3).
pub fn outer_to(to: &str) -> Party {
    party("outer", &[("to", to)])
}

/// `<waiting group count [reason] />`.
pub fn waiting(group: &str, count: usize, reason: Option<&str>) -> Party {
    let count = count.to_string();
    let mut attrs = vec![("group", group), ("count", count.as_str())];
    if let Some(r) = reason {
        attrs.push(("reason", r));
    }
    party("waiting", &attrs)
}

/// An event item; `attribute` verbatim (may carry the device's stray space).
pub fn event(at: NaiveDateTime, attribute: &str, parties: Vec<Party>) -> Item {
    Item::Event {
        at,
        ev: Event {
            attribute: attribute.to_string(),
            attrs: vec![],
            mac: None,
            parties,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20240105090000", "%Y%m%d%H%M%S").expect("time")
    }

    #[test]
    fn take_id_recycles_only_after_gap() {
        let mut ctx = Ctx::new(1, 2);
        ctx.begin(t0());
        assert_eq!(ctx.take_id(), "1");
        ctx.finish(secs(t0(), 10));
        ctx.begin(secs(t0(), 15));
        assert_eq!(
            ctx.take_id(),
            "2",
            "id 1 ended 5 s ago: still inside the gap"
        );
        ctx.finish(secs(t0(), 20));
        ctx.begin(secs(t0(), 16));
        assert_eq!(ctx.take_id(), "1");
    }

    #[test]
    fn earliest_with_ids_waits_for_exhausted_pool() {
        let mut ctx = Ctx::new(1, 2);
        ctx.begin(t0());
        ctx.take_id();
        ctx.take_id();
        ctx.finish(secs(t0(), 30));
        assert_eq!(ctx.earliest_with_ids(1, secs(t0(), 1)), secs(t0(), 36));
    }

    #[test]
    fn take_ext_avoids_busy_extensions() {
        let mut ctx = Ctx::new(7, 10);
        ctx.begin(t0());
        let a = ctx.take_ext(200..=201, &[]);
        let b = ctx.take_ext(200..=201, &[]);
        assert_ne!(a, b);
    }

    #[test]
    fn leg_duration_and_recording_follow_answer_time() {
        let mut ctx = Ctx::new(1, 2);
        ctx.begin(t0());
        ctx.codec = Some("G729");
        let leg = ctx.leg(LegSpec {
            leg_type: "IN",
            route: "IP",
            cpn: "18201008888",
            cdpn: "200",
            trunk: "888",
            start: t0(),
            answered: Some(secs(t0(), 3)),
            end: secs(t0(), 5),
            visitor: Some("48"),
            outer: None,
            callid: 32818,
            rec_id: 32818,
            rec: Some(("18201008888", "200", RecSide::Callee)),
        });
        assert_eq!(leg.duration, 2);
        assert_eq!(
            leg.recording.as_deref(),
            Some("20240105/18201008888_200_20240105_090003_8032_cd.wav")
        );
        assert_eq!(leg.rec_codec.as_deref(), Some("G729"));
    }

    #[test]
    fn queue_enter_counts_callers_still_waiting() {
        let mut ctx = Ctx::new(1, 2);
        assert_eq!(ctx.queue_enter("6", t0(), Some(secs(t0(), 60))), 0);
        assert_eq!(
            ctx.queue_enter("6", secs(t0(), 10), Some(secs(t0(), 20))),
            1
        );
        assert_eq!(ctx.queue_enter("6", secs(t0(), 30), None), 1);
    }
}
