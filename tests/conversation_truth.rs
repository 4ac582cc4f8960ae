//! Ground truth for the conversation figures of `GET /api/calls/{id}`
//! (docs/recordings.md, "Simulated dialogues" and the figures' section):
//! dialogues synthesized now with espeak-ng, with speech at known offsets per
//! side, encoded to G.729 halves by the crate's encoder, served by the
//! simulated recorder, pushed as OM CDRs, fetched by the worker; each figure
//! must come within ±0.3 s of what the PCM says. A silent half, a noise-only
//! half and halves of very different length must give sane figures.
//!
//! The truth of a phrase is its speech span measured on its PCM (first to
//! last 10 ms frame at or above −40 dBFS RMS, `sim::speech`), not its
//! nominal length. Before any figure is asked for, the served halves are
//! decoded and must hold speech exactly where the truth says (within the
//! codec's few frames of delay), for these dialogues and for the simulation's
//! built-in ones.
//!
//! Skips with a printed reason when `espeak-ng` is not installed.

#![cfg(feature = "g729")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault::recordings::g729::{encode_pcm, PcmFrames};
use callvault::sim::dialogue::{After, Dialogue, Halves, Phrase, Side, Start, Turn};
use callvault::sim::espeak::{self, AGENT_VOICE, CUSTOMER_VOICE};
use callvault::sim::recorder::{self, Faults};
use callvault::sim::speech::{frame_rms, speech_frames, speech_span};
use callvault::sim::{generate, RecordingSpec, SimConfig, TruthRecording};
use serde_json::Value;

use crate::recordings_fetch::{rec_path, Rig};
use crate::util::*;

/// How far each figure may be from the truth, in seconds.
const TOL: f64 = 0.3;
/// How many 10 ms frames a decoded half's speech may start or stop away from
/// the truth: the codec's look-ahead, and a weak tail (the /ks/ ending
/// "Alex" in a fixture) that G.729 renders just under the threshold. Measured:
/// 2 frames for the phrases made here, 6 for the fixtures.
const EDGE_FRAMES: u32 = 6;

fn have_espeak(test: &str) -> bool {
    let ok = espeak::available();
    if !ok {
        eprintln!("skipping {test}: espeak-ng is not installed (apt-get install espeak-ng)");
    }
    ok
}

/// `text` said by `voice`, untrimmed, its speech where its PCM has it.
fn said(voice: &str, text: &str) -> Arc<Phrase> {
    let pcm = espeak::synth(voice, text).unwrap_or_else(|e| panic!("espeak-ng {text:?}: {e}"));
    let (a, b) = speech_span(&pcm).unwrap_or_else(|| panic!("no speech in {text:?}"));
    Arc::new(Phrase::new(encode_pcm(&pcm), Some((a as u32, b as u32))))
}

/// `seconds` of white noise at about −24 dBFS RMS (a fixed generator, so
/// every run hears the same): a half with sound but no speech.
fn noise(seconds: u32) -> Arc<Phrase> {
    let mut x: u32 = 0x1234_5678;
    let pcm: Vec<i16> = (0..seconds * 8000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 16
        })
        .collect();
    Arc::new(Phrase::new(encode_pcm(&pcm), None))
}

/// One call of the test: the halves served for it and its CDR's caller.
struct Case {
    name: &'static str,
    cpn: &'static str,
    halves: Halves,
    /// Whether the customer half is noise (its figures are only checked to
    /// be sane, not against a truth).
    noisy: bool,
}

impl Case {
    fn spec(&self) -> RecordingSpec {
        RecordingSpec {
            path: rec_path(self.cpn),
            codec: "G729".into(),
            seconds: self
                .halves
                .send_frames
                .max(self.halves.recv_frames)
                .div_ceil(100),
        }
    }

    fn truth(&self) -> TruthRecording {
        self.halves.truth(&rec_path(self.cpn))
    }
}

fn halves(d: Dialogue, send_frames: u32, recv_frames: u32) -> Halves {
    Halves {
        dialogue: Arc::new(d),
        send_frames,
        recv_frames,
    }
}

