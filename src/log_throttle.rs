//! Keeps a warning that can repeat for every item (a device whose clock is
//! off flags every leg it sends) to one log line per key and interval, with
//! the count of the ones left out. The full count is in a metric.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; past this, keys quiet for a whole interval are
/// forgotten (keys may come from the network: one per source address).
const MAX_KEYS: usize = 4096;

pub struct LogThrottle {
    every: Duration,
    /// Per key: when it was last logged, and how many since were not.
    seen: Mutex<BTreeMap<String, (Instant, u64)>>,
}

impl LogThrottle {
    pub const fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// `Some(left_out)` when this occurrence should be logged, with how many
    /// of the key were not since the last line; `None` to stay quiet.
    pub fn admit(&self, key: &str) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(key) {
            Some((last, left_out)) if now.saturating_duration_since(*last) < self.every => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                if seen.len() >= MAX_KEYS {
                    let every = self.every;
                    seen.retain(|_, (last, _)| now.saturating_duration_since(*last) < every);
                }
                seen.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_interval_counting_the_rest() {
        let t = LogThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.admit_at("a", t0), Some(0), "first is logged");
        assert_eq!(t.admit_at("b", t0), Some(0), "keys are apart");
        for s in 1..=5 {
            assert_eq!(t.admit_at("a", t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(
            t.admit_at("a", t0 + Duration::from_secs(60)),
            Some(5),
            "next line says how many were left out"
        );
        assert_eq!(t.admit_at("a", t0 + Duration::from_secs(61)), None);
        assert_eq!(t.admit_at("b", t0 + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn keys_from_many_sources_do_not_grow_without_bound() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..3 * MAX_KEYS as u64 {
            // A new address every 10 ms: 100 per interval stay remembered.
            let now = t0 + Duration::from_millis(10 * i);
            assert_eq!(t.admit_at(&format!("10.0.{i}"), now), Some(0));
        }
        let len = t.seen.lock().unwrap().len();
        assert!(len <= MAX_KEYS, "{len} keys kept");
        let last = t0 + Duration::from_millis(10 * (3 * MAX_KEYS as u64 - 1));
        assert_eq!(
            t.admit_at(&format!("10.0.{}", 3 * MAX_KEYS - 1), last),
            None,
            "a recent key is still throttled"
        );
    }
}
