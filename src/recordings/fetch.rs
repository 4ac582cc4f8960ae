//! Copying one recording off its device (docs/recordings.md): one attempt of one
//! claimed job, and recording its outcome in the store.
//!
//! URL = the device's recorder base (`[[device]] recorder_url`, else
//! `http://{addr}/mcc/Recorder/`, else for devices known only by their IP
//! `http://{ip}/mcc/Recorder/`) + the `<Recording>` value, with the device's
//! basic auth. G.711 WAVs are validated and stored as they are; G.729
//! halves are located (`locate`), kept, and merged into a WAV. Every file
//! is written through [`AtomicFile`]: a dropped connection leaves nothing.
//! The finished files then go to the recordings store
//! ([`RecordingStore::publish`]: nothing to do for `file:`, an upload for `s3://`).
//!
//! A recorder is not trusted (README "Fetcher limits"): redirects are never
//! followed (a 3xx would aim our request at any address we can reach), every
//! GET has an overall deadline (`download_timeout_seconds`) and a size limit
//! (`max_bytes`, also for the merged WAV), and the day listing is parsed off
//! the async threads.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::archive::{self, Archive, ArchiveError, AtomicFile};
use super::locate;
use super::storage::{RecordingStore, StorageError};
use super::wav::{self, WavError};
use crate::config::{Config, SendSide};
use crate::ingest::device::Registry;
use crate::store::recordings::{self as rec_store, Archived, Recording};
use crate::store::Store;

/// What merging the halves gave: (seconds, bytes, sha256, conversation figures).
type Merged = (f64, u64, String, rec_store::ConversationOutcome);

/// Largest directory listing read (a day of a busy device lists a few
/// thousand files, ~100 bytes of HTML each).
const MAX_LISTING_BYTES: u64 = 4 << 20;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The device answered 404 (the file is not there, yet or ever).
    #[error("HTTP 404 Not Found for {url}")]
    NotFound { url: String },
    /// Neither a name template nor the day listing found both G.729 halves.
    #[error("G.729 halves of {stem} not found (tried the name templates and the day listing)")]
    HalvesNotFound { stem: String },
    /// The device answered another non-success status.
    #[error("HTTP {status} for {url}")]
    Status { url: String, status: u16 },
    /// Connecting, sending or reading the body failed (e.g. the connection dropped).
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    /// The device sent (or announced) more than we accept; the download was cut off.
    #[error("{url}: body larger than {limit} bytes ({what}); download cut off")]
    TooLarge {
        url: String,
        limit: u64,
        what: &'static str,
    },
    /// The device answered with a redirect, which is never followed.
    #[error("{url}: redirect refused (HTTP {status} to {location:?})")]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    /// The download did not complete within `download_timeout_seconds`.
    #[error("{url}: download not complete after {seconds} s ([recordings] download_timeout_seconds); cut off")]
    Deadline { url: String, seconds: u64 },
    /// The path is unsafe or a file could not be written.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The G.711 file is not a playable WAV.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The G.729 halves could not be merged (garbage, not G.729, …); the originals are kept.
    #[cfg(feature = "g729")]
    #[error("merging G.729 halves: {0}")]
    Merge(#[from] super::merge::MergeError),
    /// The finished files could not be put into the recordings store.
    #[error("storing the recording: {0}")]
    Store(#[from] StorageError),
    /// Hashing the merged file failed.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The device is not registered (its pushes are held, or it was
    /// removed): its recorder is never asked.
    #[error("device {0:?} is not registered: its recorder is not asked")]
    Unregistered(String),
    /// The device has no recorder address in the configuration.
    #[error(
        "no recorder address for device {0:?} (set recorder_url or addr in its [[device]] entry)"
    )]
    NoRecorder(String),
    /// A RecCodec we do not know.
    #[error("unsupported recording codec {0:?}")]
    Codec(String),
    /// A G.729 recording, but the codec was left out of this build.
    #[error("G.729 recording but callvault was built without the g729 feature")]
    NoG729,
    /// A blocking task (validation, merge) panicked.
    #[error("background task failed: {0}")]
    Join(String),
}

impl FetchError {
    /// A 404 class error: counts towards `missing`.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            FetchError::NotFound { .. } | FetchError::HalvesNotFound { .. }
        )
    }

    /// Retrying cannot help: give up at once.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            FetchError::NoRecorder(_)
                | FetchError::Unregistered(_)
                | FetchError::Codec(_)
                | FetchError::NoG729
                | FetchError::TooLarge { .. }
                | FetchError::Archive(ArchiveError::Unsafe { .. } | ArchiveError::NotRelative(_))
        )
    }
}

