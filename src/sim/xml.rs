//! Builders for the exact XML the OM device pushes (manual §2.5, §2.6, §4.5).
//!
//! The layout copies the manual's examples byte for byte where they agree:
//! the `<?xml … ?>` declaration with its space before `?>`, two-space
//! indentation, self-closing parties written `<ext id="200" />`, empty
//! elements written open/close (`<TrunkNumber></TrunkNumber>`), `<MAC>` as the
//! first child of the root (CB example, §2.6.5) and `<Auth>` *after* the root
//! (§4.5). Recording file names follow §2.6 / §4.9.

use chrono::NaiveDateTime;
use md5::{Digest, Md5};

use crate::model::{Auth, Event, Leg, OM_TIME_FORMAT};

/// The declaration every OM message starts with (note the space before `?>`).
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8" ?>"#;

/// Appends `s` with the five XML special characters escaped. Device values
/// are digits in practice, but a builder must never emit a malformed document.
fn push_esc(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
}

/// `  <name>value</name>\n`, written straight into the document (thousands
/// of pushes per run: no temporary strings).
fn element(out: &mut String, name: &str, value: &str) {
    out.push_str("  <");
    out.push_str(name);
    out.push('>');
    push_esc(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// ` key="value"`.
fn attribute(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    push_esc(out, value);
    out.push('"');
}

/// One `<Cdr>` document (§2.6): declaration, root, fields in the manual's
/// order. `visitor_id` wins over `outer_id` (a leg carries at most one);
/// `Recording`/`RecCodec` are left out when absent, as on the FI/FW examples.
pub fn cdr_xml(leg: &Leg) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(DECLARATION);
    out.push('\n');
    out.push_str("<Cdr");
    attribute(&mut out, "id", &leg.cdr_id);
    out.push_str(">\n");
    if let Some(mac) = &leg.mac {
        element(&mut out, "MAC", mac);
    }
    element(&mut out, "callid", &leg.callid);
    let party = match (&leg.visitor_id, &leg.outer_id) {
        (Some(v), _) => Some(("visitor", v)),
        (None, Some(o)) => Some(("outer", o)),
        (None, None) => None,
    };
    if let Some((tag, id)) = party {
        out.push_str("  <");
        out.push_str(tag);
        attribute(&mut out, "id", id);
        out.push_str(" />\n");
    }
    element(
        &mut out,
        "TimeStart",
        &leg.time_start.format(OM_TIME_FORMAT).to_string(),
    );
    element(&mut out, "Type", leg.leg_type.as_str());
    element(&mut out, "Route", &leg.route);
    element(&mut out, "CPN", &leg.cpn);
    element(&mut out, "CDPN", &leg.cdpn);
    element(
        &mut out,
        "TimeEnd",
        &leg.time_end.format(OM_TIME_FORMAT).to_string(),
    );
    element(&mut out, "Duration", &leg.duration.to_string());
    element(&mut out, "TrunkNumber", &leg.trunk_number);
    if let Some(r) = &leg.recording {
        element(&mut out, "Recording", r);
    }
    if let Some(c) = &leg.rec_codec {
        element(&mut out, "RecCodec", c);
    }
    out.push_str("</Cdr>\n");
    out
}

/// One `<Event>` document (§2.5). `ev.attribute` is written verbatim so a
/// caller can reproduce the device's stray space (`"RING "`, §2.5.3.1).
/// Parties with text (e.g. `<recording>` on a queue BYE, §4.12) are written
/// as elements with content, the others self-closing.
pub fn event_xml(ev: &Event) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(DECLARATION);
    out.push('\n');
    out.push_str("<Event");
    attribute(&mut out, "attribute", &ev.attribute);
    for (k, v) in &ev.attrs {
        attribute(&mut out, k, v);
    }
    out.push_str(">\n");
    if let Some(mac) = &ev.mac {
        element(&mut out, "MAC", mac);
    }
    for p in &ev.parties {
        out.push_str("  <");
        out.push_str(&p.tag);
        for (k, v) in &p.attrs {
            attribute(&mut out, k, v);
        }
        match &p.text {
            Some(t) => {
                out.push('>');
                push_esc(&mut out, t);
                out.push_str("</");
                out.push_str(&p.tag);
                out.push_str(">\n");
            }
            None => out.push_str(" />\n"),
        }
    }
    out.push_str("</Event>\n");
    out
}

/// The `<Auth>` block that follows the message root (§4.5).
pub fn auth_xml(auth: &Auth) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("<Auth>\n");
    element(&mut out, "nonce", &auth.nonce);
    element(&mut out, "timestamp", &auth.timestamp);
    element(&mut out, "signature", &auth.signature);
    out.push_str("</Auth>\n");
    out
}

/// `md5(API_SERVER_PASSWORD + nonce + timestamp)` as 32 lowercase hex (§4.5).
pub fn signature(password: &str, nonce: &str, timestamp: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(nonce.as_bytes());
    h.update(timestamp.as_bytes());
    hex::encode(h.finalize())
}

/// Which side a recording holds: `_cg` the caller's, `_cd` the callee's (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecSide {
    Caller,
    Callee,
}

