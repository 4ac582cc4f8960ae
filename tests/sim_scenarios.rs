//! The simulated device's pushes, read back with a minimal quick-xml reader,
//! against the manual's examples (§2.5.3, §2.5.7, §2.6, §4.5, §4.12, §5.7).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use callvault::model::OM_TIME_FORMAT;
use callvault::sim::{generate, Plan, PushKind, Scenario, SimConfig, TruthCall};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use md5::{Digest, Md5};
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

// ---------- minimal test-only XML reader ----------

#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn field(&self, name: &str) -> String {
        self.child(name)
            .map(|c| c.text.clone())
            .unwrap_or_else(|| panic!("missing <{name}> in {self:?}"))
    }
}

fn node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    Node {
        name: String::from_utf8(e.name().as_ref().to_vec()).expect("utf8 name"),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).expect("utf8 key"),
                    a.unescape_value().expect("value").into_owned(),
                )
            })
            .collect(),
        ..Node::default()
    }
}

/// Top-level elements of one push body (message root, then Auth if any);
/// panics on malformed XML.
fn parse(body: &str) -> Vec<Node> {
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"),
        "declaration: {body}"
    );
    let mut r = Reader::from_str(body);
    r.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut top = Vec::new();
    loop {
        match r.read_event().expect("well-formed XML") {
            XmlEvent::Start(e) => stack.push(node(&e)),
            XmlEvent::Empty(e) => {
                let n = node(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => top.push(n),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.decode().expect("text"));
                }
            }
            XmlEvent::End(_) => {
                let n = stack.pop().expect("balanced");
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => top.push(n),
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    top
}

#[derive(Debug, Clone)]
struct Cdr {
    idx: usize,
    id: String,
    callid: String,
    visitor: Option<String>,
    outer: Option<String>,
    start: NaiveDateTime,
    ty: String,
    route: String,
    cpn: String,
    cdpn: String,
    end: NaiveDateTime,
    duration: i64,
    trunk: String,
    recording: Option<String>,
    codec: Option<String>,
}

#[derive(Debug, Clone)]
struct Ev {
    at: NaiveDateTime,
    attribute: String,
    parties: Vec<Node>,
}

impl Ev {
    fn ids(&self, tag: &str) -> Vec<String> {
        self.parties
            .iter()
            .filter(|p| p.name == tag)
            .filter_map(|p| p.attr("id").map(str::to_string))
            .collect()
    }
}

fn time(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).expect("OM time")
}

fn read(plan: &Plan) -> (Vec<Cdr>, Vec<Ev>) {
    let (mut cdrs, mut evs) = (Vec::new(), Vec::new());
    for (idx, p) in plan.pushes.iter().enumerate() {
        let docs = parse(&p.body);
        let root = &docs[0];
        match p.kind {
            PushKind::Cdr => {
                assert_eq!(root.name, "Cdr");
                cdrs.push(Cdr {
                    idx,
                    id: root.attr("id").expect("Cdr id").to_string(),
                    callid: root.field("callid"),
                    visitor: root
                        .child("visitor")
                        .and_then(|v| v.attr("id"))
                        .map(str::to_string),
                    outer: root
                        .child("outer")
                        .and_then(|v| v.attr("id"))
                        .map(str::to_string),
                    start: time(&root.field("TimeStart")),
                    ty: root.field("Type"),
                    route: root.field("Route"),
                    cpn: root.field("CPN"),
                    cdpn: root.field("CDPN"),
                    end: time(&root.field("TimeEnd")),
                    duration: root.field("Duration").parse().expect("Duration"),
                    trunk: root.field("TrunkNumber"),
                    recording: root.child("Recording").map(|n| n.text.clone()),
                    codec: root.child("RecCodec").map(|n| n.text.clone()),
                });
            }
            PushKind::Event => {
                assert_eq!(root.name, "Event");
                evs.push(Ev {
                    at: p.at,
                    attribute: root.attr("attribute").expect("attribute").to_string(),
                    parties: root
                        .children
                        .iter()
                        .filter(|c| c.name != "MAC")
                        .cloned()
                        .collect(),
                });
            }
        }
    }
    (cdrs, evs)
}

// ---------- helpers ----------

fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, 1)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .expect("start")
}

fn only(sc: Scenario, calls: usize) -> Plan {
    generate(&SimConfig {
        seed: 42,
        calls,
        start: t0(),
        calls_per_hour: 60.0,
        scenarios: vec![sc],
        ..SimConfig::default()
    })
}

/// Legs of each truth call, in push order.
fn calls_with_legs(plan: &Plan) -> Vec<(TruthCall, Vec<Cdr>)> {
    let (cdrs, _) = read(plan);
    let by_id: HashMap<String, Cdr> = cdrs.into_iter().map(|c| (c.id.clone(), c)).collect();
    plan.truth
        .calls
        .iter()
        .map(|t| {
            let mut legs: Vec<Cdr> = t
                .device_cdr_ids
                .iter()
                .map(|id| by_id[id].clone())
                .collect();
            legs.sort_by_key(|l| l.idx);
            (t.clone(), legs)
        })
        .collect()
}

/// Events carrying the visitor id `v` within the call's span.
fn visitor_events(evs: &[Ev], v: &str, t: &TruthCall) -> Vec<Ev> {
    evs.iter()
        .filter(|e| e.at >= t.start && e.at <= t.end && e.ids("visitor").iter().any(|i| i == v))
        .cloned()
        .collect()
}

fn is_extension(n: &str) -> bool {
    n.len() == 3 && n.starts_with('2')
}

// ---------- scenarios ----------

#[test]
fn ip_inbound_gives_trunk_and_extension_in_legs() {
    let plan = only(Scenario::IpInbound, 25);
    let (_, evs) = read(&plan);
    for (t, legs) in calls_with_legs(&plan) {
        assert_eq!(legs.len(), 2);
        let (ext_leg, trunk_leg) = (&legs[0], &legs[1]);
        assert!(legs
            .iter()
            .all(|l| l.ty == "IN" && l.route == "IP" && l.cpn == t.caller));
        assert_eq!(
            trunk_leg.cdpn, trunk_leg.trunk,
            "trunk leg CDPN = TrunkNumber"
        );
        assert!(is_extension(&ext_leg.cdpn), "extension leg pushed first");
        assert_eq!(ext_leg.trunk, trunk_leg.trunk);
        assert_eq!(ext_leg.visitor, trunk_leg.visitor);
        assert!(ext_leg.visitor.is_some() && ext_leg.outer.is_none());
        assert_ne!(
            ext_leg.callid, trunk_leg.callid,
            "each leg has its own callid (§2.6.1)"
        );
        assert!(trunk_leg.start < ext_leg.start && trunk_leg.end >= ext_leg.end);
        assert!(trunk_leg.duration > ext_leg.duration && ext_leg.duration > 0);
        assert_eq!(t.answered_by.as_deref(), Some(ext_leg.cdpn.as_str()));
        assert_eq!(t.talk_seconds, ext_leg.duration);
        assert_eq!(t.callee, trunk_leg.trunk);
        let v = ext_leg.visitor.clone().expect("visitor");
        let seq: Vec<String> = visitor_events(&evs, &v, &t)
            .iter()
            .map(|e| e.attribute.clone())
            .collect();
        assert_eq!(seq, ["RING", "ALERT", "ANSWER", "BYE"]);
        let ring = &visitor_events(&evs, &v, &t)[0];
        assert_eq!(ring.parties[0].name, "ext");
        assert_eq!(ring.ids("ext"), vec![ext_leg.cdpn.clone()]);
        let vis = &ring.parties[1];
        assert_eq!(vis.attr("from"), Some(t.caller.as_str()));
        assert_eq!(vis.attr("to"), Some(trunk_leg.trunk.as_str()));
        assert_ne!(
            vis.attr("callid"),
            Some(ext_leg.callid.as_str()),
            "event callids differ from CDR callids"
        );
    }
}

