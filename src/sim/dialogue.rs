//! What the simulated device's G.729 calls say (docs/recordings.md,
//! "Simulated dialogues"; OM manual §4.9): a [`Dialogue`] is turns — a side,
//! a phrase, a start in 10 ms frames — and the two halves of a call are
//! rendered from it frame by frame: the agent's phrases in the `send` half,
//! the customer's in `recv`, and between them the G.729 encoding of digital
//! silence. Because every frame is either a phrase's or silence's, where
//! each side speaks is known exactly: [`Halves::truth`].
//!
//! The built-in dialogues use the phrases of `tests/fixtures/speech/` (made
//! once with espeak-ng, see the README there); each has normal turn gaps, an
//! interruption (a customer turn that starts before the agent's ends) and a
//! long pause (the agent looking something up). A call picks one by its
//! recording path, so a plan's truth and the recorder agree without
//! sharing state. A call longer than its dialogue repeats it; the halves
//! are made on request, so a long call costs no memory beyond its bytes.

use std::sync::{Arc, OnceLock};

use super::truth::{TruthRecording, TruthSegment};
use super::RecordingSpec;

/// Bytes of a raw G.729 frame (10 ms).
pub const FRAME_BYTES: usize = 10;
/// The `recv` half of a simulated call is this many frames shorter than
/// `send`, as a device's halves often are, so merging must pad.
pub const RECV_SHORTER_FRAMES: u32 = 7;

/// An all-zero frame: stands in for silence should its fixture be missing.
static ZERO_FRAME: [u8; FRAME_BYTES] = [0; FRAME_BYTES];
/// The encoding of digital silence (see the fixtures' README).
const SILENCE: &[u8] = include_bytes!("../../tests/fixtures/speech/silence.dat");

macro_rules! phrases {
    ($side:literal: $($n:literal),*) => {
        [$(include_bytes!(concat!("../../tests/fixtures/speech/", $side, "_", $n, ".dat")).as_slice()),*]
    };
}
const AGENT_PHRASES: [&[u8]; 8] = phrases!("agent": "1", "2", "3", "4", "5", "6", "7", "8");
const CUSTOMER_PHRASES: [&[u8]; 8] = phrases!("customer": "1", "2", "3", "4", "5", "6", "7", "8");

/// Who speaks: the agent (the extension, the `send` half) or the customer
/// (the other party, `recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Agent,
    Customer,
}

impl Side {
    /// `agent` or `customer`, as the conversation figures name the sides.
    pub fn name(self) -> &'static str {
        match self {
            Side::Agent => "agent",
            Side::Customer => "customer",
        }
    }
}

/// One utterance as raw G.729 frames, with where its speech is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    g729: Vec<u8>,
    /// Frames `[start, end)` of the phrase that are speech; `None` = none
    /// (e.g. a noise burst).
    speech: Option<(u32, u32)>,
}

impl Phrase {
    /// `g729` (whole 10-byte frames; a trailing partial frame is dropped)
    /// whose speech spans frames `speech` (clipped to its length).
    pub fn new(mut g729: Vec<u8>, speech: Option<(u32, u32)>) -> Phrase {
        g729.truncate(g729.len() / FRAME_BYTES * FRAME_BYTES);
        let frames = (g729.len() / FRAME_BYTES) as u32;
        let speech = speech
            .map(|(a, b)| (a.min(frames), b.min(frames)))
            .filter(|(a, b)| a < b);
        Phrase { g729, speech }
    }

    /// A fixture: trimmed to its speech, so all of it is speech.
    fn fixture(bytes: &[u8]) -> Phrase {
        Phrase::new(bytes.to_vec(), Some((0, u32::MAX)))
    }

    pub fn frames(&self) -> u32 {
        (self.g729.len() / FRAME_BYTES) as u32
    }

    pub fn speech(&self) -> Option<(u32, u32)> {
        self.speech
    }
}

/// One turn: `side` says `phrase` from frame `start` of the dialogue.
#[derive(Debug, Clone)]
pub struct Turn {
    pub side: Side,
    pub phrase: Arc<Phrase>,
    pub start: u32,
}

impl Turn {
    fn end(&self) -> u32 {
        self.start + self.phrase.frames()
    }
}

