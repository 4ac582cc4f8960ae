//! The JSON pushes of the coocenter call-center PBX (an Asterisk-based
//! system; `seeds/002_9cfef4b382a2abbe.txt`, "主动推送事件"): one JSON object
//! per event, `{"event": "cdr", …}`, POSTed to the URL configured on the PBX.
//!
//! - `cdr` (通话日志1: one whole call, Asterisk's CDR) and `cc_cdr` (通话日志2:
//!   a call through the call-center queues) become legs in the same model as
//!   OM CDRs, so they are grouped into calls, billed and reported alike.
//! - Every other event (`dialbegein`, `dialend`, `hangup`, `newstate`,
//!   `extensionstatus`, `ivr`, …) is kept as an event: its name upper-cased as
//!   the attribute and every other field, as sent, among its attributes.
//!
//! A body may hold one object, an array of objects, or several objects back
//! to back. Numbers may come as JSON numbers or strings (the manual mixes
//! both: `holdTime:0`, `queueTime:'7'`). The manual prints its examples in a
//! relaxed notation (unquoted keys, single quotes, `//` comments); the PBX
//! sends JSON, and anything that is not JSON is refused and quarantined.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::om::{check_leg, ParseError};
use crate::model::{parse_json_time, Document, Event, Leg, Message};

#[derive(Debug, thiserror::Error)]
pub enum CoocenterError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("a push must hold JSON objects, found {0}")]
    NotObject(&'static str),
    #[error("no \"event\" field")]
    NoEvent,
    #[error("{event} {id}: missing field {field}")]
    Missing {
        event: String,
        id: String,
        field: &'static str,
    },
    #[error("{event} {id}: invalid {field} {value:?}")]
    Invalid {
        event: String,
        id: String,
        field: &'static str,
        value: String,
    },
    /// The checks every leg gets (span, talk time, recording path).
    #[error(transparent)]
    Leg(#[from] ParseError),
}

/// Whether a push body is JSON (and so for this parser): it starts with `{`
/// or `[`, which no OM XML document does.
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
pub fn parse_body(text: &str) -> Result<Vec<Document>, CoocenterError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut docs = Vec::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match v.map_err(|e| CoocenterError::Json(e.to_string()))? {
            Value::Array(items) => {
                for item in items {
                    documents(item, &mut docs)?;
                }
            }
            other => documents(other, &mut docs)?,
        }
    }
    if docs.is_empty() {
        return Err(CoocenterError::Json("empty body".into()));
    }
    Ok(docs)
}

/// The documents of one pushed object: a leg for `cdr`; a leg and a
/// `CC_CDR` event for `cc_cdr` (the event keeps its queue facts, which make
/// its queue visit, `queues::cc_cdr`); an event for anything else.
fn documents(v: Value, docs: &mut Vec<Document>) -> Result<(), CoocenterError> {
    let raw = v.to_string();
    let Value::Object(obj) = v else {
        return Err(CoocenterError::NotObject(kind(&v)));
    };
    let event = text(&obj, "event")
        .filter(|e| !e.is_empty())
        .ok_or(CoocenterError::NoEvent)?;
    let as_event = || {
        Message::Event(Event {
            attribute: event.to_ascii_uppercase(),
            attrs: obj
                .iter()
                .filter(|(k, _)| *k != "event")
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect(),
            mac: text(&obj, "mac").filter(|m| !m.is_empty()),
            parties: Vec::new(),
        })
    };
    let messages = match event.as_str() {
        "cdr" => vec![Message::Cdr(cdr_leg(&obj)?)],
        "cc_cdr" => vec![Message::Cdr(cc_cdr_leg(&obj)?), as_event()],
        _ => vec![as_event()],
    };
    docs.extend(messages.into_iter().map(|message| Document {
        message,
        auth: None,
        raw: raw.clone(),
    }));
    Ok(())
}

/// `cdr`: one whole call as Asterisk records it. `calltype` says the
/// direction (empty = internal); `billableseconds` is the talk time.
fn cdr_leg(obj: &Map<String, Value>) -> Result<Leg, CoocenterError> {
    let f = Fields::new("cdr", obj, "uniqueid")?;
    let (leg_type, route) = match f.get("calltype").as_str() {
        "outbound" => ("OU", "IP"),
        "inbound" => ("IN", "IP"),
        _ => ("LO", "IC"),
    };
    f.leg(
        leg_type,
        route,
        (f.get("source"), f.get("destination")),
        ("starttime", "endtime", "billableseconds"),
        "",
        "recordfile",
    )
}

