//! `<Event>` documents (manual §2.5) into an [`Event`], and the `<Auth>`
//! block that may follow a message (manual §4.5) into an [`Auth`].

use super::xml::Tree;
use super::{non_empty, ParseError};
use crate::model::{Auth, Event, Party};

pub(super) fn build_event(tree: &Tree) -> Result<Event, ParseError> {
    // The device sends `attribute="RING "` with a stray space.
    let attribute = tree
        .attr("attribute")
        .filter(|a| !a.is_empty())
        .ok_or(ParseError::MissingEventAttribute)?
        .to_ascii_uppercase();
    let attrs = tree
        .attrs
        .iter()
        .filter(|(key, _)| key != "attribute")
        .cloned()
        .collect();
    let mut mac = None;
    let mut parties = Vec::new();
    for child in &tree.children {
        if child.depth == 1 && child.tag.eq_ignore_ascii_case("MAC") {
            mac = non_empty(Some(child.text.trim().to_string()));
            continue;
        }
        parties.push(Party {
            tag: child.tag.clone(),
            attrs: child.attrs.clone(),
            text: non_empty(Some(child.text.trim().to_string())),
        });
    }
    Ok(Event {
        attribute,
        attrs,
        mac,
        parties,
    })
}

pub(super) fn build_auth(tree: &Tree) -> Result<Auth, ParseError> {
    let field = |name: &'static str| {
        tree.direct_children()
            .find(|child| child.tag.eq_ignore_ascii_case(name))
            .map(|child| child.text.trim().to_string())
            .filter(|text| !text.is_empty())
            .ok_or(ParseError::IncompleteAuth(name))
    };
    Ok(Auth {
        nonce: field("nonce")?,
        timestamp: field("timestamp")?,
        signature: field("signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::super::{parse_body, ParseError};

    #[test]
    fn parse_body_rejects_auth_without_signature() {
        let body = format!("{BUSY}<Auth><nonce>1</nonce><timestamp>2</timestamp></Auth>");
        assert_eq!(
            parse_body(&body),
            Err(ParseError::IncompleteAuth("signature"))
        );
    }

    #[test]
    fn parse_body_reads_auth_tags_case_insensitively() {
        // §4.3's (forward) example spells them `Timestamp` and `Signature`.
        let body = format!(
            "{BUSY}<Auth><Timestamp>1</Timestamp><nonce>2</nonce><Signature>ab</Signature></Auth>"
        );
        let auth = parse_body(&body).unwrap().remove(0).auth.unwrap();
        assert_eq!((auth.nonce.as_str(), auth.timestamp.as_str()), ("2", "1"));
    }

    #[test]
    fn parse_body_trims_and_uppercases_event_attribute() {
        let event = only_event(r#"<Event attribute=" ring "><ext id="200" /></Event>"#);
        assert_eq!(event.attribute, "RING");
    }

    #[test]
    fn parse_body_keeps_other_root_attributes() {
        let event = only_event(
            r#"<Event attribute="ONLINE" RegisterIP="10.129.91.202" ><ext id="208" /></Event>"#,
        );
        assert_eq!(
            event.attrs,
            vec![("RegisterIP".to_string(), "10.129.91.202".to_string())]
        );
    }

    #[test]
    fn parse_body_flattens_nested_event_children() {
        let event = only_event(
            r#"<Event attribute="DTMF"><visitor id="4"><info>200#</info><menu id="1" /></visitor></Event>"#,
        );
        let tags: Vec<&str> = event.parties.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(tags, ["visitor", "info", "menu"]);
        assert_eq!(event.parties[0].text, None);
        assert_eq!(event.parties[1].text.as_deref(), Some("200#"));
    }

    #[test]
    fn parse_body_takes_mac_out_of_event_parties() {
        let event = only_event(
            r#"<Event attribute="BUSY"><MAC>00:0E:A9:2D:07:D0</MAC><ext id="200" /></Event>"#,
        );
        assert_eq!(event.mac.as_deref(), Some("00:0E:A9:2D:07:D0"));
        assert_eq!(event.parties.len(), 1);
    }

    #[test]
    fn parse_body_accepts_self_closing_root() {
        let event = only_event(r#"<Event attribute="BOOTUP"/>"#);
        assert!(event.parties.is_empty());
    }

    #[test]
    fn parse_body_rejects_event_without_attribute() {
        assert_eq!(
            parse_body("<Event><ext id=\"1\"/></Event>"),
            Err(ParseError::MissingEventAttribute)
        );
    }
}
