//! How often the writer's background step (derivation of legs, events and
//! calls from stored pushes) gets a slice while jobs keep arriving.
//!
//! A burst of pushes is answered first and derived after: a fixed small
//! share (`BASE_SHARE`) keeps derivation moving meanwhile without slowing
//! the burst. But a *steady* load is not a burst: with only that share,
//! 500 pushes/s paced grew the backlog by ~330 a second for ever, although
//! derivation alone runs at ~10,000/s. So the pace follows the load: the
//! share is what derivation needs to keep up with the jobs of the last
//! window (their rate over the measured derive rate), with half again as
//! margin, up to `MAX_SHARE`. A load that would need more than that cannot
//! be kept up with without slowing ingest much; it is treated as a burst
//! (small share, catch up when it ends). While a backlog is left (from a
//! burst, or the queue tracker's replay at start) under a load that is not
//! a burst, `CATCH_UP` more works it off: the share for the load alone
//! would leave it there for as long as the load lasts.

use std::time::{Duration, Instant};

/// Length of one slice of background work under load.
pub(crate) const SLICE: Duration = Duration::from_millis(2);
/// Share of the writer for the background step during a burst: a 2 ms
/// slice every 50 ms. More (10 %) cost the burst ingest rate about 5 points
/// of the ceiling in examples/ingest_bench.
const BASE_SHARE: f64 = 0.04;
/// Largest share given to keep up with a steady load.
const MAX_SHARE: f64 = 0.5;
/// Margin over the measured need (derive rates vary with the pushes).
const MARGIN: f64 = 1.5;
/// Share added while the background step has a backlog.
const CATCH_UP: f64 = 0.25;
/// Rates are measured over windows this long.
const WINDOW: Duration = Duration::from_millis(200);
/// Pushes derived per second of slice until measured: a slow machine's
/// figure, so that the first window does not over-promise.
const FIRST_DERIVE_RATE: f64 = 5_000.0;

pub(crate) struct Pace {
    since: Instant,
    jobs: u64,
    /// Items derived and time spent in slices that had work (one that
    /// found none says nothing of the rate). Not only slices that used all
    /// their time: those are the ones preempted by other threads, and
    /// counting them alone measured half the real rate.
    items: u64,
    busy: Duration,
    derive_rate: f64,
    /// The last slice used all its time: work was left for the next.
    behind: bool,
    every: Duration,
}

impl Pace {
    pub(crate) fn new(now: Instant) -> Pace {
        Pace {
            since: now,
            jobs: 0,
            items: 0,
            busy: Duration::ZERO,
            derive_rate: FIRST_DERIVE_RATE,
            behind: false,
            every: SLICE.div_f64(BASE_SHARE),
        }
    }

    /// `n` jobs were committed.
    pub(crate) fn jobs(&mut self, n: usize) {
        self.jobs += n as u64;
    }

    /// A slice derived `items` in `took`; `used_all`: it stopped at its
    /// deadline, not for want of work.
    pub(crate) fn slice(&mut self, items: usize, took: Duration, used_all: bool) {
        self.behind = used_all && items > 0;
        if items > 0 {
            self.items += items as u64;
            self.busy += took;
        }
    }

    /// How long after the last slice the next one is due.
    pub(crate) fn every(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            if self.busy >= SLICE {
                let measured = self.items as f64 / self.busy.as_secs_f64();
                // Smoothed: one slice preempted by another process should
                // not swing the pace.
                self.derive_rate = 0.5 * self.derive_rate + 0.5 * measured.max(1.0);
            }
            let need = self.jobs as f64 / elapsed.as_secs_f64() / self.derive_rate;
            let catch_up = if self.behind { CATCH_UP } else { 0.0 };
            let share = if need <= MAX_SHARE {
                (need * MARGIN + catch_up).clamp(BASE_SHARE, MAX_SHARE)
            } else {
                BASE_SHARE
            };
            self.every = SLICE.div_f64(share);
            (self.since, self.jobs, self.items, self.busy) = (now, 0, 0, Duration::ZERO);
        }
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one window of `jobs` jobs with slices deriving at `rate`/s and
    /// returns the pace after it.
    fn window(p: &mut Pace, t: &mut Instant, jobs: usize, rate: f64) -> Duration {
        p.jobs(jobs);
        for _ in 0..10 {
            p.slice(
                (rate * SLICE.as_secs_f64() / 2.0) as usize,
                SLICE / 2,
                false,
            );
        }
        *t += WINDOW;
        p.every(*t)
    }

