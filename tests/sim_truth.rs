//! The simulator's truth checked against the call rules applied naively to
//! the legs it pushed (docs/calls.md): every pair of legs compared, each
//! group summarised by the rules as written, not by `callvault::calls`.

use std::collections::HashMap;

use callvault::sim::{generate, Plan, TruthCall};

use super::sim_pushes::{busy, read, Cdr};

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

/// A deliberately naive reading of docs/calls.md, only to check the truth.
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