/// `cc_cdr`: a call through the call-center queues. `talkingTime` is the
/// talk time, `agentCode` the agent's extension when one took it.
fn cc_cdr_leg(obj: &Map<String, Value>) -> Result<Leg, CoocenterError> {
    let f = Fields::new("cc_cdr", obj, "uuid")?;
    let (leg_type, route) = match f.get("callType").as_str() {
        "outgoing" | "outbound" => ("OU", "IP"),
        "internal" => ("LO", "IC"),
        _ => ("IN", "IP"),
    };
    let agent = f.get("agentCode");
    let called = if agent.is_empty() {
        f.get("called")
    } else {
        agent
    };
    f.leg(
        leg_type,
        route,
        (f.get("caller"), called),
        ("startTime", "endTime", "talkingTime"),
        &f.get("trunkNumber"),
        "filePath",
    )
}

/// One CDR object and its id, for field look-ups and errors.
struct Fields<'a> {
    event: &'static str,
    id: String,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(
        event: &'static str,
        obj: &'a Map<String, Value>,
        id_field: &'static str,
    ) -> Result<Self, CoocenterError> {
        let id = text(obj, id_field)
            .filter(|s| !s.is_empty())
            .ok_or(CoocenterError::Missing {
                event: event.into(),
                id: "?".into(),
                field: id_field,
            })?;
        Ok(Fields { event, id, obj })
    }

    /// A field as text; absent or null is empty.
    fn get(&self, field: &str) -> String {
        text(self.obj, field).unwrap_or_default()
    }

    fn missing(&self, field: &'static str) -> CoocenterError {
        CoocenterError::Missing {
            event: self.event.into(),
            id: self.id.clone(),
            field,
        }
    }

    fn invalid(&self, field: &'static str, value: String) -> CoocenterError {
        CoocenterError::Invalid {
            event: self.event.into(),
            id: self.id.clone(),
            field,
            value,
        }
    }

    fn time(&self, field: &'static str) -> Result<NaiveDateTime, CoocenterError> {
        let v = self.get(field);
        if v.is_empty() {
            return Err(self.missing(field));
        }
        parse_json_time(&v).ok_or_else(|| self.invalid(field, v))
    }

    fn seconds(&self, field: &'static str) -> Result<i64, CoocenterError> {
        let v = self.get(field);
        if v.is_empty() {
            return Ok(0);
        }
        v.parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| self.invalid(field, v))
    }

    /// The leg, checked like every leg ([`check_leg`]).
    fn leg(
        &self,
        leg_type: &str,
        route: &str,
        (cpn, cdpn): (String, String),
        (start, end, talk): (&'static str, &'static str, &'static str),
        trunk: &str,
        recording: &str,
    ) -> Result<Leg, CoocenterError> {
        // The call's id stands where OM puts its visitor (inbound) or outer
        // (outbound) call number: what makes a call inbound or outbound, and
        // what joins legs of one call (here: only those with this id).
        let id = Some(self.id.clone());
        let leg = Leg {
            cdr_id: self.id.clone(),
            callid: self.id.clone(),
            visitor_id: id.clone().filter(|_| leg_type == "IN"),
            outer_id: id.filter(|_| leg_type == "OU"),
            leg_type: leg_type.into(),
            route: route.into(),
            cpn,
            cdpn,
            time_start: self.time(start)?,
            time_end: self.time(end)?,
            duration: self.seconds(talk)?,
            trunk_number: trunk.into(),
            recording: Some(self.get(recording)).filter(|r| !r.trim().is_empty()),
            rec_codec: None,
            mac: Some(self.get("mac")).filter(|m| !m.is_empty()),
        };
        check_leg(&leg)?;
        Ok(leg)
    }
}

fn text(obj: &Map<String, Value>, field: &str) -> Option<String> {
    obj.get(field)
        .filter(|v| !v.is_null())
        .map(|v| scalar(v).trim().to_string())
}

