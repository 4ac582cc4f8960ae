//! Every Cdr and Event example printed in the OM manual (tests/fixtures/om/,
//! listed in its README) parsed and checked field by field, plus the manual
//! texts that must be refused (tests/fixtures/om/rejected/).

use std::collections::BTreeSet;
use std::path::Path;

use callvault::ingest::om::{parse_body, verify, ParseError};
use callvault::model::{Auth, Document, Event, Leg, Message, Party, OM_TIME_FORMAT};
use chrono::NaiveDateTime;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/om");

fn read(name: &str) -> String {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The single document of a fixture; its raw text is the file's text up to
/// the end of the message (or its Auth), without anything after it.
fn document(name: &str) -> Document {
    let text = read(name);
    let mut docs = parse_body(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}");
    let doc = docs.remove(0);
    let raw = doc.raw(&text);
    assert_eq!(doc.span.start, 0, "{name}: raw is not a prefix");
    let closing = ["</Cdr>", "</Event>", "</Auth>"];
    assert!(
        closing.iter().any(|tag| raw.ends_with(tag)),
        "{name}: raw ends {:?}",
        &raw[raw.len().saturating_sub(20)..]
    );
    doc
}

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).unwrap()
}

/// Builds the expected leg; fields not set are empty / None, so an
/// unexpected value in the parse fails the comparison.
struct L(Leg);

impl L {
    fn new(cdr_id: &str, callid: &str) -> Self {
        L(Leg {
            cdr_id: cdr_id.into(),
            callid: callid.into(),
            visitor_id: None,
            outer_id: None,
            leg_type: "".into(),
            route: String::new(),
            cpn: String::new(),
            cdpn: String::new(),
            time_start: NaiveDateTime::MIN,
            time_end: NaiveDateTime::MIN,
            duration: -1,
            trunk_number: String::new(),
            recording: None,
            rec_codec: None,
            mac: None,
        })
    }
    fn visitor(mut self, id: &str) -> Self {
        self.0.visitor_id = Some(id.into());
        self
    }
    fn outer(mut self, id: &str) -> Self {
        self.0.outer_id = Some(id.into());
        self
    }
    fn kind(mut self, leg_type: &str, route: &str) -> Self {
        self.0.leg_type = leg_type.into();
        self.0.route = route.into();
        self
    }
    fn numbers(mut self, cpn: &str, cdpn: &str) -> Self {
        self.0.cpn = cpn.into();
        self.0.cdpn = cdpn.into();
        self
    }
    fn span(mut self, start: &str, end: &str, duration: i64) -> Self {
        self.0.time_start = t(start);
        self.0.time_end = t(end);
        self.0.duration = duration;
        self
    }
    fn trunk(mut self, trunk: &str) -> Self {
        self.0.trunk_number = trunk.into();
        self
    }
    fn recording(mut self, path: &str, codec: Option<&str>) -> Self {
        self.0.recording = Some(path.into());
        self.0.rec_codec = codec.map(Into::into);
        self
    }
    fn mac(mut self, mac: &str) -> Self {
        self.0.mac = Some(mac.into());
        self
    }
}

fn p(tag: &str, attrs: &[(&str, &str)]) -> Party {
    Party {
        tag: tag.into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        text: None,
    }
}

fn text(tag: &str, text: &str) -> Party {
    Party {
        text: Some(text.into()),
        ..p(tag, &[])
    }
}

fn ext(id: &str) -> Party {
    p("ext", &[("id", id)])
}

fn menu(id: &str) -> Party {
    p("menu", &[("id", id)])
}

fn visitor(id: &str, from: &str, to: &str, callid: &str) -> Party {
    p(
        "visitor",
        &[("id", id), ("from", from), ("to", to), ("callid", callid)],
    )
}

fn outer(id: &str, from: &str, to: &str, trunk: &str, callid: &str) -> Party {
    p(
        "outer",
        &[
            ("id", id),
            ("from", from),
            ("to", to),
            ("trunk", trunk),
            ("callid", callid),
        ],
    )
}

