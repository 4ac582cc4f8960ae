//! A call's timeline: the stored events that tell what happened during it,
//! each with a line of plain language (`GET /api/calls/{id}/events`).
//!
//! Events carry no call id and no device time (OM manual §2.5): they are
//! tied to a call by the rule of docs/calls.md "Timeline" — the call's
//! device, a window of receive times around its legs, and a party the call
//! is known by (visitor or outer id, an event callid seen with those, or
//! one of its extensions). [`Match`] is that rule, [`describe`] the text;
//! both are pure, [`of_call`] reads what they need from the store.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::{Event, Party};
use crate::store::call_search::CallView;
use crate::store::events::StoredEvent;
use crate::store::legs::StoredLeg;
use crate::store::{self, call_detail, Tx};

/// Events received this long before a call's first leg started (on the
/// collector's clock) still belong to it: pushes are a few seconds late
/// and the device stamps whole seconds.
pub const MARGIN_BEFORE_MS: i64 = 30_000;
/// And this long after its last leg was received (a BYE pushed after the
/// CDR).
pub const MARGIN_AFTER_MS: i64 = 15_000;
/// At most this many events of the device in the window are read: a
/// call of hours on a busy device stops there (`truncated`).
pub const MAX_SCANNED: i64 = 20_000;
/// At most this many events are shown.
pub const MAX_SHOWN: usize = 1_000;

/// The attributes of call events (OM manual §2.5.3–§2.5.7; the JSON
/// sources' names are mapped onto them): device and extension states
/// (BOOTUP, BUSY, IDLE, ONLINE…) are not about one call.
pub const CALL_EVENTS: &[&str] = &[
    "INVITE",
    "INCOMING",
    "RING",
    "ALERT",
    "ANSWER",
    "ANSWERED",
    "DTMF",
    "ENDOFANN",
    "QUEUE",
    "DIVERT",
    "TRANSIENT",
    "TRANSFER",
    "FAILED",
    "BYE",
];

/// One event of a call's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// The event's arrival sequence (ordering key).
    pub seq: i64,
    /// When the collector received it (RFC 3339 UTC).
    pub received_at: String,
    pub attribute: String,
    pub parties: Vec<Party>,
    /// What happened, in plain language ("rang 200", "hung up").
    pub text: String,
}

/// `GET /api/calls/{id}/events`.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The call's current id (the one asked for may be an earlier one).
    pub call_id: String,
    pub events: Vec<TimelineEvent>,
    /// More events matched than are shown, or the window held more than
    /// [`MAX_SCANNED`] events of the device.
    pub truncated: bool,
}

/// Which events belong to a call (docs/calls.md "Timeline").
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub device: String,
    /// Receive-time window, unix ms, both ends included.
    pub from_ms: i64,
    pub to_ms: i64,
    /// (`visitor` | `outer`, id) of the call's legs.
    ids: BTreeSet<(String, String)>,
    extensions: BTreeSet<String>,
}

impl Match {
    /// The rule for a call of `legs` whose extensions are `extensions`;
    /// `None` without legs.
    pub fn of_legs(legs: &[StoredLeg], extensions: &[String]) -> Option<Match> {
        let first = legs.first()?;
        let mut from_ms = i64::MAX;
        let mut to_ms = i64::MIN;
        let mut ids = BTreeSet::new();
        for l in legs {
            // The CDR is pushed when its leg ends: on the collector's clock
            // the leg spans its receive time minus its length. The device's
            // own clock may be off (ARCHITECTURE.md "Time zones").
            let len_ms = (l.leg.time_end - l.leg.time_start)
                .num_milliseconds()
                .max(0);
            from_ms = from_ms.min(l.received_ms.saturating_sub(len_ms));
            to_ms = to_ms.max(l.received_ms);
            for (tag, id) in [("visitor", &l.visitor_id), ("outer", &l.outer_id)] {
                if let Some(id) = id.as_deref().filter(|i| !i.is_empty()) {
                    ids.insert((tag.to_string(), id.to_string()));
                }
            }
        }
        Some(Match {
            device: first.device.clone(),
            from_ms: from_ms.saturating_sub(MARGIN_BEFORE_MS),
            to_ms: to_ms.saturating_add(MARGIN_AFTER_MS),
            ids,
            extensions: extensions.iter().cloned().collect(),
        })
    }

