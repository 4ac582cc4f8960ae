//! What a source that is not a registered device may push: token buckets
//! per source address for pushes and body bytes a minute (over them: 429,
//! quarantined like every refusal), and a budget of quarantine bytes an hour
//! (past it a refused body is kept only by its first
//! [`QUARANTINE_KEPT_WHEN_OVER`] bytes). Registered devices never reach this
//! module: the OM device does not read replies, so a refused push from it
//! would be a lost CDR (`Ingestor::is_registered_source` decides).
//!
//! The table is keyed by network address, so a sweep of addresses must not
//! grow it without bound: at [`MAX_SOURCES`] entries the rested ones are
//! forgotten (a bucket untouched for a whole period is full again: forgetting
//! it loses nothing), then if need be the stalest half.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::IngestConfig;

/// Source addresses remembered at most.
pub const MAX_SOURCES: usize = 65_536;

/// What is kept of a refused body once its source's quarantine budget is
/// spent (and of a body refused by a rate limit, which is not read further).
pub const QUARANTINE_KEPT_WHEN_OVER: usize = 1024;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Which rate a push went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimited {
    Pushes,
    Bytes,
}

impl RateLimited {
    /// The `reason` label of `callvault_pushes_rejected_total`.
    pub fn metric_reason(self) -> &'static str {
        match self {
            RateLimited::Pushes => "rate_pushes",
            RateLimited::Bytes => "rate_bytes",
        }
    }
}

/// One source's buckets (tokens left) and when they were last brought up to date.
struct Source {
    pushes: f64,
    bytes: f64,
    quarantine: f64,
    at: Instant,
}

/// A bucket: `per_period` tokens a period, holding at most `per_period`
/// (the burst is the same as the rate). 0 = no limit.
#[derive(Clone, Copy)]
struct Rate {
    per_period: u64,
    period: Duration,
}

impl Rate {
    fn on(self) -> bool {
        self.per_period > 0
    }

    fn cap(self) -> f64 {
        self.per_period as f64
    }

    fn refill(self, tokens: &mut f64, elapsed: Duration) {
        let add = self.cap() * elapsed.as_secs_f64() / self.period.as_secs_f64();
        *tokens = (*tokens + add).min(self.cap());
    }
}

pub struct SourceLimits {
    pushes: Rate,
    bytes: Rate,
    quarantine: Rate,
    /// After this long untouched every bucket of a source is full again.
    rest: Duration,
    sources: Mutex<HashMap<IpAddr, Source>>,
}

impl SourceLimits {
    pub fn new(cfg: &IngestConfig) -> SourceLimits {
        let pushes = Rate {
            per_period: cfg.unregistered_pushes_per_minute,
            period: MINUTE,
        };
        let bytes = Rate {
            per_period: cfg.unregistered_bytes_per_minute,
            period: MINUTE,
        };
        let quarantine = Rate {
            per_period: cfg.quarantine_bytes_per_hour,
            period: HOUR,
        };
        let rest = if quarantine.on() { HOUR } else { MINUTE };
        SourceLimits {
            pushes,
            bytes,
            quarantine,
            rest,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a push from `ip` may go on; it takes a push token and
    /// reserves `declared` body bytes (its Content-Length: the body is not
    /// read yet), settled by [`settle_bytes`](Self::settle_bytes) once read.
    pub fn admit_push(&self, ip: IpAddr, declared: u64) -> Result<(), RateLimited> {
        self.admit_push_at(ip, declared, Instant::now())
    }

    fn admit_push_at(&self, ip: IpAddr, declared: u64, now: Instant) -> Result<(), RateLimited> {
        if !self.pushes.on() && !self.bytes.on() {
            return Ok(());
        }
        self.with_source(ip, now, |s| {
            if self.pushes.on() && s.pushes < 1.0 {
                return Err(RateLimited::Pushes);
            }
            // A body larger than the whole burst could never pass: it needs
            // a full bucket instead (max_body_bytes bounds it anyway).
            let need = (declared as f64).min(self.bytes.cap()).max(1.0);
            if self.bytes.on() && s.bytes < need {
                return Err(RateLimited::Bytes);
            }
            s.pushes -= 1.0;
            s.bytes -= declared as f64;
            Ok(())
        })
    }

    /// Charges the difference between the bytes a push declared and those
    /// it sent (a chunked body declares none: its bytes are charged here,
    /// and a later push waits until the debt is paid back).
    pub fn settle_bytes(&self, ip: IpAddr, declared: u64, actual: u64) {
        if !self.bytes.on() || declared == actual {
            return;
        }
        self.with_source(ip, Instant::now(), |s| {
            s.bytes = (s.bytes + declared as f64 - actual as f64).min(self.bytes.cap());
        })
    }

    /// Whether a refused body of `len` bytes from `ip` is kept whole (and
    /// charged to the source's quarantine budget), or only its first
    /// [`QUARANTINE_KEPT_WHEN_OVER`] bytes.
    pub fn quarantine_whole(&self, ip: IpAddr, len: usize) -> bool {
        self.quarantine_whole_at(ip, len, Instant::now())
    }

    fn quarantine_whole_at(&self, ip: IpAddr, len: usize, now: Instant) -> bool {
        if !self.quarantine.on() || len <= QUARANTINE_KEPT_WHEN_OVER {
            return true;
        }
        self.with_source(ip, now, |s| {
            if s.quarantine >= len as f64 {
                s.quarantine -= len as f64;
                true
            } else {
                false
            }
        })
    }

    /// Runs `f` on `ip`'s buckets brought up to `now` (full for a new source).
    fn with_source<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Source) -> T) -> T {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sources.get_mut(&ip) {
            let elapsed = now.saturating_duration_since(s.at);
            self.pushes.refill(&mut s.pushes, elapsed);
            self.bytes.refill(&mut s.bytes, elapsed);
            self.quarantine.refill(&mut s.quarantine, elapsed);
            s.at = now;
            return f(s);
        }
        if sources.len() >= MAX_SOURCES {
            self.forget(&mut sources, now);
        }
        let s = sources.entry(ip).or_insert(Source {
            pushes: self.pushes.cap(),
            bytes: self.bytes.cap(),
            quarantine: self.quarantine.cap(),
            at: now,
        });
        f(s)
    }

