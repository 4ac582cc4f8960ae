//! Voice activity detection for one side of a call: which stretches of it
//! hold speech (docs/recordings.md "Conversation figures").
//!
//! Energy against an adaptive noise floor, per 10 ms frame (one G.729
//! frame, 80 samples at 8 kHz), fed one frame at a time while the side is
//! decoded, in constant memory apart from the list of speech spans:
//!
//! * **Noise floor**: minimum statistics (the floor is the lowest energy,
//!   averaged over [`SMOOTH_FRAMES`] frames in dB, of a window of blocks
//!   around the frame, R. Martin 2001; the average keeps the floor from
//!   following the dips of a noise's frame energies, which after G.729
//!   coding swing by several dB; the first 100 ms of a side, where a
//!   decoder starts up from silence, are left out). Speech
//!   has pauses between words, so the window's minimum is the background
//!   even while someone talks; a steady noise (a hiss, an air conditioner)
//!   raises the floor with it and is not speech. The window looks one block
//!   ahead too, so decisions lag by at most [`BLOCK_FRAMES`] × 2 frames
//!   (kept as energies, four bytes a frame) and a call that starts with
//!   noise is judged against that noise from its first frame.
//! * **Decision**: a frame is speech when its energy is at least
//!   [`ABOVE_FLOOR_DB`] over the floor and over an absolute level
//!   ([`MIN_SPEECH_DB`]), so near-digital silence is never speech.
//! * **Hangover smoothing**: a span opens after [`ONSET_FRAMES`] speech
//!   frames in a row (a click is not speech) and stays open
//!   [`HANGOVER_FRAMES`] after the last speech frame, so the gaps between
//!   words (and unvoiced sounds, quieter than vowels) do not split it. A
//!   span ends at its last speech frame: the hangover decides what belongs
//!   together, it is not counted as talk.
//!
//! The list of spans is capped ([`MAX_SPANS`]): beyond it the side is an
//! error rather than unbounded memory.

use std::collections::VecDeque;

/// Frames whose energies (in dB) are averaged for the noise floor: 50 ms,
/// shorter than the pauses between words.
pub const SMOOTH_FRAMES: usize = 5;
/// Frames per noise-floor block: 0.5 s.
pub const BLOCK_FRAMES: usize = 50;
/// Blocks of the noise-floor window before the frame's own block: with the
/// frame's block and the one after, 3.5 s. Longer than any stretch of
/// speech without a pause, shorter than a change of background worth
/// following.
pub const WINDOW_BLOCKS: usize = 5;
/// A speech frame is this far above the floor (dB).
pub const ABOVE_FLOOR_DB: f32 = 12.0;
/// ... and at least this loud: 10·log10 of the mean square sample, i.e.
/// about -45 dBFS (an RMS of 184 on the 16-bit scale).
pub const MIN_SPEECH_DB: f32 = 45.0;
/// Speech frames in a row that open a span (30 ms).
pub const ONSET_FRAMES: u32 = 3;
/// Non-speech frames that close a span (250 ms): shorter gaps are bridged.
pub const HANGOVER_FRAMES: u64 = 25;
/// Most spans kept per side: a span every second for 27 hours.
pub const MAX_SPANS: usize = 100_000;

/// A stretch of speech in frame numbers (10 ms each), `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// Why a side has no speech spans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VadError {
    /// More spans than [`MAX_SPANS`].
    #[error("more than {MAX_SPANS} speech segments on one side")]
    TooManySpans,
    /// The side could not be decoded to its end.
    #[error("the side could not be decoded: {0}")]
    Undecodable(String),
}

/// The speech of one side, or why there is none.
pub type SideSpeech = Result<Vec<Span>, VadError>;

/// Energy of one frame in dB (10·log10 of the mean square sample, +1 so
/// digital silence is 0 dB).
pub fn frame_db(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (10.0 * (sum / samples.len() as f64 + 1.0).log10()) as f32
}