/// When a scripted turn starts, relative to the previous turn's end.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// This many frames after it (a turn gap, or a long pause).
    After(u32),
    /// This many frames before it (the other side interrupts).
    Overlap(u32),
}

/// Why turns do not make a dialogue.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogueError {
    #[error("the {side} speaks two phrases at once at frame {at}")]
    SameSideOverlap { side: &'static str, at: u32 },
    #[error("a turn ends at frame {end}, after the dialogue's {frames} frames")]
    PastEnd { end: u32, frames: u32 },
    #[error("an overlap of {0} frames starts before the dialogue")]
    BeforeStart(u32),
    #[error("a dialogue needs at least one frame")]
    Empty,
}

/// What a half does after the dialogue's last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Say it again from the start (the simulation's calls).
    Repeat,
    /// Stay silent (tests with speech at exact offsets).
    Silence,
}

/// Turns over `frames` frames of a call.
#[derive(Debug, Clone)]
pub struct Dialogue {
    pub name: String,
    turns: Vec<Turn>,
    frames: u32,
    after: After,
}

impl Dialogue {
    /// Checks that a side never says two phrases at once and every turn
    /// ends within `frames`.
    pub fn new(
        name: &str,
        mut turns: Vec<Turn>,
        frames: u32,
        after: After,
    ) -> Result<Dialogue, DialogueError> {
        if frames == 0 {
            return Err(DialogueError::Empty);
        }
        turns.sort_by_key(|t| (t.start, t.side.name()));
        for side in [Side::Agent, Side::Customer] {
            let mut busy_until = 0;
            for t in turns.iter().filter(|t| t.side == side) {
                if t.start < busy_until {
                    return Err(DialogueError::SameSideOverlap {
                        side: side.name(),
                        at: t.start,
                    });
                }
                busy_until = t.end();
            }
        }
        if let Some(end) = turns.iter().map(Turn::end).max().filter(|&e| e > frames) {
            return Err(DialogueError::PastEnd { end, frames });
        }
        Ok(Dialogue {
            name: name.to_string(),
            turns,
            frames,
            after,
        })
    }

    /// Turns laid out one after another from `first` (frames into the
    /// call), each placed relative to the previous turn's end, and `tail`
    /// frames of silence after the last.
    pub fn script(
        name: &str,
        first: u32,
        steps: &[(Side, &Arc<Phrase>, Start)],
        tail: u32,
        after: After,
    ) -> Result<Dialogue, DialogueError> {
        let mut turns = Vec::with_capacity(steps.len());
        let mut prev_end = first;
        for (i, (side, phrase, start)) in steps.iter().enumerate() {
            let start = match (i, start) {
                (0, _) => first,
                (_, Start::After(gap)) => prev_end + gap,
                (_, Start::Overlap(n)) => prev_end
                    .checked_sub(*n)
                    .ok_or(DialogueError::BeforeStart(*n))?,
            };
            let turn = Turn {
                side: *side,
                phrase: Arc::clone(phrase),
                start,
            };
            prev_end = turn.end();
            turns.push(turn);
        }
        let frames = turns.iter().map(Turn::end).max().unwrap_or(first) + tail;
        Dialogue::new(name, turns, frames, after)
    }

    /// One second of silence on both sides.
    pub fn silent(name: &str) -> Dialogue {
        Dialogue {
            name: name.to_string(),
            turns: Vec::new(),
            frames: 100,
            after: After::Repeat,
        }
    }

