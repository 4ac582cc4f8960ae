//! The JSON push sources (`ingest/{coocenter,ivr,cloud}.rs`),
//! mapped into the same legs and events as OM's XML.
//!
//! A body may hold one object, an array of objects, or several objects back
//! to back. Each object's shape names its source:
//! - `"event"`: the coocenter call-center PBX ([`super::coocenter`]);
//! - `"action"`: the IVR PBX's call events ([`super::ivr`]);
//! - `"conversationSid"`: the cloud voice platform's notifications and
//!   click-to-call CDRs ([`super::cloud`]).
//!
//! Numbers may come as JSON numbers or strings. The manuals print their
//! examples in a relaxed notation (unquoted keys, single quotes, `//`
//! comments, trailing commas): a body that is not strict JSON is read that
//! way ([`relaxed`]) before it is refused. Anything else, and an object of no
//! known shape, is refused and quarantined.

use std::ops::Range;

use chrono::NaiveDateTime;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::json_relaxed as relaxed;
use crate::model::{
    check_leg, parse_json_time, Document, Event, Leg, LegError, MAX_LEG_DAYS, OM_TIME_FORMAT,
};

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("not JSON: {0}")]
    Json(String),
    /// More documents than one push may hold (`[ingest] max_documents`).
    #[error("push holds more than {limit} documents (max_documents)")]
    TooManyDocuments { limit: usize },
    /// More values than [`VALUES_PER_DOCUMENT`] × `max_documents`: the tree
    /// would take memory out of proportion to what any source sends.
    #[error("push holds more than {limit} JSON values ({VALUES_PER_DOCUMENT} per document of max_documents)")]
    TooManyValues { limit: usize },
    #[error("a push must hold JSON objects, found {0}")]
    NotObject(&'static str),
    #[error("a JSON object of no known source (no \"event\", \"action\" or \"conversationSid\")")]
    Unrecognised,
    #[error("{what} {}: missing field {field}", short(.id))]
    Missing {
        what: String,
        id: String,
        field: &'static str,
    },
    #[error("{what} {}: invalid {field} {}", short(.id), short(.value))]
    Invalid {
        what: String,
        id: String,
        field: &'static str,
        value: String,
    },
    /// The checks every leg gets (span, talk time, recording path).
    #[error(transparent)]
    Leg(#[from] LegError),
}

/// Whether a push body is JSON: it starts with `{` or `[`, which no OM XML
/// document does.
pub fn is_json(text: &str) -> bool {
    matches!(
        text.trim_start_matches('\u{feff}')
            .trim_start()
            .as_bytes()
            .first(),
        Some(b'{' | b'[')
    )
}

/// Parses a push body into documents, however many (no Auth: these pushes
/// carry none).
pub fn parse_body(text: &str) -> Result<Vec<Document>, JsonError> {
    parse_documents(text, usize::MAX)
}

/// JSON values allowed per document of `max_documents`: a coocenter event
/// has about twenty fields, a cloud CDR leg ten.
pub const VALUES_PER_DOCUMENT: usize = 64;

/// Parses a push body into at most `max_documents` documents; one more is
/// [`JsonError::TooManyDocuments`]. Strict JSON first; when that fails, the
/// relaxed notation the manuals print (`relaxed`). Memory stays a small
/// multiple of the body: top-level values are split without copying,
/// the elements of a top-level array are taken one at a time, and every
/// document points into the body (its `span`) instead of copying it.
pub fn parse_documents(text: &str, max_documents: usize) -> Result<Vec<Document>, JsonError> {
    let body = text.trim_start_matches('\u{feff}');
    let offset = text.len() - body.len();
    // Before any tree is built: a million tiny values in one object would
    // take a hundred times the body's size.
    let max_values = max_documents.saturating_mul(VALUES_PER_DOCUMENT);
    if relaxed::measure(body).values > max_values {
        return Err(JsonError::TooManyValues { limit: max_values });
    }
    let mut docs = Sink {
        docs: Vec::new(),
        max: max_documents,
    };
    match strict(body, offset, &mut docs) {
        Ok(()) => {}
        Err(JsonError::Json(strict_error)) => {
            docs.docs.clear();
            let value = relaxed::parse(body).map_err(|relaxed_error| {
                JsonError::Json(format!(
                    "{strict_error} (nor relaxed JSON: {relaxed_error})"
                ))
            })?;
            let span = offset..text.len();
            match value {
                Value::Array(items) => {
                    for item in items {
                        docs.object(item, span.clone())?;
                    }
                }
                other => docs.object(other, span)?,
            }
        }
        Err(other) => return Err(other),
    }
    if docs.docs.is_empty() {
        return Err(JsonError::Json("empty body".into()));
    }
    Ok(docs.docs)
}

/// Strict JSON: one value, an array, or values back to back. Each top-level
/// value is found (skipped without building anything) first, then parsed; an array's
/// elements are handed on as they are read, so a huge array never exists
/// as a whole tree.
fn strict(body: &str, offset: usize, docs: &mut Sink) -> Result<(), JsonError> {
    let mut values = serde_json::Deserializer::from_str(body).into_iter::<IgnoredAny>();
    let mut start = 0;
    while let Some(skipped) = values.next() {
        skipped.map_err(|e| JsonError::Json(e.to_string()))?;
        let end = values.byte_offset();
        // The value's own text: the stream reports where it ended, and
        // only whitespace separates values.
        let raw = body.get(start..end).unwrap_or_default().trim_start();
        let span = offset + end - raw.len()..offset + end;
        start = end;
        if raw.starts_with('[') {
            let mut failed = None;
            let seed = Elements {
                docs: &mut *docs,
                span,
                failed: &mut failed,
            };
            let result = seed.deserialize(&mut serde_json::Deserializer::from_str(raw));
            if let Some(e) = failed {
                return Err(e);
            }
            result.map_err(|e| JsonError::Json(e.to_string()))?;
        } else {
            let v: Value = serde_json::from_str(raw).map_err(|e| JsonError::Json(e.to_string()))?;
            docs.object(v, span)?;
        }
    }
    Ok(())
}

/// The documents parsed so far and the cap on them.
struct Sink {
    docs: Vec<Document>,
    max: usize,
}

impl Sink {
    /// One pushed object's documents, by the source its shape names.
    fn object(&mut self, v: Value, span: Range<usize>) -> Result<(), JsonError> {
        let Value::Object(obj) = v else {
            return Err(JsonError::NotObject(kind(&v)));
        };
        let messages = if obj.contains_key("event") {
            super::coocenter::messages(&obj)?
        } else if obj.contains_key("action") {
            super::ivr::messages(&obj)?
        } else if obj.contains_key("conversationSid") {
            super::cloud::messages(&obj)?
        } else {
            return Err(JsonError::Unrecognised);
        };
        if self.docs.len() + messages.len() > self.max {
            return Err(JsonError::TooManyDocuments { limit: self.max });
        }
        self.docs
            .extend(messages.into_iter().map(|message| Document {
                message,
                auth: None,
                span: span.clone(),
            }));
        Ok(())
    }
}

/// Reads a top-level array element by element into a [`Sink`]. A refusal
/// of our own is kept in `failed` (serde can only carry text).
struct Elements<'a> {
    docs: &'a mut Sink,
    span: Range<usize>,
    failed: &'a mut Option<JsonError>,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            if let Err(e) = self.docs.object(item, self.span.clone()) {
                let line = e.to_string();
                *self.failed = Some(e);
                return Err(serde::de::Error::custom(line));
            }
        }
        Ok(())
    }
}