fn waiting(group: &str, count: &str, reason: Option<&str>) -> Party {
    let mut party = p("waiting", &[("group", group), ("count", count)]);
    if let Some(reason) = reason {
        party.attrs.push(("reason".into(), reason.into()));
    }
    party
}

fn ev(attribute: &str, parties: Vec<Party>) -> Event {
    Event {
        attribute: attribute.into(),
        attrs: Vec::new(),
        mac: None,
        parties,
    }
}

/// Manual §1.3.2 and §2.6.1–§2.6.5, §4.9.
fn cdr_examples() -> Vec<(&'static str, Leg)> {
    vec![
        (
            "1.3.2-cdr-internal-in.xml",
            L::new("13620170308103713-0", "32820")
                .kind("IN", "IC")
                .numbers("200", "201")
                .span("20170308103709", "20170308103713", 2)
                .recording("20170308/200_201_20170308_103711_8034_cd.wav", Some("PCMU")),
        ),
        (
            "2.6.1-in-ip-extension.xml",
            L::new("2820170309162713-0", "32818")
                .visitor("48")
                .kind("IN", "IP")
                .numbers("18201008888", "200")
                .span("20170309162708", "20170309162713", 2)
                .trunk("888")
                .recording(
                    "20170309/18201008888_200_20170309_162711_8032_cd.wav",
                    Some("G729"),
                ),
        ),
        (
            "2.6.1-in-ip-trunk.xml",
            L::new("2920170309162714-0", "32816")
                .visitor("48")
                .kind("IN", "IP")
                .numbers("18201008888", "888")
                .span("20170309162657", "20170309162714", 17)
                .trunk("888")
                .recording(
                    "20170309/18201008888_888_20170309_162657_8030_cd.wav",
                    Some("G729"),
                ),
        ),
        (
            "2.6.1-in-xo-extension.xml",
            L::new("3120170309162952-0", "32820")
                .visitor("51")
                .kind("IN", "XO")
                .numbers("18201008888", "200")
                .span("20170309162945", "20170309162952", 4)
                .trunk("02161205555")
                .recording(
                    "20170309/18201008888_200_20170309_162948_8034_cd.wav",
                    Some("PCMU"),
                ),
        ),
        (
            "2.6.1-lo-xo-trunk.xml",
            L::new("5820170309175319-0", "32861")
                .visitor("93")
                .kind("LO", "IC")
                .numbers("18201008888", "200")
                .span("20170309175311", "20170309175319", 6)
                .recording(
                    "20170309/18201008888_02161205555_20170309_175313_805D_cg.wav",
                    Some("PCMU"),
                ),
        ),
        (
            "2.6.2-ou-extension.xml",
            L::new("2020170309161117-0", "32801")
                .outer("34")
                .kind("OU", "XO")
                .numbers("200", "18201008888")
                .span("20170309161101", "20170309161117", 12)
                .trunk("02161205555")
                .recording(
                    "20170309/200_18201008888_20170309_161105_8021_cg.wav",
                    Some("PCMU"),
                ),
        ),
        (
            "2.6.2-ou-menu.xml",
            L::new("2520170309162028-0", "32809")
                .outer("41")
                .kind("OU", "IP")
                .numbers("", "18201008888")
                .span("20170309162021", "20170309162028", 4)
                .trunk("888")
                .recording(
                    "20170309/888_18201008888_20170309_162024_8029_cg.wav",
                    Some("PCMU"),
                ),
        ),
        (
            "2.6.3-lo-caller.xml",
            L::new("5720170309175055-0", "32858")
                .kind("LO", "IC")
                .numbers("200", "212")
                .span("20170309175037", "20170309175055", 13)
                .recording("20170309/200_212_20170309_175042_805A_cg.wav", Some("PCMU")),
        ),
        (
            "2.6.3-in-callee.xml",
            L::new("2220170309161649-0", "32806")
                .kind("IN", "IC")
                .numbers("200", "212")
                .span("20170309161641", "20170309161649", 4)
                .recording("20170309/200_212_20170309_161644_8026_cd.wav", Some("PCMU")),
        ),
        (
            "2.6.4-fi-internal.xml",
            L::new("5820821018163856-0", "90")
                .visitor("89")
                .kind("FI", "IC")
                .numbers("02167103750", "200")
                .span("20821018163827", "20821018163856", 4)
                .trunk("02161208234"),
        ),
        (
            "2.6.4-fi-external.xml",
            L::new("5820821018163856-0", "90")
                .visitor("89")
                .kind("FI", "IC")
                .numbers("02167103750", "200")
                .span("20821018163827", "20821018163856", 4)
                .trunk("02161208234"),
        ),
        (
            "2.6.4-fw-external.xml",
            L::new("5920821018163856-0", "90")
                .visitor("89")
                .kind("FW", "XO")
                .numbers("200", "13012345678")
                .span("20821018163827", "20821018163856", 4),
        ),
        (
            "2.6.5-cb-caller.xml",
            L::new("420170328135454-0", "20484")
                .outer("4")
                .kind("CB", "IP")
                .numbers("13012345678", "02167103750")
                .span("20170328135442", "20170328135454", 9)
                .trunk("50015")
                .recording(
                    "20170328/50015_02167103750_20170328_135445_5004_cg.wav",
                    Some("PCMU"),
                )
                .mac("00:0E:A9:3D:00:0C"),
        ),
        (
            "2.6.5-cb-callee.xml",
            L::new("520170328135455-0", "20484")
                .outer("5")
                .kind("CB", "IP")
                .numbers("", "02167103750")
                .span("20170328135445", "20170328135455", 6)
                .trunk("50016")
                .recording(
                    "20170328/50016_02167103750_20170328_135449_5005_cg.wav",
                    Some("PCMU"),
                )
                .mac("00:0E:A9:3D:00:0C"),
        ),
        (
            // No RecCodec in this example; `</Recording` wraps before `>`.
            "4.9-in-recorded.xml",
            L::new("5520821018163556-0", "85")
                .visitor("83")
                .kind("IN", "IP")
                .numbers("18201008888", "200")
                .span("20171116163549", "20171116163556", 6)
                .trunk("02161208234")
                .recording("20171116/18201008888_200_20171116_163550_85_cd.wav", None),
        ),
    ]
    .into_iter()
    .map(|(name, leg)| (name, leg.0))
    .collect()
}

