//! G.729 recording halves: frame reading and decoding (docs/recordings.md).
//!
//! The OM device stores each direction of a G.729 call as a `.dat` file of
//! frames. Two framings are accepted, detected from the first bytes:
//!
//! * **raw**: 10-byte G.729 voice frames back to back (what the device writes);
//! * **ITU serial** (ITU-T G.192 style, as read and written by the ITU reference
//!   coder and its test vectors): per frame a sync word (`0x6B21` good,
//!   `0x6B20` erased), a length word (bits in the frame: 80 voice, 15/16 SID,
//!   0 untransmitted) and one 16-bit word per bit (`0x007F` = 0,
//!   `0x0081` = 1). Words are little-endian as the x86 reference tools write them;
//!   big-endian is detected too (it costs one comparison).
//!
//! What can be validated:
//! * ITU streams are checked thoroughly: every sync word, length word and (in
//!   good frames) bit word must be one of the allowed values, else
//!   [`G729Error`] names the byte offset. Bit words of *erased* frames are not
//!   checked: G.192 allows any value there and the decoder ignores them.
//! * Raw frames carry no redundancy at all: every 10-byte pattern is some
//!   valid voice frame. The only checks are the length (at least one whole
//!   frame) and a sniff that the file is not obviously something else: a WAV
//!   (`RIFF`) or text such as an HTML error page served in place of the
//!   recording (≥ 16 leading bytes, all printable ASCII: random G.729 data
//!   does that with probability ~1e-7). Raw framing cannot delimit SID frames,
//!   so a raw file must hold only voice frames (device VAD off).
//!
//! A trailing partial frame (the device was still writing, or the download
//! was cut) is dropped, counted in the stats and logged with `tracing::warn!`.
//! Everything here streams from any [`Read`] in constant memory.

mod frames;

pub use frames::{Frame, FrameFormat, FrameReader};

use std::io;

/// Samples per G.729 frame (10 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 80;
/// Bytes in a raw G.729 voice frame (80 bits).
pub const FRAME_BYTES: usize = 10;
/// Sample rate of decoded G.729 audio.
pub const SAMPLE_RATE: u32 = 8000;

/// Why a G.729 half could not be read.
#[derive(Debug, thiserror::Error)]
pub enum G729Error {
    /// Reading the underlying stream failed.
    #[error("reading G.729 frames: {0}")]
    Io(#[from] io::Error),
    /// The file has no bytes at all.
    #[error("empty G.729 file")]
    Empty,
    /// The file is shorter than one frame, so it holds no audio.
    #[error("G.729 file too short: {len} bytes, not even one frame")]
    TooShort {
        /// Total length of the file in bytes.
        len: usize,
    },
    /// The content is recognisably something other than G.729 frames.
    #[error("not a G.729 file: looks like {what}")]
    NotG729 {
        /// What the content looks like (e.g. "a WAV file").
        what: &'static str,
    },
    /// ITU serial stream: a frame does not start with 0x6B21/0x6B20.
    #[error("ITU G.729 stream: bad sync word {word:#06x} at byte {offset}")]
    BadSync {
        /// Byte offset of the word in the stream.
        offset: u64,
        /// The word found.
        word: u16,
    },
    /// ITU serial stream: the frame length is not 0, 15, 16 or 80 bits.
    #[error("ITU G.729 stream: bad frame length {bits} bits at byte {offset}")]
    BadLength {
        /// Byte offset of the length word.
        offset: u64,
        /// The length found.
        bits: u16,
    },
    /// ITU serial stream: a bit word of a good frame is not 0x007F/0x0081.
    #[error("ITU G.729 stream: bad bit word {word:#06x} at byte {offset}")]
    BadBitWord {
        /// Byte offset of the word.
        offset: u64,
        /// The word found.
        word: u16,
    },
}

/// Counters for one decoded half.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames decoded (each gives [`FRAME_SAMPLES`] samples), all kinds.
    pub frames: u64,
    /// Of which erased frames (concealed by the decoder).
    pub erased: u64,
    /// Of which SID / untransmitted frames (comfort noise).
    pub silence: u64,
    /// Bytes of a trailing partial frame that were dropped (0 if none).
    pub partial_bytes_dropped: u64,
}

#[cfg(feature = "g729")]
pub use codec::{encode_pcm, PcmFrames};

#[cfg(feature = "g729")]
mod codec {
    use super::{DecodeStats, Frame, FrameReader, G729Error, FRAME_BYTES, FRAME_SAMPLES};
    use std::io::Read;

    /// Streaming decoder: yields one frame of [`FRAME_SAMPLES`] PCM samples at
    /// a time. Stops after the first error.
    pub struct PcmFrames<R: Read> {
        frames: FrameReader<R>,
        decoder: g729_sys::Decoder,
        stats: DecodeStats,
        failed: bool,
    }

    impl<R: Read> PcmFrames<R> {
        /// Sniff the framing of `input` and prepare to decode it.
        pub fn new(input: R) -> Result<Self, G729Error> {
            Ok(Self::from_frames(FrameReader::new(input)?))
        }