/// Builds the HTTP client used for all devices (rustls, timeouts, no
/// redirects: a recorder's `Location` could name any host we can reach).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("callvault/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The recorder base URL of `device` (ends with `/`). Only a registered
/// device's recorder is ever asked: the fetcher sends requests to addresses
/// that pushes name, and an unregistered sender must not be able to point
/// it anywhere (README "Who may push"). A device known only by its IP is
/// fetched from that IP in the lab setting `accept_unknown_devices`.
pub fn recorder_base(
    cfg: &Config,
    registry: &Registry,
    device: &str,
) -> Result<String, FetchError> {
    if let Some(d) = registry.device(device) {
        return d
            .recorder_base()
            .ok_or_else(|| FetchError::NoRecorder(device.to_string()));
    }
    if !cfg.ingest.accept_unknown_devices {
        return Err(FetchError::Unregistered(device.to_string()));
    }
    match device.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Ok(format!("http://{ip}/mcc/Recorder/")),
        Ok(std::net::IpAddr::V6(ip)) => Ok(format!("http://[{ip}]/mcc/Recorder/")),
        Err(_) => Err(FetchError::NoRecorder(device.to_string())),
    }
}

/// Why the fetcher could not be set up: an invalid `[recordings]`
/// configuration (the only failure; found at start, before any attempt).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `[recordings] layout` is neither `mono` nor `stereo`.
    #[cfg(feature = "g729")]
    #[error("[recordings] layout: {0}")]
    Layout(#[source] super::merge::MergeError),
    /// `[recordings] store` / `[recordings.s3]` do not make a usable store.
    #[error(transparent)]
    Store(StorageError),
}

/// Everything one attempt needs.
pub struct FetchCtx {
    pub cfg: Arc<Config>,
    pub registry: Arc<Registry>,
    pub client: reqwest::Client,
    /// Where files are downloaded and merged (the store's local archive).
    pub archive: Archive,
    /// Where finished recordings go.
    pub store: RecordingStore,
    #[cfg(feature = "g729")]
    pub layout: super::merge::Layout,
}

impl FetchCtx {
    pub fn new(cfg: Arc<Config>, registry: Arc<Registry>) -> Result<FetchCtx, SetupError> {
        #[cfg(feature = "g729")]
        let layout = cfg
            .recordings
            .layout
            .parse::<super::merge::Layout>()
            .map_err(SetupError::Layout)?;
        let store = RecordingStore::from_config(&cfg).map_err(SetupError::Store)?;
        Ok(FetchCtx {
            archive: store.local().clone(),
            store,
            client: client(),
            cfg,
            registry,
            #[cfg(feature = "g729")]
            layout,
        })
    }