/// Manual §2.5 (all subsections) and §4.12; §4.5 is checked on its own.
fn event_examples() -> Vec<(&'static str, Event)> {
    let busy_208 = || vec![ext("208")];
    let ext_ext = || vec![ext("200"), ext("208")];
    let dtmf = |info: &str| {
        vec![
            visitor("4", "13012345678", "02161208234", "36868"),
            text("info", info),
            menu("1"),
        ]
    };
    let trunk_call = || {
        vec![
            p("trunk", &[("id", "02161204000")]),
            visitor("31", "13012345678", "02161204000", "36895"),
        ]
    };
    let queued_visitor = || visitor("77", "18201008888", "888", "45135");
    vec![
        ("2.5.1.1-bootup.xml", ev("BOOTUP", vec![])),
        ("2.5.1.2-config-change.xml", ev("CONFIG_CHANGE", vec![])),
        ("2.5.2.1-busy.xml", ev("BUSY", busy_208())),
        ("2.5.2.2-idle.xml", ev("IDLE", busy_208())),
        (
            "2.5.2.3-online.xml",
            Event {
                attrs: vec![("RegisterIP".into(), "10.129.91.202".into())],
                ..ev("ONLINE", busy_208())
            },
        ),
        ("2.5.2.4-offline.xml", ev("OFFLINE", busy_208())),
        (
            "2.5.3.1-ring-1-visitor-to-ext.xml",
            ev(
                "RING",
                vec![
                    ext("200"),
                    visitor("22", "13012345678", "02161208234", "16408"),
                ],
            ),
        ),
        ("2.5.3.1-ring-2-ext-to-ext.xml", ev("RING", ext_ext())),
        (
            "2.5.3.1-ring-3-api-outer.xml",
            ev(
                "RING",
                vec![
                    ext("200"),
                    outer("22", "200", "13012345678", "02161208234", "16406"),
                ],
            ),
        ),
        (
            "2.5.3.1-ring-4-api-caller-first.xml",
            ev("RING", vec![ext("200"), p("visitor", &[("from", "")])]),
        ),
        (
            "2.5.3.1-ring-5-menu-to-ext.xml",
            ev("RING", vec![ext("200"), menu("1")]),
        ),
        (
            "2.5.3.2-alert-1-visitor-to-ext.xml",
            ev(
                "ALERT",
                vec![
                    visitor("22", "13012345678", "02161208234", "16406"),
                    ext("200"),
                ],
            ),
        ),
        (
            "2.5.3.2-alert-2-ext-to-outer.xml",
            ev(
                "ALERT",
                vec![ext("200"), p("outer", &[("to", "13012345678")])],
            ),
        ),
        ("2.5.3.2-alert-3-ext-to-ext.xml", ev("ALERT", ext_ext())),
        (
            "2.5.3.2-alert-4-menu-to-outer.xml",
            ev(
                "ALERT",
                vec![outer("22", "", "13012345678", "02161208234", "16406")],
            ),
        ),
        ("2.5.3.3-answer-1-ext-to-ext.xml", ev("ANSWER", ext_ext())),
        (
            "2.5.3.3-answer-2-visitor-to-ext.xml",
            ev(
                "ANSWER",
                vec![
                    ext("200"),
                    visitor("31", "13012345678", "02161208234", "16417"),
                ],
            ),
        ),
        (
            "2.5.3.4-answered-1-ext-to-outer.xml",
            ev(
                "ANSWERED",
                vec![
                    outer("34", "200", "13012345678", "02161208234", "16418"),
                    ext("200"),
                ],
            ),
        ),
        (
            "2.5.3.4-answered-2-ext-to-ext.xml",
            ev("ANSWERED", ext_ext()),
        ),
        (
            "2.5.3.5-bye-1-visitor-hangs-up.xml",
            ev(
                "BYE",
                vec![
                    visitor("42", "13012345678", "02161208234", "16426"),
                    ext("200"),
                ],
            ),
        ),
        (
            "2.5.3.5-bye-2a-ext-and-outer.xml",
            ev(
                "BYE",
                vec![ext("200"), p("outer", &[("to", "13012345678")])],
            ),
        ),
        (
            "2.5.3.5-bye-2b-outer.xml",
            ev(
                "BYE",
                vec![outer("38", "200", "13012345678", "02161208234", "16422")],
            ),
        ),
        (
            "2.5.3.5-bye-3-visitor-to-outer.xml",
            ev(
                "BYE",
                vec![
                    visitor("50", "02167103750", "02161204000", "49202"),
                    outer("51", "200", "13012345678", "02161208234", "49202"),
                ],
            ),
        ),
        (
            "2.5.3.5-bye-4-callback.xml",
            ev(
                "BYE",
                vec![outer("48", "", "13012345678", "28900928", "49200")],
            ),
        ),
        (
            "2.5.3.6-divert-1-visitor.xml",
            ev("DIVERT", vec![visitor("5", "13012345678", "204", "12293")]),
        ),
        ("2.5.3.6-divert-2-ext.xml", ev("DIVERT", busy_208())),
        (
            "2.5.3.7-transient.xml",
            ev(
                "TRANSIENT",
                vec![
                    outer("66", "208", "13012345678", "61208111", "8258"),
                    ext("208"),
                ],
            ),
        ),
        (
            "2.5.3-failed-1-offline.xml",
            ev(
                "FAILED",
                vec![
                    ext("208"),
                    p("err", &[("code", "8"), ("reason", "offline")]),
                ],
            ),
        ),
        (
            "2.5.3-failed-2-other-call.xml",
            ev(
                "FAILED",
                vec![
                    ext("200"),
                    ext("208"),
                    p("err", &[("code", "4"), ("reason", "other call")]),
                ],
            ),
        ),
        ("2.5.4.1-invite.xml", ev("INVITE", trunk_call())),
        ("2.5.4.2-incoming.xml", ev("INCOMING", trunk_call())),
        ("2.5.5-dtmf-0-example.xml", ev("DTMF", dtmf("12345"))),
        ("2.5.5-dtmf-1-length.xml", ev("DTMF", dtmf("12345"))),
        ("2.5.5-dtmf-2-terminator.xml", ev("DTMF", dtmf("200#"))),
        (
            "2.5.5-dtmf-3-outer.xml",
            ev(
                "DTMF",
                vec![
                    // Attribute order as sent: callid before trunk here.
                    p(
                        "outer",
                        &[
                            ("id", "4"),
                            ("from", "200"),
                            ("to", "13012345678"),
                            ("callid", "68671"),
                            ("trunk", "02161208234"),
                        ],
                    ),
                    text("info", "12345"),
                    menu("1"),
                ],
            ),
        ),
        (
            "2.5.6-endofann-1-visitor.xml",
            ev(
                "ENDOFANN",
                vec![visitor("67", "13012345678", "208", "32835"), menu("1")],
            ),
        ),
        (
            "2.5.6-endofann-2-outer.xml",
            ev(
                "ENDOFANN",
                vec![
                    p(
                        "outer",
                        &[
                            ("id", "4"),
                            ("from", "200"),
                            ("to", "13012345678"),
                            ("callid", "68671"),
                            ("trunk", "02161208234"),
                        ],
                    ),
                    menu("1"),
                ],
            ),
        ),
        (
            "2.5.6-endofann-3-ext.xml",
            ev("ENDOFANN", vec![ext("200"), menu("1")]),
        ),
        (
            "2.5.7-queue-1a-ext.xml",
            ev("QUEUE", vec![ext("200"), waiting("6", "1", None)]),
        ),
        (
            "2.5.7-queue-1b-visitor.xml",
            ev("QUEUE", vec![queued_visitor(), waiting("6", "2", None)]),
        ),
        (
            "2.5.7-queue-2a-ext-offline.xml",
            ev(
                "QUEUE",
                vec![ext("200"), waiting("7", "0", Some("offline"))],
            ),
        ),
        (
            "2.5.7-queue-2b-visitor-offline.xml",
            ev(
                "QUEUE",
                vec![queued_visitor(), waiting("7", "0", Some("offline"))],
            ),
        ),
        (
            "2.5.7-queue-3a-ext-full.xml",
            ev("QUEUE", vec![ext("200"), waiting("7", "30", Some("full"))]),
        ),
        (
            "2.5.7-queue-3b-visitor-full.xml",
            ev(
                "QUEUE",
                vec![
                    p("visitor", &[("id", "2")]),
                    waiting("7", "30", Some("full")),
                ],
            ),
        ),
        (
            "4.12-ring-1-ext-agent.xml",
            ev("RING", vec![ext("201"), ext("213")]),
        ),
        (
            "4.12-ring-2-visitor-agent.xml",
            ev(
                "RING",
                vec![ext("200"), visitor("75", "18201008888", "203", "45132")],
            ),
        ),
        (
            "4.12-bye-1-ext-leaves.xml",
            ev(
                "BYE",
                vec![
                    ext("201"),
                    ext("3"),
                    text("recording", "20170706/201_3_20170706_155709_A00B_cg.wav"),
                ],
            ),
        ),
        (
            "4.12-bye-2-visitor-leaves.xml",
            ev(
                "BYE",
                vec![visitor("17", "18201008888", "888", "40977"), ext("3")],
            ),
        ),
    ]
}

