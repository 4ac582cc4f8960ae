//! Merge the *send* and *recv* G.729 halves of a call into one 8 kHz 16-bit
//! WAV (docs/recordings.md).
//!
//! Each half is decoded on its own thread (G.729 decoding is the cost; the
//! halves are independent) and handed to the writer in chunks over bounded
//! channels, so memory stays flat however long the call. The shorter half is
//! padded with silence: nothing of the longer one is ever cut.
//!
//! Each decoder thread also runs the voice activity detector of its side
//! ([`super::vad`]) on the frames it decodes, so the conversation figures
//! cost no second decode (docs/recordings.md "Conversation figures").

use super::g729::{DecodeStats, G729Error, PcmFrames, FRAME_SAMPLES, SAMPLE_RATE};
use super::vad::{SideSpeech, Vad, VadError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Frames per chunk sent from a decoder thread: 1 s of audio, so channel
/// traffic is negligible next to decoding.
const CHUNK_FRAMES: usize = 100;
/// Chunks in flight per half: bounds memory at ~4 × 16 KB per half.
const CHANNEL_CHUNKS: usize = 4;
/// Output buffer, so the WAV is written in large blocks.
const WRITE_BUFFER: usize = 64 * 1024;

/// How the two halves are laid out in the WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One channel: saturating sum of send and recv.
    #[default]
    Mono,
    /// Two channels: left = send, right = recv.
    Stereo,
}

impl Layout {
    fn channels(self) -> u16 {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }
}

impl FromStr for Layout {
    type Err = MergeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mono" => Ok(Layout::Mono),
            "stereo" => Ok(Layout::Stereo),
            _ => Err(MergeError::BadLayout(s.to_string())),
        }
    }
}

