//! The coocenter call-center PBX (an Asterisk-based system;
//! `seeds/002_9cfef4b382a2abbe.txt`, "主动推送事件"): one JSON object per
//! event, `{"event": "cdr", …}`, POSTed to the URL configured on the PBX.
//!
//! - `cdr` (通话日志1: one whole call, Asterisk's CDR) becomes a leg;
//! - `cc_cdr` (通话日志2: a call through the call-center queues) becomes a
//!   leg, and a `CC_CDR` event with every field, whose queue facts make the
//!   call's queue visit (`queues::cc_cdr`);
//! - every other event (`dialbegein`, `dialend`, `hangup`, `newstate`,
//!   `extensionstatus`, `ivr`, …) is kept as an event: its name upper-cased
//!   as the attribute and every other field, as sent, among its attributes.
//!
//! Each call is one leg, so one logical call: its id stands where OM puts
//! the visitor (inbound) or outer (outbound) call number, which is what
//! makes a call inbound or outbound and what joins legs of one call.

use serde_json::{Map, Value};

use super::json::{checked, event, Fields, JsonError};
use crate::model::{Leg, LegType, Message};

/// The messages of one pushed object (it has an `event` field).
pub fn messages(obj: &Map<String, Value>) -> Result<Vec<Message>, JsonError> {
    let name = super::json::text(obj, "event").unwrap_or_default();
    Ok(match name.as_str() {
        "" => return Err(JsonError::Unrecognised),
        "cdr" => vec![Message::Cdr(cdr_leg(obj)?)],
        "cc_cdr" => vec![
            Message::Cdr(cc_cdr_leg(obj)?),
            Message::Event(event("CC_CDR", obj, &["event"], "mac")),
        ],
        other => vec![Message::Event(event(other, obj, &["event"], "mac"))],
    })
}

/// `cdr`: `calltype` says the direction (empty = internal);
/// `billableseconds` is the talk time.
fn cdr_leg(obj: &Map<String, Value>) -> Result<Leg, JsonError> {
    let f = Fields::new("cdr", obj, "uniqueid")?;
    let (leg_type, route) = match f.get("calltype").as_str() {
        "outbound" => (LegType::Ou, "IP"),
        "inbound" => (LegType::In, "IP"),
        _ => (LegType::Lo, "IC"),
    };
    leg(
        &f,
        leg_type,
        route,
        (f.get("source"), f.get("destination")),
        ("starttime", "endtime", "billableseconds"),
        String::new(),
        "recordfile",
    )
}

/// `cc_cdr`: `talkingTime` is the talk time, `agentCode` the agent's
/// extension when one took it.
fn cc_cdr_leg(obj: &Map<String, Value>) -> Result<Leg, JsonError> {
    let f = Fields::new("cc_cdr", obj, "uuid")?;
    // The queue visit is timed by these (`queues::cc_cdr`).
    for field in ["ivrTime", "queueTime"] {
        f.bounded_seconds(field)?;
    }
    let (leg_type, route) = match f.get("callType").as_str() {
        "outgoing" | "outbound" => (LegType::Ou, "IP"),
        "internal" => (LegType::Lo, "IC"),
        _ => (LegType::In, "IP"),
    };
    let agent = f.get("agentCode");
    let called = if agent.is_empty() {
        f.get("called")
    } else {
        agent
    };
    leg(
        &f,
        leg_type,
        route,
        (f.get("caller"), called),
        ("startTime", "endTime", "talkingTime"),
        f.get("trunkNumber"),
        "filePath",
    )
}

fn leg(
    f: &Fields,
    leg_type: LegType,
    route: &str,
    (cpn, cdpn): (String, String),
    (start, end, talk): (&'static str, &'static str, &'static str),
    trunk_number: String,
    recording: &str,
) -> Result<Leg, JsonError> {
    let id = Some(f.id.clone());
    checked(Leg {
        cdr_id: f.id.clone(),
        callid: f.id.clone(),
        visitor_id: id.clone().filter(|_| leg_type == LegType::In),
        outer_id: id.filter(|_| leg_type == LegType::Ou),
        leg_type,
        route: route.into(),
        cpn,
        cdpn,
        time_start: f.time(start)?,
        time_end: f.time(end)?,
        duration: f.seconds(talk)?,
        trunk_number,
        recording: Some(f.get(recording)).filter(|r| !r.trim().is_empty()),
        rec_codec: None,
        mac: Some(f.get("mac")).filter(|m| !m.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::json::{is_json, parse_body};
    use super::*;
    use chrono::NaiveDateTime;

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
            // The manual's notation is read, then checked like JSON.
            ("{event:'cdr'}", "missing field uniqueid"),
            ("{event: }", "nor relaxed JSON"),
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
                r#"{"event":"cc_cdr","uuid":"1.3","startTime":"2024-01-08 10:00:00","endTime":"2024-01-08 10:01:00","queueTime":"9223372036854775807"}"#,
                "invalid queueTime",
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
