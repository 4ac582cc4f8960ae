//! Facts of one logical call, derived from its legs (docs/calls.md "What a
//! call says").
//!
//! Pure: the same set of legs gives the same [`CallFacts`] whatever order
//! they arrive in, because everything is read off the legs sorted by
//! [`leg_order`].

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use super::rules::{is_billable, non_empty, role, Role};
use crate::model::{CallFacts, Direction, Leg, LegType};

/// Stable call id: first 16 lowercase hex chars of sha256(device "\n" cdr_id).
/// Every leg's own id keeps resolving to its call (the store keeps redirects).
pub fn call_id(device: &str, cdr_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(device.as_bytes());
    h.update(b"\n");
    h.update(cdr_id.as_bytes());
    let mut s = hex::encode(h.finalize());
    s.truncate(16);
    s
}

/// The order of legs within a call: (time_start, cdr_id). The remaining
/// fields only break ties between legs that share both (a malformed re-push),
/// so that even then the result does not depend on input order.
pub fn leg_order(a: &Leg, b: &Leg) -> Ordering {
    (&a.time_start, &a.cdr_id)
        .cmp(&(&b.time_start, &b.cdr_id))
        .then_with(|| {
            (
                &a.time_end,
                a.duration,
                a.leg_type.as_str(),
                &a.route,
                &a.cpn,
                &a.cdpn,
            )
                .cmp(&(
                    &b.time_end,
                    b.duration,
                    b.leg_type.as_str(),
                    &b.route,
                    &b.cpn,
                    &b.cdpn,
                ))
        })
        .then_with(|| {
            (&a.trunk_number, &a.callid, &a.visitor_id, &a.outer_id).cmp(&(
                &b.trunk_number,
                &b.callid,
                &b.visitor_id,
                &b.outer_id,
            ))
        })
        .then_with(|| {
            (&a.recording, &a.rec_codec, &a.mac).cmp(&(&b.recording, &b.rec_codec, &b.mac))
        })
}

fn is(l: &Leg, ty: &LegType) -> bool {
    l.leg_type == *ty
}

fn direction(legs: &[&Leg]) -> Direction {
    if legs.iter().any(|l| is(l, &LegType::Cb)) {
        Direction::Callback
    } else if legs.iter().any(|l| is(l, &LegType::Ou)) {
        Direction::Outbound
    } else if legs.iter().any(|l| {
        non_empty(&l.visitor_id).is_some() || (is(l, &LegType::In) && !l.trunk_number.is_empty())
    }) {
        Direction::Inbound
    } else {
        Direction::Internal
    }
}

fn first<'a>(legs: &[&'a Leg], ty: &LegType) -> Option<&'a Leg> {
    legs.iter().copied().find(|l| is(l, ty))
}

/// (caller, callee) for a sorted, non-empty slice.
fn parties(dir: Direction, legs: &[&Leg]) -> (String, String) {
    let head = legs[0];
    match dir {
        Direction::Inbound => {
            // The FW leg's CPN is the forwarding extension, not the caller.
            let caller = legs
                .iter()
                .find(|l| !is(l, &LegType::Fw))
                .map(|l| l.cpn.clone());
            let callee = legs
                .iter()
                .find(|l| !l.trunk_number.is_empty())
                .map_or(&head.cdpn, |l| &l.trunk_number);
            (caller.unwrap_or_default(), callee.clone())
        }
        Direction::Outbound => {
            let ou = first(legs, &LegType::Ou).unwrap_or(head);
            (ou.cpn.clone(), ou.cdpn.clone())
        }
        Direction::Internal => {
            let lo = first(legs, &LegType::Lo).unwrap_or(head);
            (lo.cpn.clone(), lo.cdpn.clone())
        }
        Direction::Callback => {
            let cbs = || legs.iter().filter(|l| is(l, &LegType::Cb));
            let caller = cbs().find(|l| !l.cpn.is_empty()).map(|l| l.cpn.clone());
            let callee = cbs().next().map(|l| l.cdpn.clone());
            (caller.unwrap_or_default(), callee.unwrap_or_default())
        }
    }
}

/// Extensions in order: what each extension leg (and each FW leg) names.
fn extensions(legs: &[&Leg]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !out.iter().any(|e| e == n) {
            out.push(n.to_string());
        }
    };
    for l in legs {
        if is(l, &LegType::Fw) {
            push(&l.cpn);
            continue;
        }
        if role(l) != Role::Extension {
            continue;
        }
        match l.leg_type {
            LegType::In | LegType::Fi => push(&l.cdpn),
            LegType::Lo => {
                push(&l.cpn);
                push(&l.cdpn);
            }
            LegType::Ou if !l.cpn.is_empty() => push(&l.cpn),
            _ => {}
        }
    }
    out
}

