//! Speech from espeak-ng, for the speech fixtures' maker
//! (`examples/speech_fixtures.rs`) and the conversation ground-truth test;
//! nothing at run time calls it (docs/recordings.md, "Simulated dialogues").
//! The one place besides `recorder` and `push` where the simulator leaves
//! pure logic: it runs the `espeak-ng` program.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::speech::{resample_to_8k, wav_pcm, WavError};

/// The agent's voice (the `send` half, OM manual §4.9).
pub const AGENT_VOICE: &str = "en-us";
/// The customer's voice (the `recv` half): a female variant, so the two
/// sides sound distinct.
pub const CUSTOMER_VOICE: &str = "en+f3";
/// Words per minute: a little slower than espeak-ng's default of 175,
/// nearer a person on the phone; fixed so that remade fixtures keep it.
pub const SPEED_WPM: u32 = 160;
/// Amplitude (espeak-ng `-a`, default 100): 60 keeps peaks near −7 dBFS,
/// clear of clipping once resampled and coded.
pub const AMPLITUDE: u32 = 60;
/// Longest a phrase may take to synthesize.
const DEADLINE: Duration = Duration::from_secs(20);
/// Largest WAV accepted from espeak-ng: about 45 s at 22.05 kHz.
const MAX_BYTES: u64 = 2 << 20;

/// Why a phrase could not be synthesized.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("running espeak-ng: {0}")]
    Spawn(std::io::Error),
    #[error("espeak-ng failed: {0}")]
    Failed(String),
    #[error("espeak-ng took longer than {0:?}")]
    Timeout(Duration),
    #[error("espeak-ng output: {0}")]
    Wav(#[from] WavError),
    #[error("espeak-ng output longer than {MAX_BYTES} bytes")]
    TooLong,
}

/// Whether `espeak-ng` can be run (tests skip with a reason when not).
pub fn available() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `text` spoken by `voice`, as 8 kHz 16-bit mono PCM (not trimmed: espeak
/// leaves a little silence at both ends).
pub fn synth(voice: &str, text: &str) -> Result<Vec<i16>, SynthError> {
    let mut child = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &SPEED_WPM.to_string()])
        .args(["-a", &AMPLITUDE.to_string(), "--stdout", "--"])
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SynthError::Spawn)?;
    // Read on a thread so that a hung espeak-ng meets the deadline below
    // instead of blocking the read.
    let reader = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut wav = Vec::new();
            out.take(MAX_BYTES + 1).read_to_end(&mut wav).map(|_| wav)
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(SynthError::Spawn)? {
            Some(s) => break s,
            None if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SynthError::Timeout(DEADLINE));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let read = match reader.map(|r| r.join()) {
        Some(Ok(r)) => r,
        Some(Err(_)) => Err(std::io::Error::other("reading espeak-ng's output panicked")),
        None => Err(std::io::Error::other("espeak-ng has no output pipe")),
    };
    let wav = read.map_err(SynthError::Spawn)?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(SynthError::Failed(format!("{status}: {}", err.trim())));
    }
    if wav.len() as u64 > MAX_BYTES {
        return Err(SynthError::TooLong);
    }
    let (rate, pcm) = wav_pcm(&wav)?;
    Ok(resample_to_8k(&pcm, rate))
}
