//! Where archived recordings live (docs/recordings.md "Object storage"):
//! [`RecordingStore`], one interface in application terms over two backends.
//!
//! * `file:` (the default): the files the fetch wrote under
//!   `<data_dir>/recordings` stay there; nothing is copied.
//! * `s3://bucket/prefix` ([`s3`]): the fetch still downloads and merges
//!   under `<data_dir>/recordings` (the G.729 merge needs local files), then
//!   [`RecordingStore::publish`] uploads each file to `prefix/YYYY/MM/DD/…`
//!   and removes the local copy.
//!
//! Keys are the archive-relative paths kept in the database, re-checked by
//! [`Archive::resolve`] before any use. Serving checks the stored sha256
//! once per version of an object or file ([`RecordingStore::verified_len`])
//! and then reads only the asked byte range ([`RecordingStore::open_range`]).

pub mod s3;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::archive::{self, Archive, ArchiveError};
use crate::config::Config;

/// A stream of bytes of one recording.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Why a recording could not be stored or read back.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `[recordings] store` / `[recordings.s3]` do not make a usable store.
    #[error("[recordings] store {store:?}: {source}")]
    Setup {
        store: String,
        source: object_store::Error,
    },
    /// The key is not a plain archive-relative path.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Reading a local file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The object store refused or failed a request.
    #[error("object store, key {key}: {source}")]
    Object {
        key: String,
        source: object_store::Error,
    },
    /// The stored bytes do not hash to the sha256 recorded when archived.
    #[error("sha256 mismatch for {at}: stored {expected}, found {actual}")]
    Corrupt {
        at: String,
        expected: String,
        actual: String,
    },
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The archive of finished recordings.
#[derive(Debug, Clone)]
pub enum RecordingStore {
    /// Files under the archive root.
    File(Archive),
    /// Objects in an S3-compatible store; the archive root only stages files.
    S3 { staging: Archive, s3: s3::S3Archive },
}

impl RecordingStore {
    /// The store `cfg` names (`[recordings] store`), staging under
    /// `<data_dir>/recordings`.
    pub fn from_config(cfg: &Config) -> Result<RecordingStore, StorageError> {
        let local = Archive::new(cfg.recordings_dir());
        match s3::S3Archive::from_config(&cfg.recordings)? {
            Some(s3) => Ok(RecordingStore::S3 { staging: local, s3 }),
            None => Ok(RecordingStore::File(local)),
        }
    }

    /// The local archive the fetch writes into (the store itself for `file:`).
    pub fn local(&self) -> &Archive {
        match self {
            RecordingStore::File(a) => a,
            RecordingStore::S3 { staging, .. } => staging,
        }
    }

    /// Moves the finished local files `keys` (committed under [`Self::local`])
    /// into the store. `file:` leaves them where they are; `s3://` uploads
    /// each and removes the local copies (also when an upload fails: the
    /// next attempt downloads again).
    pub async fn publish(&self, keys: &[String]) -> Result<(), StorageError> {
        let RecordingStore::S3 { staging, s3 } = self else {
            return Ok(());
        };
        let mut paths = Vec::with_capacity(keys.len());
        for key in keys {
            paths.push(staging.resolve(key)?);
        }
        let mut res = Ok(());
        for (key, path) in keys.iter().zip(&paths) {
            res = s3.put_file(key, path).await;
            if res.is_err() {
                break;
            }
        }
        for p in &paths {
            let _ = tokio::fs::remove_file(p).await;
        }
        res
    }

