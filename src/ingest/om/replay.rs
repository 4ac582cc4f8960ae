//! Single-use Auth nonces (`auth_nonce_single_use`, manual §4.5): each
//! signed (nonce, timestamp) of such a device is accepted once within its
//! validity window. The signature does not cover the message, so without
//! this one sniffed Auth block signs any forged push until it expires.
//!
//! The cache lives in memory and in the archive (`auth_nonces`, written in
//! the same transaction as the push it signed), so a restart does not
//! reset it. It is bounded: past [`MAX_NONCES`] the entries nearest expiry
//! go first (a device signing more than that within one window is far
//! beyond any real PBX).
//!
//! On PostgreSQL several collectors take one device's pushes, and a replay
//! may reach another collector than the original: there the archive
//! decides instead (`store::devices::claim_nonce`, in the transaction that
//! stores the push), and this cache is not used.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::store::devices::Nonce;

/// Entries kept at most, over all devices.
pub const MAX_NONCES: usize = 200_000;

type Key = (String, String, String);

#[derive(Default)]
pub struct NonceCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    expires: HashMap<Key, i64>,
    by_expiry: BTreeSet<(i64, Key)>,
}

impl Inner {
    fn remove(&mut self, key: &Key) {
        if let Some(exp) = self.expires.remove(key) {
            self.by_expiry.remove(&(exp, key.clone()));
        }
    }

    fn insert(&mut self, key: Key, expires_ms: i64, now_ms: i64) {
        while let Some((exp, _)) = self.by_expiry.first() {
            if *exp >= now_ms && self.expires.len() < MAX_NONCES {
                break;
            }
            if let Some((_, k)) = self.by_expiry.pop_first() {
                self.expires.remove(&k);
            }
        }
        self.by_expiry.insert((expires_ms, key.clone()));
        self.expires.insert(key, expires_ms);
    }
}

impl NonceCache {
    /// A cache holding what the archive remembers.
    pub fn with(entries: Vec<Nonce>, now_ms: i64) -> NonceCache {
        let cache = NonceCache::default();
        {
            let mut inner = cache.lock();
            for n in entries {
                inner.insert((n.device, n.nonce, n.timestamp), n.expires_ms, now_ms);
            }
        }
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes (nonce, timestamp) for `device` until `expires_ms`; false when
    /// it was already taken and is still valid (a replay).
    pub fn claim(&self, n: &Nonce, now_ms: i64) -> bool {
        let key = (n.device.clone(), n.nonce.clone(), n.timestamp.clone());
        let mut inner = self.lock();
        if inner.expires.get(&key).is_some_and(|exp| *exp >= now_ms) {
            return false;
        }
        inner.insert(key, n.expires_ms, now_ms);
        true
    }

    /// Gives a claim back (its push could not be stored: the device retries).
    pub fn release(&self, n: &Nonce) {
        self.lock()
            .remove(&(n.device.clone(), n.nonce.clone(), n.timestamp.clone()));
    }

    pub fn len(&self) -> usize {
        self.lock().expires.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: &str, expires_ms: i64) -> Nonce {
        Nonce {
            device: "hq".into(),
            nonce: n.into(),
            timestamp: "1".into(),
            expires_ms,
        }
    }

    #[test]
    fn a_nonce_is_taken_once_until_it_expires() {
        let c = NonceCache::default();
        assert!(c.claim(&nonce("a", 1_000), 0));
        assert!(!c.claim(&nonce("a", 1_000), 500));
        assert!(c.claim(&nonce("b", 1_000), 500));
        // Stale anyway after expiry: the slot may be taken again.
        assert!(c.claim(&nonce("a", 5_000), 1_001));
        c.release(&nonce("a", 5_000));
        assert!(c.claim(&nonce("a", 5_000), 1_002));
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = NonceCache::default();
        for i in 0..MAX_NONCES + 10 {
            assert!(c.claim(&nonce(&i.to_string(), i64::MAX - i as i64), 0));
        }
        assert_eq!(c.len(), MAX_NONCES);
    }

    #[test]
    fn reloaded_entries_still_refuse() {
        let c = NonceCache::with(vec![nonce("a", 1_000)], 0);
        assert!(!c.claim(&nonce("a", 1_000), 10));
    }
}
