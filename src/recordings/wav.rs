//! Validation of the WAV files the device makes for G.711 calls (docs/recordings.md).
//!
//! PCM WAVs are read fully with hound (a truncated data chunk fails). hound
//! does not know the G.711 format tags (6 = A-law, 7 = µ-law) that a device
//! may write, so those are checked here from the RIFF chunks instead: a
//! `fmt ` chunk with a sane rate and a `data` chunk whose bytes are present.

use std::io::Read;
use std::path::Path;

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
    match hound::WavReader::open(path) {
        Ok(mut r) => {
            let spec = r.spec();
            if spec.channels == 0 || spec.sample_rate == 0 {
                return Err(WavError::G711("zero channels or sample rate"));
            }
            let frames = r.duration();
            // Reading every sample proves the data chunk is really there.
            match spec.sample_format {
                hound::SampleFormat::Int => {
                    for s in r.samples::<i32>() {
                        s?;
                    }
                }
                hound::SampleFormat::Float => {
                    for s in r.samples::<f32>() {
                        s?;
                    }
                }
            }
            Ok(WavInfo {
                channels: spec.channels,
                sample_rate: spec.sample_rate,
                duration_seconds: f64::from(frames) / f64::from(spec.sample_rate),
            })
        }
        Err(hound::Error::Unsupported) => {
            // The chunk headers sit at the start; only the length of the rest matters.
            let f = std::fs::File::open(path)?;
            let total = f.metadata()?.len();
            let mut head = Vec::new();
            f.take(HEAD_BYTES).read_to_end(&mut head)?;
            g711_info(&head, total)
        }
        Err(e) => Err(e.into()),
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
