//! The scenario catalogue and the non-inbound scenarios (internal, outbound,
//! callback); inbound ones live in `inbound.rs`, queues in `queue.rs`.
//! One function per call scenario of the OM manual: each lays out the events
//! (§2.5.3, §2.5.7, §4.12) and CDR legs (§2.6, §5.7) of one call starting at
//! `s`, and states the truth from what it decided (who called whom, who
//! answered, for how long) — see docs/calls.md for the definitions.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::timeline::{
    event, ext, outer, outer_to, secs, CallPlan, Ctx, Item, LegSpec, ANALOG_TRUNKS, CB_TRUNKS,
    EXTENSIONS, IP_TRUNKS,
};
use super::truth::{TruthCall, TruthVisit};
use super::xml::RecSide;
use crate::model::Leg;

/// The simulated call scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// IP trunk inbound, answered: trunk IN leg (CDPN = TrunkNumber) + extension IN leg.
    IpInbound,
    /// Analog trunk inbound, answered: extension IN leg (Route XO) + trunk LO leg (Route IC).
    AnalogInbound,
    /// IP trunk inbound nobody answers: both legs Duration 0.
    IpInboundMissed,
    /// Analog trunk inbound nobody answers: IN + LO, Duration 0.
    AnalogInboundMissed,
    /// Extension to extension: LO + IN, Route IC (sometimes unanswered).
    Internal,
    /// Outbound over an IP trunk: one OU leg (sometimes unanswered).
    OutboundIp,
    /// Outbound over an analog trunk: one OU leg, Duration > 0 even unanswered (§5.6 Q2).
    OutboundAnalog,
    /// Inbound forwarded to another extension: FI leg only.
    ForwardToExtension,
    /// Inbound forwarded to a mobile: FI + FW.
    ForwardToMobile,
    /// Two-way callback: two CB legs, same callid, two outer ids.
    Callback,
    /// Inbound answered by one agent, blind-transferred to another.
    BlindTransfer,
    /// Queued (all agents busy), then an agent rings and answers.
    QueueAnswered,
    /// Queued, caller hangs up while waiting.
    QueueAbandoned,
    /// Group has no agent online: QUEUE reason="offline".
    QueueRejectedOffline,
    /// Queue full: QUEUE count="30" reason="full".
    QueueRejectedFull,
}

impl Scenario {
    pub const ALL: [Scenario; 15] = [
        Scenario::IpInbound,
        Scenario::AnalogInbound,
        Scenario::IpInboundMissed,
        Scenario::AnalogInboundMissed,
        Scenario::Internal,
        Scenario::OutboundIp,
        Scenario::OutboundAnalog,
        Scenario::ForwardToExtension,
        Scenario::ForwardToMobile,
        Scenario::Callback,
        Scenario::BlindTransfer,
        Scenario::QueueAnswered,
        Scenario::QueueAbandoned,
        Scenario::QueueRejectedOffline,
        Scenario::QueueRejectedFull,
    ];

