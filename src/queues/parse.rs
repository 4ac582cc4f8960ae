//! Reads the queue-relevant facts out of an OM [`Event`]: the entry a `QUEUE`
//! event reports (manual §2.5.7) and the possible exit a `RING` or `BYE`
//! event reports (manual §4.12). Pure functions, no state: which open visit
//! an exit closes is decided in `infer.rs`.

use crate::model::{Event, Party};

use crate::model::Outcome;

/// Why a `QUEUE` event cannot be turned into a visit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueEventError {
    /// Neither an `<ext id>` nor a `<visitor id>` with a non-empty id.
    #[error("QUEUE event names no ext or visitor id")]
    NoQueuedParty,
    /// No `<waiting group>` (or an empty one): the visit would have no group.
    #[error("QUEUE event has no waiting group")]
    NoGroup,
    /// A `reason` other than `offline` / `full`: the manual says a reason means
    /// "not queued", but we cannot tell which outcome, so the event is skipped.
    #[error("QUEUE event has an unknown reason {0:?}")]
    UnknownReason(String),
}

/// Who is (or was) in the queue. Ordered so that state maps iterate
/// deterministically (rebuild must equal live).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PartyRef {
    pub kind: PartyKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PartyKind {
    Ext,
    Visitor,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Ext => "ext",
            PartyKind::Visitor => "visitor",
        }
    }
}

/// What a `QUEUE` event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub party: PartyRef,
    /// Visitor `from` (the original caller number).
    pub caller: Option<String>,
    /// Visitor `callid`.
    pub callid: Option<String>,
    /// `waiting group`: the group's id, not its number (manual §2.5.7 note 2).
    pub group: String,
    /// `waiting count`; 0 when absent or not a number.
    pub count: i64,
    /// `Some` when the caller was not queued (`reason=offline|full`).
    pub rejection: Option<Outcome>,
}

/// Whether an event is a RING or a BYE, the two exits of §4.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    Ring,
    Bye,
}

/// The parties of a `RING` / `BYE` that matter for queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    pub kind: ExitKind,
    /// First `<visitor>` with a non-empty id: (id, from).
    pub visitor: Option<(String, Option<String>)>,
    /// Non-empty `<ext id>`s in document order.
    pub exts: Vec<String>,
}

/// What an exit means for the visit of one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExitMatch {
    /// RING: the agent's extension rang with the queued party.
    Answered { agent: String },
    /// BYE: the queued party's call ended; `group_number` is the other
    /// `<ext id>`, which is the group *number* when the caller abandoned.
    Ended { group_number: Option<String> },
}

