//! Keeps a warning that can repeat for every item (a device whose clock is
//! off flags every leg it sends) to one log line per key and interval, with
//! the count of the ones left out. The full count is in a metric.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}
