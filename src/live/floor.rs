//! The floor now, folded from stored call events in arrival order: calls
//! in progress, who waits in which queue, agents on calls. Pure: the
//! caller feeds events with their receive times and asks for a
//! [`Snapshot`]; no clock, no I/O.
//!
//! A call is found by the lines the events name (OM manual §2.5.3): a
//! `visitor` id (inbound), an `outer` id (outbound); an event that names
//! neither (an internal call, `ext` + `ext`; an outbound call's first
//! ALERT, whose `outer` has no id yet) is the call of one of its
//! extensions. It leaves on BYE or FAILED (§2.5.3.5), or after
//! [`STALE_AFTER_MS`] without an event (a lost BYE). QUEUE puts it in a
//! queue (§2.5.7) until an agent's RING, ANSWER or its end (§4.12).
//!
//! Memory is bounded: at most [`MAX_CALLS`] calls (the one silent longest
//! goes first), [`MAX_LINES`] ids and extensions each per call, and
//! [`MAX_GROUP_NUMBERS`] learned queue numbers.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::model::{Event, Party};

/// Calls in progress kept, all devices together.
pub const MAX_CALLS: usize = 5_000;
/// Ids (visitor, outer) and extensions kept per call, each.
pub const MAX_LINES: usize = 8;
/// Queue group numbers learned (waiting group id → the number dialled).
pub const MAX_GROUP_NUMBERS: usize = 1_000;
/// A call with no event for this long is taken as ended (its BYE was
/// lost): 4 hours, longer than office calls last without any event.
pub const STALE_AFTER_MS: i64 = 4 * 3600 * 1000;
/// Callers listed per queue in a snapshot (the count covers all).
pub const MAX_LISTED_PER_QUEUE: usize = 50;

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Ringing an extension or a number.
    Ringing,
    /// Waiting in a queue.
    Queued,
    /// Answered.
    Talking,
}

#[derive(Debug, Clone)]
struct LiveCall {
    device: String,
    caller: String,
    callee: String,
    /// The office's extension on the call: the one ringing or answering
    /// an inbound call, the caller of an outbound one.
    extension: Option<String>,
    since_ms: i64,
    last_ms: i64,
    state: CallState,
    answered_ms: Option<i64>,
    /// The extension that answered.
    agent: Option<String>,
    /// (waiting group id, entered at ms) while queued.
    queue: Option<(String, i64)>,
    /// `v:<id>` / `o:<id>` keys of the lines it is known by.
    keys: Vec<String>,
    exts: Vec<String>,
}

/// The floor: feed it every stored event in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Floor {
    next_id: u64,
    calls: BTreeMap<u64, LiveCall>,
    /// (device, line key) → call.
    by_key: HashMap<(String, String), u64>,
    /// (device, waiting group id) → group number, learned from a BYE of a
    /// queued caller naming it (§4.12).
    group_numbers: HashMap<(String, String), String>,
    /// Calls dropped to stay within [`MAX_CALLS`] since the start.
    pub dropped: u64,
}

/// The call event attributes the floor follows.
fn followed(attribute: &str) -> bool {
    crate::calls::timeline::CALL_EVENTS.contains(&attribute)
}

fn line_key(p: &Party) -> Option<String> {
    let id = p.id().filter(|i| !i.is_empty())?;
    match p.tag.as_str() {
        "visitor" => Some(format!("v:{id}")),
        "outer" => Some(format!("o:{id}")),
        _ => None,
    }
}

fn ext_of(p: &Party) -> Option<&str> {
    (p.tag == "ext")
        .then(|| p.id())
        .flatten()
        .filter(|i| !i.is_empty())
}

/// A party's number as a caller: a visitor's or outer's `from`, an
/// extension's id.
fn as_caller(p: &Party) -> Option<&str> {
    match p.tag.as_str() {
        "ext" => p.id(),
        _ => p.attr("from"),
    }
    .filter(|s| !s.is_empty())
}

