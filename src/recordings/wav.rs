//! Validation of the WAV files the device makes for G.711 calls (docs/recordings.md).
//!
//! PCM WAVs are read fully with hound (a truncated data chunk fails). hound
//! does not know the G.711 format tags (6 = A-law, 7 = µ-law) that a device
//! may write, so those are checked here from the RIFF chunks instead: a
//! `fmt ` chunk with a sane rate and a `data` chunk whose bytes are present.

use std::io::Read;
use std::path::Path;

use super::vad::{SideSpeech, Vad};

/// Why a file is not a playable WAV.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// hound refused the file (not RIFF/WAVE, truncated samples, …).
    #[error("not a valid WAV file: {0}")]
    Hound(#[from] hound::Error),
    /// A G.711 WAV whose chunks are inconsistent.
    #[error("not a valid G.711 WAV file: {0}")]
    G711(&'static str),
    /// Reading the file failed.
    #[error("reading WAV: {0}")]
    Io(#[from] std::io::Error),
}

/// What a valid WAV holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    pub channels: u16,
    pub sample_rate: u32,
    pub duration_seconds: f64,
}

/// Checks that `path` is a playable WAV (blocking: call from `spawn_blocking`).
pub fn validate(path: &Path) -> Result<WavInfo, WavError> {
    validate_and_listen(path).map(|(info, _)| info)
}

/// The speech of a stereo WAV's channels: (left, right).
pub type StereoSpeech = (SideSpeech, SideSpeech);

/// [`validate`], and in the same read of the samples the speech of each
/// channel of a two-channel PCM WAV (`None` for any other WAV: a mono mix
/// cannot tell who spoke; A-law/µ-law stereo WAVs are not decoded here).
pub fn validate_and_listen(path: &Path) -> Result<(WavInfo, Option<StereoSpeech>), WavError> {
    match hound::WavReader::open(path) {
        Ok(mut r) => {
            let spec = r.spec();
            if spec.channels == 0 || spec.sample_rate == 0 {
                return Err(WavError::G711("zero channels or sample rate"));
            }
            let frames = r.duration();
            let mut ears = (spec.channels == 2 && spec.sample_format == hound::SampleFormat::Int)
                .then(|| Ears::new(spec));
            // Reading every sample proves the data chunk is really there.
            match spec.sample_format {
                hound::SampleFormat::Int => {
                    for s in r.samples::<i32>() {
                        let s = s?;
                        if let Some(e) = ears.as_mut() {
                            e.sample(s);
                        }
                    }
                }
                hound::SampleFormat::Float => {
                    for s in r.samples::<f32>() {
                        s?;
                    }
                }
            }
            let info = WavInfo {
                channels: spec.channels,
                sample_rate: spec.sample_rate,
                duration_seconds: f64::from(frames) / f64::from(spec.sample_rate),
            };
            Ok((info, ears.map(Ears::finish)))
        }
        Err(hound::Error::Unsupported) => {
            // The chunk headers sit at the start; only the length of the rest matters.
            let f = std::fs::File::open(path)?;
            let total = f.metadata()?.len();
            let mut head = Vec::new();
            f.take(HEAD_BYTES).read_to_end(&mut head)?;
            Ok((g711_info(&head, total)?, None))
        }
        Err(e) => Err(e.into()),
    }
}

/// The two channels' voice activity detectors, fed interleaved samples:
/// 10 ms frames at the WAV's rate, samples scaled to 16 bits.
struct Ears {
    vads: [Vad; 2],
    frames: [Vec<i16>; 2],
    frame_len: usize,
    shift: i32,
    next: usize,
}

impl Ears {
    fn new(spec: hound::WavSpec) -> Ears {
        let frame_len = (spec.sample_rate / 100).max(1) as usize;
        Ears {
            vads: [Vad::new(), Vad::new()],
            frames: [Vec::with_capacity(frame_len), Vec::with_capacity(frame_len)],
            frame_len,
            shift: i32::from(spec.bits_per_sample.clamp(8, 32)) - 16,
            next: 0,
        }
    }

    fn sample(&mut self, s: i32) {
        let s16 = if self.shift >= 0 {
            s >> self.shift
        } else {
            s << -self.shift
        };
        let ch = self.next;
        self.next ^= 1;
        let frame = &mut self.frames[ch];
        frame.push(s16.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
        if frame.len() == self.frame_len {
            self.vads[ch].push(frame);
            frame.clear();
        }
    }

    fn finish(self) -> StereoSpeech {
        let [left, right] = self.vads;
        (left.finish(), right.finish())
    }
}

/// How much of a G.711 WAV is read to find its chunks.
const HEAD_BYTES: u64 = 64 * 1024;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Chunk walk of an A-law/µ-law WAV: `b` is the start of the file, `total` its length.
pub fn g711_info(b: &[u8], total: u64) -> Result<WavInfo, WavError> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(WavError::G711("no RIFF/WAVE header"));
    }
    let mut pos = 12usize;
    let mut fmt: Option<(u16, u16, u32)> = None;
    while let (Some(id), Some(len)) = (b.get(pos..pos + 4), u32_at(b, pos + 4)) {
        let body = pos + 8;
        let len = len as usize;
        match id {
            b"fmt " => {
                let tag = u16_at(b, body).ok_or(WavError::G711("short fmt chunk"))?;
                let ch = u16_at(b, body + 2).ok_or(WavError::G711("short fmt chunk"))?;
                let rate = u32_at(b, body + 4).ok_or(WavError::G711("short fmt chunk"))?;
                fmt = Some((tag, ch, rate));
            }
            b"data" => {
                let (tag, ch, rate) = fmt.ok_or(WavError::G711("data chunk before fmt chunk"))?;
                if !matches!(tag, 6 | 7) {
                    return Err(WavError::G711("unsupported format tag"));
                }
                if ch == 0 || rate == 0 {
                    return Err(WavError::G711("zero channels or sample rate"));
                }
                if (body + len) as u64 > total {
                    return Err(WavError::G711("data chunk is truncated"));
                }
                let frames = len / usize::from(ch);
                return Ok(WavInfo {
                    channels: ch,
                    sample_rate: rate,
                    duration_seconds: frames as f64 / f64::from(rate),
                });
            }
            _ => {}
        }
        pos = body.saturating_add(len).saturating_add(len & 1);
    }
    Err(WavError::G711("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g711(tag: u16, data: usize, claimed: u32) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&claimed.to_le_bytes());
        v.extend(std::iter::repeat_n(0xD5u8, data));
        v
    }

    #[test]
    fn g711_info_reads_alaw_duration() {
        let info = g711_info(&g711(6, 16000, 16000), 16046).unwrap();
        assert_eq!(
            (info.channels, info.sample_rate, info.duration_seconds),
            (1, 8000, 2.0)
        );
    }

    #[test]
    fn g711_info_refuses_truncated_data() {
        assert!(g711_info(&g711(7, 100, 16000), 146).is_err());
    }

    #[test]
    fn g711_info_refuses_html() {
        assert!(g711_info(b"<html><body>404</body></html>", 29).is_err());
    }

    #[test]
    fn validate_refuses_garbage_and_accepts_pcm() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"<html>not found</html>").unwrap();
        assert!(validate(&bad).is_err());
        let good = dir.path().join("good.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&good, spec).unwrap();
        for i in 0..4000 {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(validate(&good).unwrap().duration_seconds, 0.5);
        let law = dir.path().join("law.wav");
        std::fs::write(&law, g711(7, 8000, 8000)).unwrap();
        assert_eq!(validate(&law).unwrap().duration_seconds, 1.0);
    }
}