    /// Name used in `TruthCall::scenario`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::IpInbound => "ip_inbound",
            Scenario::AnalogInbound => "analog_inbound",
            Scenario::IpInboundMissed => "ip_inbound_missed",
            Scenario::AnalogInboundMissed => "analog_inbound_missed",
            Scenario::Internal => "internal",
            Scenario::OutboundIp => "outbound_ip",
            Scenario::OutboundAnalog => "outbound_analog",
            Scenario::ForwardToExtension => "forward_to_extension",
            Scenario::ForwardToMobile => "forward_to_mobile",
            Scenario::Callback => "callback",
            Scenario::BlindTransfer => "blind_transfer",
            Scenario::QueueAnswered => "queue_answered",
            Scenario::QueueAbandoned => "queue_abandoned",
            Scenario::QueueRejectedOffline => "queue_rejected_offline",
            Scenario::QueueRejectedFull => "queue_rejected_full",
        }
    }

    /// Relative frequency in the default mix (a small office with a queue).
    pub fn weight(self) -> u32 {
        match self {
            Scenario::IpInbound => 20,
            Scenario::AnalogInbound => 8,
            Scenario::IpInboundMissed | Scenario::AnalogInboundMissed => 5,
            Scenario::Internal => 12,
            Scenario::OutboundIp => 14,
            Scenario::OutboundAnalog => 6,
            Scenario::ForwardToExtension | Scenario::ForwardToMobile | Scenario::Callback => 4,
            Scenario::BlindTransfer => 5,
            Scenario::QueueAnswered => 8,
            Scenario::QueueAbandoned => 3,
            Scenario::QueueRejectedOffline | Scenario::QueueRejectedFull => 1,
        }
    }

    /// Pool ids the scenario may take (visitor and/or outer ids).
    pub fn ids_needed(self) -> usize {
        match self {
            Scenario::ForwardToMobile | Scenario::Callback => 2,
            Scenario::Internal => 0,
            _ => 1,
        }
    }

    /// Lays out one call of this scenario starting at `s`.
    pub(crate) fn run(self, ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
        match self {
            Scenario::IpInbound => super::inbound::inbound(ctx, s, self, false, true),
            Scenario::AnalogInbound => super::inbound::inbound(ctx, s, self, true, true),
            Scenario::IpInboundMissed => super::inbound::inbound(ctx, s, self, false, false),
            Scenario::AnalogInboundMissed => super::inbound::inbound(ctx, s, self, true, false),
            Scenario::Internal => internal(ctx, s),
            Scenario::OutboundIp => outbound_ip(ctx, s),
            Scenario::OutboundAnalog => outbound_analog(ctx, s),
            Scenario::ForwardToExtension => super::inbound::forward(ctx, s, self, false),
            Scenario::ForwardToMobile => super::inbound::forward(ctx, s, self, true),
            Scenario::Callback => callback(ctx, s),
            Scenario::BlindTransfer => super::inbound::blind_transfer(ctx, s),
            Scenario::QueueAnswered => {
                super::queue::queued(ctx, s, self, super::queue::Outcome::Answered)
            }
            Scenario::QueueAbandoned => {
                super::queue::queued(ctx, s, self, super::queue::Outcome::Abandoned)
            }
            Scenario::QueueRejectedOffline => {
                super::queue::queued(ctx, s, self, super::queue::Outcome::Offline)
            }
            Scenario::QueueRejectedFull => {
                super::queue::queued(ctx, s, self, super::queue::Outcome::Full)
            }
        }
    }
}

/// The fields every truth shares; a scenario fills in the rest.
pub(super) struct TruthBase {
    pub direction: &'static str,
    pub caller: String,
    pub callee: String,
    pub answered: bool,
    pub answered_by: Option<String>,
    pub trunk: Option<String>,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    pub forwarded_out: bool,
    pub note: Option<String>,
}

/// Wraps up a call: start/end are the span of the legs it generated.
pub(super) fn plan(
    scenario: Scenario,
    items: Vec<Item>,
    t: TruthBase,
    visit: Option<TruthVisit>,
) -> CallPlan {
    let legs = || {
        items.iter().filter_map(|i| match i {
            Item::Leg(l) => Some(l),
            Item::Event { .. } => None,
        })
    };
    let start = legs()
        .map(|l: &Leg| l.time_start)
        .min()
        .unwrap_or(NaiveDateTime::MIN);
    let end = legs()
        .map(|l: &Leg| l.time_end)
        .max()
        .unwrap_or(NaiveDateTime::MIN);
    CallPlan {
        truth: TruthCall {
            device_cdr_ids: Vec::new(),
            scenario: scenario.name().to_string(),
            direction: t.direction.to_string(),
            caller: t.caller,
            callee: t.callee,
            answered: t.answered,
            answered_by: t.answered_by,
            trunk: t.trunk,
            talk_seconds: t.talk_seconds,
            billable_seconds: t.billable_seconds,
            forwarded_out: t.forwarded_out,
            start,
            end,
            note: t.note,
        },
        items,
        visit,
    }
}