        /// Decode frames from an already opened [`FrameReader`].
        pub fn from_frames(frames: FrameReader<R>) -> Self {
            Self {
                frames,
                decoder: g729_sys::Decoder::new(),
                stats: DecodeStats::default(),
                failed: false,
            }
        }

        /// Counters so far (complete once the iterator returned `None`).
        pub fn stats(&self) -> DecodeStats {
            DecodeStats {
                partial_bytes_dropped: self.frames.partial_bytes_dropped(),
                ..self.stats
            }
        }

        /// The detected framing.
        pub fn format(&self) -> super::FrameFormat {
            self.frames.format()
        }
    }

    impl<R: Read> Iterator for PcmFrames<R> {
        type Item = Result<[i16; FRAME_SAMPLES], G729Error>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.failed {
                return None;
            }
            let frame = match self.frames.next()? {
                Ok(frame) => frame,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            self.stats.frames += 1;
            // Flags as bcg729 expects them: erased frames are concealed from
            // the decoder's own history (payload unused); SID and missing DTX
            // frames produce comfort noise.
            let pcm = match frame {
                Frame::Voice(bits) => self.decoder.decode(&bits, false, false, false),
                Frame::Sid(bits) => {
                    self.stats.silence += 1;
                    self.decoder.decode(&bits, false, true, false)
                }
                Frame::Untransmitted => {
                    self.stats.silence += 1;
                    self.decoder.decode(&[], false, true, false)
                }
                Frame::Erased => {
                    self.stats.erased += 1;
                    self.decoder.decode(&[], true, false, false)
                }
            };
            Some(Ok(pcm))
        }
    }

    /// Encode 8 kHz PCM as raw 10-byte G.729 frames (VAD off, so every frame
    /// is a voice frame, as the OM device records); the last partial frame
    /// is padded with silence. Used by the simulated device.
    pub fn encode_pcm(samples: &[i16]) -> Vec<u8> {
        let mut encoder = g729_sys::Encoder::new(false);
        let mut out = Vec::with_capacity(samples.len().div_ceil(FRAME_SAMPLES) * FRAME_BYTES);
        for chunk in samples.chunks(FRAME_SAMPLES) {
            let mut pcm = [0i16; FRAME_SAMPLES];
            pcm[..chunk.len()].copy_from_slice(chunk);
            let mut bits = [0u8; FRAME_BYTES];
            // With VAD off the encoder always writes a full voice frame.
            let len = usize::from(encoder.encode_into(&pcm, &mut bits)).min(FRAME_BYTES);
            out.extend_from_slice(&bits[..len]);
        }
        out
    }
}

#[cfg(all(test, feature = "g729"))]
mod tests {
    use super::*;

    /// A 1 kHz tone, loud enough that the codec must reproduce it.
    fn tone(len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI / 8.0).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn encode_pcm_pads_last_partial_frame() {
        assert_eq!(encode_pcm(&tone(81)).len(), 2 * FRAME_BYTES);
        assert!(encode_pcm(&[]).is_empty());
    }

    #[test]
    fn pcm_frames_roundtrip_keeps_tone_energy() {
        let input = tone(8000);
        let bits = encode_pcm(&input);
        let out: Vec<i16> = PcmFrames::new(&bits[..])
            .unwrap()
            .flat_map(|f| f.unwrap())
            .collect();
        assert_eq!(out.len(), input.len());
        // G.729 is lossy and delays ~ 1 frame; compare energy after warm-up.
        let energy = |s: &[i16]| s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let ratio = energy(&out[800..]) / energy(&input[800..]);
        assert!((0.5..2.0).contains(&ratio), "energy ratio {ratio}");
    }

    #[test]
    fn pcm_frames_counts_partial_bytes() {
        let mut bits = encode_pcm(&tone(160));
        bits.extend_from_slice(&[1, 2, 3]);
        let mut dec = PcmFrames::new(&bits[..]).unwrap();
        assert_eq!(dec.by_ref().count(), 2);
        assert_eq!(dec.stats().frames, 2);
        assert_eq!(dec.stats().partial_bytes_dropped, 3);
    }

    #[test]
    fn pcm_frames_conceals_erased_itu_frame() {
        // Good frame, then an erased one: two frames of output, one erased.
        let raw = encode_pcm(&tone(80));
        let mut itu = Vec::new();
        for sync in [0x6B21u16, 0x6B20] {
            itu.extend_from_slice(&sync.to_le_bytes());
            itu.extend_from_slice(&80u16.to_le_bytes());
            for i in 0..80 {
                let bit = raw[i / 8] >> (7 - i % 8) & 1;
                let word: u16 = if bit == 1 { 0x0081 } else { 0x007F };
                itu.extend_from_slice(&word.to_le_bytes());
            }
        }
        let mut dec = PcmFrames::new(&itu[..]).unwrap();
        assert_eq!(dec.by_ref().filter(|f| f.is_ok()).count(), 2);
        assert_eq!(dec.stats().erased, 1);
    }
}
