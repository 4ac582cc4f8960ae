//! Recordings stage (docs/recordings.md): turning the device's recording files into
//! archived audio.
//!
//! * [`schedule`]: the ingest hook queuing a `pending` row per recorded leg.
//! * [`worker`]: the fetch worker of `serve` and the one-off pass of
//!   `recordings fetch`; [`fetch`] is one attempt (download, validate,
//!   merge, archive), [`locate`] finds the G.729 halves on the device,
//!   [`archive`] builds safe paths and writes files atomically, [`wav`]
//!   validates G.711 WAVs, [`disk_floor`] pauses fetching while the disk
//!   is nearly full.
//! * [`storage`]: where finished recordings live, `file:` or `s3://`
//!   ([`RecordingStore`]); the fetch stores into it, the API serves from it.
//! * [`g729`]: reads one G.729 half (`*_send.dat` / `*_recv.dat`), raw or ITU
//!   serial framing, and decodes it to 8 kHz PCM, streaming.
//! * [`merge`]: decodes the send and recv halves in parallel and writes one
//!   8 kHz 16-bit WAV (mono mix or stereo), in constant memory, atomically,
//!   running [`vad`] (who speaks when, per side) on each decoder thread;
//!   [`conversation`] turns both sides' speech into the call's figures.
//!
//! The codec (g729-sys, a port of the GPL-3 bcg729) sits behind the `g729`
//! cargo feature, on by default. Without it, frame reading still builds but
//! decoding and merging do not (G.729 recordings then end `failed`).

pub mod analyze;
pub mod archive;
pub mod conversation;
pub mod disk_floor;
pub mod fetch;
pub mod g729;
pub mod locate;
#[cfg(feature = "g729")]
pub mod merge;
pub mod schedule;
pub mod storage;
pub mod vad;
pub mod wav;
pub mod worker;

pub use disk_floor::PauseState;
pub use fetch::SetupError;
pub use storage::{RecordingStore, StorageError};
pub use worker::{Fetcher, PassStats};