#[test]
fn analog_inbound_gives_in_xo_and_lo_ic_legs() {
    let plan = only(Scenario::AnalogInbound, 25);
    for (t, legs) in calls_with_legs(&plan) {
        assert_eq!(legs.len(), 2);
        let inn = legs.iter().find(|l| l.ty == "IN").expect("IN leg");
        let lo = legs.iter().find(|l| l.ty == "LO").expect("LO leg");
        assert_eq!((inn.route.as_str(), lo.route.as_str()), ("XO", "IC"));
        assert_eq!(inn.cpn, lo.cpn);
        assert!(!is_extension(&lo.cpn), "LO carries the external CPN");
        assert_eq!(lo.cdpn, inn.cdpn);
        assert!(is_extension(&inn.cdpn));
        assert!(!inn.trunk.is_empty());
        assert_eq!(lo.trunk, "", "LO TrunkNumber empty as in the manual");
        assert_eq!(inn.visitor, lo.visitor);
        assert!(inn.visitor.is_some());
        assert_eq!(t.callee, inn.trunk);
        assert_eq!(t.answered_by.as_deref(), Some(inn.cdpn.as_str()));
        if let Some(r) = &lo.recording {
            assert!(
                r.contains(&format!("/{}_{}_", lo.cpn, inn.trunk)) && r.ends_with("_cg.wav"),
                "{r}"
            );
        }
    }
}

#[test]
fn inbound_missed_legs_have_zero_duration() {
    for sc in [Scenario::IpInboundMissed, Scenario::AnalogInboundMissed] {
        for (t, legs) in calls_with_legs(&only(sc, 15)) {
            assert_eq!(legs.len(), 2);
            assert!(legs
                .iter()
                .all(|l| l.duration == 0 && l.recording.is_none()));
            assert!(!t.answered && t.answered_by.is_none() && t.talk_seconds == 0);
        }
    }
}

#[test]
fn internal_gives_lo_and_in_route_ic() {
    let plan = only(Scenario::Internal, 30);
    let (_, evs) = read(&plan);
    assert!(
        evs.iter().any(|e| e.attribute == "RING "),
        "ext-to-ext RING keeps the device's trailing space"
    );
    let mut answered = 0;
    for (t, legs) in calls_with_legs(&plan) {
        assert_eq!(legs.len(), 2);
        let lo = legs.iter().find(|l| l.ty == "LO").expect("LO");
        let inn = legs.iter().find(|l| l.ty == "IN").expect("IN");
        for l in [lo, inn] {
            assert_eq!(l.route, "IC");
            assert_eq!(l.trunk, "");
            assert!(l.visitor.is_none() && l.outer.is_none());
            assert_eq!(
                (l.cpn.as_str(), l.cdpn.as_str()),
                (t.caller.as_str(), t.callee.as_str())
            );
        }
        assert!((lo.end - inn.end).num_seconds().abs() <= 2);
        assert_eq!(t.talk_seconds, lo.duration.max(inn.duration));
        answered += usize::from(t.answered);
        assert_eq!(t.answered, inn.duration > 0);
    }
    assert!(answered > 0);
}

#[test]
fn outbound_ip_gives_one_ou_leg() {
    let plan = only(Scenario::OutboundIp, 30);
    for (t, legs) in calls_with_legs(&plan) {
        assert_eq!(legs.len(), 1);
        let ou = &legs[0];
        assert_eq!((ou.ty.as_str(), ou.route.as_str()), ("OU", "IP"));
        assert!(is_extension(&ou.cpn) && !is_extension(&ou.cdpn));
        assert!(ou.outer.is_some() && ou.visitor.is_none());
        assert!(!ou.trunk.is_empty());
        assert_eq!(t.answered, ou.duration > 0);
        assert_eq!(t.billable_seconds, ou.duration);
        if let Some(r) = &ou.recording {
            assert!(
                r.contains(&format!("/{}_{}_", ou.cpn, ou.cdpn)) && r.ends_with("_cg.wav"),
                "{r}"
            );
        }
    }
}

#[test]
fn outbound_analog_always_has_duration() {
    let plan = only(Scenario::OutboundAnalog, 40);
    let (_, evs) = read(&plan);
    assert!(evs.iter().any(|e| e.attribute == "TRANSIENT"));
    let mut noted = 0;
    for (t, legs) in calls_with_legs(&plan) {
        assert_eq!(legs.len(), 1);
        let ou = &legs[0];
        assert_eq!((ou.ty.as_str(), ou.route.as_str()), ("OU", "XO"));
        assert!(ou.duration > 0, "§5.6 Q2");
        assert!(t.answered, "spec: outbound answered = OU Duration > 0");
        noted += usize::from(t.note.is_some());
    }
    assert!(
        noted > 0,
        "some calls nobody answered carry the §5.6 Q2 note"
    );
}