/// Extension legs of the kinds that ring a person: IN, FI, internal LO.
fn rings_extension(l: &Leg) -> bool {
    role(l) == Role::Extension && matches!(l.leg_type, LegType::In | LegType::Fi | LegType::Lo)
}

/// Summarize the legs of one call of `device`. `None` for no legs.
/// The legs are taken as given (grouping is [`super::group`]'s job).
pub fn summarize(device: &str, legs: &[&Leg]) -> Option<CallFacts> {
    let (first, rest) = legs.split_first()?;
    Some(summarize_call(device, first, rest))
}

/// [`summarize`] for a call known to have a leg: `first` and `rest`
/// together are its legs, in any order.
pub fn summarize_call(device: &str, first: &Leg, rest: &[&Leg]) -> CallFacts {
    let mut legs: Vec<&Leg> = Vec::with_capacity(rest.len() + 1);
    legs.push(first);
    legs.extend_from_slice(rest);
    legs.sort_by(|a, b| leg_order(a, b));
    let head = legs.iter().copied().next().unwrap_or(first);

    let dir = direction(&legs);
    let (caller, callee) = parties(dir, &legs);
    let ext_legs = || legs.iter().filter(|l| role(l) == Role::Extension);
    let cb_legs = || legs.iter().filter(|l| is(l, &LegType::Cb));

    let answered_by = match dir {
        Direction::Outbound | Direction::Callback => None,
        Direction::Inbound | Direction::Internal => legs
            .iter()
            .find(|l| rings_extension(l) && l.duration > 0)
            .map(|l| l.cdpn.clone()),
    };
    let talk_seconds = match dir {
        // Both callback halves run at once: the parties talk for the shorter one.
        Direction::Callback => cb_legs().map(|l| l.duration).min().unwrap_or(0),
        // The LO (caller) and IN (callee) legs of an internal call describe the
        // same conversation: summing them would count it twice.
        Direction::Internal => ext_legs().map(|l| l.duration).max().unwrap_or(0),
        _ => ext_legs().map(|l| l.duration).sum(),
    };
    let answered = match dir {
        Direction::Inbound | Direction::Internal => ext_legs().any(|l| l.duration > 0),
        Direction::Outbound => legs.iter().any(|l| is(l, &LegType::Ou) && l.duration > 0),
        Direction::Callback => cb_legs().count() >= 2 && cb_legs().all(|l| l.duration > 0),
    };
    let route = legs
        .iter()
        .find(|l| role(l) == Role::Trunk)
        .unwrap_or(&head)
        .route
        .clone();

    CallFacts {
        id: call_id(device, &head.cdr_id),
        device: device.to_string(),
        direction: dir,
        forwarded_out: legs.iter().any(|l| is(l, &LegType::Fw)),
        caller,
        callee,
        extensions: extensions(&legs),
        answered_by,
        trunk: legs
            .iter()
            .find(|l| !l.trunk_number.is_empty())
            .map(|l| l.trunk_number.clone()),
        route,
        start: legs
            .iter()
            .map(|l| l.time_start)
            .min()
            .unwrap_or(head.time_start),
        end: legs
            .iter()
            .map(|l| l.time_end)
            .max()
            .unwrap_or(head.time_end),
        talk_seconds,
        billable_seconds: legs
            .iter()
            .filter(|l| is_billable(l))
            .map(|l| l.duration)
            .sum(),
        answered,
        leg_cdr_ids: legs.iter().map(|l| l.cdr_id.clone()).collect(),
        billed_number: legs
            .iter()
            .find(|l| matches!(l.leg_type, LegType::Ou | LegType::Fw | LegType::Cb))
            .map(|l| l.cdpn.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::rules::tests::leg;
    use serde::de::{value::StrDeserializer, IntoDeserializer};
    use serde::Deserialize;

    fn with(mut l: Leg, f: impl FnOnce(&mut Leg)) -> Leg {
        f(&mut l);
        l
    }

    #[test]
    fn call_id_known_answer() {
        // printf 'om1\n2820170309162713-0' | sha256sum
        assert_eq!(call_id("om1", "2820170309162713-0"), "99913ab5516a6cd4");
    }

    #[test]
    fn summarize_empty_is_none() {
        assert_eq!(summarize("om1", &[]), None);
    }

    #[test]
    fn summarize_id_from_first_leg_in_order() {
        let a = leg(
            "b-late",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175040",
            "20170309175055",
        );
        let b = leg(
            "a-early",
            "IN",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let f = summarize("om1", &[&a, &b]).expect("facts");
        assert_eq!(f.id, call_id("om1", "a-early"));
        assert_eq!(f.leg_cdr_ids, vec!["a-early", "b-late"]);
    }

    #[test]
    fn summarize_same_start_orders_by_cdr_id() {
        let a = leg(
            "2",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let b = leg(
            "1",
            "IN",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let f = summarize("om1", &[&a, &b]).expect("facts");
        assert_eq!(f.leg_cdr_ids, vec!["1", "2"]);
    }

    #[test]
    fn summarize_direction_priority() {
        let ou = with(
            leg(
                "1",
                "OU",
                "IP",
                "200",
                "9",
                "20170309100000",
                "20170309100010",
            ),
            |l| l.outer_id = Some("3".into()),
        );
        let cb = leg(
            "2",
            "CB",
            "IP",
            "9",
            "8",
            "20170309100000",
            "20170309100010",
        );
        let in_trunk = with(
            leg(
                "3",
                "IN",
                "IP",
                "9",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            |l| l.trunk_number = "888".into(),
        );
        let lo = leg(
            "4",
            "LO",
            "IC",
            "200",
            "212",
            "20170309100000",
            "20170309100010",
        );
        let d = |ls: &[&Leg]| summarize("om1", ls).expect("facts").direction;
        assert_eq!(d(&[&ou, &cb]), Direction::Callback);
        assert_eq!(d(&[&ou, &in_trunk]), Direction::Outbound);
        assert_eq!(d(&[&in_trunk, &lo]), Direction::Inbound);
        assert_eq!(d(&[&lo]), Direction::Internal);
    }

    #[test]
    fn summarize_inbound_unanswered_when_only_trunk_leg_talked() {
        // An IVR picking up the trunk leg is not a person answering.
        let t = with(
            leg(
                "1",
                "IN",
                "IP",
                "9",
                "888",
                "20170309100000",
                "20170309100030",
            ),
            |l| {
                l.trunk_number = "888".into();
                l.visitor_id = Some("1".into());
                l.duration = 25;
            },
        );
        let e = with(
            leg(
                "2",
                "IN",
                "IP",
                "9",
                "200",
                "20170309100010",
                "20170309100030",
            ),
            |l| {
                l.trunk_number = "888".into();
                l.visitor_id = Some("1".into());
            },
        );
        let f = summarize("om1", &[&t, &e]).expect("facts");
        assert!(!f.answered);
        assert_eq!(f.answered_by, None);
        assert_eq!(f.talk_seconds, 0);
        assert_eq!(f.extensions, vec!["200"]);
    }

    #[test]
    fn summarize_callback_one_leg_unanswered() {
        let cb = with(
            leg(
                "1",
                "CB",
                "IP",
                "9",
                "8",
                "20170309100000",
                "20170309100010",
            ),
            |l| l.duration = 5,
        );
        let f = summarize("om1", &[&cb]).expect("facts");
        assert!(!f.answered, "a callback needs both halves connected");
        assert_eq!(f.talk_seconds, 5);
    }

    #[test]
    fn summarize_inbound_caller_skips_fw() {
        let fw = with(
            leg(
                "1",
                "FW",
                "XO",
                "200",
                "130",
                "20170309100000",
                "20170309100010",
            ),
            |l| l.visitor_id = Some("1".into()),
        );
        let fi = with(
            leg(
                "2",
                "FI",
                "IC",
                "021",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            |l| {
                l.visitor_id = Some("1".into());
                l.trunk_number = "0216".into();
            },
        );
        let f = summarize("om1", &[&fw, &fi]).expect("facts");
        assert_eq!(f.caller, "021");
        assert_eq!(f.callee, "0216");
    }

    #[test]
    fn direction_serde_lowercase() {
        for d in [
            Direction::Inbound,
            Direction::Outbound,
            Direction::Internal,
            Direction::Callback,
        ] {
            let de: StrDeserializer<'_, serde::de::value::Error> = d.as_str().into_deserializer();
            assert_eq!(Direction::deserialize(de), Ok(d));
        }
    }
}
