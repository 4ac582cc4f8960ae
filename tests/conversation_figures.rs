//! Conversation figures from real G.729 bitstreams (docs/recordings.md
//! "Conversation figures"): speech pieces of the fixture calls
//! (tests/fixtures/g729) placed at known offsets in silence, with
//! overlaps, encoded with the crate's G.729 encoder, decoded and merged,
//! and the figures checked against the placement within ±0.3 s. Also a
//! silent half, a noise-only half and halves of very different lengths.
#![cfg(feature = "g729")]

use std::io::Cursor;
use std::path::Path;

use callvault::config::SendSide;
use callvault::model::conversation::{Conversation, TalkSide};
use callvault::recordings::conversation::of_sides;
use callvault::recordings::g729::{encode_pcm, PcmFrames};
use callvault::recordings::merge::{merge, Layout, MergeStats};

/// 10 ms frames: the grid the truth is computed on.
const FRAME: usize = 80;

pub fn fixture_pcm(name: &str) -> Vec<i16> {
    let bits = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/g729")
            .join(name),
    )
    .expect("fixture");
    PcmFrames::new(&bits[..])
        .expect("sniff")
        .flat_map(|f| f.expect("frame"))
        .collect()
}

/// A speech piece of a fixture: its frames `from..to` (10 ms each), cut
/// where the fixture's speech starts and stops (its first and last frames
/// above -60 dBFS, with no pause longer than 120 ms between).
#[derive(Clone, Copy)]
pub struct Piece {
    pub from: usize,
    pub to: usize,
}

impl Piece {
    fn frames(self) -> usize {
        self.to - self.from
    }
}

/// The agent fixture's pieces and the customer fixture's.
pub const AGENT: [Piece; 3] = [
    Piece { from: 96, to: 263 },
    Piece { from: 302, to: 470 },
    Piece {
        from: 726,
        to: 1013,
    },
];
pub const CUSTOMER: [Piece; 3] = [
    Piece { from: 69, to: 308 },
    Piece { from: 347, to: 545 },
    Piece { from: 563, to: 984 },
];

/// One side's samples and which of its 10 ms frames hold speech.
pub type Side = (Vec<i16>, Vec<bool>);

/// One side: `pieces` of `source` placed at `(piece, start frame)`, in
/// silence, `frames` long; and which frames hold speech (the truth).
pub fn side(source: &[i16], placed: &[(Piece, usize)], frames: usize) -> Side {
    let mut pcm = vec![0i16; frames * FRAME];
    let mut speech = vec![false; frames];
    for &(p, at) in placed {
        pcm[at * FRAME..(at + p.frames()) * FRAME]
            .copy_from_slice(&source[p.from * FRAME..p.to * FRAME]);
        speech[at..at + p.frames()].fill(true);
    }
    (pcm, speech)
}

/// The figures of the truth, frame by frame (an oracle independent of the
/// span arithmetic under test).
pub struct Truth {
    pub agent: f64,
    pub customer: f64,
    pub overtalk: f64,
    pub longest_silence: f64,
    pub silence: f64,
}

pub fn truth(agent: &[bool], customer: &[bool]) -> Truth {
    let n = agent.len().max(customer.len());
    let at = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
    let any: Vec<bool> = (0..n).map(|i| at(agent, i) || at(customer, i)).collect();
    let first = any.iter().position(|&x| x).unwrap_or(0);
    let last = any.iter().rposition(|&x| x).unwrap_or(0);
    let (mut silence, mut run, mut longest) = (0, 0, 0);
    for &spoken in &any[first..=last] {
        if spoken {
            run = 0;
        } else {
            silence += 1;
            run += 1;
            longest = longest.max(run);
        }
    }
    let count = |f: &dyn Fn(usize) -> bool| (0..n).filter(|&i| f(i)).count() as f64 / 100.0;
    Truth {
        agent: count(&|i| at(agent, i)),
        customer: count(&|i| at(customer, i)),
        overtalk: count(&|i| at(agent, i) && at(customer, i)),
        longest_silence: longest as f64 / 100.0,
        silence: silence as f64 / 100.0,
    }
}

