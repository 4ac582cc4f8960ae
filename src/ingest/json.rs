//! The JSON push sources (DESIGN §1: `ingest/{coocenter,ivr,cloud}.rs`),
//! mapped into the same legs and events as OM's XML.
//!
//! A body may hold one object, an array of objects, or several objects back
//! to back. Each object's shape names its source:
//! - `"event"`: the coocenter call-center PBX ([`super::coocenter`]);
//! - `"action"`: the IVR PBX's call events ([`super::ivr`]);
//! - `"conversationSid"`: the cloud voice platform's notifications and
//!   click-to-call CDRs ([`super::cloud`]).
//!
//! Numbers may come as JSON numbers or strings. The manuals print some
//! examples in a relaxed notation (unquoted keys, single quotes, `//`
//! comments); the systems send JSON, and anything that is not JSON is
//! refused and quarantined, as is an object of no known shape.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::om::{check_leg, ParseError};
use crate::model::{parse_json_time, Document, Event, Leg, MAX_LEG_DAYS, OM_TIME_FORMAT};

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("a push must hold JSON objects, found {0}")]
    NotObject(&'static str),
    #[error("a JSON object of no known source (no \"event\", \"action\" or \"conversationSid\")")]
    Unrecognised,
    #[error("{what} {id}: missing field {field}")]
    Missing {
        what: String,
        id: String,
        field: &'static str,
    },
    #[error("{what} {id}: invalid {field} {value:?}")]
    Invalid {
        what: String,
        id: String,
        field: &'static str,
        value: String,
    },
    /// The checks every leg gets (span, talk time, recording path).
    #[error(transparent)]
    Leg(#[from] ParseError),
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

/// Parses a push body into documents (no Auth: these pushes carry none).
pub fn parse_body(text: &str) -> Result<Vec<Document>, JsonError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut docs = Vec::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match v.map_err(|e| JsonError::Json(e.to_string()))? {
            Value::Array(items) => {
                for item in items {
                    object(item, &mut docs)?;
                }
            }
            other => object(other, &mut docs)?,
        }
    }
    if docs.is_empty() {
        return Err(JsonError::Json("empty body".into()));
    }
    Ok(docs)
}

/// One pushed object's documents, by the source its shape names.
fn object(v: Value, docs: &mut Vec<Document>) -> Result<(), JsonError> {
    let raw = v.to_string();
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
    docs.extend(messages.into_iter().map(|message| Document {
        message,
        auth: None,
        raw: raw.clone(),
    }));
    Ok(())
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