#[test]
fn forward_to_extension_gives_fi_only() {
    for (t, legs) in calls_with_legs(&only(Scenario::ForwardToExtension, 20)) {
        assert_eq!(legs.len(), 1);
        let fi = &legs[0];
        assert_eq!((fi.ty.as_str(), fi.route.as_str()), ("FI", "IC"));
        assert!(!is_extension(&fi.cpn) && is_extension(&fi.cdpn));
        assert!(!fi.trunk.is_empty() && fi.visitor.is_some());
        assert!(!t.forwarded_out);
        assert_eq!(t.answered_by.is_some(), fi.duration > 0);
    }
}

#[test]
fn forward_to_mobile_gives_fi_and_fw() {
    for (t, legs) in calls_with_legs(&only(Scenario::ForwardToMobile, 20)) {
        assert_eq!(legs.len(), 2);
        let (fi, fw) = (&legs[0], &legs[1]);
        assert_eq!(
            (fi.ty.as_str(), fw.ty.as_str()),
            ("FI", "FW"),
            "FI pushed before FW"
        );
        assert_eq!(fw.route, "XO");
        assert_eq!(fw.cpn, fi.cdpn, "FW CPN = forwarding extension");
        assert!(!is_extension(&fw.cdpn));
        assert_eq!(fw.trunk, "");
        assert_eq!(fw.callid, fi.callid);
        assert_eq!(fw.visitor, fi.visitor);
        assert_eq!(
            (fw.start, fw.end, fw.duration),
            (fi.start, fi.end, fi.duration)
        );
        assert!(t.forwarded_out);
        assert_eq!(t.billable_seconds, fw.duration);
    }
}

#[test]
fn callback_gives_two_cb_legs_same_callid() {
    for (t, legs) in calls_with_legs(&only(Scenario::Callback, 20)) {
        assert_eq!(legs.len(), 2);
        assert!(legs
            .iter()
            .all(|l| l.ty == "CB" && l.route == "IP" && l.outer.is_some()));
        assert_eq!(legs[0].callid, legs[1].callid);
        assert_ne!(legs[0].outer, legs[1].outer);
        let first = legs.iter().min_by_key(|l| l.start).expect("first");
        let second = legs.iter().max_by_key(|l| l.start).expect("second");
        assert_eq!(first.cpn, t.caller);
        assert_eq!(second.cpn, "", "second CB leg has an empty CPN");
        assert_eq!(first.cdpn, second.cdpn);
        assert_eq!(t.talk_seconds, first.duration.min(second.duration));
        assert_eq!(t.billable_seconds, first.duration + second.duration);
        for l in &legs {
            if let Some(r) = &l.recording {
                assert!(r.contains(&format!("/{}_{}_", l.trunk, l.cdpn)), "{r}");
            }
        }
    }
}

#[test]
fn blind_transfer_gives_spanning_trunk_leg_and_successive_agent_legs() {
    for (t, legs) in calls_with_legs(&only(Scenario::BlindTransfer, 20)) {
        assert_eq!(legs.len(), 3);
        assert!(legs
            .iter()
            .all(|l| l.ty == "IN" && l.visitor == legs[0].visitor));
        let trunk = legs.iter().find(|l| l.cdpn == l.trunk).expect("trunk leg");
        let agents: Vec<&Cdr> = legs.iter().filter(|l| is_extension(&l.cdpn)).collect();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0].end, agents[1].start);
        assert_ne!(agents[0].cdpn, agents[1].cdpn);
        assert!(trunk.start <= agents[0].start && trunk.end >= agents[1].end);
        assert_eq!(t.answered_by.as_deref(), Some(agents[0].cdpn.as_str()));
        assert_eq!(t.talk_seconds, agents[0].duration + agents[1].duration);
        assert_eq!(
            trunk.idx,
            legs.iter().map(|l| l.idx).max().expect("idx"),
            "trunk leg pushed last"
        );
    }
}