/// The detector of one side; feed it frames in order, then [`Vad::finish`].
#[derive(Debug)]
pub struct Vad {
    /// Energies of the block being filled.
    current: Vec<f32>,
    /// Its lowest smoothed energy so far.
    current_min: f32,
    /// The last [`SMOOTH_FRAMES`] energies (a ring) and how many were seen.
    recent: [f32; SMOOTH_FRAMES],
    seen: usize,
    /// The block before it, waiting for its look-ahead (the current block).
    waiting: Option<Vec<f32>>,
    /// Minimum energy of each of the last blocks, the waiting one last.
    minima: VecDeque<f32>,
    smoother: Smoother,
}

impl Default for Vad {
    fn default() -> Self {
        Self::new()
    }
}

impl Vad {
    pub fn new() -> Self {
        Vad {
            current: Vec::with_capacity(BLOCK_FRAMES),
            current_min: f32::INFINITY,
            recent: [0.0; SMOOTH_FRAMES],
            seen: 0,
            waiting: None,
            minima: VecDeque::with_capacity(WINDOW_BLOCKS + 2),
            smoother: Smoother::default(),
        }
    }

    /// One 10 ms frame of samples.
    pub fn push(&mut self, samples: &[i16]) {
        self.push_db(frame_db(samples));
    }

    /// One frame by its energy ([`frame_db`]).
    pub fn push_db(&mut self, db: f32) {
        self.recent[self.seen % SMOOTH_FRAMES] = db;
        self.seen += 1;
        let n = self.seen.min(SMOOTH_FRAMES);
        let smoothed = self.recent[..n].iter().sum::<f32>() / n as f32;
        // A G.729 decoder starts from silence: its first frames are far
        // quieter than the line (the first of coded noise 55 dB below the
        // rest), so averages that reach back to them stay out of the floor.
        if self.seen >= 2 * SMOOTH_FRAMES {
            self.current_min = self.current_min.min(smoothed);
        }
        self.current.push(db);
        if self.current.len() == BLOCK_FRAMES {
            let block = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK_FRAMES));
            let min = std::mem::replace(&mut self.current_min, f32::INFINITY);
            self.decide_waiting(min);
            self.minima.push_back(min);
            // The waiting block's own minimum and WINDOW_BLOCKS before it.
            while self.minima.len() > WINDOW_BLOCKS + 1 {
                self.minima.pop_front();
            }
            self.waiting = Some(block);
        }
    }

    /// Decides the waiting block with `ahead` (the next block's minimum).
    fn decide_waiting(&mut self, ahead: f32) {
        if let Some(block) = self.waiting.take() {
            let floor = self.minima.iter().copied().fold(ahead, f32::min);
            for db in block {
                self.smoother.frame(is_speech(db, floor));
            }
        }
    }

    /// The side's speech spans, in order.
    pub fn finish(mut self) -> SideSpeech {
        let last = std::mem::take(&mut self.current);
        let last_min = self.current_min;
        self.decide_waiting(last_min);
        let floor = self.minima.iter().copied().fold(last_min, f32::min);
        for db in last {
            self.smoother.frame(is_speech(db, floor));
        }
        self.smoother.finish()
    }
}

fn is_speech(db: f32, floor: f32) -> bool {
    db >= MIN_SPEECH_DB && db >= floor + ABOVE_FLOOR_DB
}

/// Frame decisions → spans (onset and hangover).
#[derive(Debug, Default)]
struct Smoother {
    /// Frame number of the next decision.
    frame: u64,
    /// Speech frames in a row ending at the last frame (before a span opens).
    run: u32,
    /// The open span: its start and the end of its last speech frame.
    open: Option<(u64, u64)>,
    spans: Vec<Span>,
    overflow: bool,
}

impl Smoother {
    fn frame(&mut self, speech: bool) {
        let t = self.frame;
        self.frame += 1;
        match (&mut self.open, speech) {
            (Some((_, last)), true) => *last = t + 1,
            (Some((start, last)), false) => {
                if t + 1 - *last >= HANGOVER_FRAMES {
                    let span = Span {
                        start: *start,
                        end: *last,
                    };
                    self.open = None;
                    self.close(span);
                }
            }
            (None, true) => {
                self.run += 1;
                if self.run >= ONSET_FRAMES {
                    self.open = Some((t + 1 - u64::from(self.run), t + 1));
                    self.run = 0;
                }
            }
            (None, false) => self.run = 0,
        }
    }

