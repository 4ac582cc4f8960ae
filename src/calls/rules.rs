//! Pairwise join rules and leg roles (docs/calls.md "Which legs make one
//! call"; OM manual §2.6, §5.7).
//!
//! A logical call is a connected component of legs of one device under
//! [`joins`]. [`join_keys`] gives index keys so a store (or [`super::group`])
//! only has to compare legs that share a key and whose spans are close.

use chrono::{Duration, NaiveDateTime};

use crate::model::{Leg, LegType};

/// Seconds of slack when comparing spans: the device stamps each leg with
/// whole seconds and ends them one after another, not at one instant.
pub const TOLERANCE_SECS: i64 = 5;

/// What a leg stands for (manual §5.7): the carrier's side or the agent's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The trunk's own CDR (the manual says users may ignore it): what the carrier sees.
    Trunk,
    /// An extension's CDR: what a person in the office did.
    Extension,
}

/// `Some(id)` only for a present, non-empty id: an empty `<visitor id="">`
/// carries no identity and must not join anything.
pub(crate) fn non_empty(id: &Option<String>) -> Option<&str> {
    id.as_deref().filter(|s| !s.is_empty())
}

fn tol() -> Duration {
    Duration::seconds(TOLERANCE_SECS)
}

/// Spans touch or overlap within the tolerance. Needed on every id-based rule
/// because visitor/outer ids are recycled once a call ends (manual §5.6 Q3).
pub fn overlaps(a: &Leg, b: &Leg) -> bool {
    a.time_start <= b.time_end + tol() && b.time_start <= a.time_end + tol()
}

/// Rule 3's candidates: an internal LO/IN leg that has no visitor/outer id
/// and runs on the internal route.
fn is_internal_candidate(l: &Leg) -> bool {
    (l.leg_type == LegType::Lo || l.leg_type == LegType::In)
        && non_empty(&l.visitor_id).is_none()
        && non_empty(&l.outer_id).is_none()
        && l.route == "IC"
}

fn ends_close(a: NaiveDateTime, b: NaiveDateTime) -> bool {
    (a - b).num_seconds().abs() <= TOLERANCE_SECS
}

/// Whether two legs (of one device) belong to the same call. Symmetric.
/// `callid` alone never joins: it is not unique (manual §5.6 Q3).
pub fn joins(a: &Leg, b: &Leg) -> bool {
    if !overlaps(a, b) {
        return false;
    }
    // Rule 1: the same live inbound (visitor) or outbound (outer) call number.
    if let (Some(x), Some(y)) = (non_empty(&a.visitor_id), non_empty(&b.visitor_id)) {
        if x == y {
            return true;
        }
    }
    if let (Some(x), Some(y)) = (non_empty(&a.outer_id), non_empty(&b.outer_id)) {
        if x == y {
            return true;
        }
    }
    // Rule 2: the two halves of a callback carry different outer ids but one callid.
    if a.leg_type == LegType::Cb
        && b.leg_type == LegType::Cb
        && !a.callid.is_empty()
        && a.callid == b.callid
    {
        return true;
    }
    // Rule 3: extension-to-extension call = caller's LO + callee's IN.
    let lo_in = (a.leg_type == LegType::Lo && b.leg_type == LegType::In)
        || (a.leg_type == LegType::In && b.leg_type == LegType::Lo);
    lo_in
        && is_internal_candidate(a)
        && is_internal_candidate(b)
        && a.cpn == b.cpn
        && a.cdpn == b.cdpn
        && ends_close(a.time_end, b.time_end)
}

/// Index keys: any two legs for which [`joins`] holds share at least one key,
/// so candidates are found by key equality plus a time filter.
/// Keys: `v:<visitor>`, `o:<outer>`, `cb:<callid>`, `ic:<cpn>><cdpn>`.
/// (A `>` inside a number could make two different pairs share a key; that
/// only adds a candidate, which [`joins`] then rejects.)
pub fn join_keys(leg: &Leg) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(v) = non_empty(&leg.visitor_id) {
        keys.push(format!("v:{v}"));
    }
    if let Some(o) = non_empty(&leg.outer_id) {
        keys.push(format!("o:{o}"));
    }
    if leg.leg_type == LegType::Cb && !leg.callid.is_empty() {
        keys.push(format!("cb:{}", leg.callid));
    }
    if is_internal_candidate(leg) {
        keys.push(format!("ic:{}>{}", leg.cpn, leg.cdpn));
    }
    keys
}