    /// One attempt at `rec`: download, validate / merge, archive.
    pub async fn fetch(&self, rec: &Recording) -> Result<Archived, FetchError> {
        let base = recorder_base(&self.cfg, &self.registry, &rec.device)?;
        // Re-check the CDR text before it touches a URL or a path.
        let file_name = rec.path.rsplit('/').next().unwrap_or(&rec.path);
        self.archive.relative(rec.id, &rec.path, file_name)?;
        match rec.codec.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("G729") => self.fetch_g729(rec, &base).await,
            Some("PCMU" | "PCMA") | None => self.fetch_wav(rec, &base, file_name).await,
            Some(other) => Err(FetchError::Codec(other.to_string())),
        }
    }

    async fn fetch_wav(
        &self,
        rec: &Recording,
        base: &str,
        name: &str,
    ) -> Result<Archived, FetchError> {
        let rel = self.archive.relative(rec.id, &rec.path, name)?;
        let url = format!("{base}{}", rec.path);
        let file = self
            .download(&rec.device, &url, self.archive.resolve(&rel)?)
            .await?;
        let tmp = file.tmp_path().to_path_buf();
        let (info, sides) = tokio::task::spawn_blocking(move || wav::validate_and_listen(&tmp))
            .await
            .map_err(|e| FetchError::Join(e.to_string()))??;
        // A stereo WAV's channels are the two sides, left = send
        // (docs/recordings.md "Conversation figures"); a mono one has none.
        let send_side = self.cfg.send_side(&rec.device);
        let conversation =
            sides.map(|(left, right)| super::conversation::of_sides(&left, &right, send_side));
        let (bytes, sha256) = file.commit().await?;
        self.store.publish(std::slice::from_ref(&rel)).await?;
        Ok(Archived {
            file: rel,
            originals: Vec::new(),
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            duration_seconds: info.duration_seconds,
            sha256,
            conversation,
        })
    }

    /// Locates, downloads and keeps both halves, then merges them.
    async fn fetch_g729(&self, rec: &Recording, base: &str) -> Result<Archived, FetchError> {
        let stem = archive::stem_of(&rec.path).to_string();
        let dir_url = match rec.path.rsplit_once('/') {
            Some((day, _)) => format!("{base}{day}/"),
            None => base.to_string(),
        };
        let (send, recv) = self.locate_halves(rec, &dir_url, &stem).await?;
        let mut originals = Vec::new();
        let mut paths = Vec::new();
        for (name, file) in [send, recv] {
            let rel = self.archive.relative(rec.id, &rec.path, &name)?;
            let abs = self.archive.resolve(&rel)?;
            file.commit().await?;
            originals.push(rel);
            paths.push(abs);
        }
        let rel = self
            .archive
            .relative(rec.id, &rec.path, &format!("{stem}.wav"))?;
        let out = self.archive.resolve(&rel)?;
        let send_side = self.cfg.send_side(&rec.device);
        let (duration_seconds, bytes, sha256, conversation) =
            self.merge_halves(paths, out, send_side).await?;
        let mut keys = originals.clone();
        keys.push(rel.clone());
        self.store.publish(&keys).await?;
        Ok(Archived {
            file: rel,
            originals,
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            duration_seconds,
            sha256,
            conversation: Some(conversation),
        })
    }

    #[cfg(not(feature = "g729"))]
    async fn merge_halves(
        &self,
        _halves: Vec<PathBuf>,
        _out: PathBuf,
        _send_side: SendSide,
    ) -> Result<Merged, FetchError> {
        Err(FetchError::NoG729)
    }

    /// Merges the kept halves into `out` (atomically), computing the
    /// conversation figures in the same decode; (seconds, bytes, sha256,
    /// figures or why none).
    #[cfg(feature = "g729")]
    async fn merge_halves(
        &self,
        halves: Vec<PathBuf>,
        out: PathBuf,
        send_side: SendSide,
    ) -> Result<Merged, FetchError> {
        let (layout, max_bytes) = (self.layout, self.cfg.recordings.max_bytes);
        tokio::task::spawn_blocking(move || {
            let [send, recv] = <[PathBuf; 2]>::try_from(halves)
                .map_err(|_| FetchError::Join("two halves".into()))?;
            let stats = super::merge::merge_files_within(&send, &recv, &out, layout, max_bytes)?;
            let (bytes, sha) = archive::hash_file(&out).map_err(|source| FetchError::Read {
                path: out.clone(),
                source,
            })?;
            let conversation =
                super::conversation::of_sides(&stats.speech_send, &stats.speech_recv, send_side);
            Ok((stats.duration_secs, bytes, sha, conversation))
        })
        .await
        .map_err(|e| FetchError::Join(e.to_string()))?
    }

    /// Downloads both halves (uncommitted): name templates first, then the listing.
    async fn locate_halves(
        &self,
        rec: &Recording,
        dir_url: &str,
        stem: &str,
    ) -> Result<((String, AtomicFile), (String, AtomicFile)), FetchError> {
        for (s, r) in locate::template_names(&self.cfg.recordings.g729_templates, stem) {
            match self.download_pair(rec, dir_url, &s, &r).await {
                Err(e) if e.is_not_found() => continue,
                other => return other,
            }
        }
        let html = match self.get_text(&rec.device, dir_url).await {
            Err(e) if e.is_not_found() => {
                return Err(FetchError::HalvesNotFound { stem: stem.into() })
            }
            other => other?,
        };
        // Parsing is linear, but a 4 MiB page is still milliseconds of CPU:
        // not on the threads that serve pushes.
        let names = tokio::task::spawn_blocking(move || locate::listing_names(&html))
            .await
            .map_err(|e| FetchError::Join(e.to_string()))?;
        let (s, r) = locate::halves_in_listing(&names, stem)
            .ok_or_else(|| FetchError::HalvesNotFound { stem: stem.into() })?;
        tracing::info!(send = %s, recv = %r, "G.729 halves found in the day listing");
        self.download_pair(rec, dir_url, &s, &r).await
    }

    async fn download_pair(
        &self,
        rec: &Recording,
        dir_url: &str,
        send: &str,
        recv: &str,
    ) -> Result<((String, AtomicFile), (String, AtomicFile)), FetchError> {
        let mut out = Vec::with_capacity(2);
        for name in [send, recv] {
            let rel = self.archive.relative(rec.id, &rec.path, name)?;
            let file = self
                .download(
                    &rec.device,
                    &format!("{dir_url}{name}"),
                    self.archive.resolve(&rel)?,
                )
                .await?;
            out.push((name.to_string(), file));
        }
        let recv = out.pop().ok_or_else(|| FetchError::Join("pair".into()))?;
        let send = out.pop().ok_or_else(|| FetchError::Join("pair".into()))?;
        Ok((send, recv))
    }

    fn request(&self, device: &str, url: &str) -> reqwest::RequestBuilder {
        let rb = self.client.get(url);
        match self
            .cfg
            .device(device)
            .and_then(|d| d.recorder_user.as_deref())
        {
            Some(user) => {
                let pw = self
                    .cfg
                    .device(device)
                    .and_then(|d| d.recorder_password.clone());
                rb.basic_auth(user, pw)
            }
            None => rb,
        }
    }

    async fn send(&self, device: &str, url: &str) -> Result<reqwest::Response, FetchError> {
        let http = |source| FetchError::Http {
            url: url.to_string(),
            source,
        };
        let resp = self.request(device, url).send().await.map_err(http)?;
        match resp.status().as_u16() {
            200..=299 => Ok(resp),
            404 => Err(FetchError::NotFound {
                url: url.to_string(),
            }),
            status @ 300..=399 => Err(FetchError::Redirect {
                url: url.to_string(),
                status,
                location: resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .map(|v| {
                        String::from_utf8_lossy(v.as_bytes())
                            .chars()
                            .take(200)
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            status => Err(FetchError::Status {
                url: url.to_string(),
                status,
            }),
        }
    }

    /// `fut` (one GET, headers to last byte), failed past the overall
    /// deadline. Dropping the future drops its [`AtomicFile`], which removes
    /// the partial file.
    async fn within_deadline<T>(
        &self,
        url: &str,
        fut: impl Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        let seconds = self.cfg.recordings.download_timeout_seconds;
        tokio::time::timeout(Duration::from_secs(seconds), fut)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Deadline {
                    url: url.to_string(),
                    seconds,
                })
            })
    }

    /// Streams `url` into a synced, not yet committed temporary file for
    /// `dest`, within the deadline and `max_bytes`.
    async fn download(
        &self,
        device: &str,
        url: &str,
        dest: PathBuf,
    ) -> Result<AtomicFile, FetchError> {
        let limit = Limit {
            bytes: self.cfg.recordings.max_bytes,
            what: "[recordings] max_bytes",
        };
        self.within_deadline(url, async {
            let resp = self.send(device, url).await?;
            limit.check_announced(url, &resp)?;
            let mut file = AtomicFile::create(dest).await?;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| FetchError::Http {
                    url: url.to_string(),
                    source,
                })?;
                limit.check(url, file.bytes() + chunk.len() as u64)?;
                file.write(&chunk).await?;
            }
            file.sync().await?;
            Ok(file)
        })
        .await
    }

    async fn get_text(&self, device: &str, url: &str) -> Result<String, FetchError> {
        let limit = Limit {
            bytes: MAX_LISTING_BYTES,
            what: "directory listing limit",
        };
        self.within_deadline(url, async {
            let resp = self.send(device, url).await?;
            limit.check_announced(url, &resp)?;
            let mut body = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| FetchError::Http {
                    url: url.to_string(),
                    source,
                })?;
                limit.check(url, (buf.len() + chunk.len()) as u64)?;
                buf.extend_from_slice(&chunk);
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        })
        .await
    }
}