    /// The events of the window (the device's, in arrival order) that
    /// belong to the call: by visitor or outer id first; then those whose
    /// visitor or outer `callid` was seen on an event matched by id; then
    /// those without any visitor or outer id that name one of the call's
    /// extensions.
    pub fn select<'a>(&self, window: &'a [StoredEvent]) -> Vec<&'a StoredEvent> {
        let calls: Vec<&StoredEvent> = window
            .iter()
            .filter(|e| {
                e.device == self.device
                    && (self.from_ms..=self.to_ms).contains(&e.received_ms)
                    && CALL_EVENTS.contains(&e.event.attribute.as_str())
            })
            .collect();
        let by_id = |e: &Event| {
            line_parties(e).any(|p| {
                p.id()
                    .is_some_and(|id| self.ids.contains(&(p.tag.clone(), id.to_string())))
            })
        };
        let callids: BTreeSet<&str> = calls
            .iter()
            .filter(|e| by_id(&e.event))
            .flat_map(|e| line_parties(&e.event).filter_map(|p| p.attr("callid")))
            .filter(|c| !c.is_empty())
            .collect();
        calls
            .into_iter()
            .filter(|e| {
                let ev = &e.event;
                by_id(ev)
                    || line_parties(ev)
                        .any(|p| p.attr("callid").is_some_and(|c| callids.contains(c)))
                    || (!line_parties(ev).any(|p| p.id().is_some_and(|i| !i.is_empty()))
                        && ev
                            .parties_tagged("ext")
                            .any(|p| p.id().is_some_and(|i| self.extensions.contains(i))))
            })
            .collect()
    }
}

/// The parties that stand for a line of the call: visitors (inbound) and
/// outers (outbound).
fn line_parties(ev: &Event) -> impl Iterator<Item = &Party> {
    ev.parties
        .iter()
        .filter(|p| p.tag == "visitor" || p.tag == "outer")
}

/// The id or number a party is shown by: an extension's id, a visitor's
/// or outer's number (`from` for a visitor, `to` for an outer).
fn who(p: &Party) -> Option<&str> {
    let v = match p.tag.as_str() {
        "visitor" => p.attr("from"),
        "outer" => p.attr("to"),
        _ => p.id(),
    };
    v.filter(|s| !s.is_empty())
}

/// The lines of plain language for a call's events, in their order: what
/// the OM manual says each event means (§2.5.3–§2.5.7, §4.12). "after N s"
/// counts from the call's first event.
pub fn describe(events: &[&StoredEvent]) -> Vec<String> {
    let first_ms = events.first().map(|e| e.received_ms).unwrap_or_default();
    let mut answered = false;
    events
        .iter()
        .map(|e| {
            let ev = &e.event;
            let after = ((e.received_ms - first_ms).max(0) + 500) / 1000;
            let ext = ev.first("ext").and_then(|p| p.id());
            let named = |i: usize| ev.parties.get(i).and_then(who);
            let or_unknown = |s: Option<&str>| s.unwrap_or("an unknown party").to_string();
            match ev.attribute.as_str() {
                "RING" => format!("rang {}", or_unknown(ext)),
                "ALERT" => format!("ringing {}", or_unknown(named(1).or(named(0)))),
                "ANSWER" => {
                    answered = true;
                    format!("answered by {} after {after} s", or_unknown(ext))
                }
                "ANSWERED" => {
                    answered = true;
                    format!("answered by {} after {after} s", or_unknown(named(0)))
                }
                "DTMF" => format!(
                    "pressed {}",
                    ev.first("info")
                        .and_then(|p| p.text.as_deref())
                        .unwrap_or("a key")
                ),
                "QUEUE" => {
                    let w = ev.first("waiting");
                    let group = w.and_then(|w| w.attr("group")).unwrap_or("?");
                    match w.and_then(|w| w.attr("reason")) {
                        Some("offline") => format!("refused by queue {group}: no agent online"),
                        Some("full") => format!("refused by queue {group}: queue full"),
                        _ => format!("queued in {group}"),
                    }
                }
                "DIVERT" | "TRANSFER" => {
                    let to = ev
                        .first("visitor")
                        .or_else(|| ev.first("outer"))
                        .and_then(|p| p.attr("to"))
                        .or(ext);
                    // Once answered, moving the call on is a transfer
                    // (§2.5.3.6 is sent for both).
                    let verb = if answered { "transferred" } else { "diverted" };
                    format!("{verb} to {}", or_unknown(to))
                }
                "TRANSIENT" => format!("line seized to {}", or_unknown(named(0))),
                "INVITE" | "INCOMING" => format!(
                    "incoming call from {}",
                    or_unknown(ev.first("visitor").and_then(who))
                ),
                "ENDOFANN" => "announcement ended".to_string(),
                "FAILED" => format!(
                    "failed: {}",
                    ev.first("err")
                        .and_then(|p| p.attr("reason"))
                        .unwrap_or("no reason given")
                ),
                "BYE" => "hung up".to_string(),
                other => other.to_lowercase(),
            }
        })
        .collect()
}