/// Extension calls extension: caller LO + callee IN, Route IC, no visitor id,
/// same CPN/CDPN, ends within 2 s of each other (§2.6.3, §1.3.2).
fn internal(ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
    let e1 = ctx.take_ext(EXTENSIONS, &[]);
    let e2 = ctx.take_ext(EXTENSIONS, &[&e1]);
    let answer = ctx.rng_bool(0.85);
    let ring = secs(s, ctx.range(1, 3));
    // The device writes this RING with a trailing space (§2.5.3.1 example 2).
    let mut items = vec![
        event(ring, "RING ", vec![ext(&e2), ext(&e1)]),
        event(ring, "ALERT", vec![ext(&e1), ext(&e2)]),
    ];
    let (answered_at, bye) = if answer {
        let a = secs(ring, ctx.range(2, 15));
        items.push(event(a, "ANSWER", vec![ext(&e2), ext(&e1)]));
        items.push(event(a, "ANSWERED", vec![ext(&e1), ext(&e2)]));
        (Some(a), secs(a, ctx.talk(90.0)))
    } else {
        (None, secs(ring, ctx.range(8, 30)))
    };
    let (first, second) = if ctx.rng_bool(0.5) {
        (&e1, &e2)
    } else {
        (&e2, &e1)
    };
    items.push(event(bye, "BYE", vec![ext(first), ext(second)]));
    let lo_end = secs(bye, ctx.range(0, 1));
    let in_end = secs(bye, ctx.range(0, 1));
    let (c_lo, c_in) = (ctx.cdr_callids(1), ctx.cdr_callids(1));
    let lo = ctx.leg(LegSpec {
        leg_type: "LO",
        route: "IC",
        cpn: &e1,
        cdpn: &e2,
        trunk: "",
        start: s,
        answered: answered_at,
        end: lo_end,
        visitor: None,
        outer: None,
        callid: c_lo,
        rec_id: c_lo,
        rec: Some((&e1, &e2, RecSide::Caller)),
    });
    let inn = ctx.leg(LegSpec {
        leg_type: "IN",
        route: "IC",
        cpn: &e1,
        cdpn: &e2,
        trunk: "",
        start: ring,
        answered: answered_at,
        end: in_end,
        visitor: None,
        outer: None,
        callid: c_in,
        rec_id: c_in,
        rec: Some((&e1, &e2, RecSide::Callee)),
    });
    // The LO and IN legs describe one conversation: talk is the longer of the two.
    let talk = lo.duration.max(inn.duration);
    if lo_end <= in_end {
        items.push(Item::Leg(lo));
        items.push(Item::Leg(inn));
    } else {
        items.push(Item::Leg(inn));
        items.push(Item::Leg(lo));
    }
    let truth = TruthBase {
        direction: "internal",
        caller: e1,
        callee: e2.clone(),
        answered: answer,
        answered_by: answer.then_some(e2),
        trunk: None,
        talk_seconds: talk,
        billable_seconds: 0,
        forwarded_out: false,
        note: None,
    };
    plan(Scenario::Internal, items, truth, None)
}

fn ou_leg(
    ctx: &mut Ctx,
    route: &str,
    e: &str,
    x: &str,
    tn: &str,
    o: &str,
    span: (NaiveDateTime, Option<NaiveDateTime>, NaiveDateTime),
) -> Leg {
    let c = ctx.cdr_callids(1);
    ctx.leg(LegSpec {
        leg_type: "OU",
        route,
        cpn: e,
        cdpn: x,
        trunk: tn,
        start: span.0,
        answered: span.1,
        end: span.2,
        visitor: None,
        outer: Some(o),
        callid: c,
        rec_id: c,
        rec: Some((e, x, RecSide::Caller)),
    })
}