/// A trimmed, non-empty attribute value.
fn attr(p: &Party, name: &str) -> Option<String> {
    p.attr(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Normalised event name: ingest already trims and upper-cases, but the
/// device is known to send `"RING "`, so do not rely on it.
pub(crate) fn attribute(ev: &Event) -> String {
    ev.attribute.trim().to_ascii_uppercase()
}

/// Reads a `QUEUE` event (the caller checks the attribute).
pub(crate) fn parse_queue(ev: &Event) -> Result<Entry, QueueEventError> {
    // The manual always puts the queued party first; take the first ext or
    // visitor that carries an id.
    let (party, who) = ev
        .parties
        .iter()
        .find_map(|p| {
            let kind = match p.tag.trim() {
                "ext" => PartyKind::Ext,
                "visitor" => PartyKind::Visitor,
                _ => return None,
            };
            attr(p, "id").map(|id| (PartyRef { kind, id }, p))
        })
        .ok_or(QueueEventError::NoQueuedParty)?;
    let waiting = ev
        .parties
        .iter()
        .find(|p| p.tag.trim() == "waiting")
        .ok_or(QueueEventError::NoGroup)?;
    let group = attr(waiting, "group").ok_or(QueueEventError::NoGroup)?;
    let count = attr(waiting, "count")
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or(0);
    let rejection = match attr(waiting, "reason") {
        None => None,
        Some(r) if r.eq_ignore_ascii_case("offline") => Some(Outcome::RejectedOffline),
        Some(r) if r.eq_ignore_ascii_case("full") => Some(Outcome::RejectedFull),
        Some(r) => return Err(QueueEventError::UnknownReason(r)),
    };
    let (caller, callid) = match party.kind {
        PartyKind::Visitor => (attr(who, "from"), attr(who, "callid")),
        PartyKind::Ext => (None, None),
    };
    Ok(Entry {
        party,
        caller,
        callid,
        group,
        count,
        rejection,
    })
}

/// Reads a `RING` or `BYE` event; `None` for any other attribute.
pub(crate) fn parse_exit(ev: &Event) -> Option<Exit> {
    let kind = match attribute(ev).as_str() {
        "RING" => ExitKind::Ring,
        "BYE" => ExitKind::Bye,
        _ => return None,
    };
    let visitor = ev
        .parties
        .iter()
        .filter(|p| p.tag.trim() == "visitor")
        .find_map(|p| attr(p, "id").map(|id| (id, attr(p, "from"))));
    let exts = ev
        .parties
        .iter()
        .filter(|p| p.tag.trim() == "ext")
        .filter_map(|p| attr(p, "id"))
        .collect();
    Some(Exit {
        kind,
        visitor,
        exts,
    })
}

impl Exit {
    /// The parties whose open visit this event could close, most likely
    /// first. A RING's first ext is the agent, so only a visitor or the
    /// *second* ext can be the queued party; a BYE may name the queued ext
    /// first or second.
    pub fn candidates(&self) -> Vec<PartyRef> {
        let mut out = Vec::new();
        match self.kind {
            ExitKind::Ring => {
                // Without an agent there is nothing to answer.
                if self.exts.is_empty() {
                    return out;
                }
                if let Some((id, _)) = &self.visitor {
                    out.push(visitor(id));
                }
                if let Some(id) = self.exts.get(1) {
                    if Some(id) != self.exts.first() {
                        out.push(ext(id));
                    }
                }
            }
            ExitKind::Bye => {
                if let Some((id, _)) = &self.visitor {
                    out.push(visitor(id));
                }
                out.extend(self.exts.iter().map(|id| ext(id)));
            }
        }
        out
    }

    /// What this exit means for `party`'s visit, or `None` if it does not
    /// concern that party.
    pub fn matches(&self, party: &PartyRef) -> Option<ExitMatch> {
        match (self.kind, party.kind) {
            (ExitKind::Ring, PartyKind::Visitor) => {
                let (id, _) = self.visitor.as_ref()?;
                let agent = self.exts.first()?;
                (id == &party.id).then(|| ExitMatch::Answered {
                    agent: agent.clone(),
                })
            }
            (ExitKind::Ring, PartyKind::Ext) => {
                let agent = self.exts.first()?;
                let queued = self.exts.get(1)?;
                (queued == &party.id && agent != queued).then(|| ExitMatch::Answered {
                    agent: agent.clone(),
                })
            }
            (ExitKind::Bye, PartyKind::Visitor) => {
                let (id, _) = self.visitor.as_ref()?;
                (id == &party.id).then(|| ExitMatch::Ended {
                    group_number: self.exts.first().cloned(),
                })
            }
            (ExitKind::Bye, PartyKind::Ext) => {
                if !self.exts.contains(&party.id) {
                    return None;
                }
                Some(ExitMatch::Ended {
                    group_number: self.exts.iter().find(|e| **e != party.id).cloned(),
                })
            }
        }
    }

    /// False when the event's visitor is evidently another call than the
    /// queued one: visitor ids are recycled (manual §5.6 Q3), but a call's
    /// original caller number (`from`) does not change, whereas `to` does
    /// (§4.12's RING shows the extension, §2.5.7's QUEUE the trunk). callid
    /// is not compared: §5.6 Q3 warns it is not a reliable key.
    pub fn same_call(&self, party: &PartyRef, caller: Option<&str>) -> bool {
        if party.kind != PartyKind::Visitor {
            return true;
        }
        match (
            self.visitor.as_ref().and_then(|(_, f)| f.as_deref()),
            caller,
        ) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

fn visitor(id: &str) -> PartyRef {
    PartyRef {
        kind: PartyKind::Visitor,
        id: id.to_string(),
    }
}

fn ext(id: &str) -> PartyRef {
    PartyRef {
        kind: PartyKind::Ext,
        id: id.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an event from `(tag, [(attr, value)])` pairs, as ingest would.
    pub(crate) fn event(attribute: &str, parties: &[(&str, &[(&str, &str)])]) -> Event {
        Event {
            attribute: attribute.to_string(),
            attrs: Vec::new(),
            mac: None,
            parties: parties
                .iter()
                .map(|(tag, attrs)| Party::with_attrs(tag, attrs))
                .collect(),
        }
    }

    #[test]
    fn parse_queue_reads_manual_visitor_entry() {
        // §2.5.7 example 1, incoming call.
        let ev = event(
            "QUEUE",
            &[
                (
                    "visitor",
                    &[
                        ("id", "77"),
                        ("from", "18201008888"),
                        ("to", "888"),
                        ("callid", "45135"),
                    ],
                ),
                ("waiting", &[("group", "6"), ("count", "2")]),
            ],
        );
        let e = parse_queue(&ev).expect("valid QUEUE");
        assert_eq!(e.party, visitor("77"));
        assert_eq!(e.caller.as_deref(), Some("18201008888"));
        assert_eq!(e.callid.as_deref(), Some("45135"));
        assert_eq!((e.group.as_str(), e.count, e.rejection), ("6", 2, None));
    }

    #[test]
    fn parse_queue_reads_manual_rejections() {
        // §2.5.7 examples 2 and 3.
        let offline = event(
            "QUEUE",
            &[
                ("ext", &[("id", "200")]),
                (
                    "waiting",
                    &[("group", "7"), ("count", "0"), ("reason", "offline")],
                ),
            ],
        );
        let full = event(
            "QUEUE",
            &[
                ("visitor", &[("id", "2")]),
                (
                    "waiting",
                    &[("group", "7"), ("count", "30"), ("reason", "full")],
                ),
            ],
        );
        let offline = parse_queue(&offline).expect("valid");
        assert_eq!(offline.rejection, Some(Outcome::RejectedOffline));
        assert_eq!(offline.party, ext("200"));
        let full = parse_queue(&full).expect("valid");
        assert_eq!(full.rejection, Some(Outcome::RejectedFull));
        assert_eq!((full.count, full.caller), (30, None));
    }

    #[test]
    fn parse_queue_rejects_missing_parts() {
        let no_party = event("QUEUE", &[("waiting", &[("group", "6")])]);
        assert_eq!(parse_queue(&no_party), Err(QueueEventError::NoQueuedParty));
        let no_group = event("QUEUE", &[("ext", &[("id", "200")])]);
        assert_eq!(parse_queue(&no_group), Err(QueueEventError::NoGroup));
        let odd = event(
            "QUEUE",
            &[
                ("ext", &[("id", "200")]),
                ("waiting", &[("group", "6"), ("reason", "busy")]),
            ],
        );
        assert_eq!(
            parse_queue(&odd),
            Err(QueueEventError::UnknownReason("busy".into()))
        );
    }

    #[test]
    fn parse_exit_trims_ring_attribute() {
        // §2.5.3.1 example 2 sends "RING " with a space.
        let ev = event(
            "RING ",
            &[("ext", &[("id", "200")]), ("ext", &[("id", "208")])],
        );
        let exit = parse_exit(&ev).expect("RING is an exit");
        assert_eq!(exit.kind, ExitKind::Ring);
        assert_eq!(exit.candidates(), vec![ext("208")]);
    }

    #[test]
    fn exit_matches_manual_bye_of_queued_ext() {
        // §4.12: ext 201 leaves the queue, ext id="3" is the group number.
        let ev = event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]);
        let exit = parse_exit(&ev).expect("BYE is an exit");
        assert_eq!(
            exit.matches(&ext("201")),
            Some(ExitMatch::Ended {
                group_number: Some("3".into())
            })
        );
        assert_eq!(exit.matches(&visitor("201")), None);
    }

    #[test]
    fn exit_ring_without_agent_has_no_candidates() {
        let ev = event("RING", &[("visitor", &[("id", "75")])]);
        let exit = parse_exit(&ev).expect("RING is an exit");
        assert!(exit.candidates().is_empty());
        assert_eq!(exit.matches(&visitor("75")), None);
    }

    #[test]
    fn exit_same_call_compares_caller_numbers() {
        let ev = event(
            "RING",
            &[
                ("ext", &[("id", "200")]),
                ("visitor", &[("id", "75"), ("from", "18201008888")]),
            ],
        );
        let exit = parse_exit(&ev).expect("RING is an exit");
        assert!(exit.same_call(&visitor("75"), Some("18201008888")));
        assert!(exit.same_call(&visitor("75"), None));
        assert!(!exit.same_call(&visitor("75"), Some("13012345678")));
    }
}