const SIGNED_EXAMPLE: &str = "4.5-busy-signed.xml";

#[test]
fn cdr_examples_parse_field_by_field() {
    for (name, expected) in cdr_examples() {
        let doc = document(name);
        assert_eq!(doc.message, Message::Cdr(expected), "{name}");
        assert_eq!(doc.auth, None, "{name}");
    }
}

#[test]
fn event_examples_parse_field_by_field() {
    for (name, expected) in event_examples() {
        let doc = document(name);
        assert_eq!(doc.message, Message::Event(expected), "{name}");
        assert_eq!(doc.auth, None, "{name}");
    }
}

#[test]
fn signed_example_carries_mac_and_auth() {
    let doc = document(SIGNED_EXAMPLE);
    let expected = Event {
        mac: Some("00:0E:A9:2D:07:D0".into()),
        ..ev("BUSY", vec![ext("200")])
    };
    assert_eq!(doc.message, Message::Event(expected));
    assert_eq!(
        doc.auth,
        Some(Auth {
            nonce: "2E8E52C6".into(),
            timestamp: "1498542290".into(),
            signature: "24fe6019c3f284789f8cfacc3446e7ed".into(),
        })
    );
    let text = read(SIGNED_EXAMPLE);
    assert_eq!(doc.raw(&text), text.trim_end());
}

