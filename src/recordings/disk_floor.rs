//! The free-space floor of the recordings file system (`[recordings]
//! min_free_bytes`): below it the fetcher claims nothing (jobs stay
//! pending, no attempt is counted) and resumes by itself once there is room
//! again. Ingest never looks at this: a full recordings disk must not cost
//! a CDR. The state is shared with `/healthz` ([`PauseState`]) and the
//! `callvault_recordings_paused` gauge.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the free space is read while fetching runs (or is paused).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free bytes (for an unprivileged writer) of the file system holding a
/// path. A function so tests and other platforms can put another in.
pub type FreeSpaceProbe = fn(&Path) -> std::io::Result<u64>;

/// `statvfs` of `path`, or of its nearest existing ancestor (the
/// recordings directory is created with the first file).
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("."));
    let st = rustix::fs::statvfs(existing).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "free space is only read on unix; set [recordings] min_free_bytes = 0",
    ))
}

/// Why fetching is paused, if it is; shared by the fetcher and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct PauseState(Arc<Mutex<Option<String>>>);

impl PauseState {
    /// The reason fetching is paused, `None` while it runs.
    pub fn reason(&self) -> Option<String> {
        self.0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sets the state; true when it changed between paused and running.
    fn set(&self, reason: Option<String>) -> bool {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let changed = g.is_some() != reason.is_some();
        *g = reason;
        changed
    }
}

/// The floor check of one fetcher.
pub struct DiskFloor {
    dir: PathBuf,
    min_free: u64,
    probe: FreeSpaceProbe,
    state: PauseState,
    last_check: Mutex<Option<Instant>>,
}

impl DiskFloor {
    /// `min_free` = 0 turns the check off.
    pub fn new(dir: PathBuf, min_free: u64, probe: FreeSpaceProbe) -> DiskFloor {
        DiskFloor {
            dir,
            min_free,
            probe,
            state: PauseState::default(),
            last_check: Mutex::new(None),
        }
    }

    pub fn state(&self) -> PauseState {
        self.state.clone()
    }

    /// Why fetching must pause now, `None` to go on. Reads the free space
    /// at most every [`CHECK_EVERY`] (off the async threads: a network
    /// file system can be slow to answer) and logs each change once.
    pub async fn paused(&self) -> Option<String> {
        if self.min_free == 0 {
            return None;
        }
        {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
                return self.state.reason();
            }
            *last = Some(Instant::now());
        }
        let (dir, probe) = (self.dir.clone(), self.probe);
        let free = tokio::task::spawn_blocking(move || probe(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let reason = match free {
            Ok(free) if free >= self.min_free => None,
            Ok(free) => Some(format!(
                "free bytes below min_free_bytes: {free} bytes free on the file system of {}, [recordings] min_free_bytes = {}",
                self.dir.display(),
                self.min_free
            )),
            Err(e) => Some(format!(
                "free bytes below min_free_bytes unknown: cannot read the free space of {}: {e}",
                self.dir.display()
            )),
        };
        if self.state.set(reason.clone()) {
            match &reason {
                Some(r) => tracing::error!(reason = %r, "recording fetching paused"),
                None => {
                    tracing::info!("recording fetching resumed: free space above min_free_bytes")
                }
            }
        }
        metrics::gauge!("callvault_recordings_paused").set(if reason.is_some() {
            1.0
        } else {
            0.0
        });
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_a_missing_dir_reads_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("recordings/not/yet");
        assert!(free_bytes(&missing).unwrap() > 0);
        assert_eq!(
            free_bytes(&missing).unwrap() / (1 << 20),
            free_bytes(dir.path()).unwrap() / (1 << 20),
            "same file system"
        );
    }

    /// Free bytes the test probe reports.
    static FREE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10);

    fn probe(_: &Path) -> std::io::Result<u64> {
        Ok(FREE.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn floor_pauses_and_resumes_with_the_free_space() {
        use std::sync::atomic::Ordering;
        let off = DiskFloor::new("/x".into(), 0, probe);
        assert_eq!(off.paused().await, None, "0 = never pause");
        let floor = DiskFloor::new("/x".into(), 11, probe);
        let state = floor.state();
        let reason = floor.paused().await.expect("paused");
        assert!(
            reason.contains("min_free_bytes") && reason.contains("10 bytes free"),
            "{reason}"
        );
        assert_eq!(state.reason(), Some(reason));
        FREE.store(11, Ordering::SeqCst);
        // Read again after CHECK_EVERY, and running again by itself.
        let resumed = async {
            while floor.paused().await.is_some() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), resumed)
            .await
            .expect("resumes");
        assert_eq!(state.reason(), None);
    }

    #[tokio::test]
    async fn floor_pauses_when_the_free_space_cannot_be_read() {
        fn broken(_: &Path) -> std::io::Result<u64> {
            Err(std::io::Error::other("no such device"))
        }
        let err = DiskFloor::new("/x".into(), 1, broken)
            .paused()
            .await
            .unwrap();
        assert!(err.contains("no such device"), "{err}");
        let real = DiskFloor::new(std::env::temp_dir(), 1, free_bytes);
        assert_eq!(real.paused().await, None);
    }
}