    /// Makes room: sources at rest first, then the stalest half. Runs once
    /// per `MAX_SOURCES / 2` new sources at most, so its cost is spread.
    fn forget(&self, sources: &mut HashMap<IpAddr, Source>, now: Instant) {
        let rest = self.rest;
        sources.retain(|_, s| now.saturating_duration_since(s.at) < rest);
        if sources.len() < MAX_SOURCES / 2 {
            return;
        }
        // A sweep of addresses faster than `rest`: the stalest half goes
        // (a forgotten source starts again with full buckets).
        let mut ats: Vec<Instant> = sources.values().map(|s| s.at).collect();
        let mid = ats.len() / 2;
        let (_, cut, _) = ats.select_nth_unstable(mid);
        let cut = *cut;
        sources.retain(|_, s| s.at > cut);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sources.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pushes: u64, bytes: u64, quarantine: u64) -> SourceLimits {
        SourceLimits::new(&IngestConfig {
            unregistered_pushes_per_minute: pushes,
            unregistered_bytes_per_minute: bytes,
            quarantine_bytes_per_hour: quarantine,
            ..Default::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pushes_burst_then_refill_at_the_rate() {
        let l = limits(60, 0, 0);
        let t0 = Instant::now();
        for i in 0..60 {
            assert_eq!(l.admit_push_at(ip("10.0.0.1"), 500, t0), Ok(()), "push {i}");
        }
        assert_eq!(
            l.admit_push_at(ip("10.0.0.1"), 500, t0),
            Err(RateLimited::Pushes)
        );
        assert_eq!(
            l.admit_push_at(ip("10.0.0.2"), 500, t0),
            Ok(()),
            "other sources have their own bucket"
        );
        // One a second comes back.
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(l.admit_push_at(ip("10.0.0.1"), 500, t1), Ok(()));
        assert_eq!(
            l.admit_push_at(ip("10.0.0.1"), 500, t1),
            Err(RateLimited::Pushes)
        );
    }

    #[test]
    fn bytes_are_reserved_then_settled() {
        let l = limits(0, 10_000, 0);
        let (a, t0) = (ip("10.0.0.1"), Instant::now());
        assert_eq!(l.admit_push_at(a, 6_000, t0), Ok(()));
        assert_eq!(l.admit_push_at(a, 6_000, t0), Err(RateLimited::Bytes));
        // The first one sent less than it declared: the rest comes back.
        l.settle_bytes(a, 6_000, 1_000);
        assert_eq!(l.admit_push_at(a, 6_000, Instant::now()), Ok(()));
        // A chunked body declares nothing and is charged once read: the
        // debt holds the next pushes back.
        let b = ip("10.0.0.2");
        assert_eq!(l.admit_push_at(b, 0, t0), Ok(()));
        l.settle_bytes(b, 0, 15_000);
        assert_eq!(
            l.admit_push_at(b, 0, Instant::now()),
            Err(RateLimited::Bytes)
        );
        // A body larger than the burst passes once the bucket is full.
        assert_eq!(l.admit_push_at(ip("10.0.0.3"), 50_000, t0), Ok(()));
    }

    #[test]
    fn quarantine_keeps_whole_bodies_until_the_budget_is_spent() {
        let l = limits(0, 0, 250_000);
        let (a, t0) = (ip("10.0.0.1"), Instant::now());
        assert!(l.quarantine_whole_at(a, 100_000, t0));
        assert!(l.quarantine_whole_at(a, 100_000, t0));
        assert!(!l.quarantine_whole_at(a, 100_000, t0));
        assert!(
            l.quarantine_whole_at(a, QUARANTINE_KEPT_WHEN_OVER, t0),
            "a body no longer than what is kept anyway is kept"
        );
        assert!(l.quarantine_whole_at(ip("10.0.0.2"), 100_000, t0));
        // The budget is per hour: after 24 minutes 100 kB came back.
        assert!(l.quarantine_whole_at(a, 100_000, t0 + Duration::from_secs(24 * 60)));
    }

    #[test]
    fn a_sweep_of_addresses_does_not_grow_the_table_without_bound() {
        let l = limits(600, 16 << 20, 64 << 20);
        let t0 = Instant::now();
        for i in 0..3 * MAX_SOURCES as u32 {
            // A new address every 10 µs: none rests in between.
            let now = t0 + Duration::from_micros(10 * i as u64);
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(l.admit_push_at(a, 500, now), Ok(()));
            assert!(l.len() <= MAX_SOURCES);
        }
        // The newest are still remembered (and limited).
        let last = 3 * MAX_SOURCES as u32 - 1;
        let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + last));
        let now = t0 + Duration::from_micros(10 * last as u64);
        for _ in 0..599 {
            assert_eq!(l.admit_push_at(a, 0, now), Ok(()));
        }
        assert_eq!(l.admit_push_at(a, 0, now), Err(RateLimited::Pushes));
    }
}
