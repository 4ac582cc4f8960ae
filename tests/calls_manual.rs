//! Legs -> calls on every CDR example of manual §2.6 (values copied exactly),
//! plus recycled ids, a transfer, and order independence (proptest).

use callvault::calls::{group, summarize, CallFacts, Direction};
use callvault::model::{Leg, OM_TIME_FORMAT};
use chrono::{Duration, NaiveDateTime};
use proptest::prelude::*;

const DEV: &str = "om1";

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).expect("manual time")
}

/// A `<Cdr>` as the manual prints it. `id` is `v:48`, `o:34` or `` (none).
#[allow(clippy::too_many_arguments)]
fn cdr(
    cdr_id: &str,
    callid: &str,
    id: &str,
    start: &str,
    ty: &str,
    route: &str,
    cpn: &str,
    cdpn: &str,
    end: &str,
    duration: i64,
    trunk: &str,
    rec: Option<(&str, &str)>,
) -> Leg {
    let (visitor_id, outer_id) = match id.split_once(':') {
        Some(("v", v)) => (Some(v.to_string()), None),
        Some(("o", o)) => (None, Some(o.to_string())),
        _ => (None, None),
    };
    Leg {
        cdr_id: cdr_id.into(),
        callid: callid.into(),
        visitor_id,
        outer_id,
        leg_type: ty.into(),
        route: route.into(),
        cpn: cpn.into(),
        cdpn: cdpn.into(),
        time_start: t(start),
        time_end: t(end),
        duration,
        trunk_number: trunk.into(),
        recording: rec.map(|r| r.0.to_string()),
        rec_codec: rec.map(|r| r.1.to_string()),
        mac: None,
    }
}

// §2.6.1 IP trunk inbound: extension leg and trunk leg.
fn ip_in_ext() -> Leg {
    cdr(
        "2820170309162713-0",
        "32818",
        "v:48",
        "20170309162708",
        "IN",
        "IP",
        "18201008888",
        "200",
        "20170309162713",
        2,
        "888",
        Some((
            "20170309/18201008888_200_20170309_162711_8032_cd.wav",
            "G729",
        )),
    )
}
fn ip_in_trunk() -> Leg {
    cdr(
        "2920170309162714-0",
        "32816",
        "v:48",
        "20170309162657",
        "IN",
        "IP",
        "18201008888",
        "888",
        "20170309162714",
        17,
        "888",
        Some((
            "20170309/18201008888_888_20170309_162657_8030_cd.wav",
            "G729",
        )),
    )
}
// §2.6.1 analog trunk inbound: IN (extension) and LO (trunk) - the manual's two
// examples come from two different calls.
fn xo_in() -> Leg {
    cdr(
        "3120170309162952-0",
        "32820",
        "v:51",
        "20170309162945",
        "IN",
        "XO",
        "18201008888",
        "200",
        "20170309162952",
        4,
        "02161205555",
        Some((
            "20170309/18201008888_200_20170309_162948_8034_cd.wav",
            "PCMU",
        )),
    )
}
fn xo_lo() -> Leg {
    cdr(
        "5820170309175319-0",
        "32861",
        "v:93",
        "20170309175311",
        "LO",
        "IC",
        "18201008888",
        "200",
        "20170309175319",
        6,
        "",
        Some((
            "20170309/18201008888_02161205555_20170309_175313_805D_cg.wav",
            "PCMU",
        )),
    )
}
// §2.6.2 outbound.
fn ou_ext() -> Leg {
    cdr(
        "2020170309161117-0",
        "32801",
        "o:34",
        "20170309161101",
        "OU",
        "XO",
        "200",
        "18201008888",
        "20170309161117",
        12,
        "02161205555",
        Some((
            "20170309/200_18201008888_20170309_161105_8021_cg.wav",
            "PCMU",
        )),
    )
}
fn ou_menu() -> Leg {
    cdr(
        "2520170309162028-0",
        "32809",
        "o:41",
        "20170309162021",
        "OU",
        "IP",
        "",
        "18201008888",
        "20170309162028",
        4,
        "888",
        Some((
            "20170309/888_18201008888_20170309_162024_8029_cg.wav",
            "PCMU",
        )),
    )
}
// §2.6.3 internal - again two different calls in the manual.
fn lo_200_212() -> Leg {
    cdr(
        "5720170309175055-0",
        "32858",
        "",
        "20170309175037",
        "LO",
        "IC",
        "200",
        "212",
        "20170309175055",
        13,
        "",
        Some(("20170309/200_212_20170309_175042_805A_cg.wav", "PCMU")),
    )
}
fn in_200_212() -> Leg {
    cdr(
        "2220170309161649-0",
        "32806",
        "",
        "20170309161641",
        "IN",
        "IC",
        "200",
        "212",
        "20170309161649",
        4,
        "",
        Some(("20170309/200_212_20170309_161644_8026_cd.wav", "PCMU")),
    )
}
// §2.6.4 forwarding (the device clock said 2082).
fn fi() -> Leg {
    cdr(
        "5820821018163856-0",
        "90",
        "v:89",
        "20821018163827",
        "FI",
        "IC",
        "02167103750",
        "200",
        "20821018163856",
        4,
        "02161208234",
        None,
    )
}
fn fw() -> Leg {
    cdr(
        "5920821018163856-0",
        "90",
        "v:89",
        "20821018163827",
        "FW",
        "XO",
        "200",
        "13012345678",
        "20821018163856",
        4,
        "",
        None,
    )
}
// §2.6.5 callback.
fn cb_caller() -> Leg {
    let mut l = cdr(
        "420170328135454-0",
        "20484",
        "o:4",
        "20170328135442",
        "CB",
        "IP",
        "13012345678",
        "02167103750",
        "20170328135454",
        9,
        "50015",
        Some((
            "20170328/50015_02167103750_20170328_135445_5004_cg.wav",
            "PCMU",
        )),
    );
    l.mac = Some("00:0E:A9:3D:00:0C".into());
    l
}
fn cb_callee() -> Leg {
    let mut l = cdr(
        "520170328135455-0",
        "20484",
        "o:5",
        "20170328135445",
        "CB",
        "IP",
        "",
        "02167103750",
        "20170328135455",
        6,
        "50016",
        Some((
            "20170328/50016_02167103750_20170328_135449_5005_cg.wav",
            "PCMU",
        )),
    );
    l.mac = Some("00:0E:A9:3D:00:0C".into());
    l
}

