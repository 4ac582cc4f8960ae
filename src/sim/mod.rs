//! The simulated OM device's traffic model (pure logic, no network).
//!
//! [`generate`] lays out calls of the scenarios the OM manual describes
//! (§2.5.3 call events, §2.5.7 queues, §2.6 CDR legs, §5.7 leg roles) and
//! returns a [`Plan`]: every push the device would send (events at their
//! moment, each CDR leg when that leg ends, with optional `<MAC>` and
//! `<Auth>` per §4.5), the recording files its recorder must serve (§4.9), and
//! the [`Truth`] (logical calls per docs/calls.md, queue visits per
//! docs/queues.md, where each side speaks in each G.729 recording) that
//! grouping, queue inference and conversation figures are checked against.
//!
//! [`recorder`] is the HTTP side of the recordings: the device's recorder
//! serving the files of a plan, G.729 calls saying a [`dialogue`] whose
//! speech the truth knows. [`speech`] holds the PCM helpers behind the
//! dialogues' phrases, [`espeak`] makes phrases with espeak-ng (for the
//! fixtures' maker and tests only). Sending pushes lives elsewhere.

pub mod dialogue;
pub mod espeak;
mod inbound;
pub mod push;
mod queue;
pub mod recorder;
mod scenarios;
pub mod speech;
mod timeline;
mod traffic;
pub mod truth;
pub mod xml;

pub use scenarios::Scenario;
pub use timeline::RECYCLE_GAP_SECONDS;
pub use traffic::{generate, Plan, Push, PushKind, RecordingSpec, SimConfig};
pub use truth::{Truth, TruthCall, TruthRecording, TruthSegment, TruthVisit};