    fn close(&mut self, span: Span) {
        if self.spans.len() >= MAX_SPANS {
            self.overflow = true;
        } else {
            self.spans.push(span);
        }
    }

    fn finish(mut self) -> SideSpeech {
        if let Some((start, end)) = self.open.take() {
            self.close(Span { start, end });
        }
        if self.overflow {
            return Err(VadError::TooManySpans);
        }
        Ok(self.spans)
    }
}

/// The spans of a whole side at once (tests, the stereo WAV path):
/// `samples` cut into frames of `frame_len`.
pub fn spans_of(samples: &[i16], frame_len: usize) -> SideSpeech {
    let mut vad = Vad::new();
    for frame in samples.chunks(frame_len.max(1)) {
        vad.push(frame);
    }
    vad.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dbs: &[f32]) -> Vec<Span> {
        let mut vad = Vad::new();
        for &d in dbs {
            vad.push_db(d);
        }
        vad.finish().unwrap()
    }

    fn pattern(parts: &[(f32, usize)]) -> Vec<f32> {
        parts
            .iter()
            .flat_map(|&(db, n)| std::iter::repeat_n(db, n))
            .collect()
    }

    #[test]
    fn speech_between_silences_is_one_span() {
        let dbs = pattern(&[(2.0, 100), (70.0, 150), (2.0, 200)]);
        assert_eq!(
            run(&dbs),
            vec![Span {
                start: 100,
                end: 250
            }]
        );
    }

    #[test]
    fn short_gaps_are_bridged_long_ones_split() {
        // 200 ms gap: bridged; 400 ms gap: two spans.
        let dbs = pattern(&[
            (2.0, 60),
            (70.0, 50),
            (2.0, 20),
            (70.0, 50),
            (2.0, 40),
            (70.0, 30),
            (2.0, 100),
        ]);
        assert_eq!(
            run(&dbs),
            vec![
                Span {
                    start: 60,
                    end: 180
                },
                Span {
                    start: 220,
                    end: 250
                }
            ]
        );
    }

    #[test]
    fn clicks_do_not_open_a_span() {
        let dbs = pattern(&[(2.0, 60), (80.0, 2), (2.0, 100), (80.0, 1), (2.0, 60)]);
        assert!(run(&dbs).is_empty());
    }

    #[test]
    fn steady_noise_is_not_speech_but_speech_over_it_is() {
        let noisy = pattern(&[(50.0, 500)]);
        assert!(run(&noisy).is_empty());
        let dbs = pattern(&[(50.0, 300), (75.0, 100), (50.0, 300)]);
        assert_eq!(
            run(&dbs),
            vec![Span {
                start: 300,
                end: 400
            }]
        );
    }

    #[test]
    fn quiet_sounds_over_digital_silence_are_not_speech() {
        let dbs = pattern(&[(0.0, 100), (30.0, 100), (0.0, 100)]);
        assert!(run(&dbs).is_empty());
    }

    #[test]
    fn speech_from_the_first_frame_to_the_last() {
        let dbs = pattern(&[(70.0, 40), (2.0, 60), (70.0, 33)]);
        assert_eq!(
            run(&dbs),
            vec![
                Span { start: 0, end: 40 },
                Span {
                    start: 100,
                    end: 133
                }
            ]
        );
        assert!(run(&[]).is_empty());
    }

    #[test]
    fn too_many_spans_is_an_error_not_unbounded_memory() {
        let mut vad = Vad::new();
        let one = pattern(&[(70.0, 3), (2.0, 26)]);
        for _ in 0..=MAX_SPANS {
            for &d in &one {
                vad.push_db(d);
            }
        }
        assert_eq!(vad.finish(), Err(VadError::TooManySpans));
    }

    #[test]
    fn frame_db_of_silence_and_full_scale() {
        assert_eq!(frame_db(&[0; 80]), 0.0);
        let loud = frame_db(&[i16::MAX; 80]);
        assert!((90.0..91.0).contains(&loud), "{loud}");
    }
}
