//! The simulated device's pushes for each scenario, read back with
//! [`sim_pushes`](super::sim_pushes), against the manual's examples
//! (§2.5.3, §2.5.7, §2.6, §4.12, §5.7).

use callvault::sim::{Plan, Scenario, TruthCall};

use super::sim_pushes::{calls_with_legs, only, read, Cdr, Ev};

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