/// Group and summarize, checking every group's facts.
fn calls(legs: &[Leg]) -> Vec<CallFacts> {
    group(legs)
        .iter()
        .map(|g| {
            let refs: Vec<&Leg> = g.iter().map(|&i| &legs[i]).collect();
            summarize(DEV, &refs).expect("non-empty group")
        })
        .collect()
}

fn one_call(legs: &[Leg]) -> CallFacts {
    let mut c = calls(legs);
    assert_eq!(c.len(), 1, "expected one call, got {c:#?}");
    c.remove(0)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn ip_trunk_inbound_is_one_answered_call() {
    let c = one_call(&[ip_in_ext(), ip_in_trunk()]);
    assert_eq!(c.direction, Direction::Inbound);
    assert!(c.answered);
    assert_eq!(c.answered_by.as_deref(), Some("200"));
    assert_eq!(c.trunk.as_deref(), Some("888"));
    assert_eq!(c.talk_seconds, 2);
    assert_eq!(c.billable_seconds, 0);
    assert_eq!(c.caller, "18201008888");
    assert_eq!(c.callee, "888");
    assert_eq!(c.extensions, s(&["200"]));
    assert_eq!(c.route, "IP");
    assert!(!c.forwarded_out);
    assert_eq!(c.start, t("20170309162657"));
    assert_eq!(c.end, t("20170309162714"));
    // The trunk leg starts first, so it anchors the id.
    assert_eq!(
        c.leg_cdr_ids,
        s(&["2920170309162714-0", "2820170309162713-0"])
    );
    assert_eq!(c.id, callvault::calls::call_id(DEV, "2920170309162714-0"));
}

#[test]
fn analog_inbound_in_lo_is_one_call() {
    // The manual's IN leg plus an LO leg of the same call (same visitor, overlapping).
    let lo = cdr(
        "3220170309162953-0",
        "32821",
        "v:51",
        "20170309162943",
        "LO",
        "IC",
        "18201008888",
        "200",
        "20170309162953",
        6,
        "",
        None,
    );
    let c = one_call(&[lo, xo_in()]);
    assert_eq!(c.direction, Direction::Inbound);
    assert!(c.answered);
    assert_eq!(c.answered_by.as_deref(), Some("200"));
    assert_eq!(c.caller, "18201008888");
    assert_eq!(c.callee, "02161205555");
    assert_eq!(c.trunk.as_deref(), Some("02161205555"));
    // The LO is the trunk's leg: only the IN counts as talk, and adds no extension.
    assert_eq!(c.talk_seconds, 4);
    assert_eq!(c.billable_seconds, 0);
    assert_eq!(c.extensions, s(&["200"]));
    assert_eq!(c.route, "IC", "route of the trunk (LO) leg, per spec");
    assert_eq!(
        c.leg_cdr_ids,
        s(&["3220170309162953-0", "3120170309162952-0"])
    );
}

#[test]
fn analog_inbound_manual_legs_stay_two_calls() {
    let c = calls(&[xo_lo(), xo_in()]);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].leg_cdr_ids, s(&["3120170309162952-0"]));
    assert_eq!(c[1].leg_cdr_ids, s(&["5820170309175319-0"]));
    // The lone analog trunk LO: inbound, but no extension leg so nobody answered.
    assert_eq!(c[1].direction, Direction::Inbound);
    assert!(!c[1].answered);
    assert_eq!(c[1].talk_seconds, 0);
    assert!(c[1].extensions.is_empty());
}

