//! Ingest: turn pushed bytes into stored legs and events.
//!
//! `om` holds the OM wire format (XML parsing, reverse auth, path checks);
//! `json` the JSON sources (`coocenter`, `ivr`, `cloud`), mapped into the
//! same legs and events ([`parse_push`] picks XML or JSON by content);
//! `device` identifies which configured device a push came from; `pipeline`
//! runs one push end to end (checks, raw storage, quarantine, metrics) and is
//! shared by the HTTP listener and `callvault import`; `limits` holds the
//! push rates and quarantine budget of sources that are not registered
//! devices; `derive` turns the committed pushes into legs and events and
//! feeds the live stages.

pub mod cloud;
pub mod coocenter;
pub mod derive;
pub mod device;
pub mod ivr;
pub mod json;
pub mod limits;
pub mod om;
pub mod pipeline;

pub use derive::{Deriver, Hook, StoredItem};
pub use pipeline::{BodyEnd, Incoming, Ingestor, Reply};

/// Parses a push body of any source: JSON (starts with `{` or `[`) is one
/// of the JSON sources, anything else OM XML. The error is the one-line reason a
/// refused push is quarantined with.
pub fn parse_push(text: &str) -> Result<Vec<crate::model::Document>, String> {
    if json::is_json(text) {
        json::parse_body(text).map_err(|e| e.to_string())
    } else {
        om::parse_body(text).map_err(|e| e.to_string())
    }
}