/// An event named `attribute` keeping every field of `obj` but those in
/// `skip` (as text), identified by the field `mac_field`.
pub(crate) fn event(
    attribute: &str,
    obj: &Map<String, Value>,
    skip: &[&str],
    mac_field: &str,
) -> Event {
    Event {
        attribute: attribute.trim().to_ascii_uppercase(),
        attrs: obj
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), scalar(v)))
            .collect(),
        mac: text(obj, mac_field).filter(|m| !m.is_empty()),
        parties: Vec::new(),
    }
}

/// One CDR object and its id, for field look-ups and errors.
pub(crate) struct Fields<'a> {
    what: &'static str,
    pub id: String,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// `what` names the record in errors; `id_field` must be present.
    pub fn new(
        what: &'static str,
        obj: &'a Map<String, Value>,
        id_field: &'static str,
    ) -> Result<Self, JsonError> {
        let id = text(obj, id_field)
            .filter(|s| !s.is_empty())
            .ok_or(JsonError::Missing {
                what: what.into(),
                id: "?".into(),
                field: id_field,
            })?;
        Ok(Fields { what, id, obj })
    }

    /// A field as text; absent or null is empty.
    pub fn get(&self, field: &str) -> String {
        text(self.obj, field).unwrap_or_default()
    }

    fn invalid(&self, field: &'static str, value: String) -> JsonError {
        JsonError::Invalid {
            what: self.what.into(),
            id: self.id.clone(),
            field,
            value,
        }
    }

    /// A device-local time: `2012-01-05 15:10:09` (and the variants of
    /// [`parse_json_time`]) or OM's `20190814122700`.
    pub fn time(&self, field: &'static str) -> Result<NaiveDateTime, JsonError> {
        let v = self.get(field);
        if v.is_empty() {
            return Err(JsonError::Missing {
                what: self.what.into(),
                id: self.id.clone(),
                field,
            });
        }
        parse_json_time(&v)
            .or_else(|| NaiveDateTime::parse_from_str(&v, OM_TIME_FORMAT).ok())
            .ok_or_else(|| self.invalid(field, v))
    }

    /// [`Self::seconds`], at most the longest leg ([`MAX_LEG_DAYS`]).
    pub fn bounded_seconds(&self, field: &'static str) -> Result<i64, JsonError> {
        let s = self.seconds(field)?;
        if s > MAX_LEG_DAYS * 86_400 {
            return Err(self.invalid(field, s.to_string()));
        }
        Ok(s)
    }

    /// Whole seconds, absent = 0.
    pub fn seconds(&self, field: &'static str) -> Result<i64, JsonError> {
        let v = self.get(field);
        if v.is_empty() {
            return Ok(0);
        }
        v.parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| self.invalid(field, v))
    }
}

/// Checks a leg like every leg ([`check_leg`]).
pub(crate) fn checked(leg: Leg) -> Result<Leg, JsonError> {
    check_leg(&leg)?;
    Ok(leg)
}

/// A field as trimmed text; None when absent or null.
pub(crate) fn text(obj: &Map<String, Value>, field: &str) -> Option<String> {
    obj.get(field)
        .filter(|v| !v.is_null())
        .map(|v| scalar(v).trim().to_string())
}

/// A value as text: strings as they are, anything else as JSON.
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value quoted in a one-line reason: at most 60 characters, escaped.
fn short(value: &str) -> String {
    const MAX_CHARS: usize = 60;
    let mut cut: String = value.chars().take(MAX_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{:?}", cut)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