/// A party's number as the called side: a visitor's or outer's `to`, an
/// extension's id.
fn as_callee(p: &Party) -> Option<&str> {
    match p.tag.as_str() {
        "ext" => p.id(),
        _ => p.attr("to"),
    }
    .filter(|s| !s.is_empty())
}

fn push_capped(v: &mut Vec<String>, s: &str) {
    if v.len() < MAX_LINES && !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

fn fill(slot: &mut String, v: Option<&str>) {
    if slot.is_empty() {
        if let Some(v) = v {
            *slot = v.to_string();
        }
    }
}

impl Floor {
    pub fn new() -> Floor {
        Floor::default()
    }

    /// Calls in progress.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Applies one stored event of `device` received at `received_ms`;
    /// whether the floor changed.
    pub fn apply(&mut self, device: &str, received_ms: i64, ev: &Event) -> bool {
        let attribute = ev.attribute.as_str();
        if !followed(attribute) {
            return false;
        }
        let keys: Vec<String> = ev.parties.iter().filter_map(line_key).collect();
        let exts: Vec<&str> = ev.parties.iter().filter_map(ext_of).collect();
        let found = self.find(device, &keys, &exts);
        if matches!(attribute, "BYE" | "FAILED") {
            let Some(id) = found else {
                return false;
            };
            self.end(id, &exts);
            return true;
        }
        let id = match found {
            Some(id) => id,
            None => self.open(device, received_ms),
        };
        for k in &keys {
            self.index(device, id, k);
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        call.last_ms = received_ms;
        for e in &exts {
            push_capped(&mut call.exts, e);
        }
        update(call, ev, received_ms);
        true
    }

    /// The call an event is about: by its line ids first; then, when the
    /// event names no known line, the call of one of its extensions that
    /// has no line id yet (or, when the event names no line at all, any
    /// call of that extension), the most recently active.
    fn find(&self, device: &str, keys: &[String], exts: &[&str]) -> Option<u64> {
        for k in keys {
            if let Some(id) = self.by_key.get(&(device.to_string(), k.clone())) {
                return Some(*id);
            }
        }
        exts.iter().find_map(|e| {
            self.calls
                .iter()
                .filter(|(_, c)| {
                    c.device == device
                        && c.exts.iter().any(|x| x == e)
                        && (keys.is_empty() || c.keys.is_empty())
                })
                .max_by_key(|(id, c)| (c.last_ms, **id))
                .map(|(id, _)| *id)
        })
    }

    fn open(&mut self, device: &str, at_ms: i64) -> u64 {
        if self.calls.len() >= MAX_CALLS {
            if let Some(oldest) = self
                .calls
                .iter()
                .min_by_key(|(id, c)| (c.last_ms, **id))
                .map(|(id, _)| *id)
            {
                self.remove(oldest);
                self.dropped += 1;
            }
        }
        self.next_id += 1;
        self.calls.insert(
            self.next_id,
            LiveCall {
                device: device.to_string(),
                caller: String::new(),
                callee: String::new(),
                extension: None,
                since_ms: at_ms,
                last_ms: at_ms,
                state: CallState::Ringing,
                answered_ms: None,
                agent: None,
                queue: None,
                keys: Vec::new(),
                exts: Vec::new(),
            },
        );
        self.next_id
    }

    fn index(&mut self, device: &str, id: u64, key: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.keys.iter().any(|k| k == key) || call.keys.len() >= MAX_LINES {
            return;
        }
        call.keys.push(key.to_string());
        // A recycled id (the device reuses them once a call ends, §5.6 Q3)
        // now names this call; an older call keeping it would be stale.
        if let Some(old) = self
            .by_key
            .insert((device.to_string(), key.to_string()), id)
        {
            if old != id {
                if let Some(c) = self.calls.get_mut(&old) {
                    c.keys.retain(|k| k != key);
                }
            }
        }
    }

    fn end(&mut self, id: u64, exts: &[&str]) {
        if let Some(call) = self.remove(id) {
            // §4.12: a queued caller who hangs up is reported with the
            // queue's number as an `ext`.
            if let (Some((group, _)), None) = (&call.queue, &call.answered_ms) {
                if let Some(number) = exts
                    .iter()
                    .find(|e| !call.exts.iter().any(|x| x.as_str() == **e))
                {
                    let key = (call.device.clone(), group.clone());
                    if self.group_numbers.len() < MAX_GROUP_NUMBERS
                        || self.group_numbers.contains_key(&key)
                    {
                        self.group_numbers.insert(key, number.to_string());
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<LiveCall> {
        let call = self.calls.remove(&id)?;
        for k in &call.keys {
            let key = (call.device.clone(), k.clone());
            if self.by_key.get(&key) == Some(&id) {
                self.by_key.remove(&key);
            }
        }
        Some(call)
    }

    /// Drops the calls without an event since `now_ms - STALE_AFTER_MS`;
    /// whether any went.
    pub fn expire(&mut self, now_ms: i64) -> bool {
        let stale: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.last_ms < now_ms.saturating_sub(STALE_AFTER_MS))
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            self.remove(*id);
        }
        !stale.is_empty()
    }

    /// The floor at `now_ms` (unix ms, the collector's clock).
    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let mut calls: Vec<CallView> = self
            .calls
            .values()
            .map(|c| CallView {
                device: c.device.clone(),
                caller: c.caller.clone(),
                callee: c.callee.clone(),
                extension: c.extension.clone(),
                state: c.state,
                since: rfc3339(c.since_ms),
                seconds: secs(now_ms - c.since_ms),
                answered_by: c.agent.clone(),
                queue: c.queue.as_ref().map(|(g, _)| g.clone()),
            })
            .collect();
        calls.sort_by(|a, b| (&a.since, &a.device).cmp(&(&b.since, &b.device)));
        let mut queues: BTreeMap<(String, String), QueueView> = BTreeMap::new();
        let mut agents = Vec::new();
        let mut queued: Vec<&LiveCall> =
            self.calls.values().filter(|c| c.queue.is_some()).collect();
        queued.sort_by_key(|c| c.queue.as_ref().map(|(_, at)| *at));
        for c in queued {
            let Some((group, at)) = &c.queue else {
                continue;
            };
            let key = (c.device.clone(), group.clone());
            let q = queues.entry(key.clone()).or_insert_with(|| QueueView {
                device: c.device.clone(),
                queue: group.clone(),
                number: self.group_numbers.get(&key).cloned(),
                waiting: 0,
                longest_wait_seconds: secs(now_ms - at),
                longest_since: rfc3339(*at),
                callers: Vec::new(),
            });
            q.waiting += 1;
            if q.callers.len() < MAX_LISTED_PER_QUEUE {
                q.callers.push(Waiting {
                    caller: c.caller.clone(),
                    since: rfc3339(*at),
                });
            }
        }
        for c in self.calls.values() {
            if let (Some(agent), Some(at)) = (&c.agent, c.answered_ms) {
                agents.push(AgentView {
                    device: c.device.clone(),
                    extension: agent.clone(),
                    with: if c.caller == *agent {
                        c.callee.clone()
                    } else {
                        c.caller.clone()
                    },
                    since: rfc3339(at),
                    seconds: secs(now_ms - at),
                });
            }
        }
        agents.sort_by(|a, b| (&a.device, &a.extension).cmp(&(&b.device, &b.extension)));
        Snapshot {
            at: rfc3339(now_ms),
            calls,
            queues: queues.into_values().collect(),
            agents,
        }
    }
}

/// What one event says about its call (OM manual §2.5.3–§2.5.7).
fn update(call: &mut LiveCall, ev: &Event, at_ms: i64) {
    let p = |i: usize| ev.parties.get(i);
    let ext = ev.parties.iter().find_map(ext_of);
    match ev.attribute.as_str() {
        // [ext ringing, caller]
        "RING" => {
            fill(&mut call.caller, p(1).and_then(as_caller));
            fill(&mut call.callee, ext);
            if let Some(e) = ext {
                call.extension = Some(e.to_string());
            }
            call.queue = None;
            if call.answered_ms.is_none() {
                call.state = CallState::Ringing;
            }
        }
        // [caller, called]
        "ALERT" => {
            fill(&mut call.caller, p(0).and_then(as_caller));
            fill(&mut call.callee, p(1).and_then(as_callee));
            let called_ext = p(1).and_then(ext_of);
            if let Some(e) = called_ext.or(p(0).and_then(ext_of)) {
                call.extension = Some(e.to_string());
            }
        }
        // [ext answering, caller]
        "ANSWER" => {
            fill(&mut call.caller, p(1).and_then(as_caller));
            answered(call, ext, at_ms);
        }
        // [called, ext calling]: the far end answered the extension's call.
        "ANSWERED" => {
            let caller_ext = p(1).and_then(ext_of).or(ext);
            fill(&mut call.caller, caller_ext);
            fill(&mut call.callee, p(0).and_then(as_callee));
            answered(call, caller_ext, at_ms);
        }
        // [outer, ext]: an analog line seized for the extension's call.
        "TRANSIENT" => {
            fill(&mut call.caller, ext);
            fill(&mut call.callee, p(0).and_then(as_callee));
            if call.extension.is_none() {
                call.extension = ext.map(String::from);
            }
        }
        // [party, waiting group count reason]
        "QUEUE" => {
            fill(&mut call.caller, p(0).and_then(as_caller));
            let w = ev.first("waiting");
            let refused = w.and_then(|w| w.attr("reason")).is_some();
            if let (Some(group), false) = (w.and_then(|w| w.attr("group")), refused) {
                call.queue = Some((group.to_string(), at_ms));
                call.state = CallState::Queued;
            }
        }
        // [visitor to=new target]
        "DIVERT" | "TRANSFER" => {
            let to = ev
                .first("visitor")
                .or_else(|| ev.first("outer"))
                .and_then(|p| p.attr("to"))
                .filter(|s| !s.is_empty());
            if let Some(to) = to {
                call.extension = Some(to.to_string());
                push_capped(&mut call.exts, to);
            }
        }
        // INVITE, INCOMING [trunk, visitor]; DTMF, ENDOFANN [line, …]
        _ => {
            let line = ev
                .parties
                .iter()
                .find(|p| p.tag == "visitor" || p.tag == "outer");
            fill(&mut call.caller, line.and_then(as_caller));
            fill(&mut call.callee, line.and_then(as_callee));
        }
    }
}

fn answered(call: &mut LiveCall, ext: Option<&str>, at_ms: i64) {
    call.state = CallState::Talking;
    call.queue = None;
    call.answered_ms.get_or_insert(at_ms);
    if let Some(e) = ext {
        call.agent = Some(e.to_string());
        call.extension = Some(e.to_string());
    }
}

fn secs(ms: i64) -> i64 {
    ms.max(0) / 1000
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The floor as `GET /api/live` sends it. Times are the collector's
/// receive times (RFC 3339 UTC); `seconds` are as of `at`, which the page
/// counts on from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub at: String,
    pub calls: Vec<CallView>,
    pub queues: Vec<QueueView>,
    pub agents: Vec<AgentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallView {
    pub device: String,
    pub caller: String,
    pub callee: String,
    pub extension: Option<String>,
    pub state: CallState,
    /// The call's first event.
    pub since: String,
    pub seconds: i64,
    pub answered_by: Option<String>,
    /// The waiting group it is queued in.
    pub queue: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub device: String,
    /// The waiting group id of the QUEUE events (§2.5.7).
    pub queue: String,
    /// The number callers dial for it, once learned (§4.12).
    pub number: Option<String>,
    pub waiting: usize,
    pub longest_wait_seconds: i64,
    pub longest_since: String,
    /// The first [`MAX_LISTED_PER_QUEUE`] in order of entry.
    pub callers: Vec<Waiting>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub caller: String,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub device: String,
    pub extension: String,
    /// Who the agent talks with.
    pub with: String,
    /// Answered at.
    pub since: String,
    pub seconds: i64,
}

impl Snapshot {
    /// Only what `devices` show (every device when empty: `store::scope`).
    pub fn for_devices(&self, devices: &[String]) -> Snapshot {
        if devices.is_empty() {
            return self.clone();
        }
        let mine = |d: &String| devices.contains(d);
        Snapshot {
            at: self.at.clone(),
            calls: self
                .calls
                .iter()
                .filter(|c| mine(&c.device))
                .cloned()
                .collect(),
            queues: self
                .queues
                .iter()
                .filter(|q| mine(&q.device))
                .cloned()
                .collect(),
            agents: self
                .agents
                .iter()
                .filter(|a| mine(&a.device))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(tag: &str, attrs: &[(&str, &str)]) -> Party {
        Party::with_attrs(tag, attrs)
    }

    fn ev(attribute: &str, parties: Vec<Party>) -> Event {
        Event {
            attribute: attribute.into(),
            attrs: Vec::new(),
            mac: None,
            parties,
        }
    }

    fn visitor(id: &str) -> Party {
        party(
            "visitor",
            &[("id", id), ("from", "18201008888"), ("to", "888")],
        )
    }

    fn ext(id: &str) -> Party {
        party("ext", &[("id", id)])
    }

    fn waiting(group: &str, reason: Option<&str>) -> Party {
        let mut w = party("waiting", &[("group", group), ("count", "1")]);
        if let Some(r) = reason {
            w.attrs.push(("reason".into(), r.into()));
        }
        w
    }

    /// §2.5.7 + §4.12: queued, rung, answered, hung up; the queue's
    /// waiting count rises and falls.
    #[test]
    fn a_queued_call_waits_then_talks_then_leaves() {
        let mut f = Floor::new();
        assert!(f.apply(
            "hq",
            1_000,
            &ev("QUEUE", vec![visitor("77"), waiting("6", None)])
        ));
        let s = f.snapshot(5_000);
        assert_eq!(s.calls.len(), 1);
        assert_eq!(s.calls[0].state, CallState::Queued);
        assert_eq!(s.calls[0].caller, "18201008888");
        assert_eq!(s.queues.len(), 1);
        assert_eq!(
            (s.queues[0].waiting, s.queues[0].longest_wait_seconds),
            (1, 4)
        );
        f.apply("hq", 6_000, &ev("RING", vec![ext("200"), visitor("77")]));
        let s = f.snapshot(6_000);
        assert!(s.queues.is_empty());
        assert_eq!(s.calls[0].extension.as_deref(), Some("200"));
        f.apply("hq", 9_000, &ev("ANSWER", vec![ext("200"), visitor("77")]));
        let s = f.snapshot(10_000);
        assert_eq!(s.calls[0].state, CallState::Talking);
        assert_eq!(s.agents.len(), 1);
        assert_eq!(
            (
                s.agents[0].extension.as_str(),
                s.agents[0].with.as_str(),
                s.agents[0].seconds
            ),
            ("200", "18201008888", 1)
        );
        assert!(f.apply("hq", 20_000, &ev("BYE", vec![visitor("77"), ext("200")])));
        assert!(f.is_empty());
        assert!(f.snapshot(20_000).agents.is_empty());
    }

    /// §4.12: a queued caller who hangs up names the queue's number, which
    /// the next queue view shows.
    #[test]
    fn an_abandon_learns_the_queue_number() {
        let mut f = Floor::new();
        f.apply(
            "hq",
            0,
            &ev("QUEUE", vec![visitor("17"), waiting("6", None)]),
        );
        f.apply("hq", 1, &ev("BYE", vec![visitor("17"), ext("3")]));
        f.apply("hq", 2, &ev("QUEUE", vec![ext("213"), waiting("6", None)]));
        let s = f.snapshot(3);
        assert_eq!(s.queues[0].number.as_deref(), Some("3"));
        assert_eq!(s.queues[0].callers[0].caller, "213");
        // The ext caller rung by agent 201 (`ext` + `ext`) leaves the queue.
        f.apply("hq", 4, &ev("RING", vec![ext("201"), ext("213")]));
        assert!(f.snapshot(5).queues.is_empty());
        assert_eq!(f.len(), 1);
    }

    /// §2.5.3.2, §2.5.3.4, §2.5.3.5: an outbound call is first named by
    /// its extension only, then by its outer id; either BYE ends it.
    #[test]
    fn an_outbound_call_is_one_call_from_alert_to_bye() {
        let mut f = Floor::new();
        let outer_to = party("outer", &[("to", "13012345678")]);
        let outer = party(
            "outer",
            &[("id", "34"), ("from", "200"), ("to", "13012345678")],
        );
        f.apply("hq", 0, &ev("ALERT", vec![ext("200"), outer_to.clone()]));
        f.apply("hq", 1, &ev("ANSWERED", vec![outer.clone(), ext("200")]));
        assert_eq!(f.len(), 1);
        let s = f.snapshot(2);
        assert_eq!(
            (s.calls[0].caller.as_str(), s.calls[0].callee.as_str()),
            ("200", "13012345678")
        );
        assert_eq!(s.calls[0].state, CallState::Talking);
        f.apply("hq", 3, &ev("BYE", vec![outer]));
        assert!(f.is_empty());
    }

    #[test]
    fn calls_of_two_devices_do_not_mix_and_are_filtered() {
        let mut f = Floor::new();
        f.apply("hq", 0, &ev("RING", vec![ext("200"), visitor("5")]));
        f.apply("branch", 0, &ev("RING", vec![ext("200"), visitor("5")]));
        assert_eq!(f.len(), 2);
        f.apply("hq", 1, &ev("BYE", vec![visitor("5")]));
        let s = f.snapshot(2);
        assert_eq!(s.calls.len(), 1);
        assert_eq!(s.calls[0].device, "branch");
        assert!(s.for_devices(&["hq".into()]).calls.is_empty());
        assert_eq!(s.for_devices(&["branch".into()]).calls.len(), 1);
    }

    #[test]
    fn stale_calls_expire_and_the_cap_holds() {
        let mut f = Floor::new();
        f.apply("hq", 0, &ev("RING", vec![ext("200"), visitor("1")]));
        assert!(!f.expire(STALE_AFTER_MS - 1));
        assert!(f.expire(STALE_AFTER_MS + 1));
        assert!(f.is_empty());
        for i in 0..MAX_CALLS + 10 {
            f.apply(
                "hq",
                i as i64,
                &ev("RING", vec![ext("200"), visitor(&i.to_string())]),
            );
        }
        assert_eq!(f.len(), MAX_CALLS);
        assert_eq!(f.dropped, 10);
        // The newest stayed.
        assert!(f.apply(
            "hq",
            1 << 40,
            &ev("BYE", vec![visitor(&(MAX_CALLS + 9).to_string())])
        ));
        // The oldest went (a BYE of it finds nothing).
        assert!(!f.apply("hq", 1 << 40, &ev("BYE", vec![visitor("0")])));
    }

    #[test]
    fn unknown_ends_and_state_events_change_nothing() {
        let mut f = Floor::new();
        assert!(!f.apply("hq", 0, &ev("BYE", vec![visitor("9")])));
        assert!(!f.apply("hq", 0, &ev("BUSY", vec![ext("208")])));
        assert!(f.is_empty());
    }
}
