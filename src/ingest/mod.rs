//! Ingest: turn pushed bytes into stored legs and events.
//!
//! `om` holds the OM wire format (XML parsing, reverse auth, path checks);
//! `device` identifies which configured device a push came from; `pipeline`
//! runs one push end to end (checks, raw storage, quarantine, metrics) and is
//! shared by the HTTP listener and `callvault import`; `derive` turns the
//! committed pushes into legs and events and feeds the live stages.

pub mod derive;
pub mod device;
pub mod om;
pub mod pipeline;

pub use derive::{Deriver, Hook, StoredItem};
pub use pipeline::{BodyEnd, Incoming, Ingestor, Reply};