/// `<Recording>` value: `YYYYMMDD/<a>_<b>_<YYYYMMDD>_<hhmmss>_<HEXID>_<cg|cd>.wav`.
/// `at` is the moment recording began (the answer time: in every manual
/// example it equals TimeEnd − Duration); `hex_id` is the leg's internal call
/// number in upper-case hex (callid 32818 → `8032`).
pub fn recording_path(a: &str, b: &str, at: NaiveDateTime, hex_id: u32, side: RecSide) -> String {
    let suffix = match side {
        RecSide::Caller => "cg",
        RecSide::Callee => "cd",
    };
    format!(
        "{}/{a}_{b}_{}_{hex_id:X}_{suffix}.wav",
        at.format("%Y%m%d"),
        at.format("%Y%m%d_%H%M%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Party;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).expect("test time")
    }

    /// The manual's §2.6.1 IP-inbound extension leg, as a Leg.
    fn manual_in_leg() -> Leg {
        Leg {
            cdr_id: "2820170309162713-0".into(),
            callid: "32818".into(),
            visitor_id: Some("48".into()),
            outer_id: None,
            leg_type: "IN".into(),
            route: "IP".into(),
            cpn: "18201008888".into(),
            cdpn: "200".into(),
            time_start: t("20170309162708"),
            time_end: t("20170309162713"),
            duration: 2,
            trunk_number: "888".into(),
            recording: Some("20170309/18201008888_200_20170309_162711_8032_cd.wav".into()),
            rec_codec: Some("G729".into()),
            mac: None,
        }
    }

    #[test]
    fn cdr_xml_matches_manual_in_example() {
        let expected = r#"<?xml version="1.0" encoding="utf-8" ?>
<Cdr id="2820170309162713-0">
  <callid>32818</callid>
  <visitor id="48" />
  <TimeStart>20170309162708</TimeStart>
  <Type>IN</Type>
  <Route>IP</Route>
  <CPN>18201008888</CPN>
  <CDPN>200</CDPN>
  <TimeEnd>20170309162713</TimeEnd>
  <Duration>2</Duration>
  <TrunkNumber>888</TrunkNumber>
  <Recording>20170309/18201008888_200_20170309_162711_8032_cd.wav</Recording>
  <RecCodec>G729</RecCodec>
</Cdr>
"#;
        assert_eq!(cdr_xml(&manual_in_leg()), expected);
    }

    #[test]
    fn cdr_xml_writes_mac_first_and_empty_trunk_open_close() {
        let mut leg = manual_in_leg();
        leg.mac = Some("00:0E:A9:3D:00:0C".into());
        leg.trunk_number.clear();
        leg.recording = None;
        leg.rec_codec = None;
        let xml = cdr_xml(&leg);
        assert!(xml.contains(
            "<Cdr id=\"2820170309162713-0\">\n  <MAC>00:0E:A9:3D:00:0C</MAC>\n  <callid>"
        ));
        assert!(xml.contains("  <TrunkNumber></TrunkNumber>\n</Cdr>\n"));
        assert!(!xml.contains("Recording"));
    }

    #[test]
    fn event_xml_matches_manual_ring_example() {
        let ev = Event {
            attribute: "RING".into(),
            attrs: vec![],
            mac: None,
            parties: vec![
                Party {
                    tag: "ext".into(),
                    attrs: vec![("id".into(), "200".into())],
                    text: None,
                },
                Party {
                    tag: "visitor".into(),
                    attrs: vec![
                        ("id".into(), "22".into()),
                        ("from".into(), "13012345678".into()),
                        ("to".into(), "02161208234".into()),
                        ("callid".into(), "16408".into()),
                    ],
                    text: None,
                },
            ],
        };
        let expected = r#"<?xml version="1.0" encoding="utf-8" ?>
<Event attribute="RING">
  <ext id="200" />
  <visitor id="22" from="13012345678" to="02161208234" callid="16408" />
</Event>
"#;
        assert_eq!(event_xml(&ev), expected);
    }

    #[test]
    fn event_xml_writes_text_parties_as_elements() {
        let ev = Event {
            attribute: "BYE".into(),
            attrs: vec![],
            mac: Some("00:0E:A9:2D:07:D0".into()),
            parties: vec![Party {
                tag: "recording".into(),
                attrs: vec![],
                text: Some("20170706/201_3_20170706_155709_A00B_cg.wav".into()),
            }],
        };
        let xml = event_xml(&ev);
        assert!(xml.contains("<Event attribute=\"BYE\">\n  <MAC>00:0E:A9:2D:07:D0</MAC>\n"));
        assert!(
            xml.contains("  <recording>20170706/201_3_20170706_155709_A00B_cg.wav</recording>\n")
        );
    }

    #[test]
    fn auth_xml_matches_manual_layout() {
        let auth = Auth {
            nonce: "2E8E52C6".into(),
            timestamp: "1498542290".into(),
            signature: "24fe6019c3f284789f8cfacc3446e7ed".into(),
        };
        assert_eq!(
            auth_xml(&auth),
            "<Auth>\n  <nonce>2E8E52C6</nonce>\n  <timestamp>1498542290</timestamp>\n  <signature>24fe6019c3f284789f8cfacc3446e7ed</signature>\n</Auth>\n"
        );
    }

    #[test]
    fn signature_is_md5_of_concatenation_lowercase_hex() {
        // md5("") is the well-known d41d8cd9…; md5("abc") = 900150983cd24fb0…
        assert_eq!(signature("", "", ""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(signature("a", "b", "c"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn recording_path_matches_manual_names() {
        assert_eq!(
            recording_path(
                "18201008888",
                "200",
                t("20170309162711"),
                32818,
                RecSide::Callee
            ),
            "20170309/18201008888_200_20170309_162711_8032_cd.wav"
        );
        assert_eq!(
            recording_path("200", "212", t("20170309175042"), 32858, RecSide::Caller),
            "20170309/200_212_20170309_175042_805A_cg.wav"
        );
    }

    #[test]
    fn push_esc_escapes_markup() {
        let mut out = String::new();
        push_esc(&mut out, "a<b&\"c\">");
        assert_eq!(out, "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