/// What a merge produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeStats {
    /// Frames decoded from the send half.
    pub frames_send: u64,
    /// Frames decoded from the recv half.
    pub frames_recv: u64,
    /// Samples per channel written (the longer half).
    pub samples_out: u64,
    /// Length of the WAV in seconds.
    pub duration_secs: f64,
    /// Bytes of a trailing partial frame dropped from the send half.
    pub partial_bytes_dropped_send: u64,
    /// Bytes of a trailing partial frame dropped from the recv half.
    pub partial_bytes_dropped_recv: u64,
    /// The speech of the send half (or why there is no list).
    pub speech_send: SideSpeech,
    /// The speech of the recv half.
    pub speech_recv: SideSpeech,
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The send half is unreadable or not G.729.
    #[error("send half: {0}")]
    Send(#[source] G729Error),
    /// The recv half is unreadable or not G.729.
    #[error("recv half: {0}")]
    Recv(#[source] G729Error),
    /// Writing the WAV failed.
    #[error("writing WAV: {0}")]
    Wav(#[from] hound::Error),
    /// Opening, syncing or renaming a file failed.
    #[error("{path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The call is longer than a WAV file can hold (4 GiB of data).
    #[error("call too long for a WAV file")]
    TooLong,
    /// The merged WAV would be larger than the configured limit.
    #[error("merged WAV larger than {limit} bytes ([recordings] max_bytes)")]
    TooLarge { limit: u64 },
    /// A decoder thread panicked (a bug in the codec, not bad input).
    #[error("G.729 decoder thread panicked")]
    DecoderPanicked,
    /// An unknown layout name.
    #[error("unknown layout {0:?} (expected mono or stereo)")]
    BadLayout(String),
}

/// Chunks of decoded samples (or the error that ended the half).
type Chunk = Result<Vec<i16>, G729Error>;

/// Decode `send` and `recv` in parallel and write the merged WAV to `out`.
pub fn merge<RS: Read + Send, RR: Read + Send, W: Write + Seek>(
    send: RS,
    recv: RR,
    out: W,
    layout: Layout,
) -> Result<MergeStats, MergeError> {
    merge_within(send, recv, out, layout, u64::MAX)
}

/// [`merge`], failing with [`MergeError::TooLarge`] before the WAV grows
/// beyond `max_bytes` (halves of a few MB can decode to GBs: G.729 is
/// 8 kbit/s, the WAV 128 kbit/s per channel).
pub fn merge_within<RS: Read + Send, RR: Read + Send, W: Write + Seek>(
    send: RS,
    recv: RR,
    out: W,
    layout: Layout,
    max_bytes: u64,
) -> Result<MergeStats, MergeError> {
    std::thread::scope(|s| {
        let (send_tx, send_rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
        let (recv_tx, recv_rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
        let parent = tracing::Span::current();
        let (p1, p2) = (parent.clone(), parent);
        let send_job = s.spawn(move || {
            let _span = tracing::info_span!(parent: &p1, "g729_half", side = "send").entered();
            decode_half(send, &send_tx)
        });
        let recv_job = s.spawn(move || {
            let _span = tracing::info_span!(parent: &p2, "g729_half", side = "recv").entered();
            decode_half(recv, &recv_tx)
        });
        // The receivers are moved in and dropped on return, so a write error
        // unblocks the decoder threads (their next send fails) before joining.
        let written = write_wav(
            Half::new(send_rx),
            Half::new(recv_rx),
            out,
            layout,
            max_bytes,
        );
        let (send_stats, speech_send) = send_job.join().map_err(|_| MergeError::DecoderPanicked)?;
        let (recv_stats, speech_recv) = recv_job.join().map_err(|_| MergeError::DecoderPanicked)?;
        let samples_out = written?;
        Ok(MergeStats {
            frames_send: send_stats.frames,
            frames_recv: recv_stats.frames,
            samples_out,
            duration_secs: samples_out as f64 / f64::from(SAMPLE_RATE),
            partial_bytes_dropped_send: send_stats.partial_bytes_dropped,
            partial_bytes_dropped_recv: recv_stats.partial_bytes_dropped,
            speech_send,
            speech_recv,
        })
    })
}

/// Merge two half files into `out`, atomically: the WAV is written to a
/// temporary file beside `out`, fsynced and renamed. On error nothing is left
/// at `out` (an existing file there is left untouched).
pub fn merge_files(
    send: &Path,
    recv: &Path,
    out: &Path,
    layout: Layout,
) -> Result<MergeStats, MergeError> {
    merge_files_within(send, recv, out, layout, u64::MAX)
}

/// [`merge_files`] with [`merge_within`]'s size limit (nothing is left at
/// `out` when it is hit).
pub fn merge_files_within(
    send: &Path,
    recv: &Path,
    out: &Path,
    layout: Layout,
    max_bytes: u64,
) -> Result<MergeStats, MergeError> {
    let _span = tracing::info_span!("merge_g729", out = %out.display(), ?layout).entered();
    let open = |p: &Path| File::open(p).map_err(|source| file_err(p, source));
    let (send_file, recv_file) = (open(send)?, open(recv)?);
    let mut tmp = TempFile::create(out)?;
    let stats = merge_within(send_file, recv_file, &mut tmp.file, layout, max_bytes)?;
    tmp.commit(out)?;
    tracing::info!(
        duration_secs = stats.duration_secs,
        "merged G.729 recording"
    );
    Ok(stats)
}

/// Decoder thread body: decode one half into chunks until done or until the
/// writer hangs up, running the half's voice activity detector on each
/// frame. Returns the half's counters and speech.
fn decode_half<R: Read>(input: R, tx: &SyncSender<Chunk>) -> (DecodeStats, SideSpeech) {
    let cut = |e: &dyn std::fmt::Display| Err(VadError::Undecodable(e.to_string()));
    let mut frames = match PcmFrames::new(input) {
        Ok(frames) => frames,
        Err(e) => {
            let speech = cut(&e);
            // If the writer is gone there is nobody to tell.
            let _ = tx.send(Err(e));
            return (DecodeStats::default(), speech);
        }
    };
    const CHUNK_SAMPLES: usize = CHUNK_FRAMES * FRAME_SAMPLES;
    let mut chunk = Vec::with_capacity(CHUNK_SAMPLES);
    let mut vad = Vad::new();
    for frame in frames.by_ref() {
        match frame {
            Ok(pcm) => {
                vad.push(&pcm);
                chunk.extend_from_slice(&pcm);
            }
            Err(e) => {
                let speech = cut(&e);
                let _ = tx.send(Err(e));
                return (frames.stats(), speech);
            }
        }
        if chunk.len() >= CHUNK_SAMPLES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_SAMPLES));
            if tx.send(Ok(full)).is_err() {
                return (frames.stats(), cut(&"the merge stopped"));
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
    (frames.stats(), vad.finish())
}

/// The speech of each half, decoded in parallel without writing a WAV
/// (`callvault recordings analyze` on the halves the archive kept).
pub fn speech_of_halves<RS: Read + Send, RR: Read + Send>(
    send: RS,
    recv: RR,
) -> Result<(SideSpeech, SideSpeech), MergeError> {
    fn listen<R: Read>(input: R) -> SideSpeech {
        let frames = PcmFrames::new(input).map_err(|e| VadError::Undecodable(e.to_string()))?;
        let mut vad = Vad::new();
        for frame in frames {
            vad.push(&frame.map_err(|e| VadError::Undecodable(e.to_string()))?);
        }
        vad.finish()
    }
    std::thread::scope(|s| {
        let send_job = s.spawn(move || listen(send));
        let recv_speech = listen(recv);
        let send_speech = send_job.join().map_err(|_| MergeError::DecoderPanicked)?;
        Ok((send_speech, recv_speech))
    })
}

/// The writer's view of one half: the current chunk and how far into it.
struct Half {
    rx: Receiver<Chunk>,
    buf: Vec<i16>,
    pos: usize,
    done: bool,
}

impl Half {
    fn new(rx: Receiver<Chunk>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Samples ready in the current chunk; fetches the next chunk when the
    /// current one is used up. 0 means the half has ended.
    fn available(&mut self) -> Result<usize, G729Error> {
        while self.pos == self.buf.len() && !self.done {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                Err(mpsc::RecvError) => self.done = true,
            }
        }
        Ok(self.buf.len() - self.pos)
    }

    /// The next `n` samples, or silence once the half has ended.
    fn take(&mut self, n: usize) -> impl Iterator<Item = i16> + '_ {
        let have = (self.buf.len() - self.pos).min(n);
        let start = self.pos;
        self.pos += have;
        let samples = &self.buf[start..start + have];
        samples
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, n - have))
    }
}

/// Pull chunks from both halves and write them as WAV; returns samples per
/// channel written.
fn write_wav<W: Write + Seek>(
    mut send: Half,
    mut recv: Half,
    out: W,
    layout: Layout,
    max_bytes: u64,
) -> Result<u64, MergeError> {
    let spec = hound::WavSpec {
        channels: layout.channels(),
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let max_samples = u64::from(u32::MAX - 64) / 2 / u64::from(layout.channels());
    let frame_bytes = 2 * u64::from(layout.channels());
    // The 44-byte header counts towards the file size.
    let max_by_limit = max_bytes.saturating_sub(44) / frame_bytes;
    let mut wav = hound::WavWriter::new(BufWriter::with_capacity(WRITE_BUFFER, out), spec)?;
    let mut written: u64 = 0;
    loop {
        let a = send.available().map_err(MergeError::Send)?;
        let b = recv.available().map_err(MergeError::Recv)?;
        // Step by what both halves have ready; once one has ended, by what
        // the other has (the ended one then yields silence).
        let n = match (a, b) {
            (0, 0) => break,
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        };
        written += n as u64;
        if written > max_by_limit {
            return Err(MergeError::TooLarge { limit: max_bytes });
        }
        if written > max_samples {
            return Err(MergeError::TooLong);
        }
        let len =
            u32::try_from(n * usize::from(layout.channels())).map_err(|_| MergeError::TooLong)?;
        let mut block = wav.get_i16_writer(len);
        let pairs = send.take(n).zip(recv.take(n));
        match layout {
            Layout::Mono => pairs.for_each(|(s, r)| block.write_sample(s.saturating_add(r))),
            Layout::Stereo => pairs.for_each(|(s, r)| {
                block.write_sample(s);
                block.write_sample(r);
            }),
        }
        block.flush()?;
    }
    wav.finalize()?;
    Ok(written)
}

fn file_err(path: &Path, source: io::Error) -> MergeError {
    MergeError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file beside the final output, removed unless committed (also
/// when a panic unwinds through the merge).
struct TempFile {
    file: File,
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    fn create(out: &Path) -> Result<Self, MergeError> {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let pid = std::process::id();
        let mut last_err = None;
        // A unique name without extra deps: pid plus a counter, create_new so
        // two concurrent merges never share a temp file.
        for attempt in 0..100u32 {
            let path = out.with_file_name(format!(".{name}.{pid}.{attempt}.tmp"));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Self {
                        file,
                        path,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(file_err(&path, e)),
            }
        }
        let e = last_err.unwrap_or_else(|| io::Error::other("no free temp name"));
        Err(file_err(out, e))
    }

    /// fsync the data, rename over `out`, then fsync the directory so the
    /// rename itself survives a crash.
    fn commit(mut self, out: &Path) -> Result<(), MergeError> {
        self.file.sync_all().map_err(|e| file_err(&self.path, e))?;
        fs::rename(&self.path, out).map_err(|e| file_err(out, e))?;
        self.committed = true;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: not every platform/filesystem can fsync a directory.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn layout_parses_names() {
        assert_eq!("mono".parse::<Layout>().unwrap(), Layout::Mono);
        assert_eq!("Stereo".parse::<Layout>().unwrap(), Layout::Stereo);
        assert!(matches!(
            "5.1".parse::<Layout>(),
            Err(MergeError::BadLayout(_))
        ));
    }

    #[test]
    fn merge_reports_which_half_is_bad() {
        let good = crate::recordings::g729::encode_pcm(&[0; 160]);
        let mut out = Cursor::new(Vec::new());
        let err = merge(&good[..], &b""[..], &mut out, Layout::Mono).unwrap_err();
        assert!(matches!(err, MergeError::Recv(G729Error::Empty)));
    }

    #[test]
    fn merge_mono_saturates_instead_of_wrapping() {
        // A loud square wave in both halves: the sum must clip, not wrap.
        let loud: Vec<i16> = (0..1600)
            .map(|i| if i % 40 < 20 { 30000 } else { -30000 })
            .collect();
        let bits = crate::recordings::g729::encode_pcm(&loud);
        let half: Vec<i16> = PcmFrames::new(&bits[..])
            .unwrap()
            .flat_map(|f| f.unwrap())
            .collect();
        let mut out = Cursor::new(Vec::new());
        merge(&bits[..], &bits[..], &mut out, Layout::Mono).unwrap();
        out.set_position(0);
        let mixed: Vec<i16> = hound::WavReader::new(out)
            .unwrap()
            .samples()
            .map(|s| s.unwrap())
            .collect();
        let want: Vec<i16> = half.iter().map(|&s| s.saturating_add(s)).collect();
        assert_eq!(mixed, want);
        assert!(mixed.contains(&i16::MAX) && mixed.contains(&i16::MIN));
    }

    #[test]
    fn merge_pads_shorter_half_with_silence() {
        let long = crate::recordings::g729::encode_pcm(&[0; 800]);
        let short = crate::recordings::g729::encode_pcm(&[0; 160]);
        let mut out = Cursor::new(Vec::new());
        let stats = merge(&short[..], &long[..], &mut out, Layout::Stereo).unwrap();
        assert_eq!(
            (stats.frames_send, stats.frames_recv, stats.samples_out),
            (2, 10, 800)
        );
        out.set_position(0);
        let wav = hound::WavReader::new(out).unwrap();
        assert_eq!(wav.spec().channels, 2);
        assert_eq!(wav.len(), 1600);
    }

    #[test]
    fn merge_within_stops_at_the_byte_limit() {
        // 800 samples mono = 44 + 1600 bytes of WAV.
        let half = crate::recordings::g729::encode_pcm(&[0; 800]);
        let mut out = Cursor::new(Vec::new());
        let stats = merge_within(&half[..], &half[..], &mut out, Layout::Mono, 1644).unwrap();
        assert_eq!(stats.samples_out, 800);
        assert_eq!(out.get_ref().len(), 1644, "exactly at the limit is fine");
        let mut out = Cursor::new(Vec::new());
        let err = merge_within(&half[..], &half[..], &mut out, Layout::Mono, 1643).unwrap_err();
        assert!(matches!(err, MergeError::TooLarge { limit: 1643 }), "{err}");
        let err = merge_within(&half[..], &half[..], &mut out, Layout::Stereo, 2000).unwrap_err();
        assert!(matches!(err, MergeError::TooLarge { .. }), "stereo doubles");
    }
    /// Whatever bytes a device serves as a half (random bits, a real
    /// bitstream cut or flipped, an HTML page, a WAV header), the merge
    /// answers with a WAV or an error, never a panic: every 10 bytes are a
    /// G.729 frame the decoder must take, however unlikely its bits.
    #[test]
    fn merge_takes_any_bytes_without_panicking() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut next = move || rng.random::<u64>();
        let speech: Vec<i16> = (0..16_000)
            .map(|i| ((i as f64 * 0.05).sin() * 12_000.0) as i16)
            .collect();
        let real = crate::recordings::g729::encode_pcm(&speech);
        let (mut merged, mut refused) = (0, 0);
        for case in 0..200 {
            let half: Vec<u8> = match case % 5 {
                0 => (0..(next() % 4_000) as usize)
                    .map(|_| next() as u8)
                    .collect(),
                1 => {
                    let mut b = real.clone();
                    for _ in 0..1 + next() % 50 {
                        let i = (next() % b.len() as u64) as usize;
                        b[i] ^= 1 << (next() % 8);
                    }
                    b
                }
                2 => real[..(next() % real.len() as u64) as usize].to_vec(),
                3 => b"<html><body>404 Not Found</body></html>".repeat(1 + (next() % 9) as usize),
                _ => {
                    let mut b = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
                    b.extend((0..(next() % 600) as usize).map(|_| next() as u8));
                    b
                }
            };
            let mut out = Cursor::new(Vec::new());
            match merge(&half[..], &real[..], &mut out, Layout::Mono) {
                Ok(stats) => {
                    merged += 1;
                    assert!(stats.samples_out >= speech.len() as u64, "case {case}");
                }
                Err(MergeError::DecoderPanicked) => panic!("case {case}: the decoder panicked"),
                Err(_) => refused += 1,
            }
        }
        assert!(
            merged > 50 && refused > 20,
            "merged {merged}, refused {refused}"
        );
    }
}
