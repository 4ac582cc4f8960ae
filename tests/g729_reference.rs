//! G.729 decoding and merging against the bcg729 reference decode of two
//! real call halves (tests/fixtures/g729: agent.dat / customer.dat are raw
//! 10-byte frames, *.bcg729.pcm the bcg729 output, s16le 8 kHz mono).
#![cfg(feature = "g729")]

use callvault::recordings::g729::{FrameFormat, G729Error, PcmFrames};
use callvault::recordings::merge::{merge, merge_files, Layout, MergeError};
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/g729")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).expect("fixture")
}

fn reference(name: &str) -> Vec<i16> {
    bytes(name)
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn decode(input: &[u8]) -> Vec<i16> {
    PcmFrames::new(input)
        .expect("sniff")
        .flat_map(|f| f.expect("frame"))
        .collect()
}

/// ITU serial encoding of raw 10-byte frames, as the ITU reference tools
/// write it (sync 0x6B21, 80, then one word per bit, MSB first).
fn to_itu(raw: &[u8], big_endian: bool) -> Vec<u8> {
    let w = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    for frame in raw.chunks_exact(10) {
        out.extend_from_slice(&w(0x6B21));
        out.extend_from_slice(&w(80));
        for i in 0..80 {
            let bit = frame[i / 8] >> (7 - i % 8) & 1;
            out.extend_from_slice(&w(if bit == 1 { 0x0081 } else { 0x007F }));
        }
    }
    out
}

fn merge_to_wav(send: &[u8], recv: &[u8], layout: Layout) -> (Vec<i16>, u16) {
    let mut out = Cursor::new(Vec::new());
    merge(send, recv, &mut out, layout).expect("merge");
    out.set_position(0);
    let mut wav = hound::WavReader::new(out).expect("valid wav");
    let spec = wav.spec();
    assert_eq!((spec.sample_rate, spec.bits_per_sample), (8000, 16));
    let samples = wav.samples::<i16>().map(|s| s.expect("sample")).collect();
    (samples, spec.channels)
}

/// Files in `dir` (to check that no temp file is left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn decode_agent_matches_bcg729() {
    assert_eq!(decode(&bytes("agent.dat")), reference("agent.bcg729.pcm"));
}

#[test]
fn decode_customer_matches_bcg729() {
    assert_eq!(
        decode(&bytes("customer.dat")),
        reference("customer.bcg729.pcm")
    );
}

#[test]
fn decode_itu_serial_matches_raw_both_endians() {
    let raw = bytes("agent.dat");
    for big_endian in [false, true] {
        let itu = to_itu(&raw, big_endian);
        let frames = PcmFrames::new(&itu[..]).unwrap();
        let want = if big_endian {
            FrameFormat::ItuBe
        } else {
            FrameFormat::ItuLe
        };
        assert_eq!(frames.format(), want);
        assert_eq!(decode(&itu), reference("agent.bcg729.pcm"));
    }
}

#[test]
fn merge_mono_is_saturating_sum_padded_to_longer() {
    let (agent, customer) = (
        reference("agent.bcg729.pcm"),
        reference("customer.bcg729.pcm"),
    );
    assert!(
        customer.len() < agent.len(),
        "fixture: customer is the shorter half"
    );
    // customer as send, so the *send* half is the one padded.
    let (wav, channels) = merge_to_wav(&bytes("customer.dat"), &bytes("agent.dat"), Layout::Mono);
    assert_eq!(channels, 1);
    let want: Vec<i16> = (0..agent.len())
        .map(|i| {
            customer
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_add(agent[i])
        })
        .collect();
    assert_eq!(wav.len(), agent.len());
    assert_eq!(wav, want);
}

#[test]
fn merge_stereo_keeps_each_channel_exact() {
    let (agent, customer) = (
        reference("agent.bcg729.pcm"),
        reference("customer.bcg729.pcm"),
    );
    let (wav, channels) = merge_to_wav(&bytes("agent.dat"), &bytes("customer.dat"), Layout::Stereo);
    assert_eq!(channels, 2);
    let left: Vec<i16> = wav.iter().step_by(2).copied().collect();
    let right: Vec<i16> = wav.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(left, agent);
    assert_eq!(&right[..customer.len()], &customer[..]);
    assert!(right[customer.len()..].iter().all(|&s| s == 0));
}

#[test]
fn merge_drops_trailing_partial_frame_and_reports_it() {
    let mut send = bytes("agent.dat");
    send.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]);
    let mut out = Cursor::new(Vec::new());
    let stats = merge(
        &send[..],
        &bytes("customer.dat")[..],
        &mut out,
        Layout::Mono,
    )
    .unwrap();
    assert_eq!(stats.partial_bytes_dropped_send, 7);
    assert_eq!(stats.partial_bytes_dropped_recv, 0);
    assert_eq!(stats.frames_send, 1050);
    assert_eq!(stats.frames_recv, 1021);
    assert_eq!(stats.samples_out, 84_000);
    assert!((stats.duration_secs - 10.5).abs() < 1e-9);
}

#[test]
fn merge_rejects_garbage_half() {
    let page = b"<!DOCTYPE html><html><body>404 Not Found</body></html>";
    let mut out = Cursor::new(Vec::new());
    let err = merge(&page[..], &bytes("agent.dat")[..], &mut out, Layout::Mono).unwrap_err();
    assert!(
        matches!(err, MergeError::Send(G729Error::NotG729 { .. })),
        "{err}"
    );
}

#[test]
fn merge_files_writes_wav_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("call.wav");
    let stats = merge_files(
        &data("agent.dat"),
        &data("customer.dat"),
        &out,
        Layout::Mono,
    )
    .unwrap();
    assert_eq!(stats.samples_out, 84_000);
    assert_eq!(listing(dir.path()), ["call.wav"]);
    assert_eq!(hound::WavReader::open(&out).unwrap().len(), 84_000);
}

#[test]
fn merge_files_leaves_no_file_when_a_half_breaks_midway() {
    // A bad ITU bit word near the end: the WAV is half written when the error
    // surfaces, and neither it nor its temp file may remain.
    let dir = tempfile::tempdir().unwrap();
    let mut itu = to_itu(&bytes("agent.dat"), false);
    let n = itu.len();
    itu[n - 10] = 0x55;
    let (send, out) = (dir.path().join("bad.dat"), dir.path().join("call.wav"));
    std::fs::write(&send, &itu).unwrap();
    let err = merge_files(&send, &data("customer.dat"), &out, Layout::Stereo).unwrap_err();
    assert!(
        matches!(err, MergeError::Send(G729Error::BadBitWord { .. })),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["bad.dat"]);
}

#[test]
fn merge_files_leaves_no_file_when_a_half_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("call.wav");
    let err = merge_files(
        &data("agent.dat"),
        &dir.path().join("nope.dat"),
        &out,
        Layout::Mono,
    );
    assert!(matches!(err, Err(MergeError::File { .. })));
    assert!(listing(dir.path()).is_empty());
}