/// Trunk or extension leg (manual §5.7 "模拟中继和 IP 中继的 CDR" vs "分机的 CDR").
pub fn role(leg: &Leg) -> Role {
    let has_trunk = !leg.trunk_number.is_empty();
    let trunk = match leg.leg_type {
        // The trunk's own IN leg is addressed to the trunk number itself.
        LegType::In => has_trunk && leg.cdpn == leg.trunk_number,
        // An LO with a visitor id is the analog trunk's half of an inbound call.
        LegType::Lo => non_empty(&leg.visitor_id).is_some(),
        // The trunk's own OU leg calls out from the trunk number itself.
        LegType::Ou => has_trunk && leg.cpn == leg.trunk_number,
        LegType::Fw | LegType::Cb => true,
        _ => false,
    };
    if trunk {
        Role::Trunk
    } else {
        Role::Extension
    }
}

/// Legs a carrier bills: OU, FW and CB.
pub fn is_billable(leg: &Leg) -> bool {
    matches!(leg.leg_type, LegType::Ou | LegType::Fw | LegType::Cb)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::OM_TIME_FORMAT;

    /// A leg with the fields the rules read; the rest empty.
    pub(crate) fn leg(
        cdr_id: &str,
        ty: &str,
        route: &str,
        cpn: &str,
        cdpn: &str,
        start: &str,
        end: &str,
    ) -> Leg {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).expect("test time");
        Leg {
            cdr_id: cdr_id.into(),
            callid: String::new(),
            visitor_id: None,
            outer_id: None,
            leg_type: ty.into(),
            route: route.into(),
            cpn: cpn.into(),
            cdpn: cdpn.into(),
            time_start: t(start),
            time_end: t(end),
            duration: 0,
            trunk_number: String::new(),
            recording: None,
            rec_codec: None,
            mac: None,
        }
    }

    fn visitor(mut l: Leg, v: &str) -> Leg {
        l.visitor_id = Some(v.into());
        l
    }

    fn outer(mut l: Leg, o: &str) -> Leg {
        l.outer_id = Some(o.into());
        l
    }

    fn callid(mut l: Leg, c: &str) -> Leg {
        l.callid = c.into();
        l
    }

    fn shares_key(a: &Leg, b: &Leg) -> bool {
        let kb = join_keys(b);
        join_keys(a).iter().any(|k| kb.contains(k))
    }

    #[test]
    fn joins_same_visitor_overlapping() {
        let a = visitor(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309162708",
                "20170309162713",
            ),
            "48",
        );
        let b = visitor(
            leg(
                "b",
                "IN",
                "IP",
                "1",
                "888",
                "20170309162657",
                "20170309162714",
            ),
            "48",
        );
        assert!(joins(&a, &b) && joins(&b, &a));
        assert!(shares_key(&a, &b));
    }

    #[test]
    fn joins_touching_within_tolerance() {
        let a = visitor(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "7",
        );
        let b = visitor(
            leg(
                "b",
                "IN",
                "IP",
                "1",
                "201",
                "20170309100015",
                "20170309100020",
            ),
            "7",
        );
        assert!(joins(&a, &b));
        let c = visitor(
            leg(
                "c",
                "IN",
                "IP",
                "1",
                "201",
                "20170309100016",
                "20170309100020",
            ),
            "7",
        );
        assert!(!joins(&a, &c), "6 s gap is beyond the tolerance");
    }

    #[test]
    fn joins_recycled_visitor_not_overlapping() {
        let a = visitor(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "48",
        );
        let b = visitor(
            leg(
                "b",
                "IN",
                "IP",
                "1",
                "200",
                "20170309110000",
                "20170309110010",
            ),
            "48",
        );
        assert!(!joins(&a, &b));
    }

    #[test]
    fn joins_visitor_never_with_outer() {
        let a = visitor(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "5",
        );
        let b = outer(
            leg(
                "b",
                "OU",
                "IP",
                "200",
                "1",
                "20170309100000",
                "20170309100010",
            ),
            "5",
        );
        assert!(!joins(&a, &b));
        assert!(!shares_key(&a, &b));
    }

    #[test]
    fn joins_empty_visitor_never() {
        let a = visitor(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "",
        );
        let b = visitor(
            leg(
                "b",
                "IN",
                "IP",
                "1",
                "888",
                "20170309100000",
                "20170309100010",
            ),
            "",
        );
        assert!(!joins(&a, &b));
        assert!(join_keys(&a).is_empty());
    }

    #[test]
    fn joins_same_outer_overlapping() {
        let a = outer(
            leg(
                "a",
                "OU",
                "IP",
                "200",
                "1",
                "20170309100000",
                "20170309100010",
            ),
            "34",
        );
        let b = outer(
            leg(
                "b",
                "OU",
                "IP",
                "888",
                "1",
                "20170309100001",
                "20170309100011",
            ),
            "34",
        );
        assert!(joins(&a, &b));
        assert!(shares_key(&a, &b));
    }

    #[test]
    fn joins_cb_same_callid() {
        let a = callid(
            outer(
                leg(
                    "a",
                    "CB",
                    "IP",
                    "1",
                    "2",
                    "20170328135442",
                    "20170328135454",
                ),
                "4",
            ),
            "20484",
        );
        let b = callid(
            outer(
                leg("b", "CB", "IP", "", "2", "20170328135445", "20170328135455"),
                "5",
            ),
            "20484",
        );
        assert!(joins(&a, &b));
        assert!(shares_key(&a, &b));
    }

    #[test]
    fn joins_callid_alone_never_for_other_types() {
        let a = callid(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "9",
        );
        let b = callid(
            leg(
                "b",
                "OU",
                "IP",
                "200",
                "1",
                "20170309100000",
                "20170309100010",
            ),
            "9",
        );
        assert!(!joins(&a, &b));
    }

    #[test]
    fn joins_internal_lo_in() {
        let a = leg(
            "a",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let b = leg(
            "b",
            "IN",
            "IC",
            "200",
            "212",
            "20170309175040",
            "20170309175053",
        );
        assert!(joins(&a, &b) && joins(&b, &a));
        assert!(shares_key(&a, &b));
    }

    #[test]
    fn joins_internal_needs_close_ends() {
        let a = leg(
            "a",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let b = leg(
            "b",
            "IN",
            "IC",
            "200",
            "212",
            "20170309175040",
            "20170309175049",
        );
        assert!(!joins(&a, &b), "ends 6 s apart");
    }

    #[test]
    fn joins_internal_not_two_lo() {
        let a = leg(
            "a",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let b = leg(
            "b",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        assert!(!joins(&a, &b));
    }

    #[test]
    fn joins_internal_not_other_route_or_numbers() {
        let a = leg(
            "a",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        let b = leg(
            "b",
            "IN",
            "IP",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        assert!(!joins(&a, &b));
        let c = leg(
            "c",
            "IN",
            "IC",
            "201",
            "212",
            "20170309175037",
            "20170309175055",
        );
        assert!(!joins(&a, &c));
    }

    #[test]
    fn join_keys_internal_format() {
        let a = leg(
            "a",
            "LO",
            "IC",
            "200",
            "212",
            "20170309175037",
            "20170309175055",
        );
        assert_eq!(join_keys(&a), vec!["ic:200>212".to_string()]);
    }

    #[test]
    fn role_trunk_in_when_cdpn_is_trunk() {
        let mut l = leg(
            "a",
            "IN",
            "IP",
            "1",
            "888",
            "20170309162657",
            "20170309162714",
        );
        l.trunk_number = "888".into();
        assert_eq!(role(&l), Role::Trunk);
        l.cdpn = "200".into();
        assert_eq!(role(&l), Role::Extension);
    }

    #[test]
    fn role_lo_with_visitor_is_trunk() {
        let l = leg(
            "a",
            "LO",
            "IC",
            "1",
            "200",
            "20170309175311",
            "20170309175319",
        );
        assert_eq!(role(&l), Role::Extension);
        assert_eq!(role(&visitor(l, "93")), Role::Trunk);
    }

    #[test]
    fn role_ou_by_cpn() {
        let mut l = leg(
            "a",
            "OU",
            "XO",
            "200",
            "1",
            "20170309161101",
            "20170309161117",
        );
        l.trunk_number = "02161205555".into();
        assert_eq!(role(&l), Role::Extension);
        l.cpn = "02161205555".into();
        assert_eq!(role(&l), Role::Trunk);
    }

    #[test]
    fn role_fw_cb_trunk_fi_extension() {
        let t = |ty| {
            role(&leg(
                "a",
                ty,
                "IC",
                "1",
                "2",
                "20170309161101",
                "20170309161117",
            ))
        };
        assert_eq!(t("FW"), Role::Trunk);
        assert_eq!(t("CB"), Role::Trunk);
        assert_eq!(t("FI"), Role::Extension);
    }

    #[test]
    fn is_billable_ou_fw_cb_only() {
        let b = |ty| {
            is_billable(&leg(
                "a",
                ty,
                "IC",
                "1",
                "2",
                "20170309161101",
                "20170309161117",
            ))
        };
        assert!(b("OU") && b("FW") && b("CB"));
        assert!(!b("IN") && !b("LO") && !b("FI"));
    }
}