/// Extension dials out over an IP trunk (§2.6.2, §5.7 D): one OU leg.
fn outbound_ip(ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
    let e = ctx.take_ext(EXTENSIONS, &[]);
    let x = ctx.external_number();
    let tn = ctx.pick(&IP_TRUNKS);
    let o = ctx.take_id();
    let ec = ctx.event_callid();
    let answer = ctx.rng_bool(0.75);
    let alert = secs(s, ctx.range(1, 3));
    let mut items = vec![event(alert, "ALERT", vec![ext(&e), outer_to(&x)])];
    let (answered_at, bye) = if answer {
        let a = secs(alert, ctx.range(3, 25));
        items.push(event(
            a,
            "ANSWERED",
            vec![outer(&o, &e, &x, tn, &ec), ext(&e)],
        ));
        (Some(a), secs(a, ctx.talk(150.0)))
    } else {
        (None, secs(alert, ctx.range(10, 40)))
    };
    // BYE type 1 when the extension hangs up, type 2 when the far end does (§2.5.3.5).
    let bye_parties = if ctx.rng_bool(0.5) {
        vec![ext(&e), outer_to(&x)]
    } else {
        vec![outer(&o, &e, &x, tn, &ec)]
    };
    items.push(event(bye, "BYE", bye_parties));
    let leg = ou_leg(ctx, "IP", &e, &x, tn, &o, (s, answered_at, bye));
    let d = leg.duration;
    items.push(Item::Leg(leg));
    let truth = TruthBase {
        direction: "outbound",
        caller: e,
        callee: x,
        answered: d > 0,
        answered_by: None,
        trunk: Some(tn.to_string()),
        talk_seconds: d,
        billable_seconds: d,
        forwarded_out: false,
        note: None,
    };
    plan(Scenario::OutboundIp, items, truth, None)
}

/// Extension dials out over an analog trunk without polarity reversal: the
/// device sends TRANSIENT once the line is seized (§2.5.3.7) and counts the
/// call answered as soon as it is sent out, so Duration > 0 even when
/// nobody picks up (§5.6 Q2).
fn outbound_analog(ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
    let e = ctx.take_ext(EXTENSIONS, &[]);
    let x = ctx.external_number();
    let tn = ctx.pick(&ANALOG_TRUNKS);
    let o = ctx.take_id();
    let ec = ctx.event_callid();
    let remote_answers = ctx.rng_bool(0.7);
    let seized = secs(s, ctx.range(2, 4));
    let line_up = secs(seized, 1);
    let bye = if remote_answers {
        secs(line_up, ctx.range(3, 20) + ctx.talk(150.0))
    } else {
        secs(line_up, ctx.range(10, 40))
    };
    let items_head = vec![
        event(
            seized,
            "TRANSIENT",
            vec![outer(&o, &e, &x, tn, &ec), ext(&e)],
        ),
        event(
            line_up,
            "ANSWERED",
            vec![outer(&o, &e, &x, tn, &ec), ext(&e)],
        ),
        event(bye, "BYE", vec![ext(&e), outer_to(&x)]),
    ];
    let leg = ou_leg(ctx, "XO", &e, &x, tn, &o, (s, Some(line_up), bye));
    let d = leg.duration;
    let mut items = items_head;
    items.push(Item::Leg(leg));
    let truth = TruthBase {
        direction: "outbound",
        caller: e,
        callee: x,
        // Spec: outbound answered = OU Duration > 0, true here by construction.
        answered: d > 0,
        answered_by: None,
        trunk: Some(tn.to_string()),
        talk_seconds: d,
        billable_seconds: d,
        forwarded_out: false,
        note: (!remote_answers)
            .then(|| "analog trunk without polarity reversal: nobody answered, yet Duration > 0 (manual §5.6 Q2)".to_string()),
    };
    plan(Scenario::OutboundAnalog, items, truth, None)
}

