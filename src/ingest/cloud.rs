//! The cloud voice platform (`seeds/004_c7218f16ac02d212.txt`, 通知): its
//! notifications carry a `conversationSid`.
//!
//! - The click-to-call CDR (呼叫话单: `cdrs`, one per call the platform
//!   made) is a callback in OM's terms: the platform calls one party, then
//!   the other, and bridges them. Each `cdrs` entry becomes a `CB` leg
//!   (`callSid` → id, `from`/`to`, `startTime`/`stopTime`, `duration` → talk
//!   time) with the conversation as its callid, which is what joins the
//!   two halves of a callback into one call. The rest (`recordingUrl`,
//!   `byeType`, `userData`, …) is kept as a `CLOUD_CDR` event.
//! - A call-status notification (呼叫状态: `callStatus`) is kept as a
//!   `CALL_STATUS` event, anything else as a `CLOUD` event, every field kept.
//!
//! The recording is a full URL on the platform, not a path on a device's
//! recorder, so it is kept (in the event) but not fetched.

use serde_json::{Map, Value};

use super::json::{checked, event, Fields, JsonError};
use crate::model::{Leg, Message};

/// The messages of one pushed object (it has a `conversationSid` field).
pub fn messages(obj: &Map<String, Value>) -> Result<Vec<Message>, JsonError> {
    let Some(cdrs) = obj.get("cdrs") else {
        let name = if obj.contains_key("callStatus") {
            "CALL_STATUS"
        } else {
            "CLOUD"
        };
        return Ok(vec![Message::Event(event(name, obj, &[], ""))]);
    };
    let conversation = super::json::text(obj, "conversationSid").unwrap_or_default();
    let bad = |v: &Value| JsonError::Invalid {
        what: "cloud CDR".into(),
        id: conversation.clone(),
        field: "cdrs",
        value: v.to_string(),
    };
    let Value::Array(cdrs) = cdrs else {
        return Err(bad(cdrs));
    };
    let mut out = Vec::with_capacity(cdrs.len() + 1);
    for c in cdrs {
        let Value::Object(c) = c else {
            return Err(bad(c));
        };
        let f = Fields::new("cloud CDR", c, "callSid")?;
        out.push(Message::Cdr(checked(Leg {
            cdr_id: f.id.clone(),
            callid: conversation.clone(),
            visitor_id: None,
            outer_id: None,
            leg_type: "CB".into(),
            route: "IP".into(),
            cpn: f.get("from"),
            cdpn: f.get("to"),
            time_start: f.time("startTime")?,
            time_end: f.time("stopTime")?,
            duration: f.seconds("duration")?,
            trunk_number: String::new(),
            recording: None,
            rec_codec: None,
            mac: None,
        })?));
    }
    out.push(Message::Event(event("CLOUD_CDR", obj, &["cdrs"], "")));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::json::parse_body;
    use crate::model::Message;

    /// seeds/004's 呼叫话单 example, made JSON (tests/fixtures/cloud/README.md).
    const CLICK_TO_CALL: &str = include_str!("../../tests/fixtures/cloud/click_to_call.json");

    #[test]
    fn a_click_to_call_cdr_is_two_callback_legs_and_its_facts() {
        let docs = parse_body(CLICK_TO_CALL).expect("parses");
        assert_eq!(docs.len(), 3);
        let legs: Vec<_> = docs
            .iter()
            .filter_map(|d| match &d.message {
                Message::Cdr(l) => Some(l),
                Message::Event(_) => None,
            })
            .collect();
        assert_eq!(legs.len(), 2);
        for l in &legs {
            assert_eq!(
                (l.leg_type.as_str(), l.callid.as_str()),
                ("CB", "CV50001201908141226560665400000001")
            );
        }
        assert_eq!(
            (
                legs[1].cdr_id.as_str(),
                legs[1].cdpn.as_str(),
                legs[1].duration
            ),
            ("CA10002201908141226569209000000183", "13800138001", 20)
        );
        assert_eq!(legs[1].time_start.to_string(), "2019-08-14 12:26:54");
        assert!(crate::calls::joins(legs[0], legs[1]), "one callback");
        let Message::Event(e) = &docs[2].message else {
            panic!("the conversation's facts")
        };
        assert_eq!(e.attribute, "CLOUD_CDR");
        assert!(e
            .attrs
            .iter()
            .any(|(k, v)| k == "recordingUrl" && v.ends_with(".wav")));
        assert!(!e.attrs.iter().any(|(k, _)| k == "cdrs"));
    }

    #[test]
    fn status_notifications_are_events_and_bad_cdrs_refused() {
        let docs = parse_body(
            r#"{"conversationSid":"CV1","callSid":"CA1","from":"1","to":"2","direction":"outbound","callStatus":"ringing","timestamp":"20190814122655"}"#,
        )
        .expect("parses");
        assert!(
            matches!(&docs[0].message, Message::Event(e) if e.attribute == "CALL_STATUS" && e.attrs.len() == 7)
        );
        for (body, reason) in [
            (r#"{"conversationSid":"CV1","cdrs":{}}"#, "invalid cdrs"),
            (
                r#"{"conversationSid":"CV1","cdrs":[{"from":"1"}]}"#,
                "missing field callSid",
            ),
            (
                r#"{"conversationSid":"CV1","cdrs":[{"callSid":"CA1","startTime":"x","stopTime":"20190814122716"}]}"#,
                "invalid startTime",
            ),
        ] {
            let e = parse_body(body).expect_err(body).to_string();
            assert!(e.contains(reason), "{body}: {e}");
        }
    }
}