/// A value as text: strings as they are, anything else as JSON.
fn scalar(v: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/coocenter/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("time")
    }

    fn one_leg(body: &str) -> Leg {
        match parse_body(body).expect("parses").remove(0).message {
            Message::Cdr(l) => l,
            other => panic!("not a leg: {other:?}"),
        }
    }

    #[test]
    fn the_manuals_cdr_is_an_internal_leg() {
        let l = one_leg(&fixture("cdr.json"));
        assert_eq!(
            (
                l.cdr_id.as_str(),
                l.callid.as_str(),
                l.leg_type.as_str(),
                l.route.as_str()
            ),
            ("1325747409.260", "1325747409.260", "LO", "IC")
        );
        assert_eq!((l.cpn.as_str(), l.cdpn.as_str()), ("808", "809"));
        assert_eq!(
            (l.time_start, l.time_end),
            (t("2012-01-05 15:10:09"), t("2012-01-05 15:10:11"))
        );
        assert_eq!(l.duration, 1, "billableseconds is the talk time");
        assert_eq!((l.recording, l.mac), (None, None));
    }

    #[test]
    fn the_manuals_cc_cdr_is_an_inbound_leg_to_its_agent() {
        let l = one_leg(&fixture("cc_cdr.json"));
        assert_eq!(
            (l.cdr_id.as_str(), l.leg_type.as_str()),
            ("1541415929.807", "IN")
        );
        assert_eq!((l.cpn.as_str(), l.cdpn.as_str()), ("85322361", "100"));
        assert_eq!(
            (l.time_start, l.time_end),
            (t("2018-11-05 19:05:31"), t("2018-11-05 19:05:39"))
        );
        assert_eq!(l.duration, 0, "talkingTime 0: not answered");
        assert_eq!(l.mac.as_deref(), Some("68:69:2e:03:8b:3e"));
        assert_eq!(
            (l.visitor_id.as_deref(), l.outer_id.as_deref()),
            (Some("1541415929.807"), None),
            "inbound: the call id stands as OM's visitor id"
        );
    }

    #[test]
    fn directions_trunks_and_recordings_map_onto_the_leg() {
        let out = one_leg(
            r#"{"event":"cdr","uniqueid":"9.1","source":"808","destination":"013912345678",
                "starttime":"2024-01-08 10:00:00","endtime":"2024-01-08 10:01:00",
                "billableseconds":55,"calltype":"outbound","recordfile":"20240108/808-9.1.wav"}"#,
        );
        assert_eq!(
            (out.leg_type.as_str(), out.route.as_str(), out.duration),
            ("OU", "IP", 55)
        );
        assert_eq!(out.recording.as_deref(), Some("20240108/808-9.1.wav"));
        let inbound = one_leg(
            r#"{"event":"cc_cdr","uuid":"9.2","caller":"13800001111","called":"630","agentCode":"",
                "callType":"incoming","startTime":"2024-01-08T10:00:00","endTime":"2024-01-08T10:02:00",
                "talkingTime":"100","trunkNumber":"02161208234"}"#,
        );
        assert_eq!(
            (inbound.cdpn.as_str(), inbound.trunk_number.as_str()),
            ("630", "02161208234")
        );
        assert_eq!(inbound.duration, 100);
    }

    #[test]
    fn other_events_keep_every_field() {
        let docs = parse_body(&fixture("dialbegin.json")).expect("parses");
        let Message::Event(e) = &docs[0].message else {
            panic!("an event")
        };
        assert_eq!(e.attribute, "DIALBEGEIN");
        assert_eq!(e.mac.as_deref(), Some("68:69:2e:05:0f:9a"));
        assert_eq!(e.attrs.len(), 9, "every field but event: {:?}", e.attrs);
        assert!(e.attrs.contains(&("destcalleridnum".into(), "886".into())));
        for f in ["extensionstatus.json", "ivr.json"] {
            let docs = parse_body(&fixture(f)).expect(f);
            assert!(matches!(docs[0].message, Message::Event(_)), "{f}");
        }
    }

    #[test]
    fn arrays_and_objects_back_to_back_are_several_documents() {
        let (a, b) = (fixture("cdr.json"), fixture("extensionstatus.json"));
        assert_eq!(parse_body(&format!("[{a},{b}]")).expect("array").len(), 2);
        assert_eq!(
            parse_body(&format!("{a}\n{b}\n{a}")).expect("stream").len(),
            3
        );
        assert!(is_json(&format!("\u{feff} \n{a}")) && !is_json("<Cdr id=\"1\"/>"));
    }

    #[test]
    fn bad_pushes_are_refused_with_a_reason() {
        let ok =
            r#""uniqueid":"1.2","starttime":"2024-01-08 10:00:00","endtime":"2024-01-08 10:01:00""#;
        for (body, reason) in [
            ("{event:'cdr'}", "not JSON"),
            (r#"{"event":"cdr""#, "not JSON"),
            ("[]", "empty body"),
            ("[1]", "found a number"),
            (r#"{"uniqueid":"1"}"#, "no \"event\""),
            (
                r#"{"event":"cdr","starttime":"2024-01-08 10:00:00"}"#,
                "missing field uniqueid",
            ),
            (
                r#"{"event":"cdr","uniqueid":"1.2","endtime":"2024-01-08 10:01:00"}"#,
                "missing field starttime",
            ),
            (
                r#"{"event":"cdr","uniqueid":"1.2","starttime":"yesterday","endtime":"2024-01-08 10:01:00"}"#,
                "invalid starttime",
            ),
            (
                &format!(r#"{{"event":"cdr",{ok},"billableseconds":"-1"}}"#),
                "invalid billableseconds",
            ),
            (
                &format!(r#"{{"event":"cdr",{ok},"recordfile":"../../etc/passwd"}}"#),
                "unsafe Recording",
            ),
            (
                &format!(r#"{{"event":"cdr",{ok},"billableseconds":9999999999}}"#),
                "more than 7 days",
            ),
            (
                r#"{"event":"cdr","uniqueid":"1.2","starttime":"2024-01-08 10:00:00","endtime":"2099-01-08 10:01:00"}"#,
                "clock fault",
            ),
        ] {
            let e = parse_body(body).expect_err(body).to_string();
            assert!(e.contains(reason), "{body}: {e}");
        }
    }
}