/// Encodes both sides to G.729, merges them, and returns the merge's stats
/// and the figures (send = agent).
pub fn merged(send: &[i16], recv: &[i16]) -> (MergeStats, Conversation) {
    let (s, r) = (encode_pcm(send), encode_pcm(recv));
    let mut out = Cursor::new(Vec::new());
    let stats = merge(&s[..], &r[..], &mut out, Layout::Mono).expect("merge");
    let c = of_sides(&stats.speech_send, &stats.speech_recv, SendSide::Extension).expect("figures");
    (stats, c)
}

fn near(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 0.3,
        "{what}: {got:.2} s, truth {want:.2} s"
    );
}

/// Each side's talk, the overtalk and the longest silence within 0.3 s of
/// the truth.
fn near_truth(c: &Conversation, t: &Truth) {
    near("agent talk", c.agent_talk_seconds, t.agent);
    near("customer talk", c.customer_talk_seconds, t.customer);
    near("overtalk", c.overtalk_seconds, t.overtalk);
    near(
        "longest silence",
        c.longest_silence_seconds,
        t.longest_silence,
    );
}

/// The dialogue of the tests: agent at 1.00 s, the customer at 3.50 s,
/// the agent cuts in at 5.00 s, a long pause, the customer at 11.00 s, the
/// agent at 13.50 s and the customer cuts in at 14.50 s; the halves are
/// 19 s and 20 s long.
pub fn dialogue() -> (Side, Side) {
    let (a, c) = (fixture_pcm("agent.dat"), fixture_pcm("customer.dat"));
    let agent = side(
        &a,
        &[(AGENT[0], 100), (AGENT[2], 500), (AGENT[1], 1350)],
        1900,
    );
    let customer = side(
        &c,
        &[(CUSTOMER[0], 350), (CUSTOMER[1], 1100), (CUSTOMER[2], 1450)],
        2000,
    );
    (agent, customer)
}

#[test]
fn figures_of_a_placed_dialogue_match_the_truth() {
    let ((a_pcm, a_truth), (c_pcm, c_truth)) = dialogue();
    let t = truth(&a_truth, &c_truth);
    // The placement is what the test says it is.
    near("agent truth", t.agent, 1.67 + 1.68 + 2.87);
    near("overtalk truth", t.overtalk, 0.89 + 0.68);
    let (stats, c) = merged(&a_pcm, &c_pcm);
    assert_eq!((stats.frames_send, stats.frames_recv), (1900, 2000));
    near_truth(&c, &t);
    near("silence", c.silence_seconds, t.silence);
    near(
        "agent's first word",
        c.agent_first_word_seconds.expect("the agent speaks"),
        1.0,
    );
    assert_eq!(c.interruptions, 2, "{:?}", c.segments);
    let ratio = c.talk_ratio.expect("ratio");
    assert!(
        (ratio - t.agent / (t.agent + t.customer)).abs() < 0.03,
        "{ratio}"
    );
    assert!(c.segments.windows(2).all(|w| w[0].start <= w[1].start));
    assert!(c.segments.iter().all(|s| s.end > s.start && s.end <= 20.0));
    // Each placed piece is one segment: pauses inside a piece are bridged.
    let count = |side| c.segments.iter().filter(|s| s.side == side).count();
    assert_eq!((count(TalkSide::Agent), count(TalkSide::Customer)), (3, 3));
}

#[test]
fn a_device_that_labels_the_halves_the_other_way_swaps_the_parties() {
    let ((a_pcm, a_truth), (c_pcm, c_truth)) = dialogue();
    let t = truth(&a_truth, &c_truth);
    // The customer's audio in `send`, as such a device writes it.
    let (s, r) = (encode_pcm(&c_pcm), encode_pcm(&a_pcm));
    let mut out = Cursor::new(Vec::new());
    let stats = merge(&s[..], &r[..], &mut out, Layout::Mono).expect("merge");
    let c = of_sides(&stats.speech_send, &stats.speech_recv, SendSide::Remote).expect("figures");
    near("agent talk", c.agent_talk_seconds, t.agent);
    near("customer talk", c.customer_talk_seconds, t.customer);
    near(
        "first word",
        c.agent_first_word_seconds.expect("spoke"),
        1.0,
    );
}

