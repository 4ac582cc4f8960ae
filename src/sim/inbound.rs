//! Inbound scenarios: an outside caller on an IP or analog trunk reaches an
//! extension directly, through call forwarding (FI, FI + FW, §2.6.4) or
//! through a blind transfer between agents. Leg patterns per §2.6.1 and §5.7:
//! IP trunk → trunk IN leg (CDPN = TrunkNumber) + extension IN leg; analog
//! trunk → extension IN leg (Route XO) + trunk LO leg (Route IC).

use chrono::NaiveDateTime;

use super::scenarios::{plan, Scenario, TruthBase};
use super::timeline::{
    event, ext, outer, secs, visitor, CallPlan, Ctx, Item, LegSpec, Visitor, ANALOG_TRUNKS,
    EXTENSIONS, IP_TRUNKS,
};
use super::xml::RecSide;
use crate::model::Leg;

/// The trunk-side leg of an inbound call: an IP trunk gives IN with
/// CDPN = TrunkNumber; an analog trunk gives LO, Route IC, CPN external,
/// CDPN the extension, empty TrunkNumber, recorded as `<cpn>_<trunk>_…_cg`
/// (§2.6.1).
#[allow(clippy::too_many_arguments)]
pub(super) fn trunk_leg(
    ctx: &mut Ctx,
    analog: bool,
    cpn: &str,
    extension: &str,
    tn: &str,
    v: &str,
    start: NaiveDateTime,
    answered: Option<NaiveDateTime>,
    end: NaiveDateTime,
) -> Leg {
    let c = ctx.cdr_callids(1);
    let (leg_type, route, cdpn, trunk, side) = if analog {
        ("LO", "IC", extension, "", RecSide::Caller)
    } else {
        ("IN", "IP", tn, tn, RecSide::Callee)
    };
    ctx.leg(LegSpec {
        leg_type,
        route,
        cpn,
        cdpn,
        trunk,
        start,
        answered,
        end,
        visitor: Some(v),
        outer: None,
        callid: c,
        rec_id: c,
        rec: Some((cpn, tn, side)),
    })
}

/// An extension's IN leg of an inbound call (Route IP or XO per trunk).
#[allow(clippy::too_many_arguments)]
pub(super) fn extension_in_leg(
    ctx: &mut Ctx,
    analog: bool,
    cpn: &str,
    extension: &str,
    tn: &str,
    v: &str,
    start: NaiveDateTime,
    answered: Option<NaiveDateTime>,
    end: NaiveDateTime,
) -> Leg {
    let c = ctx.cdr_callids(1);
    ctx.leg(LegSpec {
        leg_type: "IN",
        route: if analog { "XO" } else { "IP" },
        cpn,
        cdpn: extension,
        trunk: tn,
        start,
        answered,
        end,
        visitor: Some(v),
        outer: None,
        callid: c,
        rec_id: c,
        rec: Some((cpn, extension, RecSide::Callee)),
    })
}

