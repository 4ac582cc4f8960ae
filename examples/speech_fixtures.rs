//! Remakes the simulator's speech fixtures, `tests/fixtures/speech/*.dat`
//! (how and why: the README there and docs/recordings.md, "Simulated
//! dialogues"):
//!
//!     cargo run --example speech_fixtures [OUT_DIR]
//!
//! Each phrase is spoken by espeak-ng (agent `en-us`, customer `en+f3`),
//! resampled to 8 kHz 16-bit mono, trimmed to its speech (first to last 10 ms
//! frame at or above −40 dBFS RMS) and encoded to raw G.729 frames by the
//! crate's encoder; `silence.dat` is the encoding of digital silence. Prints
//! each file's frames (10 ms each).

use std::path::PathBuf;
use std::process::ExitCode;

use callvault::recordings::g729::encode_pcm;
use callvault::sim::espeak::{self, AGENT_VOICE, CUSTOMER_VOICE};
use callvault::sim::speech::{trim_to_speech, FRAME_SAMPLES};

/// The agent's phrases, in the order `sim::dialogue` numbers them (`agent_1.dat` …).
const AGENT: [&str; 8] = [
    "Thank you for calling Northwind support my name is Alex",
    "Can I have your account number please",
    "Let me look that up for you",
    "I can see the charge on your last bill",
    "I have removed the late fee from your account",
    "Is there anything else I can help you with",
    "Thank you for your patience",
    "Have a great day",
];

/// The customer's phrases (`customer_1.dat` …).
const CUSTOMER: [&str; 8] = [
    "Hello I am calling about my phone bill",
    "Sure it is four five seven one two",
    "There is a charge I do not recognise",
    "Sorry to interrupt but it was the late fee",
    "Oh that is great thank you so much",
    "No that is all",
    "Okay I will hold",
    "Bye now",
];

/// Frames of silence in `silence.dat`: enough that its loop is not heard.
const SILENCE_FRAMES: usize = 50;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech"));
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("speech_fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    if !espeak::available() {
        return Err("espeak-ng is not installed (apt-get install espeak-ng)".into());
    }
    std::fs::create_dir_all(out)?;
    let mut total = 0;
    for (side, voice, texts) in [
        ("agent", AGENT_VOICE, &AGENT),
        ("customer", CUSTOMER_VOICE, &CUSTOMER),
    ] {
        for (i, text) in texts.iter().enumerate() {
            let pcm = trim_to_speech(&espeak::synth(voice, text)?);
            if pcm.is_empty() {
                return Err(format!("{voice} said no speech for {text:?}").into());
            }
            let bits = encode_pcm(&pcm);
            let name = format!("{side}_{}.dat", i + 1);
            std::fs::write(out.join(&name), &bits)?;
            total += bits.len();
            println!("{name:<16} {:>4} frames  {text}", pcm.len() / FRAME_SAMPLES);
        }
    }
    let silence = encode_pcm(&[0i16; SILENCE_FRAMES * FRAME_SAMPLES]);
    std::fs::write(out.join("silence.dat"), &silence)?;
    total += silence.len();
    println!(
        "{:<16} {SILENCE_FRAMES:>4} frames  (digital silence)",
        "silence.dat"
    );
    println!("{total} bytes in {}", out.display());
    Ok(())
}