/// The timeline of the call shown under `id`, as `call_detail::detail`
/// finds it (`None`: no such call, or of none of `devices`).
pub fn of_call(
    conn: &Tx,
    id: &str,
    view: &CallView,
    devices: &[String],
) -> store::Result<Option<Timeline>> {
    let Some(current) = call_detail::resolve_visible(conn, id, devices)? else {
        return Ok(None);
    };
    let Some(call) = call_detail::get(conn, &current, view)? else {
        return Ok(None);
    };
    let legs = call_detail::legs_of_call(conn, &current, view)?;
    let Some(rule) = Match::of_legs(&legs, &call.extensions) else {
        return Ok(Some(Timeline {
            call_id: current,
            events: Vec::new(),
            truncated: false,
        }));
    };
    let window = store::events::of_device_between(
        conn,
        &rule.device,
        rule.from_ms,
        rule.to_ms,
        MAX_SCANNED,
    )?;
    let mut picked = rule.select(&window);
    let truncated = window.len() as i64 >= MAX_SCANNED || picked.len() > MAX_SHOWN;
    picked.truncate(MAX_SHOWN);
    let texts = describe(&picked);
    let events = picked
        .into_iter()
        .zip(texts)
        .map(|(e, text)| TimelineEvent {
            seq: e.seq,
            received_at: e.received_at.clone(),
            attribute: e.event.attribute.clone(),
            parties: e.event.parties.clone(),
            text,
        })
        .collect();
    Ok(Some(Timeline {
        call_id: current,
        events,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(tag: &str, attrs: &[(&str, &str)]) -> Party {
        Party::with_attrs(tag, attrs)
    }

    fn stored(seq: i64, ms: i64, attribute: &str, parties: Vec<Party>) -> StoredEvent {
        StoredEvent {
            seq,
            device: "hq".into(),
            received_at: String::new(),
            received_ms: ms,
            event: Event {
                attribute: attribute.into(),
                attrs: Vec::new(),
                mac: None,
                parties,
            },
        }
    }

    fn rule(ids: &[(&str, &str)], exts: &[&str]) -> Match {
        Match {
            device: "hq".into(),
            from_ms: 0,
            to_ms: 100_000,
            ids: ids
                .iter()
                .map(|(t, i)| (t.to_string(), i.to_string()))
                .collect(),
            extensions: exts.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn visitor(id: &str, callid: &str) -> Party {
        party(
            "visitor",
            &[("id", id), ("from", "18201008888"), ("callid", callid)],
        )
    }

    fn ext(id: &str) -> Party {
        party("ext", &[("id", id)])
    }

    /// By id, by a callid seen with that id, by extension only when the
    /// event names no other line; never outside the window, another
    /// device's, or a state event.
    #[test]
    fn select_follows_the_rule() {
        let mut other_device = stored(7, 10, "RING", vec![ext("200"), visitor("77", "1")]);
        other_device.device = "branch".into();
        let window = vec![
            stored(1, 10, "QUEUE", vec![visitor("77", "45135")]),
            stored(2, 20, "RING", vec![ext("200"), visitor("99", "45135")]),
            stored(3, 30, "RING", vec![ext("200"), visitor("98", "1")]),
            stored(4, 40, "BYE", vec![ext("200"), ext("201")]),
            stored(5, 50, "BUSY", vec![ext("200")]),
            stored(6, 200_000, "BYE", vec![visitor("77", "45135")]),
            other_device,
        ];
        let got: Vec<i64> = rule(&[("visitor", "77")], &["200"])
            .select(&window)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [1, 2, 4]);
    }

    #[test]
    fn texts_say_what_happened() {
        let evs = [
            stored(
                1,
                1_000,
                "QUEUE",
                vec![
                    visitor("77", "1"),
                    party("waiting", &[("group", "630"), ("count", "1")]),
                ],
            ),
            stored(2, 3_000, "RING", vec![ext("8001"), visitor("77", "1")]),
            stored(3, 15_000, "ANSWER", vec![ext("8003"), visitor("77", "1")]),
            stored(
                4,
                16_000,
                "DTMF",
                vec![
                    visitor("77", "1"),
                    Party {
                        text: Some("2".into()),
                        ..party("info", &[])
                    },
                ],
            ),
            stored(
                5,
                20_000,
                "DIVERT",
                vec![party("visitor", &[("id", "77"), ("to", "8010")])],
            ),
            stored(6, 30_000, "BYE", vec![visitor("77", "1"), ext("8010")]),
        ];
        let refs: Vec<&StoredEvent> = evs.iter().collect();
        assert_eq!(
            describe(&refs),
            [
                "queued in 630",
                "rang 8001",
                "answered by 8003 after 14 s",
                "pressed 2",
                "transferred to 8010",
                "hung up"
            ]
        );
    }

    #[test]
    fn a_divert_before_the_answer_is_not_a_transfer_and_refusals_say_why() {
        let evs = [
            stored(
                1,
                0,
                "DIVERT",
                vec![party("visitor", &[("id", "5"), ("to", "204")])],
            ),
            stored(
                2,
                0,
                "QUEUE",
                vec![
                    ext("200"),
                    party(
                        "waiting",
                        &[("group", "7"), ("count", "0"), ("reason", "offline")],
                    ),
                ],
            ),
        ];
        let refs: Vec<&StoredEvent> = evs.iter().collect();
        assert_eq!(
            describe(&refs),
            ["diverted to 204", "refused by queue 7: no agent online"]
        );
    }
}
