//! Plain PCM helpers behind the simulator's speech (docs/recordings.md,
//! "Simulated dialogues"): reading the WAV espeak-ng writes, resampling it to
//! the 8 kHz of a G.729 call (OM manual §4.9), and finding where speech is.
//!
//! "Speech" is defined here once, for the fixtures, the dialogues' truth and
//! the tests alike: a 10 ms frame (80 samples at 8 kHz, one G.729 frame)
//! whose RMS is at least [`SPEECH_RMS`]. A phrase's speech span runs from its
//! first such frame to its last; the pauses between words inside it count
//! as speech, as a listener would hear one utterance.

/// Samples per 10 ms frame at 8 kHz (one G.729 frame).
pub const FRAME_SAMPLES: usize = 80;
/// Sample rate of the simulator's speech (a G.729 call's rate).
pub const RATE: u32 = 8000;
/// RMS of a 10 ms frame from which it is speech: −40 dBFS. espeak-ng's
/// voices run at −20 dBFS RMS with gaps of digital zero between phrases,
/// so the threshold sits far from both.
pub const SPEECH_RMS: f64 = 328.0;

/// Why a WAV could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("WAV without a fmt chunk before its data")]
    NoFormat,
    #[error("WAV is not 16-bit PCM mono (format {format}, {channels} channels, {bits} bits)")]
    Unsupported {
        format: u16,
        channels: u16,
        bits: u16,
    },
    #[error("WAV without a data chunk")]
    NoData,
}

/// The sample rate and samples of a 16-bit PCM mono WAV.
///
/// Tolerant of a streamed header (espeak-ng `--stdout` cannot seek back, so
/// its RIFF and data sizes say 0x7FFFFFFF): the data runs to the end of the
/// bytes when its declared size is larger.
pub fn wav_pcm(bytes: &[u8]) -> Result<(u32, Vec<i16>), WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(bytes.len());
        match id {
            b"fmt " => {
                if end < body + 16 {
                    return Err(WavError::NoFormat);
                }
                let (format, channels, bits) = (u16_at(body), u16_at(body + 2), u16_at(body + 14));
                if format != 1 || channels != 1 || bits != 16 {
                    return Err(WavError::Unsupported {
                        format,
                        channels,
                        bits,
                    });
                }
                rate = Some(u32_at(body + 4));
            }
            b"data" => {
                let rate = rate.ok_or(WavError::NoFormat)?;
                let samples = bytes[body..end]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok((rate, samples));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = end + (size & 1);
    }
    Err(WavError::NoData)
}