/// Inbound over an IP or analog trunk to one extension, answered or missed.
pub(super) fn inbound(
    ctx: &mut Ctx,
    s: NaiveDateTime,
    sc: Scenario,
    analog: bool,
    answer: bool,
) -> CallPlan {
    let cpn = ctx.external_number();
    let tn = if analog {
        ctx.pick(&ANALOG_TRUNKS)
    } else {
        ctx.pick(&IP_TRUNKS)
    };
    let e = ctx.take_ext(EXTENSIONS, &[]);
    let v = Visitor {
        id: ctx.take_id(),
        from: cpn.clone(),
        to: tn.to_string(),
        callid: ctx.event_callid(),
    };
    // An answered call goes through the welcome menu (the device picks up
    // the trunk at once, so the trunk leg talks longer than the extension);
    // a missed one rings the extension directly and nobody ever picks up.
    let trunk_answer = if answer {
        Some(secs(s, if analog { ctx.range(1, 3) } else { 0 }))
    } else {
        None
    };
    let ring = secs(trunk_answer.unwrap_or(s), ctx.range(1, 12));
    let mut items = vec![
        event(ring, "RING", vec![ext(&e), visitor(&v)]),
        event(ring, "ALERT", vec![visitor(&v), ext(&e)]),
    ];
    let (ext_answer, bye, talk) = if answer {
        let a = secs(ring, ctx.range(2, 20));
        let talk = ctx.talk(120.0);
        items.push(event(a, "ANSWER", vec![ext(&e), visitor(&v)]));
        (Some(a), secs(a, talk), talk)
    } else {
        (None, secs(ring, ctx.range(8, 45)), 0)
    };
    items.push(event(bye, "BYE", vec![visitor(&v), ext(&e)]));
    let trunk_end = secs(bye, ctx.range(0, 1));
    // The extension's leg ends first or together, so its CDR is pushed first.
    items.push(Item::Leg(extension_in_leg(
        ctx, analog, &cpn, &e, tn, &v.id, ring, ext_answer, bye,
    )));
    items.push(Item::Leg(trunk_leg(
        ctx,
        analog,
        &cpn,
        &e,
        tn,
        &v.id,
        s,
        trunk_answer,
        trunk_end,
    )));
    let truth = TruthBase {
        direction: "inbound",
        caller: cpn,
        callee: tn.to_string(),
        answered: answer,
        answered_by: answer.then(|| e.clone()),
        trunk: Some(tn.to_string()),
        talk_seconds: talk,
        billable_seconds: 0,
        forwarded_out: false,
        note: None,
    };
    plan(sc, items, truth, None)
}

/// Inbound to an extension that forwards: to another extension → FI only;
/// to a mobile → FI + FW (same callid, same span, §2.6.4).
pub(super) fn forward(ctx: &mut Ctx, s: NaiveDateTime, sc: Scenario, to_mobile: bool) -> CallPlan {
    let cpn = ctx.external_number();
    let tn = ctx.pick(&IP_TRUNKS);
    let e1 = ctx.take_ext(EXTENSIONS, &[]);
    let v = Visitor {
        id: ctx.take_id(),
        from: cpn.clone(),
        to: tn.to_string(),
        callid: ctx.event_callid(),
    };
    let answer = ctx.rng_bool(0.8);
    let divert = secs(s, ctx.range(1, 4));
    // §2.5.3.6: DIVERT names the visitor with `to` = the diverting extension.
    let mut items = vec![event(
        divert,
        "DIVERT",
        vec![visitor(&Visitor {
            to: e1.clone(),
            ..v.clone()
        })],
    )];
    let target;
    let mut out_party = None;
    if to_mobile {
        target = ctx.external_number();
        let o = ctx.take_id();
        let p = outer(
            &o,
            &e1,
            &target,
            ctx.pick(&ANALOG_TRUNKS),
            &ctx.event_callid(),
        );
        items.push(event(divert, "ALERT", vec![p.clone()]));
        out_party = Some(p);
    } else {
        target = ctx.take_ext(EXTENSIONS, &[&e1]);
        items.push(event(divert, "RING", vec![ext(&target), visitor(&v)]));
        items.push(event(divert, "ALERT", vec![visitor(&v), ext(&target)]));
    }
    let (answered_at, bye) = if answer {
        let a = secs(divert, ctx.range(3, 20));
        if out_party.is_none() {
            items.push(event(a, "ANSWER", vec![ext(&target), visitor(&v)]));
        }
        (Some(a), secs(a, ctx.talk(120.0)))
    } else {
        (None, secs(divert, ctx.range(15, 45)))
    };
    // §2.5.3.5 example 3: an inbound call forwarded out ends with visitor + outer.
    let last = out_party.clone().unwrap_or_else(|| ext(&target));
    items.push(event(bye, "BYE", vec![visitor(&v), last]));
    let c = ctx.cdr_callids(1);
    let fi = ctx.leg(LegSpec {
        leg_type: "FI",
        route: "IC",
        cpn: &cpn,
        cdpn: &e1,
        trunk: tn,
        start: s,
        answered: answered_at,
        end: bye,
        visitor: Some(&v.id),
        outer: None,
        callid: c,
        rec_id: c,
        rec: None,
    });
    let talk = fi.duration;
    items.push(Item::Leg(fi));
    let mut billable = 0;
    if to_mobile {
        let fw = ctx.leg(LegSpec {
            leg_type: "FW",
            route: "XO",
            cpn: &e1,
            cdpn: &target,
            trunk: "",
            start: s,
            answered: answered_at,
            end: bye,
            visitor: Some(&v.id),
            outer: None,
            callid: c,
            rec_id: c,
            rec: None,
        });
        billable = fw.duration;
        items.push(Item::Leg(fw));
    }
    let truth = TruthBase {
        direction: "inbound",
        caller: cpn,
        callee: tn.to_string(),
        answered: answer,
        // Spec: answered_by = CDPN of the FI leg, i.e. the forwarding extension.
        answered_by: answer.then(|| e1.clone()),
        trunk: Some(tn.to_string()),
        talk_seconds: talk,
        billable_seconds: billable,
        forwarded_out: to_mobile,
        note: answer.then(|| {
            format!("answered on {target}; the FI leg only names the forwarding extension {e1}")
        }),
    };
    plan(sc, items, truth, None)
}