    /// The length of `key` after checking its bytes against `expected`
    /// (sha256 hex), once per version of the file or object.
    pub async fn verified_len(&self, key: &str, expected: &str) -> Result<u64, StorageError> {
        let (at, len, version) = match self {
            RecordingStore::File(a) => {
                let path = a.resolve(key)?;
                let meta = tokio::fs::metadata(&path).await.map_err(io_err(&path))?;
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                (path.display().to_string(), meta.len(), format!("{mtime:?}"))
            }
            RecordingStore::S3 { staging, s3 } => {
                staging.resolve(key)?;
                let meta = s3.head(key).await?;
                let version = format!("{:?} {}", meta.e_tag, meta.last_modified.to_rfc3339());
                (s3.url_of(key), meta.size, version)
            }
        };
        let known = verified().lock().ok().and_then(|c| c.get(&at).cloned());
        if known.is_some_and(|(l, v, sha)| l == len && v == version && sha == expected) {
            return Ok(len);
        }
        let (n, actual) = match self {
            RecordingStore::File(a) => {
                let path = a.resolve(key)?;
                let p = path.clone();
                tokio::task::spawn_blocking(move || archive::hash_file(&p))
                    .await
                    .map_err(|e| StorageError::Io {
                        path: path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .map_err(io_err(&path))?
            }
            RecordingStore::S3 { s3, .. } => s3.hash(key).await?,
        };
        if actual != expected {
            metrics::counter!("callvault_recordings_corrupt_total").increment(1);
            return Err(StorageError::Corrupt {
                at,
                expected: expected.to_string(),
                actual,
            });
        }
        if let Ok(mut c) = verified().lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(at, (n, version, actual));
        }
        Ok(n)
    }

    /// `count` bytes of `key` from `start`, streamed (a ranged GET on an object).
    pub async fn open_range(
        &self,
        key: &str,
        start: u64,
        count: u64,
    ) -> Result<ByteStream, StorageError> {
        match self {
            RecordingStore::File(a) => {
                let path = a.resolve(key)?;
                let mut file = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(io_err(&path))?;
                Ok(tokio_util::io::ReaderStream::new(file.take(count)).boxed())
            }
            RecordingStore::S3 { staging, s3 } => {
                staging.resolve(key)?;
                s3.get_range(key, start, count).await
            }
        }
    }

    /// The stored length of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        match self {
            RecordingStore::File(a) => {
                let path = a.resolve(key)?;
                let meta = tokio::fs::metadata(&path).await.map_err(io_err(&path))?;
                Ok(meta.len())
            }
            RecordingStore::S3 { staging, s3 } => {
                staging.resolve(key)?;
                Ok(s3.head(key).await?.size)
            }
        }
    }

    /// Removes `key` from the store (absent already: fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            RecordingStore::File(a) => {
                let path = a.resolve(key)?;
                match tokio::fs::remove_file(&path).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                    _ => Ok(()),
                }
            }
            RecordingStore::S3 { staging, s3 } => {
                staging.resolve(key)?;
                s3.delete(key).await
            }
        }
    }
}

/// Files and objects whose sha256 was checked: where → (size, version, sha256).
type Verified = Mutex<HashMap<String, (u64, String, String)>>;

fn verified() -> &'static Verified {
    static CACHE: OnceLock<Verified> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_reads_ranges_and_checks_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordingStore::File(Archive::new(dir.path().to_path_buf()));
        std::fs::create_dir_all(dir.path().join("2024/01/08")).unwrap();
        std::fs::write(dir.path().join("2024/01/08/1-a.wav"), b"abcdef").unwrap();
        let key = "2024/01/08/1-a.wav";
        let sha = "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721";
        assert_eq!(store.verified_len(key, sha).await.unwrap(), 6);
        assert!(matches!(
            store.verified_len(key, "00").await,
            Err(StorageError::Corrupt { .. })
        ));
        let mut s = store.open_range(key, 2, 3).await.unwrap();
        let mut got = Vec::new();
        while let Some(b) = s.next().await {
            got.extend_from_slice(&b.unwrap());
        }
        assert_eq!(got, b"cde");
        assert_eq!(store.size(key).await.unwrap(), 6);
        store.publish(&[key.to_string()]).await.unwrap();
        assert!(
            dir.path().join(key).exists(),
            "file: publish leaves the file"
        );
        store.delete(key).await.unwrap();
        store.delete(key).await.unwrap();
        assert!(store.open_range("../x", 0, 1).await.is_err());
    }
}
