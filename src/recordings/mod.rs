//! Recordings stage (DESIGN.md §5): turning the device's recording files into
//! archived audio.
//!
//! * [`g729`]: reads one G.729 half (`*_send.dat` / `*_recv.dat`), raw or ITU
//!   serial framing, and decodes it to 8 kHz PCM, streaming.
//! * [`merge`]: decodes the send and recv halves in parallel and writes one
//!   8 kHz 16-bit WAV (mono mix or stereo), in constant memory, atomically.
//!
//! The codec (g729-sys, a port of the GPL-3 bcg729) sits behind the `g729`
//! cargo feature, on by default. Without it, frame reading still builds but
//! decoding and merging do not.

pub mod g729;
#[cfg(feature = "g729")]
pub mod merge;