    /// Length in frames (one repetition).
    pub fn frames(&self) -> u32 {
        self.frames
    }

    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// Starts of each repetition within `len` frames.
    fn repetitions(&self, len: u32) -> impl Iterator<Item = u32> + '_ {
        let reps = match self.after {
            After::Repeat => len.div_ceil(self.frames),
            After::Silence => 1,
        };
        (0..reps).map(move |k| k * self.frames)
    }

    /// `len` frames of `side`'s half.
    pub fn render(&self, side: Side, len: u32) -> Vec<u8> {
        let len = len as usize;
        // An all-zero frame is a valid (near-silent) frame should the
        // fixture ever be missing.
        let silence = if SILENCE.len() >= FRAME_BYTES {
            &SILENCE[..SILENCE.len() / FRAME_BYTES * FRAME_BYTES]
        } else {
            &ZERO_FRAME[..]
        };
        let mut out = Vec::with_capacity(len * FRAME_BYTES);
        while out.len() < len * FRAME_BYTES {
            let n = silence.len().min(len * FRAME_BYTES - out.len());
            out.extend_from_slice(&silence[..n]);
        }
        for rep in self.repetitions(len as u32) {
            for t in self.turns.iter().filter(|t| t.side == side) {
                let at = (rep + t.start) as usize * FRAME_BYTES;
                let Some(room) = out.len().checked_sub(at).filter(|&r| r > 0) else {
                    continue;
                };
                let n = t.phrase.g729.len().min(room);
                out[at..at + n].copy_from_slice(&t.phrase.g729[..n]);
            }
        }
        out
    }

    /// Frames `[start, end)` where `side` speaks within `len` frames, in order.
    pub fn speech(&self, side: Side, len: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for rep in self.repetitions(len) {
            for t in self.turns.iter().filter(|t| t.side == side) {
                if let Some((a, b)) = t.phrase.speech {
                    let (a, b) = (rep + t.start + a, (rep + t.start + b).min(len));
                    if a < b {
                        out.push((a, b));
                    }
                }
            }
        }
        out
    }
}

/// One G.729 call's two halves: a dialogue and their lengths in frames.
#[derive(Debug, Clone)]
pub struct Halves {
    pub dialogue: Arc<Dialogue>,
    pub send_frames: u32,
    pub recv_frames: u32,
}

impl Halves {
    /// A simulated call's halves: the built-in dialogue its path picks,
    /// `send` as long as the talk (at least 1 s), `recv` a little shorter.
    pub fn for_spec(spec: &RecordingSpec) -> Halves {
        let send = spec.seconds.max(1).saturating_mul(100);
        Halves {
            dialogue: for_path(&spec.path),
            send_frames: send,
            recv_frames: send.saturating_sub(RECV_SHORTER_FRAMES).max(1),
        }
    }

    /// The `send` (agent) half's bytes.
    pub fn send(&self) -> Vec<u8> {
        self.dialogue.render(Side::Agent, self.send_frames)
    }

    /// The `recv` (customer) half's bytes.
    pub fn recv(&self) -> Vec<u8> {
        self.dialogue.render(Side::Customer, self.recv_frames)
    }

    /// Where each side speaks, for the simulation's truth.
    pub fn truth(&self, path: &str) -> TruthRecording {
        let mut segments = Vec::new();
        for (side, len) in [
            (Side::Agent, self.send_frames),
            (Side::Customer, self.recv_frames),
        ] {
            segments.extend(self.dialogue.speech(side, len).into_iter().map(|(a, b)| {
                TruthSegment {
                    side: side.name().to_string(),
                    start_ms: u64::from(a) * 10,
                    end_ms: u64::from(b) * 10,
                }
            }));
        }
        segments.sort_by_key(|s| (s.start_ms, s.end_ms));
        TruthRecording {
            path: path.to_string(),
            dialogue: self.dialogue.name.clone(),
            send_ms: u64::from(self.send_frames) * 10,
            recv_ms: u64::from(self.recv_frames) * 10,
            segments,
        }
    }
}

/// Phrases of the agent and of the customer, in the fixtures' order.
pub type PhraseBook = (Vec<Arc<Phrase>>, Vec<Arc<Phrase>>);

/// The built-in phrases.
pub fn phrases() -> &'static PhraseBook {
    static BOOK: OnceLock<PhraseBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let load = |set: &[&[u8]]| set.iter().map(|b| Arc::new(Phrase::fixture(b))).collect();
        (load(&AGENT_PHRASES), load(&CUSTOMER_PHRASES))
    })
}

