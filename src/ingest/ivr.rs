//! The IVR PBX (`seeds/003_a5dc812044cea4c7.txt`): call events as JSON
//! objects keyed by `action`, the same events OM sends as XML:
//! `{"action": "ALERT", "callid": "…", "call": [{"outbound": {"from": …,
//! "to": …, "trunk": …, "outboundid": …}}], "sn": "…"}`.
//!
//! Each becomes an [`Event`](crate::model::Event) as OM's would: `action` is
//! the attribute, each element of `call` a party tagged by its key
//! (`outbound`, `visitor`, `ext`, …) with its fields as attributes, and the
//! other fields (`callid`, `info`, `flag`, `infos`, …) the event's
//! attributes. The device's serial number `sn` identifies it the way OM's
//! `<MAC>` does (`[[device]] mac = "<sn>"`).

use serde_json::{Map, Value};

use super::json::{event, scalar, JsonError};
use crate::model::{Message, Party};

/// The messages of one pushed object (it has an `action` field).
pub fn messages(obj: &Map<String, Value>) -> Result<Vec<Message>, JsonError> {
    let action = super::json::text(obj, "action").unwrap_or_default();
    if action.is_empty() {
        return Err(JsonError::Unrecognised);
    }
    let mut ev = event(&action, obj, &["action", "call", "sn"], "sn");
    if let Some(Value::Array(calls)) = obj.get("call") {
        for item in calls {
            let Value::Object(parts) = item else {
                return Err(JsonError::Invalid {
                    what: action.clone(),
                    id: super::json::text(obj, "callid").unwrap_or_default(),
                    field: "call",
                    value: item.to_string(),
                });
            };
            for (tag, v) in parts {
                let attrs = match v {
                    Value::Object(a) => a
                        .iter()
                        .map(|(k, v)| (k.clone(), scalar(v).trim().to_string()))
                        .collect(),
                    other => vec![("id".to_string(), scalar(other))],
                };
                ev.parties.push(Party {
                    tag: tag.clone(),
                    attrs,
                    text: None,
                });
            }
        }
    }
    Ok(vec![Message::Event(ev)])
}

#[cfg(test)]
mod tests {
    use super::super::json::parse_body;
    use crate::model::Message;

    #[test]
    fn the_manuals_dtmf_event_is_an_om_style_event() {
        // seeds/003, 按键事件, as printed.
        let body = r#"{"action": "DTMF", "callid": "1553672645.217", "call": [{"outbound": {"from": "6500", "to": "500", "trunk": "192.168.9.121", "outboundid": "1553672645.219"}}], "info": "5", "flag": "1", "sn": "368182384620"}"#;
        let docs = parse_body(body).expect("parses");
        let Message::Event(e) = &docs[0].message else {
            panic!("an event")
        };
        assert_eq!(e.attribute, "DTMF");
        assert_eq!(e.mac.as_deref(), Some("368182384620"));
        assert_eq!(
            e.attrs,
            [
                ("callid".to_string(), "1553672645.217".to_string()),
                ("flag".to_string(), "1".to_string()),
                ("info".to_string(), "5".to_string()),
            ]
        );
        assert_eq!(e.parties.len(), 1);
        let p = &e.parties[0];
        assert_eq!(p.tag, "outbound");
        assert_eq!((p.attr("from"), p.attr("to")), (Some("6500"), Some("500")));
        assert_eq!(p.attr("outboundid"), Some("1553672645.219"));
    }

    #[test]
    fn a_call_that_is_not_a_list_of_objects_is_refused() {
        let e = parse_body(r#"{"action":"ALERT","callid":"1","call":["x"]}"#).expect_err("refused");
        assert!(e.to_string().contains("invalid call"), "{e}");
    }
}