#[test]
fn signed_example_verifies_with_password_123456() {
    // The manual does not print the password; "123456" reproduces the signature.
    let doc = document(SIGNED_EXAMPLE);
    assert_eq!(
        verify(doc.auth.as_ref(), "123456", 60, 1_498_542_300),
        Ok(())
    );
    assert!(verify(doc.auth.as_ref(), "1234567", 60, 1_498_542_300).is_err());
}

#[test]
fn all_examples_in_one_body_parse_in_order() {
    let cdrs = cdr_examples();
    let events = event_examples();
    let names: Vec<&str> = cdrs
        .iter()
        .map(|(n, _)| *n)
        .chain(events.iter().map(|(n, _)| *n))
        .chain([SIGNED_EXAMPLE])
        .collect();
    let body: String = names.iter().map(|n| read(n)).collect();
    let docs = parse_body(&body).unwrap();
    assert_eq!(docs.len(), names.len());
    for (doc, name) in docs.iter().zip(&names) {
        assert_eq!(doc.message, document(name).message, "{name}");
    }
    assert!(docs.last().is_some_and(|d| d.auth.is_some()));
}

#[test]
fn every_fixture_has_an_expectation() {
    let expected: BTreeSet<String> = cdr_examples()
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(event_examples().iter().map(|(n, _)| n.to_string()))
        .chain([SIGNED_EXAMPLE.to_string()])
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    assert_eq!(on_disk, expected);
    let readme = read("README.md");
    for name in &on_disk {
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} not in README"
        );
    }
}

