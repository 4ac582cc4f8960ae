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
pub mod json_relaxed;
pub mod limits;
pub mod om;
pub mod pipeline;

pub use derive::{Deriver, Hook, StoredItem};
pub use pipeline::{BodyEnd, Incoming, Ingestor, Reply};

/// Why a push body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed {
    /// More documents than `max_documents` (413 rather than 400).
    pub too_many: bool,
    /// The one-line reason a refused push is quarantined with.
    pub reason: String,
}

/// Parses a push body of any source, at most `max_documents` documents:
/// JSON (starts with `{` or `[`) is one of the JSON sources, anything else
/// OM XML.
pub fn parse_push(
    text: &str,
    max_documents: usize,
) -> Result<Vec<crate::model::Document>, Unparsed> {
    if json::is_json(text) {
        json::parse_documents(text, max_documents).map_err(|e| Unparsed {
            too_many: matches!(
                e,
                json::JsonError::TooManyDocuments { .. } | json::JsonError::TooManyValues { .. }
            ),
            reason: e.to_string(),
        })
    } else {
        om::parse_documents(text, max_documents).map_err(|e| Unparsed {
            too_many: matches!(e, om::ParseError::TooManyDocuments { .. }),
            reason: e.to_string(),
        })
    }
}