#[test]
fn a_silent_half_gives_sane_figures() {
    let a = fixture_pcm("agent.dat");
    let (agent, agent_truth) = side(&a, &[(AGENT[2], 200)], 800);
    let (_, c) = merged(&agent, &vec![0; 800 * FRAME]);
    near(
        "agent talk",
        c.agent_talk_seconds,
        truth(&agent_truth, &[]).agent,
    );
    assert_eq!(c.customer_talk_seconds, 0.0);
    assert_eq!(c.talk_ratio, Some(1.0));
    assert_eq!((c.overtalk_seconds, c.interruptions), (0.0, 0));
    // Both silent: no speech, no first word, no ratio.
    let (_, none) = merged(&vec![0; 300 * FRAME], &vec![0; 300 * FRAME]);
    assert_eq!(
        (
            none.agent_first_word_seconds,
            none.talk_ratio,
            none.segments.len()
        ),
        (None, None, 0)
    );
}

/// White noise at a moderate level (RMS about -24 dBFS, a loud line hiss)
/// for a whole half: the VAD's floor follows it, so it is not speech; the
/// other half's speech is still found.
#[test]
fn a_noise_only_half_is_not_long_speech() {
    let mut seed: u32 = 12345;
    let noise: Vec<i16> = (0..2000 * FRAME)
        .map(|_| {
            // Mean of four uniforms (near-Gaussian), RMS ≈ 9500, then / 4.
            let sum: i32 = (0..4)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    i32::from((seed >> 16) as u16) - 32768
                })
                .sum();
            (sum / 16) as i16
        })
        .collect();
    let c_pcm = fixture_pcm("customer.dat");
    let (customer, customer_truth) = side(&c_pcm, &[(CUSTOMER[2], 600)], 2000);
    let (_, c) = merged(&noise, &customer);
    assert!(
        c.agent_talk_seconds < 1.0,
        "20 s of noise counted as {:.2} s of agent speech",
        c.agent_talk_seconds
    );
    near(
        "customer talk",
        c.customer_talk_seconds,
        truth(&[], &customer_truth).customer,
    );
}

#[test]
fn halves_of_very_different_lengths_give_sane_figures() {
    let a = fixture_pcm("agent.dat");
    let c = fixture_pcm("customer.dat");
    // A 1 s send half against a 60 s recv half with speech late in it.
    let (agent, agent_truth) = side(&a, &[(Piece { from: 2, to: 77 }, 10)], 100);
    let (customer, customer_truth) = side(&c, &[(CUSTOMER[0], 5000)], 6000);
    let t = truth(&agent_truth, &customer_truth);
    let (stats, fig) = merged(&agent, &customer);
    assert_eq!(stats.samples_out, 6000 * FRAME as u64);
    near("agent talk", fig.agent_talk_seconds, t.agent);
    near("customer talk", fig.customer_talk_seconds, t.customer);
    near(
        "longest silence",
        fig.longest_silence_seconds,
        t.longest_silence,
    );
    assert_eq!(fig.overtalk_seconds, 0.0);
    // A half of one frame.
    let (_, tiny) = merged(&[0; FRAME], &customer);
    assert_eq!(tiny.agent_talk_seconds, 0.0);
}

/// A two-channel WAV (a G.711 recording that arrives as stereo) gets its
/// figures from its channels, left = send = agent, in the pass that
/// validates it; a mono WAV gets none.
#[test]
fn a_stereo_wav_gets_figures_from_its_channels_a_mono_one_none() {
    use callvault::recordings::wav::validate_and_listen;
    let ((a_pcm, a_truth), (c_pcm, c_truth)) = dialogue();
    let t = truth(&a_truth, &c_truth);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, channels: u16| {
        let path = dir.path().join(name);
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("wav");
        for (i, &r) in c_pcm.iter().enumerate() {
            let l = a_pcm.get(i).copied().unwrap_or(0);
            if channels == 2 {
                w.write_sample(l).expect("left");
                w.write_sample(r).expect("right");
            } else {
                w.write_sample(l.saturating_add(r)).expect("mix");
            }
        }
        w.finalize().expect("finalize");
        path
    };
    let (info, sides) = validate_and_listen(&write("stereo.wav", 2)).expect("valid");
    assert_eq!(info.channels, 2);
    let (left, right) = sides.expect("two sides");
    let c = of_sides(&left, &right, SendSide::Extension).expect("figures");
    near_truth(&c, &t);
    let (_, mono) = validate_and_listen(&write("mono.wav", 1)).expect("valid");
    assert!(mono.is_none(), "a mix cannot tell who spoke");
}