#[test]
fn outbound_extension_ou() {
    let c = one_call(&[ou_ext()]);
    assert_eq!(c.direction, Direction::Outbound);
    assert_eq!(c.caller, "200");
    assert_eq!(c.callee, "18201008888");
    assert_eq!(c.extensions, s(&["200"]));
    assert_eq!(c.answered_by, None);
    assert!(c.answered);
    assert_eq!(c.talk_seconds, 12);
    assert_eq!(c.billable_seconds, 12);
    assert_eq!(c.trunk.as_deref(), Some("02161205555"));
    assert_eq!(c.route, "XO");
}

#[test]
fn outbound_menu_ou_empty_cpn() {
    let c = one_call(&[ou_menu()]);
    assert_eq!(c.direction, Direction::Outbound);
    assert_eq!(c.caller, "");
    assert_eq!(c.callee, "18201008888");
    assert!(c.extensions.is_empty());
    assert!(c.answered);
    assert_eq!(c.billable_seconds, 4);
    assert_eq!(c.trunk.as_deref(), Some("888"));
    assert_eq!(c.route, "IP");
}

#[test]
fn outbound_manual_examples_stay_apart() {
    let c = calls(&[ou_menu(), ou_ext()]);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].leg_cdr_ids, s(&["2020170309161117-0"]));
}

#[test]
fn internal_lo_in_is_one_call() {
    let callee_in = cdr(
        "5620170309175055-0",
        "32859",
        "",
        "20170309175040",
        "IN",
        "IC",
        "200",
        "212",
        "20170309175054",
        12,
        "",
        None,
    );
    let c = one_call(&[callee_in, lo_200_212()]);
    assert_eq!(c.direction, Direction::Internal);
    assert_eq!(c.caller, "200");
    assert_eq!(c.callee, "212");
    assert_eq!(c.extensions, s(&["200", "212"]));
    assert_eq!(c.answered_by.as_deref(), Some("212"));
    assert!(c.answered);
    assert_eq!(c.trunk, None);
    assert_eq!(c.billable_seconds, 0);
    // One conversation seen from both ends (LO 13 s, IN 12 s): the longer one, not the sum.
    assert_eq!(c.talk_seconds, 13);
    assert_eq!(c.route, "IC");
    assert_eq!(
        c.leg_cdr_ids,
        s(&["5720170309175055-0", "5620170309175055-0"])
    );
}

#[test]
fn internal_manual_legs_stay_two_calls() {
    let c = calls(&[lo_200_212(), in_200_212()]);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].leg_cdr_ids, s(&["2220170309161649-0"]));
    assert_eq!(c[0].direction, Direction::Internal);
    // A lone IN has no LO: caller/callee come from the first leg.
    assert_eq!((c[0].caller.as_str(), c[0].callee.as_str()), ("200", "212"));
    assert_eq!(c[1].leg_cdr_ids, s(&["5720170309175055-0"]));
}

#[test]
fn forward_internal_fi_alone() {
    let c = one_call(&[fi()]);
    assert_eq!(c.direction, Direction::Inbound);
    assert!(c.answered);
    assert!(!c.forwarded_out);
    assert_eq!(c.answered_by.as_deref(), Some("200"));
    assert_eq!(c.caller, "02167103750");
    assert_eq!(c.callee, "02161208234");
    assert_eq!(c.extensions, s(&["200"]));
    assert_eq!(c.talk_seconds, 4);
    assert_eq!(c.billable_seconds, 0);
    assert_eq!(c.route, "IC");
    assert_eq!(c.start, t("20821018163827"));
}

