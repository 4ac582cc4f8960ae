//! Group one device's legs into calls: connected components under
//! [`joins`](super::rules::joins), in one pass over a slice.
//!
//! The reference model, not the production path: `serve`, `import` and
//! `rebuild` keep the `calls` table through [`super::live`], which adds one
//! leg at a time against the store. This function answers the same question
//! for a set of legs held in memory, with no store, so the tests
//! (`tests/calls_manual.rs`, `tests/calls_sim.rs`) can check the live path
//! and the simulator's truth against an independent grouping. It stays in
//! the library, beside the rules it applies, so it is built and tested with
//! them (docs/calls.md "Which legs make one call").
//!
//! Only legs that share a [`join_keys`] key can join, so each key's bucket is
//! swept in start order keeping only legs whose span (plus tolerance) still
//! reaches the current start; union-find merges the pairs that join. That is
//! near-linear for a day of traffic instead of comparing all pairs.

use std::collections::HashMap;

use chrono::Duration;

use super::rules::{join_keys, joins, TOLERANCE_SECS};
use super::summary::leg_order;
use crate::model::Leg;

/// Disjoint sets over leg indices.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        let mut root = x;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        // Path compression keeps later finds O(1)-ish.
        while self.parent[x] != root {
            let next = self.parent[x];
            self.parent[x] = root;
            x = next;
        }
        root
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (big, small) = if self.size[ra] >= self.size[rb] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small] = big;
        self.size[big] += self.size[small];
    }
}