#[test]
fn queue_answered_exits_by_agent_ring() {
    let plan = only(Scenario::QueueAnswered, 30);
    let (_, evs) = read(&plan);
    for v in &plan.truth.visits {
        assert_eq!(v.outcome, "answered");
        let call = plan_call(&plan, v);
        // Ids recycle: only events inside this call's span are its own.
        let own: Vec<&Ev> = evs
            .iter()
            .filter(|e| e.at >= call.start && e.at <= call.end)
            .collect();
        let q = own
            .iter()
            .find(|e| e.attribute == "QUEUE" && e.ids("visitor") == vec![v.party_id.clone()])
            .expect("QUEUE");
        let w = q
            .parties
            .iter()
            .find(|p| p.name == "waiting")
            .expect("waiting");
        assert_eq!(w.attr("group"), Some(v.group.as_str()));
        assert!(w.attr("reason").is_none());
        let ring = own
            .iter()
            .find(|e| {
                e.attribute == "RING"
                    && e.at >= q.at
                    && e.ids("visitor") == vec![v.party_id.clone()]
            })
            .expect("RING");
        assert_eq!(ring.ids("ext"), vec![v.agent.clone().expect("agent")]);
        assert_eq!(v.wait_seconds, (ring.at - q.at).num_seconds());
    }
    assert_eq!(plan.truth.visits.len(), 30);
}

fn plan_call<'a>(plan: &'a Plan, v: &callvault::sim::TruthVisit) -> &'a TruthCall {
    plan.truth
        .calls
        .iter()
        .find(|c| c.device_cdr_ids == v.cdr_ids)
        .expect("visit's call")
}

#[test]
fn queue_abandoned_exits_by_bye_with_group_number() {
    let plan = only(Scenario::QueueAbandoned, 30);
    let (_, evs) = read(&plan);
    for v in &plan.truth.visits {
        let call = plan_call(&plan, v);
        let bye = evs
            .iter()
            .find(|e| {
                e.attribute == "BYE"
                    && e.at >= call.start
                    && e.at <= call.end
                    && e.ids(&v.party_kind).first() == Some(&v.party_id)
            })
            .expect("BYE");
        assert_eq!(
            bye.ids("ext").last(),
            Some(&v.group_number),
            "ext id = group number (§4.12)"
        );
        assert!(!call.answered);
        assert!(v.wait_seconds > 0);
    }
    assert!(plan.truth.visits.iter().any(|v| v.party_kind == "visitor"));
}

#[test]
fn queue_rejections_carry_reason_and_count() {
    for (sc, reason, count, outcome) in [
        (
            Scenario::QueueRejectedOffline,
            "offline",
            "0",
            "rejected_offline",
        ),
        (Scenario::QueueRejectedFull, "full", "30", "rejected_full"),
    ] {
        let plan = only(sc, 15);
        let (_, evs) = read(&plan);
        let queues: Vec<&Ev> = evs.iter().filter(|e| e.attribute == "QUEUE").collect();
        assert_eq!(queues.len(), 15);
        for q in queues {
            let w = q
                .parties
                .iter()
                .find(|p| p.name == "waiting")
                .expect("waiting");
            assert_eq!(
                (w.attr("reason"), w.attr("count")),
                (Some(reason), Some(count))
            );
        }
        assert!(plan
            .truth
            .visits
            .iter()
            .all(|v| v.outcome == outcome && v.wait_seconds == 0 && v.agent.is_none()));
    }
}

// ---------- whole-plan properties ----------

fn busy(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        calls: 400,
        start: t0(),
        calls_per_hour: 600.0,
        id_pool_size: 12,
        ..SimConfig::default()
    }
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let cfg = SimConfig {
        server_password: Some("s3cret".into()),
        ..busy(7)
    };
    assert_eq!(generate(&cfg), generate(&cfg));
    assert_ne!(
        generate(&cfg).pushes,
        generate(&SimConfig { seed: 8, ..cfg }).pushes
    );
}

#[test]
fn pushes_are_sorted_by_time() {
    let plan = generate(&busy(3));
    assert!(plan.pushes.windows(2).all(|w| w[0].at <= w[1].at));
    let (cdrs, _) = read(&plan);
    for c in &cdrs {
        assert_eq!(
            plan.pushes[c.idx].at, c.end,
            "a CDR is pushed when its leg ends"
        );
    }
}