#[test]
fn forward_out_fi_fw_is_one_call() {
    let c = one_call(&[fw(), fi()]);
    assert_eq!(c.direction, Direction::Inbound);
    assert!(c.forwarded_out);
    assert!(c.answered);
    assert_eq!(c.billable_seconds, 4);
    assert_eq!(c.talk_seconds, 4);
    assert_eq!(c.caller, "02167103750");
    assert_eq!(c.callee, "02161208234");
    assert_eq!(c.extensions, s(&["200"]));
    assert_eq!(c.answered_by.as_deref(), Some("200"));
    assert_eq!(c.route, "XO");
    assert_eq!(
        c.leg_cdr_ids,
        s(&["5820821018163856-0", "5920821018163856-0"])
    );
}

#[test]
fn callback_two_cb_legs_is_one_call() {
    let c = one_call(&[cb_callee(), cb_caller()]);
    assert_eq!(c.direction, Direction::Callback);
    assert!(c.answered);
    assert_eq!(c.billable_seconds, 15);
    assert_eq!(c.talk_seconds, 6);
    assert_eq!(c.caller, "13012345678");
    assert_eq!(c.callee, "02167103750");
    assert_eq!(c.answered_by, None);
    assert_eq!(c.trunk.as_deref(), Some("50015"));
    assert!(c.extensions.is_empty());
    assert_eq!(c.route, "IP");
    assert_eq!(
        c.leg_cdr_ids,
        s(&["420170328135454-0", "520170328135455-0"])
    );
}

#[test]
fn all_manual_examples_together() {
    let legs = vec![
        ip_in_ext(),
        ip_in_trunk(),
        xo_in(),
        xo_lo(),
        ou_ext(),
        ou_menu(),
        lo_200_212(),
        in_200_212(),
        fi(),
        fw(),
        cb_caller(),
        cb_callee(),
    ];
    let c = calls(&legs);
    let sizes: Vec<usize> = c.iter().map(|c| c.leg_cdr_ids.len()).collect();
    // OU, IN(int), OU menu, IP pair, XO IN, LO(int), XO LO, CB pair, FI+FW.
    assert_eq!(sizes, vec![1, 1, 1, 2, 1, 1, 1, 2, 2]);
}

fn shifted(mut l: Leg, secs: i64, suffix: &str) -> Leg {
    l.time_start += Duration::seconds(secs);
    l.time_end += Duration::seconds(secs);
    l.cdr_id.push_str(suffix);
    l
}

#[test]
fn recycled_visitor_an_hour_apart_stays_two_calls() {
    let legs = vec![
        ip_in_ext(),
        ip_in_trunk(),
        shifted(ip_in_ext(), 3600, "-b"),
        shifted(ip_in_trunk(), 3600, "-b"),
    ];
    let c = calls(&legs);
    assert_eq!(c.len(), 2);
    assert_eq!(
        c[0].leg_cdr_ids,
        s(&["2920170309162714-0", "2820170309162713-0"])
    );
    assert_eq!(
        c[1].leg_cdr_ids,
        s(&["2920170309162714-0-b", "2820170309162713-0-b"])
    );
}

#[test]
fn transfer_is_one_call_with_extensions_in_order() {
    let trunk = cdr(
        "t",
        "1",
        "v:48",
        "20170309100000",
        "IN",
        "IP",
        "18201008888",
        "888",
        "20170309100300",
        290,
        "888",
        None,
    );
    let first = cdr(
        "e1",
        "2",
        "v:48",
        "20170309100002",
        "IN",
        "IP",
        "18201008888",
        "200",
        "20170309100100",
        50,
        "888",
        None,
    );
    let second = cdr(
        "e2",
        "3",
        "v:48",
        "20170309100100",
        "IN",
        "IP",
        "18201008888",
        "201",
        "20170309100300",
        150,
        "888",
        None,
    );
    let c = one_call(&[second, trunk, first]);
    assert_eq!(c.extensions, s(&["200", "201"]));
    assert_eq!(c.answered_by.as_deref(), Some("200"));
    assert_eq!(c.talk_seconds, 200);
    assert_eq!(c.leg_cdr_ids, s(&["t", "e1", "e2"]));
}

// ---- order independence -------------------------------------------------