/// `samples` at `rate` resampled to 8 kHz: a windowed-sinc low-pass at
/// 0.45 × the lower rate (so nothing above 3.6 kHz folds back) evaluated at
/// each output instant. Deterministic, no dependency; speed is no concern
/// for a few seconds of speech.
pub fn resample_to_8k(samples: &[i16], rate: u32) -> Vec<i16> {
    if rate == RATE || samples.is_empty() || rate == 0 {
        return samples.to_vec();
    }
    let ratio = f64::from(rate) / f64::from(RATE);
    // Cut-off as a fraction of the input rate.
    let cutoff = 0.45 * f64::from(RATE.min(rate)) / f64::from(rate);
    const HALF: isize = 32;
    let out_len = (samples.len() as f64 / ratio).floor() as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let centre = n as f64 * ratio;
        let first = centre.floor() as isize - HALF;
        let mut acc = 0.0;
        for k in first..=first + 2 * HALF {
            let Some(&s) = usize::try_from(k).ok().and_then(|k| samples.get(k)) else {
                continue;
            };
            let x = k as f64 - centre;
            let sinc = if x.abs() < 1e-9 {
                2.0 * cutoff
            } else {
                (std::f64::consts::TAU * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            // Blackman window over ±HALF input samples.
            let w = 0.42
                + 0.5 * (std::f64::consts::PI * x / HALF as f64).cos()
                + 0.08 * (std::f64::consts::TAU * x / HALF as f64).cos();
            let w = if x.abs() >= HALF as f64 { 0.0 } else { w };
            acc += f64::from(s) * sinc * w;
        }
        out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
    }
    out
}

/// RMS of each whole 10 ms frame (a trailing partial frame is left out).
pub fn frame_rms(pcm: &[i16]) -> Vec<f64> {
    pcm.chunks_exact(FRAME_SAMPLES)
        .map(|f| {
            let sum: f64 = f.iter().map(|&s| f64::from(s).powi(2)).sum();
            (sum / FRAME_SAMPLES as f64).sqrt()
        })
        .collect()
}

/// Whether each whole 10 ms frame is speech (RMS ≥ [`SPEECH_RMS`]).
pub fn speech_frames(pcm: &[i16]) -> Vec<bool> {
    frame_rms(pcm)
        .into_iter()
        .map(|r| r >= SPEECH_RMS)
        .collect()
}

/// Frames `[first, last + 1)` from the first speech frame to the last;
/// `None` when no frame is speech.
pub fn speech_span(pcm: &[i16]) -> Option<(usize, usize)> {
    let frames = speech_frames(pcm);
    let first = frames.iter().position(|&s| s)?;
    let last = frames.iter().rposition(|&s| s)?;
    Some((first, last + 1))
}

/// `pcm` cut to its speech span on frame boundaries, so that the result's
/// first and last frames are speech; empty when it holds none.
pub fn trim_to_speech(pcm: &[i16]) -> Vec<i16> {
    match speech_span(pcm) {
        Some((a, b)) => pcm[a * FRAME_SAMPLES..b * FRAME_SAMPLES].to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, seconds: f64, amp: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (amp * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    fn wav(rate: u32, samples: &[i16], data_size: u32) -> Vec<u8> {
        let mut out = b"RIFF\xff\xff\xff\x7fWAVEfmt ".to_vec();
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&[1, 0, 1, 0]);
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&[2, 0, 16, 0]);
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_size.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    #[test]
    fn wav_pcm_reads_a_streamed_header_to_the_end() {
        let s = [1i16, -2, 300, -32768];
        assert_eq!(
            wav_pcm(&wav(22050, &s, 0x7FFF_FFFF)),
            Ok((22050, s.to_vec()))
        );
        assert_eq!(wav_pcm(&wav(8000, &s, 4)), Ok((8000, s[..2].to_vec())));
    }

    #[test]
    fn wav_pcm_refuses_what_it_cannot_read() {
        assert_eq!(wav_pcm(b"<html>"), Err(WavError::NotWav));
        let mut stereo = wav(8000, &[0, 0], 4);
        stereo[22] = 2;
        assert!(matches!(
            wav_pcm(&stereo),
            Err(WavError::Unsupported { .. })
        ));
        assert_eq!(wav_pcm(&wav(8000, &[], 0)[..36]), Err(WavError::NoData));
    }

    #[test]
    fn resample_keeps_speech_band_and_drops_what_would_alias() {
        let kept = resample_to_8k(&tone(22050, 1000.0, 1.0, 8000.0), 22050);
        assert_eq!(kept.len(), 8000);
        let rms = frame_rms(&kept[800..7200]);
        assert!(rms.iter().all(|r| (5400.0..5900.0).contains(r)), "{rms:?}");
        // 6 kHz would fold to 2 kHz at 8 kHz without the low-pass.
        let dropped = resample_to_8k(&tone(22050, 6000.0, 1.0, 8000.0), 22050);
        assert!(frame_rms(&dropped[800..7200]).iter().all(|&r| r < 50.0));
    }

    #[test]
    fn speech_span_and_trim_follow_the_threshold() {
        let mut pcm = vec![0i16; 3 * FRAME_SAMPLES];
        pcm.extend(tone(8000, 300.0, 0.05, 3000.0));
        pcm.extend(vec![100i16; 2 * FRAME_SAMPLES]);
        assert_eq!(speech_span(&pcm), Some((3, 8)));
        let trimmed = trim_to_speech(&pcm);
        assert_eq!(trimmed.len(), 5 * FRAME_SAMPLES);
        assert_eq!(speech_span(&trimmed), Some((0, 5)));
        assert_eq!(speech_span(&[0i16; 800]), None);
        assert!(trim_to_speech(&[7i16; 800]).is_empty());
    }
}