/// Two-way callback (§2.6.5): the device calls A (outer id 1), once A
/// answers it calls B (outer id 2); both CB legs share one callid, the
/// second has an empty CPN, recordings are named `<trunk>_<B>_…`.
fn callback(ctx: &mut Ctx, s: NaiveDateTime) -> CallPlan {
    let a = ctx.external_number();
    let b = ctx.external_number();
    let (t1, t2) = if ctx.rng_bool(0.5) {
        (CB_TRUNKS[0], CB_TRUNKS[1])
    } else {
        (CB_TRUNKS[1], CB_TRUNKS[0])
    };
    let (o1, o2) = (ctx.take_id(), ctx.take_id());
    let (ec1, ec2) = (ctx.event_callid(), ctx.event_callid());
    let c = ctx.cdr_callids(2);
    let b_answers = ctx.rng_bool(0.8);
    let a_ans = secs(s, ctx.range(3, 12));
    let mut items = vec![
        event(secs(s, 2), "ALERT", vec![outer(&o1, "", &a, t1, &ec1)]),
        event(secs(a_ans, 1), "ALERT", vec![outer(&o2, "", &b, t2, &ec2)]),
    ];
    let (b_ans, hang) = if b_answers {
        let x = secs(a_ans, ctx.range(3, 15));
        (Some(x), secs(x, ctx.talk(120.0)))
    } else {
        (None, secs(a_ans, ctx.range(15, 30)))
    };
    let (e1, e2) = (secs(hang, ctx.range(0, 1)), secs(hang, ctx.range(0, 1)));
    let leg1 = ctx.leg(LegSpec {
        leg_type: "CB",
        route: "IP",
        cpn: &a,
        cdpn: &b,
        trunk: t1,
        start: s,
        answered: Some(a_ans),
        end: e1,
        visitor: None,
        outer: Some(&o1),
        callid: c,
        rec_id: c,
        rec: Some((t1, &b, RecSide::Caller)),
    });
    let leg2 = ctx.leg(LegSpec {
        leg_type: "CB",
        route: "IP",
        cpn: "",
        cdpn: &b,
        trunk: t2,
        start: a_ans,
        answered: b_ans,
        end: e2,
        visitor: None,
        outer: Some(&o2),
        callid: c,
        rec_id: c.wrapping_add(1),
        rec: Some((t2, &b, RecSide::Caller)),
    });
    let (d1, d2) = (leg1.duration, leg2.duration);
    // §2.5.3.5 example 4: each outer gets its own BYE.
    let mut tail = vec![
        (
            e1,
            event(e1, "BYE", vec![outer(&o1, "", &a, t1, &ec1)]),
            Item::Leg(leg1),
        ),
        (
            e2,
            event(e2, "BYE", vec![outer(&o2, "", &b, t2, &ec2)]),
            Item::Leg(leg2),
        ),
    ];
    tail.sort_by_key(|(t, _, _)| *t);
    for (_, bye, leg) in tail {
        items.push(bye);
        items.push(leg);
    }
    let truth = TruthBase {
        direction: "callback",
        caller: a,
        callee: b,
        answered: d1 > 0 && d2 > 0,
        answered_by: None,
        trunk: Some(t1.to_string()),
        talk_seconds: d1.min(d2),
        billable_seconds: d1 + d2,
        forwarded_out: false,
        note: None,
    };
    plan(Scenario::Callback, items, truth, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20240105090000", "%Y%m%d%H%M%S").expect("time")
    }

    fn legs(p: &CallPlan) -> Vec<&Leg> {
        p.items
            .iter()
            .filter_map(|i| match i {
                Item::Leg(l) => Some(l),
                Item::Event { .. } => None,
            })
            .collect()
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len());
    }

    #[test]
    fn callback_second_leg_starts_when_first_answers() {
        let mut ctx = Ctx::new(3, 99);
        ctx.begin(t0());
        let p = Scenario::Callback.run(&mut ctx, t0());
        let l = legs(&p);
        let first = l.iter().find(|l| !l.cpn.is_empty()).expect("first CB");
        let second = l.iter().find(|l| l.cpn.is_empty()).expect("second CB");
        assert_eq!(second.time_start, secs(first.time_end, -first.duration));
    }

    #[test]
    fn blind_transfer_agent_legs_are_successive() {
        let mut ctx = Ctx::new(5, 99);
        ctx.begin(t0());
        let p = Scenario::BlindTransfer.run(&mut ctx, t0());
        let ext_legs: Vec<&Leg> = legs(&p)
            .into_iter()
            .filter(|l| l.cdpn != l.trunk_number)
            .collect();
        assert_eq!(ext_legs.len(), 2);
        assert_eq!(ext_legs[0].time_end, ext_legs[1].time_start);
    }
}