/// The test's calls, synthesized now.
fn cases() -> Vec<Case> {
    use Side::{Agent as A, Customer as C};
    use Start::{After as Gap, Overlap};
    let a = [
        "Good morning this is Sam from accounts",
        "Let me check that invoice for you",
        "Thanks for waiting I found the invoice",
        "Of course I will send it today",
    ]
    .map(|t| said(AGENT_VOICE, t));
    let c = [
        "Hi I wanted to ask about an invoice",
        "Great could you send it by email please",
    ]
    .map(|t| said(CUSTOMER_VOICE, t));
    // Turn gaps of 0.3–0.4 s, a pause of 5 s while the agent looks, an
    // interruption of about 0.8 s; short silence at both ends, so the longest
    // silence is the pause whether or not a figure counts the ends.
    let script = [
        (A, &a[0], Gap(0)),
        (C, &c[0], Gap(40)),
        (A, &a[1], Gap(30)),
        (A, &a[2], Gap(500)),
        (C, &c[1], Overlap(110)),
        (A, &a[3], Gap(40)),
    ];
    let dialogue = || Dialogue::script("test", 50, &script, 100, After::Silence).expect("dialogue");
    let full = dialogue().frames();
    let agent_only = || {
        Dialogue::script(
            "agent only",
            40,
            &[
                (A, &a[0], Gap(0)),
                (A, &a[1], Gap(400)),
                (A, &a[3], Gap(60)),
            ],
            80,
            After::Silence,
        )
        .expect("dialogue")
    };
    let agent_len = agent_only().frames();
    let mut with_noise = agent_only().turns().to_vec();
    with_noise.push(Turn {
        side: C,
        phrase: noise(agent_len.div_ceil(100)),
        start: 0,
    });
    let noisy = Dialogue::new(
        "noise",
        with_noise,
        agent_len.div_ceil(100) * 100,
        After::Silence,
    )
    .expect("dialogue");
    vec![
        Case {
            name: "dialogue",
            cpn: "7001",
            halves: halves(dialogue(), full, full - 7),
            noisy: false,
        },
        Case {
            name: "silent customer half",
            cpn: "7002",
            halves: halves(agent_only(), agent_len, agent_len),
            noisy: false,
        },
        Case {
            name: "noise-only customer half",
            cpn: "7003",
            halves: halves(noisy, agent_len, agent_len.div_ceil(100) * 100),
            noisy: true,
        },
        Case {
            // The agent's half stops 2 s in, mid-phrase; the customer's runs on.
            name: "halves of very different length",
            cpn: "7004",
            halves: halves(dialogue(), 200, full),
            noisy: false,
        },
    ]
}