/// IP inbound answered by agent 1, blind-transferred to agent 2: the trunk
/// IN leg spans the whole call, each agent has its own IN leg, all on the
/// same visitor id.
pub(super) fn blind_transfer(ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
    let cpn = ctx.external_number();
    let tn = ctx.pick(&IP_TRUNKS);
    let e1 = ctx.take_ext(EXTENSIONS, &[]);
    let e2 = ctx.take_ext(EXTENSIONS, &[&e1]);
    let v = Visitor {
        id: ctx.take_id(),
        from: cpn.clone(),
        to: tn.to_string(),
        callid: ctx.event_callid(),
    };
    let ring1 = secs(s, ctx.range(1, 8));
    let ans1 = secs(ring1, ctx.range(2, 12));
    let xfer = secs(ans1, ctx.talk(40.0));
    let ans2 = secs(xfer, ctx.range(2, 12));
    let bye = secs(ans2, ctx.talk(120.0));
    let trunk_end = secs(bye, ctx.range(0, 1));
    let mut items = vec![
        event(ring1, "RING", vec![ext(&e1), visitor(&v)]),
        event(ring1, "ALERT", vec![visitor(&v), ext(&e1)]),
        event(ans1, "ANSWER", vec![ext(&e1), visitor(&v)]),
        event(
            xfer,
            "DIVERT",
            vec![visitor(&Visitor {
                to: e2.clone(),
                ..v.clone()
            })],
        ),
        event(xfer, "RING", vec![ext(&e2), visitor(&v)]),
        event(xfer, "ALERT", vec![visitor(&v), ext(&e2)]),
    ];
    items.push(Item::Leg(extension_in_leg(
        ctx,
        false,
        &cpn,
        &e1,
        tn,
        &v.id,
        ring1,
        Some(ans1),
        xfer,
    )));
    items.push(event(ans2, "ANSWER", vec![ext(&e2), visitor(&v)]));
    items.push(event(bye, "BYE", vec![visitor(&v), ext(&e2)]));
    let l2 = extension_in_leg(ctx, false, &cpn, &e2, tn, &v.id, xfer, Some(ans2), bye);
    let lt = trunk_leg(ctx, false, &cpn, &e1, tn, &v.id, s, Some(s), trunk_end);
    items.push(Item::Leg(l2));
    items.push(Item::Leg(lt));
    let truth = TruthBase {
        direction: "inbound",
        caller: cpn,
        callee: tn.to_string(),
        answered: true,
        answered_by: Some(e1),
        trunk: Some(tn.to_string()),
        talk_seconds: (xfer - ans1).num_seconds() + (bye - ans2).num_seconds(),
        billable_seconds: 0,
        forwarded_out: false,
        note: None,
    };
    plan(Scenario::BlindTransfer, items, truth, None)
}