/// One generated call: a pattern from above at `offset` seconds, with a small
/// id pool so that ids are recycled (and sometimes collide on purpose).
fn pattern(kind: u8, n: usize, offset: i64, id: u8, ext: u8) -> Vec<Leg> {
    let base = t("20170309080000") + Duration::seconds(offset);
    let at = |s: i64| base + Duration::seconds(s);
    let mk = |k: usize,
              ty: &str,
              route: &str,
              cpn: &str,
              cdpn: &str,
              s: i64,
              e: i64,
              dur: i64,
              trunk: &str| {
        let mut l = cdr(
            &format!("{n}-{k}"),
            &format!("{id}"),
            "",
            "20170309080000",
            ty,
            route,
            cpn,
            cdpn,
            "20170309080000",
            dur,
            trunk,
            None,
        );
        l.time_start = at(s);
        l.time_end = at(e);
        l
    };
    let v = |mut l: Leg| {
        l.visitor_id = Some(id.to_string());
        l
    };
    let o = |mut l: Leg, oid: u8| {
        l.outer_id = Some(oid.to_string());
        l
    };
    let e = format!("2{ext:02}");
    let e2 = format!("2{:02}", ext.wrapping_add(1) % 4);
    match kind % 9 {
        0 => vec![
            v(mk(0, "IN", "IP", "182", "888", 0, 60, 50, "888")),
            v(mk(1, "IN", "IP", "182", &e, 3, 59, 40, "888")),
        ],
        1 => vec![
            v(mk(0, "IN", "XO", "182", &e, 2, 40, 30, "0216")),
            v(mk(1, "LO", "IC", "182", &e, 0, 41, 35, "")),
        ],
        2 => vec![o(mk(0, "OU", "XO", &e, "182", 0, 30, 20, "0216"), id)],
        3 => vec![o(mk(0, "OU", "IP", "", "182", 0, 10, 4, "888"), id)],
        4 => vec![
            mk(0, "LO", "IC", &e, &e2, 0, 30, 20, ""),
            mk(1, "IN", "IC", &e, &e2, 2, 28, 19, ""),
        ],
        5 => vec![v(mk(0, "FI", "IC", "021", &e, 0, 29, 4, "0216"))],
        6 => vec![
            v(mk(0, "FI", "IC", "021", &e, 0, 29, 4, "0216")),
            v(mk(1, "FW", "XO", &e, "130", 0, 29, 4, "")),
        ],
        7 => vec![
            o(mk(0, "CB", "IP", "130", "021", 0, 12, 9, "50015"), id),
            o(
                mk(1, "CB", "IP", "", "021", 3, 13, 6, "50016"),
                id.wrapping_add(1),
            ),
        ],
        _ => vec![
            v(mk(0, "IN", "IP", "182", "888", 0, 180, 170, "888")),
            v(mk(1, "IN", "IP", "182", &e, 2, 60, 50, "888")),
            v(mk(2, "IN", "IP", "182", &e2, 60, 180, 110, "888")),
        ],
    }
}

fn traffic() -> impl Strategy<Value = (Vec<Vec<Leg>>, Vec<Leg>)> {
    prop::collection::vec((0u8..9, 0i64..1800, 1u8..5, 0u8..4), 1..25)
        .prop_map(|spec| {
            let calls: Vec<Vec<Leg>> = spec
                .iter()
                .enumerate()
                .map(|(n, &(k, off, id, ext))| pattern(k, n, off, id, ext))
                .collect();
            let legs: Vec<Leg> = calls.iter().flatten().cloned().collect();
            (calls, legs)
        })
        .prop_flat_map(|(calls, legs)| {
            let shuffled = Just(legs.clone()).prop_shuffle();
            (Just(calls), Just(legs), shuffled)
        })
        .prop_map(|(calls, legs, shuffled)| {
            let mut both = legs;
            both.extend(shuffled);
            (calls, both)
        })
}

fn grouped_ids(legs: &[Leg]) -> Vec<Vec<String>> {
    group(legs)
        .iter()
        .map(|g| g.iter().map(|&i| legs[i].cdr_id.clone()).collect())
        .collect()
}

proptest! {
    #[test]
    fn any_order_gives_same_calls((calls_in, both) in traffic()) {
        let (legs, shuffled) = both.split_at(both.len() / 2);
        let ids = grouped_ids(legs);
        prop_assert_eq!(&ids, &grouped_ids(shuffled));
        prop_assert_eq!(calls(legs), calls(shuffled));

        // A generated call's legs never end up in different groups.
        for call in &calls_in {
            let owner = |l: &Leg| ids.iter().position(|g| g.contains(&l.cdr_id));
            let first = owner(&call[0]);
            prop_assert!(first.is_some());
            prop_assert!(call.iter().all(|l| owner(l) == first));
        }

        // summarize itself ignores the order of its slice.
        for g in group(legs) {
            let mut refs: Vec<&Leg> = g.iter().map(|&i| &legs[i]).collect();
            let a = summarize(DEV, &refs);
            refs.reverse();
            prop_assert_eq!(a, summarize(DEV, &refs));
        }
    }
}
