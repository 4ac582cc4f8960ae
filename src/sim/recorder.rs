//! The simulated device's recorder (manual §4.9): an HTTP server serving
//! `/mcc/Recorder/{YYYYMMDD}/{file}` for a list of [`RecordingSpec`]s, like
//! the OM device's storage pages.
//!
//! * PCMU/PCMA calls: a 16-bit PCM 8 kHz mono WAV of `seconds` (a tone).
//! * G729 calls: two halves of raw G.729 frames, send (the agent) and recv
//!   (the customer), saying a [`Dialogue`](super::dialogue::Dialogue): the
//!   built-in one the path picks ([`Halves::for_spec`]: as long as the talk,
//!   recv a few frames shorter so merging must pad), or the halves a test
//!   gives ([`start_halves`]).
//! * `GET /mcc/Recorder/{YYYYMMDD}/`: an HTML listing of that day's files.
//!
//! Files are generated on request (deterministic), so a long simulation
//! costs no memory. [`Faults`] injects what real devices do: 404 while a file
//! is being finished, files that never appear, slow answers, connections
//! dropped mid-body, basic auth, and half names that only the listing shows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use tokio::sync::oneshot;

use super::dialogue::Halves;
use super::RecordingSpec;
use crate::model::check_recording_path;

const PREFIX: &str = "/mcc/Recorder/";

/// Faults to inject; the default serves everything at once, without auth.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer 404 to the first N requests of each file (still being written).
    pub not_found_first: u32,
    /// Answer 404 to every file and listing (the recording never appears).
    pub always_not_found: bool,
    /// Wait this long before answering each request.
    pub delay: Option<Duration>,
    /// Send half the body, then drop the connection, on the first N requests of each file.
    pub drop_mid_body_first: u32,
    /// Require this basic auth (the device's default storage login is user/user).
    pub basic_auth: Option<(String, String)>,
    /// Suffixes of the G.729 halves after the stem; default `_send.dat` / `_recv.dat`.
    /// Suffixes no name template knows make the halves reachable only via the listing.
    pub half_suffixes: Option<(String, String)>,
}

/// What one served file is.
#[derive(Debug, Clone)]
enum Kind {
    Wav { seconds: u32 },
    Send(Arc<Halves>),
    Recv(Arc<Halves>),
}

struct Shared {
    /// `YYYYMMDD/name` → what to serve there.
    files: HashMap<String, Kind>,
    faults: Faults,
    tries: Mutex<HashMap<String, u32>>,
}