#[test]
fn ids_are_live_in_one_call_at_a_time_and_recycle() {
    let plan = generate(&busy(5));
    let (_, evs) = read(&plan);
    // Every id a call uses (legs and events) with the call's span.
    let mut uses: HashMap<String, Vec<(NaiveDateTime, NaiveDateTime)>> = HashMap::new();
    for (t, legs) in calls_with_legs(&plan) {
        let mut ids: HashSet<String> = legs
            .iter()
            .flat_map(|l| l.visitor.clone().into_iter().chain(l.outer.clone()))
            .collect();
        for e in evs.iter().filter(|e| e.at >= t.start && e.at <= t.end) {
            let v = e.ids("visitor");
            if v.iter().any(|i| ids.contains(i)) {
                ids.extend(e.ids("outer"));
            }
        }
        for id in ids {
            uses.entry(id).or_default().push((t.start, t.end));
        }
    }
    let mut recycled = 0;
    for spans in uses.values_mut() {
        spans.sort();
        recycled += spans.len() - 1;
        for w in spans.windows(2) {
            assert!(
                (w[1].0 - w[0].1).num_seconds() > 5,
                "id reused within TOL: {w:?}"
            );
        }
    }
    assert!(recycled > 100, "ids must really recycle: {recycled}");
    let overlapping = plan
        .truth
        .calls
        .windows(2)
        .filter(|w| w[1].start < w[0].end)
        .count();
    assert!(overlapping > 10, "calls overlap: {overlapping}");
}

#[test]
fn cdr_ids_are_seq_plus_time_end_and_belong_to_one_call() {
    let plan = generate(&busy(9));
    let (cdrs, _) = read(&plan);
    for c in &cdrs {
        let stamp = c.end.format(OM_TIME_FORMAT).to_string();
        let seq =
            c.id.strip_suffix(&format!("{stamp}-0"))
                .expect("<seq><TimeEnd>-0");
        assert!(seq.parse::<u64>().is_ok(), "{}", c.id);
    }
    let mut all: Vec<&String> = plan
        .truth
        .calls
        .iter()
        .flat_map(|t| &t.device_cdr_ids)
        .collect();
    assert_eq!(all.len(), cdrs.len());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), cdrs.len());
    assert!(plan
        .truth
        .calls
        .iter()
        .all(|t| t.device_cdr_ids.windows(2).all(|w| w[0] <= w[1])));
}

#[test]
fn recordings_match_cdr_fields() {
    let plan = generate(&busy(11));
    let (cdrs, _) = read(&plan);
    let recorded: Vec<&Cdr> = cdrs.iter().filter(|c| c.recording.is_some()).collect();
    assert_eq!(recorded.len(), plan.recordings.len());
    for (c, r) in recorded.iter().zip(&plan.recordings) {
        assert_eq!(c.recording.as_deref(), Some(r.path.as_str()));
        assert_eq!(c.codec.as_deref(), Some(r.codec.as_str()));
        assert_eq!(i64::from(r.seconds), c.duration);
        // YYYYMMDD/<a>_<b>_<YYYYMMDD>_<hhmmss>_<HEX>_<cg|cd>.wav, stamped at answer time.
        let answer = c.end - chrono::TimeDelta::seconds(c.duration);
        let stamp = answer.format("%Y%m%d/").to_string();
        assert!(r.path.starts_with(&stamp), "{}", r.path);
        assert!(
            r.path
                .contains(&answer.format("_%Y%m%d_%H%M%S_").to_string()),
            "{}",
            r.path
        );
        assert!(r.path.ends_with("_cg.wav") || r.path.ends_with("_cd.wav"));
    }
    let codecs: HashSet<&str> = plan.recordings.iter().map(|r| r.codec.as_str()).collect();
    assert_eq!(codecs, HashSet::from(["G729", "PCMU", "PCMA"]));
    assert!(
        cdrs.iter().any(|c| c.duration > 0 && c.recording.is_none()),
        "some calls are not recorded"
    );
}

