//! The G.729 frame reader (`FrameReader`: raw and ITU serial framings) over
//! every frame of the input, then the decoder (`PcmFrames`) over the same
//! bytes.
//!
//! Invariants: no panic; at most one error, and nothing after it; every
//! byte is a frame, the error's or the dropped partial frame's; the decoder
//! sees the same frames the reader yields.
#![no_main]

use std::io::Cursor;

use callvault::recordings::g729::{FrameFormat, FrameReader, PcmFrames, FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = FrameReader::new(Cursor::new(data)) else {
        assert!(PcmFrames::new(Cursor::new(data)).is_err());
        return;
    };
    let format = reader.format();
    let (mut frames, mut failed) = (0u64, false);
    for item in reader.by_ref() {
        assert!(!failed, "an item after the error");
        match item {
            Ok(_) => frames += 1,
            Err(_) => failed = true,
        }
    }
    if format == FrameFormat::Raw {
        assert!(!failed, "raw frames cannot be invalid");
        let whole = (data.len() / FRAME_BYTES) as u64;
        assert_eq!(frames, whole);
        assert_eq!(
            reader.partial_bytes_dropped(),
            (data.len() % FRAME_BYTES) as u64
        );
    }
    let mut pcm = PcmFrames::new(Cursor::new(data)).expect("sniffs as before");
    let (mut decoded, mut pcm_failed) = (0u64, false);
    for item in pcm.by_ref() {
        match item {
            Ok(_) => decoded += 1,
            Err(_) => pcm_failed = true,
        }
    }
    assert_eq!((decoded, pcm_failed), (frames, failed));
    assert_eq!(pcm.stats().frames, frames);
});
