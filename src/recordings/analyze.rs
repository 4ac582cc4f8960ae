//! Conversation figures of recordings already archived (`callvault
//! recordings analyze`; docs/recordings.md "Conversation figures"), from
//! the audio the archive keeps: the two G.729 halves when it kept them
//! (the merged WAV may be a mono mix, which cannot tell who spoke), else
//! the WAV itself when it has two channels. A mono WAV has no figures.

use std::path::PathBuf;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::storage::{RecordingStore, StorageError};
use super::wav;
use crate::config::SendSide;
use crate::store::conversations::Outcome;
use crate::store::recordings::Recording;

/// Why a recording could not be read for its figures.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The archived file could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local copy could not be written or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The recording has no archived file.
    #[error("recording {0} has no archived file")]
    NoFile(i64),
    /// A blocking task failed.
    #[error("background task failed: {0}")]
    Join(String),
}

/// The figures of `rec` from its archived audio: `Ok(None)` when it has no
/// two sides (a mono WAV); `Ok(Some(Err(why)))` when the audio is there but
/// gives no figures (as the fetch would have stored).
pub async fn analyze(
    store: &RecordingStore,
    rec: &Recording,
    send_side: SendSide,
) -> Result<Option<Outcome>, AnalyzeError> {
    let keys: Vec<String> = if rec.originals.len() == 2 {
        rec.originals.clone()
    } else {
        vec![rec.file.clone().ok_or(AnalyzeError::NoFile(rec.id))?]
    };
    let mut local = Vec::with_capacity(keys.len());
    for key in &keys {
        local.push(LocalCopy::of(store, key, rec.id).await?);
    }
    let paths: Vec<PathBuf> = local.iter().map(|l| l.path.clone()).collect();
    let res = tokio::task::spawn_blocking(move || listen(&paths, send_side))
        .await
        .map_err(|e| AnalyzeError::Join(e.to_string()))?;
    drop(local);
    res
}

/// Decodes / reads `paths` (two halves, or one WAV) into figures.
fn listen(paths: &[PathBuf], send_side: SendSide) -> Result<Option<Outcome>, AnalyzeError> {
    match paths {
        #[cfg(feature = "g729")]
        [send, recv] => {
            let open = |p: &PathBuf| std::fs::File::open(p).map(std::io::BufReader::new);
            Ok(Some(
                match super::merge::speech_of_halves(open(send)?, open(recv)?) {
                    Ok((s, r)) => super::conversation::of_sides(&s, &r, send_side),
                    Err(e) => Err(e.to_string()),
                },
            ))
        }
        [wav_path] => match wav::validate_and_listen(wav_path) {
            Ok((_, Some((left, right)))) => Ok(Some(super::conversation::of_sides(
                &left, &right, send_side,
            ))),
            Ok((_, None)) => Ok(None),
            Err(e) => Ok(Some(Err(e.to_string()))),
        },
        _ => Ok(Some(Err(
            "G.729 halves but callvault was built without the g729 feature".into(),
        ))),
    }
}

/// A file of the archive on local disk: the file itself for `file:`, a
/// temporary copy of the object for `s3://` (removed on drop).
struct LocalCopy {
    path: PathBuf,
    temporary: bool,
}

impl LocalCopy {
    async fn of(store: &RecordingStore, key: &str, id: i64) -> Result<LocalCopy, AnalyzeError> {
        let local = store.local().resolve(key).map_err(StorageError::from)?;
        if let RecordingStore::File(_) = store {
            return Ok(LocalCopy {
                path: local,
                temporary: false,
            });
        }
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = local.with_file_name(format!(".analyze-{id}-{}-{name}", std::process::id()));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let copy = LocalCopy {
            path,
            temporary: true,
        };
        let size = store.size(key).await?;
        let mut body = store.open_range(key, 0, size).await?;
        let mut file = tokio::fs::File::create(&copy.path).await?;
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(copy)
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