    fn share(every: Duration) -> f64 {
        SLICE.as_secs_f64() / every.as_secs_f64()
    }

    #[test]
    fn share_follows_a_steady_load_and_leaves_bursts_alone() {
        let mut t = Instant::now();
        let mut p = Pace::new(t);
        assert!(
            (share(p.every(t)) - BASE_SHARE).abs() < 1e-6,
            "starts small"
        );
        // Derivation at 10,000/s. 500 jobs/s need 5 %: 7.5 % given.
        // The first window still averages in the initial guess.
        window(&mut p, &mut t, 100, 10_000.0);
        let s = share(window(&mut p, &mut t, 100, 10_000.0));
        assert!((0.07..0.09).contains(&s), "500/s: {s}");
        // 4,000/s need 40 %, and with the margin more than the most: the
        // most, half.
        let s = share(window(&mut p, &mut t, 800, 10_000.0));
        assert!((s - MAX_SHARE).abs() < 1e-6, "4,000/s: {s}");
        // 15,000/s cannot be kept up with in half: a burst, small share.
        let s = share(window(&mut p, &mut t, 3_000, 10_000.0));
        assert!((s - BASE_SHARE).abs() < 1e-6, "15,000/s: {s}");
        // Idle: back to the small share.
        let s = share(window(&mut p, &mut t, 0, 10_000.0));
        assert!((s - BASE_SHARE).abs() < 1e-6, "idle: {s}");
    }

    #[test]
    fn slices_that_found_no_work_do_not_count_as_the_derive_rate() {
        let mut t = Instant::now();
        let mut p = Pace::new(t);
        // 500 jobs/s; each window one slice derives 20 in 2 ms (10,000/s)
        // and 50 find nothing to do in 0.1 ms each.
        for _ in 0..3 {
            p.jobs(100);
            p.slice(20, SLICE, false);
            for _ in 0..50 {
                p.slice(0, SLICE / 20, false);
            }
            t += WINDOW;
            p.every(t);
        }
        // Rate → 9,375/s after three windows: need 5.3 %, 8 % given.
        let s = share(p.every(t));
        assert!((0.07..0.09).contains(&s), "{s}");
    }

    /// A backlog under a steady load gets more than the load needs, still
    /// within the cap; not during a burst.
    #[test]
    fn a_backlog_is_worked_off_unless_in_a_burst() {
        let mut t = Instant::now();
        let mut p = Pace::new(t);
        let behind = |p: &mut Pace, t: &mut Instant, jobs: usize| {
            p.jobs(jobs);
            p.slice(10, SLICE, true);
            *t += WINDOW;
            share(p.every(*t))
        };
        // 500 jobs/s at 5,000/s derived (the items of full slices here:
        // 10 per 2 ms): need 10 %, 15 % with margin, 40 % with the backlog.
        let s = behind(&mut p, &mut t, 100);
        assert!((s - 0.40).abs() < 1e-6, "{s}");
        // 2,000/s need 40 %: capped at half.
        let s = behind(&mut p, &mut t, 400);
        assert!((s - MAX_SHARE).abs() < 1e-6, "{s}");
        // 10,000/s is a burst: the small share, backlog or not.
        let s = behind(&mut p, &mut t, 2_000);
        assert!((s - BASE_SHARE).abs() < 1e-6, "{s}");
        // Caught up (the last slice ran out of work): the load's share.
        p.jobs(100);
        p.slice(3, SLICE / 4, false);
        t += WINDOW;
        let s = share(p.every(t));
        assert!(s < 0.2, "{s}");
    }

    #[test]
    fn the_pace_changes_only_once_a_window_has_passed() {
        let mut t = Instant::now();
        let mut p = Pace::new(t);
        p.jobs(200);
        t += WINDOW / 2;
        assert!((share(p.every(t)) - BASE_SHARE).abs() < 1e-6);
        t += WINDOW / 2;
        let s = share(p.every(t));
        assert!(
            (s - 0.3).abs() < 1e-6,
            "1,000/s at 5,000/s: 20 % and margin: {s}"
        );
    }
}