/// The built-in dialogues (a billing question, a complaint).
pub fn builtin() -> &'static [Arc<Dialogue>] {
    static ALL: OnceLock<Vec<Arc<Dialogue>>> = OnceLock::new();
    ALL.get_or_init(|| {
        use Side::{Agent as A, Customer as C};
        use Start::{After as Gap, Overlap};
        let (a, c) = phrases();
        // Phrase texts: tests/fixtures/speech/README.md. Gaps are 10 ms
        // frames: 0.3–0.6 s between turns, 6–7 s while the agent looks
        // something up, an interruption of 0.6–0.9 s.
        let billing = [
            (C, &c[0], Gap(50)),
            (A, &a[1], Gap(40)),
            (C, &c[1], Gap(60)),
            (A, &a[2], Gap(40)),
            (C, &c[6], Gap(30)),
            (A, &a[6], Gap(700)),
            (A, &a[3], Gap(30)),
            (C, &c[3], Overlap(90)),
            (A, &a[4], Gap(50)),
            (C, &c[4], Gap(40)),
            (A, &a[5], Gap(50)),
            (C, &c[5], Gap(40)),
            (A, &a[7], Gap(30)),
            (C, &c[7], Gap(25)),
        ];
        let complaint = [
            (C, &c[2], Overlap(60)),
            (A, &a[1], Gap(50)),
            (C, &c[1], Gap(40)),
            (A, &a[2], Gap(30)),
            (C, &c[6], Gap(40)),
            (A, &a[6], Gap(600)),
            (A, &a[4], Gap(40)),
            (C, &c[4], Overlap(70)),
            (A, &a[5], Gap(60)),
            (C, &c[5], Gap(35)),
            (A, &a[7], Gap(40)),
            (C, &c[7], Gap(30)),
        ];
        [
            ("billing", 40, &billing[..], 200),
            ("complaint", 30, &complaint[..], 150),
        ]
        .into_iter()
        .map(|(name, first, rest, tail)| {
            let mut steps = vec![(A, &a[0], Gap(0))];
            steps.extend_from_slice(rest);
            // The fixtures are fixed, so the tests check this once; were
            // one remade badly the calls would be silent, not crash.
            let d =
                Dialogue::script(name, first, &steps, tail, After::Repeat).unwrap_or_else(|e| {
                    tracing::error!(dialogue = name, error = %e, "built-in dialogue is invalid");
                    Dialogue::silent(name)
                });
            Arc::new(d)
        })
        .collect()
    })
}