/// A running recorder.
pub struct RecorderHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RecorderHandle {
    /// `http://{addr}/mcc/Recorder/`, for `[[device]] recorder_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    /// Requests seen for `YYYYMMDD/name`.
    pub fn requests(&self, path: &str) -> u32 {
        self.shared
            .tries
            .lock()
            .map(|t| t.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The files served for `spec`, as (`YYYYMMDD/name`, bytes).
pub fn files_for(spec: &RecordingSpec, faults: &Faults) -> Vec<(String, Vec<u8>)> {
    names_for(spec, None, faults)
        .into_iter()
        .map(|(path, kind)| (path, content(&kind)))
        .collect()
}

/// `halves` overrides what a G.729 spec's halves say.
fn names_for(
    spec: &RecordingSpec,
    halves: Option<Arc<Halves>>,
    faults: &Faults,
) -> Vec<(String, Kind)> {
    if spec.codec.eq_ignore_ascii_case("G729") {
        let stem = spec.path.strip_suffix(".wav").unwrap_or(&spec.path);
        let (s, r) = faults
            .half_suffixes
            .clone()
            .unwrap_or_else(|| ("_send.dat".into(), "_recv.dat".into()));
        let halves = halves.unwrap_or_else(|| Arc::new(Halves::for_spec(spec)));
        vec![
            (format!("{stem}{s}"), Kind::Send(Arc::clone(&halves))),
            (format!("{stem}{r}"), Kind::Recv(halves)),
        ]
    } else {
        vec![(
            spec.path.clone(),
            Kind::Wav {
                seconds: spec.seconds,
            },
        )]
    }
}

/// Made at each request, so a long simulation keeps no files in memory.
fn content(kind: &Kind) -> Vec<u8> {
    match kind {
        Kind::Wav { seconds } => tone_wav((*seconds).max(1).saturating_mul(8000)),
        Kind::Send(h) => h.send(),
        Kind::Recv(h) => h.recv(),
    }
}

/// 16-bit PCM 8 kHz mono: a 440 Hz tone with a slow swell.
fn tone_wav(samples: u32) -> Vec<u8> {
    let samples = samples as usize;
    let mut out = Vec::with_capacity(44 + samples * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples as u32 * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes(),
        [1, 0, 1, 0],
        8000u32.to_le_bytes(),
        16000u32.to_le_bytes(),
        [2, 0, 16, 0],
    ] {
        out.extend_from_slice(&v);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples as u32 * 2).to_le_bytes());
    for i in 0..samples {
        let t = i as f64 / 8000.0;
        let amp = 6000.0 * (0.6 + 0.4 * (t * 0.5 * std::f64::consts::TAU).sin());
        let s = (amp * (t * 440.0 * std::f64::consts::TAU).sin()) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Starts the recorder on `127.0.0.1:0`.
pub async fn start(specs: Vec<RecordingSpec>, faults: Faults) -> std::io::Result<RecorderHandle> {
    start_at("127.0.0.1:0", specs, faults).await
}

/// Starts the recorder on `bind` (`host:port`).
pub async fn start_at(
    bind: &str,
    specs: Vec<RecordingSpec>,
    faults: Faults,
) -> std::io::Result<RecorderHandle> {
    let calls = specs.into_iter().map(|s| (s, None)).collect();
    serve(bind, calls, faults).await
}

/// Starts the recorder on `127.0.0.1:0` serving G.729 calls whose halves
/// the caller made (speech at chosen offsets, a silent or noisy half,
/// halves of any length).
pub async fn start_halves(
    calls: Vec<(RecordingSpec, Halves)>,
    faults: Faults,
) -> std::io::Result<RecorderHandle> {
    let calls = calls
        .into_iter()
        .map(|(s, h)| (s, Some(Arc::new(h))))
        .collect();
    serve("127.0.0.1:0", calls, faults).await
}

async fn serve(
    bind: &str,
    calls: Vec<(RecordingSpec, Option<Arc<Halves>>)>,
    faults: Faults,
) -> std::io::Result<RecorderHandle> {
    let mut files = HashMap::new();
    for (spec, halves) in calls {
        if check_recording_path(&spec.path).is_err() {
            tracing::warn!(path = %spec.path, "simulated recorder skips an unsafe recording path");
            continue;
        }
        files.extend(names_for(&spec, halves, &faults));
    }
    let shared = Arc::new(Shared {
        files,
        faults,
        tries: Mutex::new(HashMap::new()),
    });
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "simulated recorder failed");
        }
    });
    Ok(RecorderHandle {
        addr,
        shared,
        stop,
        task,
    })
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    if let Some(d) = sh.faults.delay {
        tokio::time::sleep(d).await;
    }
    if let Some((user, pw)) = &sh.faults.basic_auth {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        );
        if req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(want.as_str())
        {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"Recorder\"")],
                "",
            )
                .into_response();
        }
    }
    let Some(rest) = req.uri().path().strip_prefix(PREFIX) else {
        return not_found();
    };
    let rest = rest.to_string();
    let tries = {
        let Ok(mut t) = sh.tries.lock() else {
            return not_found();
        };
        let n = t.entry(rest.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if sh.faults.always_not_found {
        return not_found();
    }
    let day = rest.trim_end_matches('/');
    if !day.contains('/') {
        return listing(&sh, day);
    }
    let Some(kind) = sh.files.get(&rest) else {
        return not_found();
    };
    if tries <= sh.faults.not_found_first {
        return not_found();
    }
    let bytes = content(kind);
    let len = bytes.len();
    let ctype = if matches!(kind, Kind::Wav { .. }) {
        "audio/wav"
    } else {
        "application/octet-stream"
    };
    if tries <= sh.faults.drop_mid_body_first {
        let half = Bytes::from(bytes).slice(..len / 2);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::other("simulated connection drop")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let len = len.to_string();
        return (
            [
                (header::CONTENT_TYPE, ctype),
                (header::CONTENT_LENGTH, len.as_str()),
            ],
            body,
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, ctype)], bytes).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body>404 Not Found</body></html>",
    )
        .into_response()
}

/// The day directory as the device's storage page shows it.
fn listing(sh: &Shared, day: &str) -> Response {
    let mut names: Vec<&str> = sh
        .files
        .keys()
        .filter_map(|k| k.strip_prefix(day).and_then(|r| r.strip_prefix('/')))
        .collect();
    if names.is_empty() {
        return not_found();
    }
    names.sort_unstable();
    let mut html = format!("<html><head><title>Index of {PREFIX}{day}/</title></head><body><h1>Recorder {day}</h1>\n<a href=\"../\">Parent Directory</a><br>\n");
    for n in names {
        html.push_str(&format!("<a href=\"{PREFIX}{day}/{n}\">{n}</a><br>\n"));
    }
    html.push_str("</body></html>\n");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codec: &str, seconds: u32) -> RecordingSpec {
        RecordingSpec {
            path: "20240108/200_201_20240108_090000_1_cd.wav".into(),
            codec: codec.into(),
            seconds,
        }
    }

    #[test]
    fn files_for_g711_is_a_wav_of_the_length() {
        let files = files_for(&spec("PCMU", 3), &Faults::default());
        assert_eq!(files.len(), 1);
        let r = hound::WavReader::new(std::io::Cursor::new(&files[0].1)).unwrap();
        assert_eq!((r.spec().sample_rate, r.duration()), (8000, 24_000));
    }

    #[test]
    fn files_for_g729_gives_the_dialogues_two_halves() {
        let s = spec("G729", 2);
        let files = files_for(&s, &Faults::default());
        assert_eq!(files[0].0, "20240108/200_201_20240108_090000_1_cd_send.dat");
        assert_eq!(files[1].0, "20240108/200_201_20240108_090000_1_cd_recv.dat");
        let h = Halves::for_spec(&s);
        assert_eq!((h.send_frames, h.recv_frames), (200, 193));
        assert_eq!(files[0].1, h.send());
        assert_eq!(files[1].1, h.recv());
        assert_eq!(files[0].1.len(), 2000);
        assert_eq!(files[1].1.len(), 1930);
    }
}
