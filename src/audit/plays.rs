//! Plays seen lately, so that a recording played in many Range requests
//! (a browser's player asks for it piece by piece, and again on every
//! seek) is one audit row: a request of the same recording by the same
//! actor, with the same outcome, within 30 minutes of the previous one is
//! not written again. Memory is bounded: entries older than the window are
//! swept out, and at most [`CAP`] are kept (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests closer than this to the previous one of the same play are part of it.
pub const WINDOW: Duration = Duration::from_secs(30 * 60);

/// Most plays remembered at once.
pub const CAP: usize = 50_000;

/// (actor, recording id, status).
pub type Key = (String, i64, i64);

#[derive(Default)]
pub struct Plays {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: HashMap<Key, Instant>,
    swept: Option<Instant>,
}

impl Plays {
    /// True when `key` starts a new play at `now` (write a row); false
    /// when it continues one seen within [`WINDOW`].
    pub fn first(&self, key: Key, now: Instant) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let sweep_due = g
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60));
        if sweep_due || g.last.len() >= CAP {
            g.last
                .retain(|_, t| now.saturating_duration_since(*t) < WINDOW);
            g.swept = Some(now);
        }
        if let Some(t) = g.last.get_mut(&key) {
            let continues = now.saturating_duration_since(*t) < WINDOW;
            *t = now;
            return !continues;
        }
        if g.last.len() >= CAP {
            if let Some(oldest) = g
                .last
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                g.last.remove(&oldest);
            }
        }
        g.last.insert(key, now);
        true
    }

    /// Plays remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(actor: &str, rec: i64) -> Key {
        (actor.into(), rec, 200)
    }

    #[test]
    fn requests_within_the_window_are_one_play() {
        let p = Plays::default();
        let t0 = Instant::now();
        assert!(p.first(key("qa", 1), t0));
        assert!(!p.first(key("qa", 1), t0 + Duration::from_secs(5)));
        // The window runs from the latest request of the play.
        assert!(!p.first(key("qa", 1), t0 + Duration::from_secs(25 * 60)));
        assert!(!p.first(key("qa", 1), t0 + Duration::from_secs(50 * 60)));
        assert!(
            p.first(key("qa", 1), t0 + Duration::from_secs(81 * 60)),
            "a new play"
        );
        assert!(p.first(key("other", 1), t0), "another actor");
        assert!(p.first(key("qa", 2), t0), "another recording");
    }

    #[test]
    fn old_plays_are_swept_and_memory_is_capped() {
        let p = Plays::default();
        let t0 = Instant::now();
        for i in 0..100 {
            p.first(key("qa", i), t0);
        }
        assert_eq!(p.len(), 100);
        p.first(key("qa", 1_000), t0 + WINDOW + Duration::from_secs(61));
        assert_eq!(p.len(), 1, "plays older than the window went");
        for i in 0..(CAP as i64 + 10) {
            p.first(key("qa", i), t0 + WINDOW + Duration::from_secs(62));
        }
        assert!(p.len() <= CAP, "{}", p.len());
    }
}