/// The built-in dialogue of the call recorded at `path` (FNV-1a of the path,
/// so the same call always says the same).
pub fn for_path(path: &str) -> Arc<Dialogue> {
    let hash = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let all = builtin();
    Arc::clone(&all[(hash % all.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(frames: u32, byte: u8) -> Arc<Phrase> {
        Arc::new(Phrase::new(
            vec![byte; frames as usize * FRAME_BYTES],
            Some((1, frames - 1)),
        ))
    }

    fn silence_frame(i: usize) -> &'static [u8] {
        let s = i % (SILENCE.len() / FRAME_BYTES) * FRAME_BYTES;
        &SILENCE[s..s + FRAME_BYTES]
    }

    #[test]
    fn fixtures_are_whole_frames_and_silence_is_not_speech_bytes() {
        let (a, c) = phrases();
        for p in a.iter().chain(c) {
            assert!(p.frames() >= 40, "a phrase of {} frames", p.frames());
            assert_eq!(p.speech(), Some((0, p.frames())));
        }
        assert_eq!(SILENCE.len() % FRAME_BYTES, 0);
        assert!(SILENCE.len() >= FRAME_BYTES);
    }

    #[test]
    fn builtin_dialogues_interrupt_pause_and_take_turns() {
        let all = builtin();
        assert_eq!(all.len(), 2);
        for d in all {
            assert!(
                d.turns().len() >= 12,
                "{}: the fixtures made a valid script",
                d.name
            );
            let ag = d.speech(Side::Agent, d.frames());
            let cu = d.speech(Side::Customer, d.frames());
            let overlap: u32 = ag
                .iter()
                .flat_map(|x| {
                    cu.iter()
                        .map(move |y| x.1.min(y.1).saturating_sub(x.0.max(y.0)))
                })
                .sum();
            assert!(
                (50..=150).contains(&overlap),
                "{}: overlap {overlap}",
                d.name
            );
            let mut all: Vec<(u32, u32)> = ag.iter().chain(&cu).copied().collect();
            all.sort();
            let mut end = all[0].1;
            let mut gaps = Vec::new();
            for &(a, b) in &all[1..] {
                gaps.push(a.saturating_sub(end));
                end = end.max(b);
            }
            let longest = gaps.iter().max().copied().unwrap_or(0);
            assert!(longest >= 600, "{}: a long pause: {gaps:?}", d.name);
            assert!(
                gaps.iter().filter(|&&g| (20..=80).contains(&g)).count() >= 8,
                "{gaps:?}"
            );
            assert!(
                d.frames() > 2000 && d.frames() < 6000,
                "{}: {} frames",
                d.name,
                d.frames()
            );
        }
    }

    #[test]
    fn for_path_is_stable_and_uses_both() {
        let names: std::collections::BTreeSet<String> = (0..20)
            .map(|i| for_path(&format!("20240108/200_{i}_cd.wav")).name.clone())
            .collect();
        assert_eq!(names.len(), 2);
        assert_eq!(
            for_path("20240108/a.wav").name,
            for_path("20240108/a.wav").name
        );
    }

    #[test]
    fn render_puts_phrases_at_their_frames_over_silence_and_repeats() {
        let d = Dialogue::new(
            "t",
            vec![
                Turn {
                    side: Side::Agent,
                    phrase: phrase(3, 0xAA),
                    start: 2,
                },
                Turn {
                    side: Side::Customer,
                    phrase: phrase(4, 0xCC),
                    start: 4,
                },
            ],
            8,
            After::Repeat,
        )
        .unwrap();
        let send = d.render(Side::Agent, 13);
        assert_eq!(send.len(), 130);
        for i in 0..13 {
            let frame = &send[i * FRAME_BYTES..(i + 1) * FRAME_BYTES];
            if matches!(i, 2..=4 | 10..=12) {
                assert_eq!(frame, [0xAA; FRAME_BYTES], "frame {i}");
            } else {
                assert_eq!(frame, silence_frame(i), "frame {i}");
            }
        }
        // Speech spans: phrase frames 1..2 of each turn, clipped at the end.
        assert_eq!(d.speech(Side::Agent, 13), vec![(3, 4), (11, 12)]);
        assert_eq!(d.speech(Side::Customer, 13), vec![(5, 7)]);
        assert_eq!(d.speech(Side::Customer, 6), vec![(5, 6)]);
        let once = Dialogue {
            after: After::Silence,
            ..d
        };
        assert_eq!(once.speech(Side::Agent, 13), vec![(3, 4)]);
        assert_eq!(&once.render(Side::Agent, 13)[100..110], silence_frame(10));
    }

    #[test]
    fn dialogue_refuses_impossible_turns() {
        let p = phrase(5, 1);
        let t = |side, start| Turn {
            side,
            phrase: Arc::clone(&p),
            start,
        };
        assert_eq!(
            Dialogue::new(
                "x",
                vec![t(Side::Agent, 0), t(Side::Agent, 4)],
                20,
                After::Repeat
            )
            .err(),
            Some(DialogueError::SameSideOverlap {
                side: "agent",
                at: 4
            })
        );
        assert_eq!(
            Dialogue::new("x", vec![t(Side::Customer, 18)], 20, After::Repeat).err(),
            Some(DialogueError::PastEnd {
                end: 23,
                frames: 20
            })
        );
        assert_eq!(
            Dialogue::new("x", vec![], 0, After::Repeat).err(),
            Some(DialogueError::Empty)
        );
        let steps = [
            (Side::Agent, &p, Start::After(0)),
            (Side::Customer, &p, Start::Overlap(9)),
        ];
        assert_eq!(
            Dialogue::script("x", 2, &steps, 0, After::Repeat).err(),
            Some(DialogueError::BeforeStart(9))
        );
        // Different sides may overlap: an interruption.
        let steps = [
            (Side::Agent, &p, Start::After(0)),
            (Side::Customer, &p, Start::Overlap(2)),
        ];
        let d = Dialogue::script("x", 2, &steps, 3, After::Repeat).unwrap();
        assert_eq!((d.turns()[1].start, d.frames()), (5, 13));
    }

    #[test]
    fn halves_for_spec_keep_lengths_and_truth_in_ms() {
        let spec = RecordingSpec {
            path: "20240108/x_cd.wav".into(),
            codec: "G729".into(),
            seconds: 0,
        };
        let h = Halves::for_spec(&spec);
        assert_eq!((h.send().len(), h.recv().len()), (1000, 930));
        let t = h.truth(&spec.path);
        assert_eq!((t.send_ms, t.recv_ms), (1000, 930));
        assert!(t
            .segments
            .iter()
            .all(|s| s.end_ms <= 1000 && s.start_ms < s.end_ms));
        assert!(t
            .segments
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms));
    }
}