/// A size limit on one response body.
#[derive(Clone, Copy)]
struct Limit {
    bytes: u64,
    what: &'static str,
}

impl Limit {
    fn check(&self, url: &str, bytes: u64) -> Result<(), FetchError> {
        if bytes > self.bytes {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: self.bytes,
                what: self.what,
            });
        }
        Ok(())
    }

    /// Refuses a body whose Content-Length is already over the limit,
    /// before a file is created.
    fn check_announced(&self, url: &str, resp: &reqwest::Response) -> Result<(), FetchError> {
        self.check(url, resp.content_length().unwrap_or(0))
    }
}

/// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)` capped at
/// `max`, with "equal jitter" (half fixed, half random) so devices that
/// failed together do not retry together.
pub fn backoff_ms(base: u64, max: u64, attempts: i64) -> u64 {
    let shift = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
    let exp = base.saturating_mul(1u64 << shift).min(max.max(1));
    let half = exp / 2;
    half + rand::random_range(0..=exp - half)
}

/// Records the outcome of one attempt; returns the new status.
pub async fn record_outcome(
    store: &Store,
    cfg: &Config,
    rec: &Recording,
    res: Result<Archived, FetchError>,
) -> crate::store::Result<&'static str> {
    match res {
        Ok(a) => {
            tracing::info!(bytes = a.bytes, duration = a.duration_seconds, file = %a.file, "recording archived");
            metrics::counter!("callvault_recordings_fetch_total", "outcome" => "done").increment(1);
            metrics::counter!("callvault_recordings_bytes_total")
                .increment(u64::try_from(a.bytes).unwrap_or(0));
            let id = rec.id;
            store
                .writer
                .write(move |tx| rec_store::finish_done(tx, id, &a))
                .await?;
            Ok(rec_store::DONE)
        }
        Err(e) => {
            let give_up =
                e.is_permanent() || rec.attempts >= i64::from(cfg.recordings.max_attempts);
            let retry_at = (!give_up).then(|| {
                let delay = backoff_ms(
                    cfg.recordings.retry_base_ms,
                    cfg.recordings.retry_max_ms,
                    rec.attempts,
                );
                crate::store::now_stamp().1 + i64::try_from(delay).unwrap_or(i64::MAX / 2)
            });
            let (id, msg, nf) = (rec.id, e.to_string(), e.is_not_found());
            let status = store
                .writer
                .write(move |tx| rec_store::finish_attempt_failed(tx, id, &msg, nf, retry_at))
                .await?;
            let outcome = if status == rec_store::PENDING {
                "retry"
            } else {
                status
            };
            metrics::counter!("callvault_recordings_fetch_total", "outcome" => outcome)
                .increment(1);
            if retry_at.is_some() {
                tracing::warn!(error = %e, attempt = rec.attempts, "recording fetch failed; will retry");
            } else {
                tracing::error!(error = %e, attempt = rec.attempts, status, "recording fetch gave up");
            }
            Ok(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ms_doubles_with_jitter_and_caps() {
        for _ in 0..50 {
            let b1 = backoff_ms(1000, 60_000, 1);
            assert!((500..=1000).contains(&b1), "{b1}");
            let b3 = backoff_ms(1000, 60_000, 3);
            assert!((2000..=4000).contains(&b3), "{b3}");
            let big = backoff_ms(1000, 60_000, 30);
            assert!((30_000..=60_000).contains(&big), "{big}");
        }
        assert_eq!(backoff_ms(0, 0, 5), 0);
    }

    #[test]
    fn recorder_base_only_for_registered_devices_unless_in_a_lab() {
        let mut cfg = Config::default();
        cfg.devices.push(crate::config::DeviceConfig {
            name: "hq".into(),
            addr: Some("10.0.0.5".into()),
            ..Default::default()
        });
        let reg = Registry::new(&cfg);
        assert_eq!(
            recorder_base(&cfg, &reg, "hq").unwrap(),
            "http://10.0.0.5/mcc/Recorder/"
        );
        assert!(matches!(
            recorder_base(&cfg, &reg, "10.0.0.9"),
            Err(FetchError::Unregistered(_))
        ));
        cfg.ingest.accept_unknown_devices = true;
        assert_eq!(
            recorder_base(&cfg, &reg, "10.0.0.9").unwrap(),
            "http://10.0.0.9/mcc/Recorder/"
        );
        assert_eq!(
            recorder_base(&cfg, &reg, "::1").unwrap(),
            "http://[::1]/mcc/Recorder/"
        );
        assert!(matches!(
            recorder_base(&cfg, &reg, "branch"),
            Err(FetchError::NoRecorder(_))
        ));
    }
}