/// Calls among `legs` (all of one device), as indices into `legs`. Each call's
/// indices are sorted by (time_start, cdr_id); calls are sorted by their first
/// leg. The result (as legs) does not depend on the order of `legs`.
pub fn group(legs: &[Leg]) -> Vec<Vec<usize>> {
    let mut buckets: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, leg) in legs.iter().enumerate() {
        for key in join_keys(leg) {
            buckets.entry(key).or_default().push(i);
        }
    }

    let tol = Duration::seconds(TOLERANCE_SECS);
    let mut uf = UnionFind::new(legs.len());
    let mut active: Vec<usize> = Vec::new();
    for bucket in buckets.values_mut() {
        bucket.sort_by_key(|&i| legs[i].time_start);
        active.clear();
        for &j in bucket.iter() {
            let start = legs[j].time_start;
            // A leg whose end (+tol) is before this start cannot overlap this
            // leg nor any later one in the bucket (they start later still).
            active.retain(|&i| legs[i].time_end + tol >= start);
            for &i in &active {
                if joins(&legs[i], &legs[j]) {
                    uf.union(i, j);
                }
            }
            active.push(j);
        }
    }

    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..legs.len() {
        by_root.entry(uf.find(i)).or_default().push(i);
    }
    let mut calls: Vec<Vec<usize>> = by_root.into_values().collect();
    for call in &mut calls {
        call.sort_by(|&a, &b| leg_order(&legs[a], &legs[b]));
    }
    // Every component is non-empty, so indexing its first leg is safe.
    calls.sort_by(|a, b| leg_order(&legs[a[0]], &legs[b[0]]));
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::rules::tests::leg;
    use chrono::NaiveDateTime;

    fn ids(legs: &[Leg], groups: &[Vec<usize>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|&i| legs[i].cdr_id.clone()).collect())
            .collect()
    }

    fn v(mut l: Leg, id: &str) -> Leg {
        l.visitor_id = Some(id.into());
        l
    }

    #[test]
    fn group_empty() {
        assert!(group(&[]).is_empty());
    }

    #[test]
    fn group_transitive_chain() {
        // a-b share visitor 1, b-c share outer 2: one call through b.
        let a = v(
            leg(
                "a",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100000",
                "20170309100010",
            ),
            "1",
        );
        let mut b = v(
            leg(
                "b",
                "IN",
                "IP",
                "1",
                "201",
                "20170309100008",
                "20170309100030",
            ),
            "1",
        );
        b.outer_id = Some("2".into());
        let mut c = leg(
            "c",
            "OU",
            "IP",
            "201",
            "9",
            "20170309100029",
            "20170309100040",
        );
        c.outer_id = Some("2".into());
        let d = leg(
            "d",
            "LO",
            "IC",
            "300",
            "301",
            "20170309100000",
            "20170309100010",
        );
        let legs = vec![c, d, b, a];
        let g = group(&legs);
        assert_eq!(ids(&legs, &g), vec![vec!["a", "b", "c"], vec!["d"]]);
    }

    #[test]
    fn group_sorted_by_first_leg() {
        let x = leg(
            "x",
            "LO",
            "IC",
            "300",
            "301",
            "20170309110000",
            "20170309110010",
        );
        let y = leg(
            "y",
            "LO",
            "IC",
            "300",
            "302",
            "20170309100000",
            "20170309100010",
        );
        let legs = vec![x, y];
        assert_eq!(group(&legs), vec![vec![1], vec![0]]);
    }

    #[test]
    fn group_long_leg_spans_later_short_legs() {
        // The trunk leg starts first and outlives a short leg in between: the
        // sweep must keep it active for the later extension leg.
        let t = v(
            leg(
                "t",
                "IN",
                "IP",
                "1",
                "888",
                "20170309100000",
                "20170309100500",
            ),
            "7",
        );
        let e1 = v(
            leg(
                "e1",
                "IN",
                "IP",
                "1",
                "200",
                "20170309100001",
                "20170309100100",
            ),
            "7",
        );
        let e2 = v(
            leg(
                "e2",
                "IN",
                "IP",
                "1",
                "201",
                "20170309100300",
                "20170309100500",
            ),
            "7",
        );
        let legs = vec![e2, e1, t];
        assert_eq!(ids(&legs, &group(&legs)), vec![vec!["t", "e1", "e2"]]);
    }

    /// Components by brute force over all pairs: the reference for the sweep.
    fn brute_force(legs: &[Leg]) -> Vec<Vec<String>> {
        let mut uf = UnionFind::new(legs.len());
        for i in 0..legs.len() {
            for j in 0..i {
                if joins(&legs[i], &legs[j]) {
                    uf.union(i, j);
                }
            }
        }
        let mut comps: Vec<Vec<String>> = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        for (i, l) in legs.iter().enumerate() {
            let r = uf.find(i);
            match roots.iter().position(|&x| x == r) {
                Some(k) => comps[k].push(l.cdr_id.clone()),
                None => {
                    roots.push(r);
                    comps.push(vec![l.cdr_id.clone()]);
                }
            }
        }
        let mut comps: Vec<Vec<String>> = comps
            .into_iter()
            .map(|mut c| {
                c.sort();
                c
            })
            .collect();
        comps.sort();
        comps
    }

    fn random_leg(n: usize, (ty, id, s, len, num): (u8, u8, i64, i64, u8)) -> Leg {
        let types = ["IN", "LO", "OU", "CB", "FI", "FW"];
        let ty = types[usize::from(ty) % types.len()];
        let base = NaiveDateTime::parse_from_str("20170309100000", "%Y%m%d%H%M%S").expect("t");
        let mut l = leg(
            &format!("{n}"),
            ty,
            "IC",
            "200",
            "212",
            "20170309100000",
            "20170309100000",
        );
        // Negative lengths: device clocks are wrong sometimes; the sweep must still be exact.
        l.time_start = base + Duration::seconds(s);
        l.time_end = base + Duration::seconds(s + len);
        l.cpn = format!("20{}", num % 2);
        l.callid = (id % 3).to_string();
        match id % 3 {
            0 => l.visitor_id = Some((id % 4).to_string()),
            1 => l.outer_id = Some((id % 4).to_string()),
            _ => {}
        }
        l
    }

    proptest::proptest! {
        #[test]
        fn group_matches_brute_force(
            spec in proptest::collection::vec((0u8..6, 0u8..12, 0i64..600, -20i64..120, 0u8..2), 0..60)
        ) {
            let legs: Vec<Leg> = spec.into_iter().enumerate().map(|(n, x)| random_leg(n, x)).collect();
            let mut got: Vec<Vec<String>> = ids(&legs, &group(&legs))
                .into_iter()
                .map(|mut c| {
                    c.sort();
                    c
                })
                .collect();
            got.sort();
            proptest::prop_assert_eq!(got, brute_force(&legs));
        }
    }

    /// 100k legs: 50k two-leg inbound calls on 200 recycled visitor ids.
    /// Run with `cargo test --release -- --ignored` to see the time.
    #[test]
    #[ignore]
    fn group_day_of_100k_legs_is_fast() {
        let base = NaiveDateTime::parse_from_str("20170309000000", "%Y%m%d%H%M%S").expect("t");
        let mut legs = Vec::new();
        for c in 0..50_000i64 {
            let s = base + Duration::seconds(c * 86_400 / 50_000);
            let vid = (c % 200).to_string();
            for (k, cdpn) in ["888", "200"].iter().enumerate() {
                let mut l = leg(
                    &format!("{c}-{k}"),
                    "IN",
                    "IP",
                    "1",
                    cdpn,
                    "20170309000000",
                    "20170309000000",
                );
                l.time_start = s + Duration::seconds(k as i64);
                l.time_end = s + Duration::seconds(300);
                l.visitor_id = Some(vid.clone());
                legs.push(l);
            }
        }
        let t = std::time::Instant::now();
        let g = group(&legs);
        let took = t.elapsed();
        eprintln!(
            "grouped {} legs into {} calls in {:?}",
            legs.len(),
            g.len(),
            took
        );
        assert_eq!(g.len(), 50_000);
        assert!(took.as_millis() < 1000, "took {took:?}");
    }
}