#[test]
fn control_query_is_an_unknown_root() {
    assert_eq!(
        parse_body(&read("rejected/1.2.1-control-query.xml")),
        Err(ParseError::UnknownRoot("Control".into()))
    );
}

#[test]
fn device_info_reply_is_an_unknown_root() {
    assert_eq!(
        parse_body(&read("rejected/1.2.1-deviceinfo-reply.xml")),
        Err(ParseError::UnknownRoot("DeviceInfo".into()))
    );
}

#[test]
fn failed_format_template_is_malformed() {
    // `<called id=" number "..... />`: dots where an attribute should be.
    let err = parse_body(&read("rejected/2.5.3-failed-format.xml")).unwrap_err();
    let pos = read("rejected/2.5.3-failed-format.xml")
        .find("<called")
        .unwrap() as u64;
    assert!(
        matches!(&err, ParseError::Malformed { pos: p, reason } if *p == pos && reason.starts_with("in <called>")),
        "{err:?}"
    );
}

#[test]
fn cdr_format_template_is_refused() {
    // Placeholders (`<TimeStart> value </TimeStart>`) are not times.
    assert_eq!(
        parse_body(&read("rejected/2.6-cdr-format.xml")),
        Err(ParseError::InvalidField {
            cdr_id: "value".into(),
            field: "TimeStart",
            value: "value".into(),
        })
    );
}