/// Union of `side`'s truth spans, in seconds.
fn spans(t: &TruthRecording, side: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for s in t.segments.iter().filter(|s| s.side == side) {
        let (a, b) = (s.start_ms as f64 / 1000.0, s.end_ms as f64 / 1000.0);
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn total(spans: &[(f64, f64)]) -> f64 {
    spans.iter().map(|(a, b)| b - a).sum()
}

/// The figures the truth implies.
struct Expected {
    agent_talk: f64,
    customer_talk: f64,
    overtalk: f64,
    /// Inside the speech: from the first word to the last.
    longest_silence: f64,
    /// The longer of the silences before the first word and after the last.
    ends_silence: f64,
    agent_first_word: Option<f64>,
}

fn expected(t: &TruthRecording) -> Expected {
    let (ag, cu) = (spans(t, "agent"), spans(t, "customer"));
    let overtalk = ag
        .iter()
        .flat_map(|x| {
            cu.iter()
                .map(move |y| (x.1.min(y.1) - x.0.max(y.0)).max(0.0))
        })
        .sum();
    let mut both: Vec<(f64, f64)> = ag.iter().chain(&cu).copied().collect();
    both.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut longest, mut end) = (0.0f64, None::<f64>);
    let first = both.first().map(|s| s.0);
    for (a, b) in &both {
        if let Some(e) = end {
            longest = longest.max(a - e);
        }
        end = Some(end.map_or(*b, |e| e.max(*b)));
    }
    let len = t.send_ms.max(t.recv_ms) as f64 / 1000.0;
    Expected {
        agent_talk: total(&ag),
        customer_talk: total(&cu),
        overtalk,
        longest_silence: longest,
        ends_silence: match (first, end) {
            (Some(first), Some(last)) => first.max(len - last),
            _ => len,
        },
        agent_first_word: ag.first().map(|s| s.0),
    }
}

/// The test's cases are laid out so that the silence before the first word
/// and after the last is clearly shorter than the longest inside: then no
/// definition of `longest_silence_seconds` can choose between them.
fn assert_unambiguous(name: &str, e: &Expected) {
    assert!(
        e.ends_silence < e.longest_silence - 2.0 * TOL,
        "{name}: the ends' silence ({:.2} s) rivals the longest inside ({:.2} s)",
        e.ends_silence,
        e.longest_silence
    );
}

/// Decodes `half` and checks that its speech frames are where `truth`
/// (frames `[a, b)`) says, up to [`EDGE_FRAMES`] at each edge.
fn assert_speech_where_truth_says(what: &str, half: &[u8], truth: &[(u32, u32)]) {
    let pcm: Vec<i16> = PcmFrames::new(half)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .flat_map(|f| f.unwrap_or_else(|e| panic!("{what}: {e}")))
        .collect();
    let speech = speech_frames(&pcm);
    let rms = frame_rms(&pcm);
    let around = |i: u32| -> Vec<u32> {
        let lo = i.saturating_sub(6) as usize;
        rms[lo.min(rms.len())..(i as usize + 6).min(rms.len())]
            .iter()
            .map(|r| *r as u32)
            .collect()
    };
    let n = speech.len() as u32;
    assert_eq!(n as usize * 10, half.len(), "{what}: every frame decoded");
    for (i, _) in speech.iter().enumerate().filter(|(_, s)| **s) {
        let i = i as u32;
        assert!(
            truth
                .iter()
                .any(|&(a, b)| a.saturating_sub(EDGE_FRAMES) <= i && i < b + EDGE_FRAMES),
            "{what}: speech at {:.2} s where the truth has none ({truth:?}; RMS around: {:?})",
            f64::from(i) / 100.0,
            around(i)
        );
    }
    // How far the decoded speech's edges are from the truth's, in frames.
    let mut worst = 0;
    for &(a, b) in truth {
        let lo = a.saturating_sub(EDGE_FRAMES);
        let first = (lo..b.min(n)).find(|&i| speech[i as usize]);
        let Some(first) = first else {
            panic!(
                "{what}: no speech in the phrase at {:.2}–{:.2} s (frame RMS at its start: {:?})",
                f64::from(a) / 100.0,
                f64::from(b) / 100.0,
                around(a)
            );
        };
        worst = worst.max(first.abs_diff(a));
        if b + EDGE_FRAMES <= n {
            let last = (a..b + EDGE_FRAMES)
                .rev()
                .find(|&i| speech[i as usize])
                .unwrap_or(a);
            worst = worst.max((last + 1).abs_diff(b));
        }
        assert!(
            worst <= EDGE_FRAMES,
            "{what}: decoded speech {worst} frames away from the edge of the phrase at {:.2}–{:.2} s \
             (frame RMS around its start: {:?}, its end: {:?})",
            f64::from(a) / 100.0,
            f64::from(b) / 100.0,
            around(a),
            around(b)
        );
    }
    eprintln!("{what}: decoded speech edges within {worst} frames of the truth");
}

fn frames_of(t: &TruthRecording, side: &str) -> Vec<(u32, u32)> {
    t.segments
        .iter()
        .filter(|s| s.side == side)
        .map(|s| ((s.start_ms / 10) as u32, (s.end_ms / 10) as u32))
        .collect()
}

/// Checks both halves of one recording against its truth.
fn assert_halves_match(name: &str, send: &[u8], recv: &[u8], t: &TruthRecording, noisy: bool) {
    assert_eq!(send.len() as u64, t.send_ms, "{name}: send half's length");
    assert_eq!(recv.len() as u64, t.recv_ms, "{name}: recv half's length");
    assert_speech_where_truth_says(&format!("{name}, send"), send, &frames_of(t, "agent"));
    if !noisy {
        assert_speech_where_truth_says(&format!("{name}, recv"), recv, &frames_of(t, "customer"));
    }
}

#[test]
fn synthesized_halves_hold_speech_where_the_truth_says() {
    if !have_espeak("synthesized_halves_hold_speech_where_the_truth_says") {
        return;
    }
    for case in cases() {
        let t = case.truth();
        let (send, recv) = (case.halves.send(), case.halves.recv());
        assert_halves_match(case.name, &send, &recv, &t, case.noisy);
        let e = expected(&t);
        assert_unambiguous(case.name, &e);
        match case.name {
            "dialogue" => {
                assert!(
                    e.overtalk > 0.4 && e.overtalk < 1.2,
                    "{}: an interruption",
                    e.overtalk
                );
                assert!(
                    e.longest_silence > 4.5,
                    "a long pause: {}",
                    e.longest_silence
                );
            }
            "silent customer half" | "noise-only customer half" => {
                assert_eq!((e.customer_talk, e.overtalk), (0.0, 0.0))
            }
            _ => assert!(
                e.agent_talk < 2.0 && e.customer_talk > 3.0,
                "clipped agent half"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_calls_halves_hold_speech_where_the_truth_says() {
    let plan = generate(&SimConfig {
        seed: 5,
        calls: 60,
        ..SimConfig::default()
    });
    let g729: Vec<&RecordingSpec> = plan
        .recordings
        .iter()
        .filter(|r| r.codec == "G729")
        .collect();
    let paths: Vec<&str> = plan
        .truth
        .recordings
        .iter()
        .map(|t| t.path.as_str())
        .collect();
    assert_eq!(
        paths,
        g729.iter().map(|r| r.path.as_str()).collect::<Vec<_>>()
    );
    // The longest calls: they run through a whole dialogue and repeat it.
    let mut picked: Vec<(&RecordingSpec, &TruthRecording)> =
        g729.into_iter().zip(&plan.truth.recordings).collect();
    picked.sort_by_key(|(r, _)| std::cmp::Reverse(r.seconds));
    picked.truncate(3);
    assert!(
        picked[0].0.seconds > 60,
        "a long G.729 call: {:?}",
        picked[0].0
    );
    let rec = recorder::start(
        picked.iter().map(|(r, _)| (*r).clone()).collect(),
        Faults::default(),
    )
    .await
    .expect("recorder");
    let http = reqwest::Client::new();
    for (spec, t) in &picked {
        let stem = spec.path.trim_end_matches(".wav");
        let mut halves = Vec::new();
        for half in ["send", "recv"] {
            let url = format!("{}{stem}_{half}.dat", rec.base_url());
            let resp = http.get(&url).send().await.expect("GET half");
            assert_eq!(resp.status(), 200, "{url}");
            halves.push(resp.bytes().await.expect("body").to_vec());
        }
        assert_halves_match(&spec.path, &halves[0], &halves[1], t, false);
        // What the built-in dialogues promise: an interruption, a long
        // pause, both sides talking.
        let e = expected(t);
        assert!(e.overtalk >= 0.5, "{}: overtalk {}", spec.path, e.overtalk);
        assert!(
            e.longest_silence >= 5.0,
            "{}: pause {}",
            spec.path,
            e.longest_silence
        );
        assert!(
            e.agent_talk > 10.0 && e.customer_talk > 10.0,
            "{}",
            spec.path
        );
    }
    rec.stop().await;
    let dialogues: std::collections::BTreeSet<&str> = plan
        .truth
        .recordings
        .iter()
        .map(|t| t.dialogue.as_str())
        .collect();
    assert_eq!(
        dialogues.len(),
        2,
        "calls say both built-in dialogues: {dialogues:?}"
    );
}

/// A CDR of an answered inbound call from `cpn` whose talk lasts `seconds`
/// (answered at 16:27:11, the time its recording is named for).
fn cdr_of(id: &str, visitor: &str, cpn: &str, seconds: u32) -> String {
    let end = chrono::NaiveDateTime::parse_from_str("20170309162711", "%Y%m%d%H%M%S").unwrap()
        + chrono::TimeDelta::seconds(i64::from(seconds));
    cdr(id, visitor, cpn)
        .replace(
            "<callid>32818</callid>",
            &format!(
                "<callid>{}</callid>",
                32000 + u32::from(visitor.parse::<u16>().unwrap_or(0))
            ),
        )
        .replace(
            "<TimeEnd>20170309162713</TimeEnd>",
            &format!("<TimeEnd>{}</TimeEnd>", end.format("%Y%m%d%H%M%S")),
        )
        .replace(
            "<Duration>2</Duration>",
            &format!("<Duration>{seconds}</Duration>"),
        )
}

/// The `conversation` of the call whose recording is leg `cdr_id`, once the
/// recording is fetched and its figures are there.
async fn conversation(rig: &Rig, token: &str, cdr_id: &str) -> Value {
    let api = rig.running.api_addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    loop {
        let calls = get_json(api, "/api/calls?from=2017-03-09", token).await;
        for c in calls["calls"].as_array().expect("calls") {
            let id = c["id"].as_str().expect("id");
            let d = get_json(api, &format!("/api/calls/{id}"), token).await;
            let Some(rec) = d["recordings"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["cdr_id"] == cdr_id))
            else {
                continue;
            };
            if rec["status"] == "done" && d["conversation"].is_object() {
                return d["conversation"].clone();
            }
            last = d;
        }
        assert!(
            Instant::now() < deadline,
            "no conversation figures for leg {cdr_id} within 30 s (they come with the \
             conversation-figures work); last detail: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn num(conv: &Value, key: &str) -> f64 {
    conv[key]
        .as_f64()
        .unwrap_or_else(|| panic!("conversation.{key} is not a number: {conv}"))
}

/// Every figure is a number in its range, whatever the audio.
fn assert_sane(name: &str, conv: &Value, len: f64) {
    for key in [
        "agent_talk_seconds",
        "customer_talk_seconds",
        "overtalk_seconds",
        "longest_silence_seconds",
        "silence_seconds",
    ] {
        let v = num(conv, key);
        assert!(
            v.is_finite() && (0.0..=len + TOL).contains(&v),
            "{name}: {key} = {v} (call {len} s)"
        );
    }
    let talk = num(conv, "agent_talk_seconds").min(num(conv, "customer_talk_seconds"));
    assert!(
        num(conv, "overtalk_seconds") <= talk + TOL,
        "{name}: overtalk beyond talk: {conv}"
    );
    if let Some(r) = conv["talk_ratio"].as_f64() {
        assert!((0.0..=1.0).contains(&r), "{name}: talk_ratio {r}");
    }
    assert!(
        conv["interruptions"].is_u64(),
        "{name}: interruptions: {conv}"
    );
    for s in conv["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: segments: {conv}"))
    {
        let (a, b) = (num(s, "start"), num(s, "end"));
        assert!(0.0 <= a && a <= b && b <= len + TOL, "{name}: segment {s}");
        assert!(
            s["side"] == "agent" || s["side"] == "customer",
            "{name}: segment {s}"
        );
    }
}

fn assert_near(name: &str, key: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{name}: {key} = {got:.2}, the truth is {want:.2} (±{TOL})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_figures_match_the_dialogues_truth() {
    if !have_espeak("conversation_figures_match_the_dialogues_truth") {
        return;
    }
    let cases = cases();
    for backend in backends("conversation_figures_match_the_dialogues_truth") {
        let served = cases.iter().map(|c| (c.spec(), c.halves.clone())).collect();
        let rec = recorder::start_halves(served, Faults::default())
            .await
            .expect("recorder");
        let rig = Rig::start_on(backend, &rec.base_url(), |_| {}).await;
        let token = token_on(&rig.running, "admin").await;
        for (i, case) in cases.iter().enumerate() {
            let visitor = (40 + i).to_string();
            rig.push(&cdr_of(
                &format!("{}-0", i + 1),
                &visitor,
                case.cpn,
                case.spec().seconds,
            ));
        }
        for (i, case) in cases.iter().enumerate() {
            let t = case.truth();
            let name = case.name;
            let conv = conversation(&rig, &token, &format!("{}-0", i + 1)).await;
            assert_sane(name, &conv, t.send_ms.max(t.recv_ms) as f64 / 1000.0);
            let e = expected(&t);
            assert_near(
                name,
                "agent_talk_seconds",
                num(&conv, "agent_talk_seconds"),
                e.agent_talk,
            );
            if let Some(w) = e.agent_first_word {
                assert_near(
                    name,
                    "agent_first_word_seconds",
                    num(&conv, "agent_first_word_seconds"),
                    w,
                );
            }
            if case.noisy {
                continue;
            }
            assert_near(
                name,
                "customer_talk_seconds",
                num(&conv, "customer_talk_seconds"),
                e.customer_talk,
            );
            assert_near(
                name,
                "overtalk_seconds",
                num(&conv, "overtalk_seconds"),
                e.overtalk,
            );
            assert_near(
                name,
                "longest_silence_seconds",
                num(&conv, "longest_silence_seconds"),
                e.longest_silence,
            );
            if name == "dialogue" {
                assert_eq!(conv["interruptions"], 1, "{name}: one interruption: {conv}");
            }
        }
        rig.running.stop().await;
        rec.stop().await;
    }
}
