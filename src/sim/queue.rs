//! Queue scenarios (§2.5.7 QUEUE, exit per §4.12): a caller dials a
//! page-configured extension group whose agents are all busy. Answered: a
//! RING of an agent with the queued party; abandoned: a BYE of the party
//! with `<ext id>` = the group *number*; rejected: QUEUE with
//! reason="offline" (count 0) or reason="full" (count 30).
//!
//! Outside callers come in over an IP trunk; the device answers the trunk at
//! once to play queue music, so the trunk IN leg has Duration > 0 even when
//! no agent ever talks (the spec's "an IVR that picked up a trunk leg alone
//! does not count"). Extensions queue too, but only for abandon/reject: the
//! legs of an extension answered *from* a queue are not described anywhere.

use chrono::NaiveDateTime;

use super::inbound::{extension_in_leg, trunk_leg};
use super::scenarios::{plan, Scenario, TruthBase};
use super::timeline::{
    event, ext, secs, visitor, visitor_bare, waiting, CallPlan, Ctx, Item, LegSpec, QueueGroup,
    Visitor, EXTENSIONS, GROUPS,
};
use super::truth::TruthVisit;
use super::xml::RecSide;

/// How the queue visit ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Abandoned,
    Offline,
    Full,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Offline => "rejected_offline",
            Outcome::Full => "rejected_full",
        }
    }
}

/// Queue capacity (§2.5.7: at most 30 waiting).
const QUEUE_CAPACITY: usize = 30;

fn pick_group(ctx: &mut Ctx) -> &'static QueueGroup {
    let i = ctx.range(0, GROUPS.len() as i64 - 1) as usize;
    &GROUPS[i.min(GROUPS.len() - 1)]
}

fn visit(
    g: &QueueGroup,
    kind: &str,
    id: &str,
    outcome: Outcome,
    agent: Option<String>,
    wait: i64,
) -> TruthVisit {
    TruthVisit {
        group: g.id.to_string(),
        group_number: g.number.to_string(),
        party_kind: kind.to_string(),
        party_id: id.to_string(),
        outcome: outcome.name().to_string(),
        agent,
        wait_seconds: wait,
        cdr_ids: Vec::new(),
    }
}

/// `<waiting>` of the QUEUE event and how long the party stays queued.
fn entry(
    ctx: &mut Ctx,
    g: &'static QueueGroup,
    q_at: NaiveDateTime,
    outcome: Outcome,
) -> (usize, Option<&'static str>, i64) {
    match outcome {
        Outcome::Answered | Outcome::Abandoned => {
            let wait = if outcome == Outcome::Answered {
                ctx.range(5, 180)
            } else {
                ctx.range(5, 120)
            };
            let ahead = ctx.queue_enter(g.id, q_at, Some(secs(q_at, wait)));
            // The count includes the newcomer; capped at the capacity
            // rather than turning a planned visit into a rejection.
            ((ahead + 1).min(QUEUE_CAPACITY), None, wait)
        }
        Outcome::Offline => (0, Some("offline"), 0),
        Outcome::Full => (QUEUE_CAPACITY, Some("full"), 0),
    }
}

/// One queued call of the given outcome.
pub fn queued(ctx: &mut Ctx, s: NaiveDateTime, sc: Scenario, outcome: Outcome) -> CallPlan {
    let g = pick_group(ctx);
    if outcome != Outcome::Answered && ctx.rng_bool(0.3) {
        return queued_extension(ctx, s, sc, outcome, g);
    }
    let cpn = ctx.external_number();
    let tn = g.trunk;
    let v = Visitor {
        id: ctx.take_id(),
        from: cpn.clone(),
        to: tn.to_string(),
        callid: ctx.event_callid(),
    };
    let q_at = secs(s, ctx.range(2, 10));
    let (count, reason, wait) = entry(ctx, g, q_at, outcome);
    // §2.5.7: the "full" example shows the visitor with its id only.
    let who = if outcome == Outcome::Full {
        visitor_bare(&v.id)
    } else {
        visitor(&v)
    };
    let mut items = vec![event(
        q_at,
        "QUEUE",
        vec![who, waiting(g.id, count, reason)],
    )];
    let exit = secs(q_at, wait);
    let mut agent = None;
    let mut talk = 0;
    let bye = match outcome {
        Outcome::Answered => {
            let a = ctx.take_ext(g.agents.clone(), &[]);
            let ans = secs(exit, ctx.range(2, 10));
            talk = ctx.talk(150.0);
            let bye = secs(ans, talk);
            items.push(event(exit, "RING", vec![ext(&a), visitor(&v)]));
            items.push(event(exit, "ALERT", vec![visitor(&v), ext(&a)]));
            items.push(event(ans, "ANSWER", vec![ext(&a), visitor(&v)]));
            items.push(event(bye, "BYE", vec![visitor(&v), ext(&a)]));
            items.push(Item::Leg(extension_in_leg(
                ctx,
                false,
                &cpn,
                &a,
                tn,
                &v.id,
                exit,
                Some(ans),
                bye,
            )));
            agent = Some(a);
            bye
        }
        Outcome::Abandoned => {
            items.push(event(exit, "BYE", vec![visitor(&v), ext(g.number)]));
            exit
        }
        Outcome::Offline | Outcome::Full => {
            let bye = secs(q_at, ctx.range(2, 8));
            items.push(event(bye, "BYE", vec![visitor(&v)]));
            bye
        }
    };
    let trunk_end = secs(bye, ctx.range(0, 1));
    let agent_ext = agent.clone().unwrap_or_default();
    items.push(Item::Leg(trunk_leg(
        ctx,
        false,
        &cpn,
        &agent_ext,
        tn,
        &v.id,
        s,
        Some(s),
        trunk_end,
    )));
    let truth = TruthBase {
        direction: "inbound",
        caller: cpn,
        callee: tn.to_string(),
        answered: agent.is_some(),
        answered_by: agent.clone(),
        trunk: Some(tn.to_string()),
        talk_seconds: talk,
        billable_seconds: 0,
        forwarded_out: false,
        note: None,
    };
    let visit = visit(g, "visitor", &v.id, outcome, agent, wait);
    plan(sc, items, truth, Some(visit))
}