#[test]
fn auth_block_follows_root_and_signs_with_password() {
    let cfg = SimConfig {
        mac: Some("00:0E:A9:3D:00:0C".into()),
        server_password: Some("s3cret".into()),
        ..busy(13)
    };
    let plan = generate(&cfg);
    for p in &plan.pushes {
        let docs = parse(&p.body);
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].children[0].name, "MAC",
            "MAC is the root's first child"
        );
        assert_eq!(docs[0].children[0].text, "00:0E:A9:3D:00:0C");
        let auth = &docs[1];
        assert_eq!(auth.name, "Auth");
        let (nonce, ts, sig) = (
            auth.field("nonce"),
            auth.field("timestamp"),
            auth.field("signature"),
        );
        let expected_ts = chrono_tz::Asia::Shanghai
            .from_local_datetime(&p.at)
            .earliest()
            .expect("local")
            .timestamp();
        assert_eq!(ts, expected_ts.to_string());
        let digest = hex::encode(Md5::digest(format!("s3cret{nonce}{ts}").as_bytes()));
        assert_eq!(sig, digest);
        assert!(!nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

#[test]
fn every_scenario_appears_in_default_mix() {
    let plan = generate(&SimConfig {
        calls: 1000,
        ..busy(17)
    });
    let seen: HashSet<&str> = plan
        .truth
        .calls
        .iter()
        .map(|t| t.scenario.as_str())
        .collect();
    for sc in Scenario::ALL {
        assert!(seen.contains(sc.name()), "{}", sc.name());
    }
}

#[test]
fn thousand_calls_generate_fast() {
    let cfg = SimConfig {
        calls: 1000,
        server_password: Some("pw".into()),
        ..SimConfig::default()
    };
    // Best of three: the other tests run in parallel on a small shared machine.
    let took = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(generate(&cfg).truth.calls.len(), 1000);
            t.elapsed()
        })
        .min()
        .expect("three runs");
    assert!(took.as_millis() < 500, "took {took:?}");
}

// ---------- the truth against CALLS_SPEC.md applied to the pushed legs ----------

const TOL: i64 = 5;

fn joins(a: &Cdr, b: &Cdr) -> bool {
    let overlap = (a.start - b.end).num_seconds() <= TOL && (b.start - a.end).num_seconds() <= TOL;
    let same = |x: &Option<String>, y: &Option<String>| x.is_some() && x == y;
    let no_id = |l: &Cdr| l.visitor.is_none() && l.outer.is_none();
    let lo_in = (a.ty == "LO" && b.ty == "IN") || (a.ty == "IN" && b.ty == "LO");
    overlap
        && (same(&a.visitor, &b.visitor)
            || same(&a.outer, &b.outer)
            || (a.ty == "CB" && b.ty == "CB" && !a.callid.is_empty() && a.callid == b.callid)
            || (lo_in
                && no_id(a)
                && no_id(b)
                && a.cpn == b.cpn
                && a.cdpn == b.cdpn
                && a.route == "IC"
                && b.route == "IC"
                && (a.end - b.end).num_seconds().abs() <= TOL))
}

fn is_trunk_leg(l: &Cdr) -> bool {
    match l.ty.as_str() {
        "IN" => !l.trunk.is_empty() && l.cdpn == l.trunk,
        "LO" => l.visitor.is_some(),
        "OU" => !l.trunk.is_empty() && l.cpn == l.trunk,
        "FW" | "CB" => true,
        _ => false,
    }
}

