//! The recordings archive on disk: `data/recordings/YYYY/MM/DD/<id>-<file>`.
//!
//! Paths are built from CDR text (`<Recording>`) and from names found on
//! the device, so both are re-checked with [`check_recording_path`] and the
//! result is built from checked single components only: nothing built here
//! can leave the archive root. Files are written to a temporary name in the
//! target directory, fsynced, then renamed; an [`AtomicFile`] dropped before
//! [`AtomicFile::commit`] removes its temporary file, so an interrupted
//! download never leaves a partial file behind.

use std::path::{Component, Path, PathBuf};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::model::{check_recording_path, UnsafePath};

/// Why an archive path could not be built or a file not written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The `<Recording>` value (or a file name from the device) is not a safe path.
    #[error("unsafe recording path {path:?}: {reason}")]
    Unsafe { path: String, reason: UnsafePath },
    /// A stored archive-relative path is not a plain relative path.
    #[error("archive path {0:?} is not a plain relative path")]
    NotRelative(String),
    /// Creating, writing, syncing or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The archive root (`<data_dir>/recordings`).
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
}

impl Archive {
    pub fn new(root: PathBuf) -> Archive {
        Archive { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Archive-relative path for `name` (one file name, e.g. from the device)
    /// of recording row `id` whose `<Recording>` is `recording`:
    /// `YYYY/MM/DD/<id>-<name>`, the day taken from the `YYYYMMDD/` prefix
    /// (today's date when the value has none or it is not a date).
    pub fn relative(&self, id: i64, recording: &str, name: &str) -> Result<String, ArchiveError> {
        check_recording_path(recording).map_err(|reason| ArchiveError::Unsafe {
            path: recording.to_string(),
            reason,
        })?;
        check_file_name(name)?;
        let day = day_of(recording).unwrap_or_else(|| chrono::Utc::now().date_naive());
        Ok(format!("{}/{id}-{name}", day.format("%Y/%m/%d")))
    }

    /// The absolute path of an archive-relative path, refusing anything but
    /// plain relative components (a corrupt or hostile database row cannot
    /// point outside the archive).
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, ArchiveError> {
        let p = Path::new(rel);
        let plain = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || rel.contains('\\') || rel.contains('\0') {
            return Err(ArchiveError::NotRelative(rel.to_string()));
        }
        Ok(self.root.join(p))
    }
}

/// `YYYYMMDD/…` → that date.
pub fn day_of(recording: &str) -> Option<NaiveDate> {
    let (day, _) = recording.split_once('/')?;
    NaiveDate::parse_from_str(day, "%Y%m%d").ok()
}

/// The file part of `<Recording>` without `.wav` (the stem of the G.729 halves).
pub fn stem_of(recording: &str) -> &str {
    let file = recording.rsplit('/').next().unwrap_or(recording);
    file.strip_suffix(".wav")
        .or_else(|| file.strip_suffix(".WAV"))
        .unwrap_or(file)
}

/// One safe file name: a single component of the allowed characters.
pub fn check_file_name(name: &str) -> Result<(), ArchiveError> {
    let unsafe_name = |reason| ArchiveError::Unsafe {
        path: name.to_string(),
        reason,
    };
    check_recording_path(name).map_err(unsafe_name)?;
    if name.contains('/') {
        return Err(unsafe_name(UnsafePath::TooManyComponents { count: 2 }));
    }
    Ok(())
}

/// A file being written under a temporary name beside its final path,
/// hashing what is written.
pub struct AtomicFile {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    hash: Sha256,
    bytes: u64,
}

impl AtomicFile {
    /// Creates the directory of `dest` and a fresh temporary file in it.
    pub async fn create(dest: PathBuf) -> Result<AtomicFile, ArchiveError> {
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err(&dir))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.part",
            std::process::id(),
            rand::random::<u32>()
        ));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io_err(&tmp))?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    /// The temporary path (readable before commit, e.g. for validation).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        let tmp = self.tmp.clone();
        let file = self.file.as_mut().ok_or_else(|| closed(&tmp))?;
        file.write_all(data).await.map_err(io_err(&tmp))?;
        self.hash.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the temporary file (it stays temporary).
    pub async fn sync(&mut self) -> Result<(), ArchiveError> {
        let tmp = self.tmp.clone();
        let file = self.file.as_mut().ok_or_else(|| closed(&tmp))?;
        file.flush().await.map_err(io_err(&tmp))?;
        file.sync_all().await.map_err(io_err(&tmp))?;
        Ok(())
    }

    /// Syncs, renames into place and syncs the directory. Returns (bytes, sha256 hex).
    pub async fn commit(mut self) -> Result<(u64, String), ArchiveError> {
        self.sync().await?;
        self.file = None;
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(io_err(&self.dest))?;
        if let Some(dir) = self.dest.parent() {
            if let Ok(d) = tokio::fs::File::open(dir).await {
                let _ = d.sync_all().await;
            }
        }
        let sha = hex::encode(std::mem::take(&mut self.hash).finalize());
        // Renamed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        Ok((self.bytes, sha))
    }
}

fn closed(p: &Path) -> ArchiveError {
    ArchiveError::Io {
        path: p.to_path_buf(),
        source: std::io::Error::other("file already closed"),
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Streams `path` through sha256 (blocking; call from `spawn_blocking`).
/// Returns (bytes, sha256 hex).
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((n, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Archive {
        Archive::new(PathBuf::from("/data/recordings"))
    }

    #[test]
    fn relative_uses_the_recording_day() {
        let rel = archive()
            .relative(7, "20170309/200_201_x_cd.wav", "200_201_x_cd.wav")
            .unwrap();
        assert_eq!(rel, "2017/03/09/7-200_201_x_cd.wav");
    }

    #[test]
    fn relative_refuses_hostile_recordings() {
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "20170309/a\0b.wav",
            "20170309/..",
            "a/b/c.wav",
        ] {
            assert!(archive().relative(1, bad, "x.wav").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_refuses_hostile_names() {
        for bad in ["..", "../x.dat", "a/b.dat", "/x", ".hidden", "a b.dat", ""] {
            assert!(
                archive().relative(1, "20170309/a.wav", bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        let a = archive();
        assert_eq!(
            a.resolve("2017/03/09/1-a.wav").unwrap(),
            PathBuf::from("/data/recordings/2017/03/09/1-a.wav")
        );
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b", "./a"] {
            assert!(a.resolve(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stem_of_strips_day_and_extension() {
        assert_eq!(stem_of("20170309/a_b_cd.wav"), "a_b_cd");
        assert_eq!(stem_of("a.wav"), "a");
    }

    #[tokio::test]
    async fn atomic_file_dropped_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d/x.wav");
        let mut f = AtomicFile::create(dest.clone()).await.unwrap();
        f.write(b"half").await.unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path().join("d")).unwrap().count(), 0);
        let mut f = AtomicFile::create(dest.clone()).await.unwrap();
        f.write(b"abc").await.unwrap();
        let (n, sha) = f.commit().await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(dir.path().join("d")).unwrap().count(), 1);
    }
}