/// An extension dials the group number and is queued, then hangs up or is
/// refused: one LO leg, CPN the extension, CDPN the group number, never answered.
fn queued_extension(
    ctx: &mut Ctx,
    s: NaiveDateTime,
    sc: Scenario,
    outcome: Outcome,
    g: &'static QueueGroup,
) -> CallPlan {
    let e = ctx.take_ext(EXTENSIONS, &[]);
    let q_at = secs(s, ctx.range(1, 3));
    let (count, reason, wait) = entry(ctx, g, q_at, outcome);
    let mut items = vec![event(
        q_at,
        "QUEUE",
        vec![ext(&e), waiting(g.id, count, reason)],
    )];
    let end = if outcome == Outcome::Abandoned {
        let t = secs(q_at, wait);
        items.push(event(t, "BYE", vec![ext(&e), ext(g.number)]));
        t
    } else {
        let t = secs(q_at, ctx.range(2, 8));
        items.push(event(t, "BYE", vec![ext(&e)]));
        t
    };
    let c = ctx.cdr_callids(1);
    items.push(Item::Leg(ctx.leg(LegSpec {
        leg_type: "LO",
        route: "IC",
        cpn: &e,
        cdpn: g.number,
        trunk: "",
        start: s,
        answered: None,
        end,
        visitor: None,
        outer: None,
        callid: c,
        rec_id: c,
        rec: Some((&e, g.number, RecSide::Caller)),
    })));
    let truth = TruthBase {
        direction: "internal",
        caller: e.clone(),
        callee: g.number.to_string(),
        answered: false,
        answered_by: None,
        trunk: None,
        talk_seconds: 0,
        billable_seconds: 0,
        forwarded_out: false,
        note: None,
    };
    let visit = visit(g, "ext", &e, outcome, None, wait);
    plan(sc, items, truth, Some(visit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20240105090000", "%Y%m%d%H%M%S").expect("time")
    }

    #[test]
    fn queued_answered_wait_is_queue_to_ring() {
        let mut ctx = Ctx::new(11, 99);
        ctx.begin(t0());
        let p = queued(&mut ctx, t0(), Scenario::QueueAnswered, Outcome::Answered);
        let at = |attr: &str| {
            p.items.iter().find_map(|i| match i {
                Item::Event { at, ev } if ev.attribute == attr => Some(*at),
                _ => None,
            })
        };
        let (q, r) = (at("QUEUE").expect("QUEUE"), at("RING").expect("RING"));
        let visit = p.visit.expect("visit");
        assert_eq!(visit.wait_seconds, (r - q).num_seconds());
        assert_eq!(visit.outcome, "answered");
        assert!(visit.agent.is_some());
    }

    #[test]
    fn queued_full_reports_capacity() {
        let mut ctx = Ctx::new(2, 99);
        ctx.begin(t0());
        let p = queued(&mut ctx, t0(), Scenario::QueueRejectedFull, Outcome::Full);
        let q = p
            .items
            .iter()
            .find_map(|i| match i {
                Item::Event { ev, .. } if ev.attribute == "QUEUE" => Some(ev.clone()),
                _ => None,
            })
            .expect("QUEUE");
        let w = q.first("waiting").expect("waiting");
        assert_eq!(w.attr("count"), Some("30"));
        assert_eq!(w.attr("reason"), Some("full"));
        assert_eq!(p.visit.expect("visit").wait_seconds, 0);
    }
}