/// A deliberately naive reading of CALLS_SPEC.md, only to check the truth.
fn spec_truth(mut legs: Vec<Cdr>) -> TruthCall {
    legs.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let has = |ty: &str| legs.iter().any(|l| l.ty == ty);
    let direction = if has("CB") {
        "callback"
    } else if has("OU") {
        "outbound"
    } else if legs
        .iter()
        .any(|l| l.visitor.is_some() || (l.ty == "IN" && !l.trunk.is_empty()))
    {
        "inbound"
    } else {
        "internal"
    };
    let first = |ty: &str| legs.iter().find(|l| l.ty == ty);
    let first_lo_or_leg = || first("LO").unwrap_or(&legs[0]);
    let (caller, callee) = match direction {
        "inbound" => (
            legs.iter()
                .find(|l| l.ty != "FW")
                .map(|l| l.cpn.clone())
                .unwrap_or_default(),
            legs.iter()
                .find(|l| !l.trunk.is_empty())
                .map(|l| l.trunk.clone())
                .unwrap_or_else(|| legs[0].cdpn.clone()),
        ),
        "outbound" => (
            first("OU").map(|l| l.cpn.clone()).unwrap_or_default(),
            first("OU").map(|l| l.cdpn.clone()).unwrap_or_default(),
        ),
        "internal" => (
            first_lo_or_leg().cpn.clone(),
            first_lo_or_leg().cdpn.clone(),
        ),
        _ => (
            legs.iter()
                .filter(|l| l.ty == "CB")
                .map(|l| l.cpn.clone())
                .find(|c| !c.is_empty())
                .unwrap_or_default(),
            first("CB").map(|l| l.cdpn.clone()).unwrap_or_default(),
        ),
    };
    let ext_legs: Vec<&Cdr> = legs.iter().filter(|l| !is_trunk_leg(l)).collect();
    let cb: Vec<&Cdr> = legs.iter().filter(|l| l.ty == "CB").collect();
    let answered_by = match direction {
        "outbound" | "callback" => None,
        _ => ext_legs
            .iter()
            .find(|l| matches!(l.ty.as_str(), "IN" | "FI" | "LO") && l.duration > 0)
            .map(|l| l.cdpn.clone()),
    };
    let answered = match direction {
        "outbound" => legs.iter().any(|l| l.ty == "OU" && l.duration > 0),
        "callback" => cb.len() >= 2 && cb.iter().all(|l| l.duration > 0),
        _ => ext_legs.iter().any(|l| l.duration > 0),
    };
    let mut ids: Vec<String> = legs.iter().map(|l| l.id.clone()).collect();
    ids.sort();
    TruthCall {
        device_cdr_ids: ids,
        scenario: String::new(),
        direction: direction.to_string(),
        caller,
        callee,
        answered,
        answered_by,
        trunk: legs
            .iter()
            .find(|l| !l.trunk.is_empty())
            .map(|l| l.trunk.clone()),
        talk_seconds: if direction == "callback" {
            cb.iter().map(|l| l.duration).min().unwrap_or(0)
        } else if direction == "internal" {
            ext_legs.iter().map(|l| l.duration).max().unwrap_or(0)
        } else {
            ext_legs.iter().map(|l| l.duration).sum()
        },
        billable_seconds: legs
            .iter()
            .filter(|l| matches!(l.ty.as_str(), "OU" | "FW" | "CB"))
            .map(|l| l.duration)
            .sum(),
        forwarded_out: has("FW"),
        start: legs.iter().map(|l| l.start).min().expect("legs"),
        end: legs.iter().map(|l| l.end).max().expect("legs"),
        note: None,
    }
}

/// Connected components of the join rules (naive union-find over all pairs).
fn components(cdrs: &[Cdr]) -> Vec<Vec<Cdr>> {
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..cdrs.len()).collect();
    for i in 0..cdrs.len() {
        for j in i + 1..cdrs.len() {
            if joins(&cdrs[i], &cdrs[j]) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: HashMap<usize, Vec<Cdr>> = HashMap::new();
    for (i, c) in cdrs.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(c.clone());
    }
    groups.into_values().collect()
}

fn truth_equals_spec_for(plan: &Plan) {
    let (cdrs, _) = read(plan);
    let spec: HashMap<Vec<String>, TruthCall> = components(&cdrs)
        .into_iter()
        .map(|legs| {
            let t = spec_truth(legs);
            (t.device_cdr_ids.clone(), t)
        })
        .collect();
    assert_eq!(spec.len(), plan.truth.calls.len(), "same number of calls");
    for t in &plan.truth.calls {
        let s = spec
            .get(&t.device_cdr_ids)
            .unwrap_or_else(|| panic!("spec grouped {:?} differently", t.device_cdr_ids));
        let mine = TruthCall {
            scenario: String::new(),
            note: None,
            ..t.clone()
        };
        assert_eq!(&mine, s, "scenario {}", t.scenario);
    }
}

#[test]
fn truth_equals_spec_rules_applied_to_the_legs() {
    for seed in 21..26 {
        truth_equals_spec_for(&generate(&busy(seed)));
    }
}
