//! The simulated device's pushes read back with a minimal quick-xml reader
//! (independent of callvault's own parser), and the plans the `sim_*` test
//! modules share: [`read`] turns a plan's pushes into CDR rows and events.

use std::collections::HashMap;

use callvault::model::OM_TIME_FORMAT;
use callvault::sim::{generate, Plan, PushKind, Scenario, SimConfig, TruthCall};
use chrono::{NaiveDate, NaiveDateTime};
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    pub(crate) fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub(crate) fn field(&self, name: &str) -> String {
        self.child(name)
            .map(|c| c.text.clone())
            .unwrap_or_else(|| panic!("missing <{name}> in {self:?}"))
    }
}

pub(crate) fn node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    Node {
        name: String::from_utf8(e.name().as_ref().to_vec()).expect("utf8 name"),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).expect("utf8 key"),
                    a.unescape_value().expect("value").into_owned(),
                )
            })
            .collect(),
        ..Node::default()
    }
}

/// Top-level elements of one push body (message root, then Auth if any);
/// panics on malformed XML.
pub(crate) fn parse(body: &str) -> Vec<Node> {
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"),
        "declaration: {body}"
    );
    let mut r = Reader::from_str(body);
    r.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut top = Vec::new();
    loop {
        match r.read_event().expect("well-formed XML") {
            XmlEvent::Start(e) => stack.push(node(&e)),
            XmlEvent::Empty(e) => {
                let n = node(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => top.push(n),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.decode().expect("text"));
                }
            }
            XmlEvent::End(_) => {
                let n = stack.pop().expect("balanced");
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => top.push(n),
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    top
}

#[derive(Debug, Clone)]
pub(crate) struct Cdr {
    pub(crate) idx: usize,
    pub(crate) id: String,
    pub(crate) callid: String,
    pub(crate) visitor: Option<String>,
    pub(crate) outer: Option<String>,
    pub(crate) start: NaiveDateTime,
    pub(crate) ty: String,
    pub(crate) route: String,
    pub(crate) cpn: String,
    pub(crate) cdpn: String,
    pub(crate) end: NaiveDateTime,
    pub(crate) duration: i64,
    pub(crate) trunk: String,
    pub(crate) recording: Option<String>,
    pub(crate) codec: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) at: NaiveDateTime,
    pub(crate) attribute: String,
    pub(crate) parties: Vec<Node>,
}

impl Ev {
    pub(crate) fn ids(&self, tag: &str) -> Vec<String> {
        self.parties
            .iter()
            .filter(|p| p.name == tag)
            .filter_map(|p| p.attr("id").map(str::to_string))
            .collect()
    }
}

pub(crate) fn time(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, OM_TIME_FORMAT).expect("OM time")
}

pub(crate) fn read(plan: &Plan) -> (Vec<Cdr>, Vec<Ev>) {
    let (mut cdrs, mut evs) = (Vec::new(), Vec::new());
    for (idx, p) in plan.pushes.iter().enumerate() {
        let docs = parse(&p.body);
        let root = &docs[0];
        match p.kind {
            PushKind::Cdr => {
                assert_eq!(root.name, "Cdr");
                cdrs.push(Cdr {
                    idx,
                    id: root.attr("id").expect("Cdr id").to_string(),
                    callid: root.field("callid"),
                    visitor: root
                        .child("visitor")
                        .and_then(|v| v.attr("id"))
                        .map(str::to_string),
                    outer: root
                        .child("outer")
                        .and_then(|v| v.attr("id"))
                        .map(str::to_string),
                    start: time(&root.field("TimeStart")),
                    ty: root.field("Type"),
                    route: root.field("Route"),
                    cpn: root.field("CPN"),
                    cdpn: root.field("CDPN"),
                    end: time(&root.field("TimeEnd")),
                    duration: root.field("Duration").parse().expect("Duration"),
                    trunk: root.field("TrunkNumber"),
                    recording: root.child("Recording").map(|n| n.text.clone()),
                    codec: root.child("RecCodec").map(|n| n.text.clone()),
                });
            }
            PushKind::Event => {
                assert_eq!(root.name, "Event");
                evs.push(Ev {
                    at: p.at,
                    attribute: root.attr("attribute").expect("attribute").to_string(),
                    parties: root
                        .children
                        .iter()
                        .filter(|c| c.name != "MAC")
                        .cloned()
                        .collect(),
                });
            }
        }
    }
    (cdrs, evs)
}

pub(crate) fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, 1)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .expect("start")
}

pub(crate) fn only(sc: Scenario, calls: usize) -> Plan {
    generate(&SimConfig {
        seed: 42,
        calls,
        start: t0(),
        calls_per_hour: 60.0,
        scenarios: vec![sc],
        ..SimConfig::default()
    })
}

/// Legs of each truth call, in push order.
pub(crate) fn calls_with_legs(plan: &Plan) -> Vec<(TruthCall, Vec<Cdr>)> {
    let (cdrs, _) = read(plan);
    let by_id: HashMap<String, Cdr> = cdrs.into_iter().map(|c| (c.id.clone(), c)).collect();
    plan.truth
        .calls
        .iter()
        .map(|t| {
            let mut legs: Vec<Cdr> = t
                .device_cdr_ids
                .iter()
                .map(|id| by_id[id].clone())
                .collect();
            legs.sort_by_key(|l| l.idx);
            (t.clone(), legs)
        })
        .collect()
}

pub(crate) fn busy(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        calls: 400,
        start: t0(),
        calls_per_hour: 600.0,
        id_pool_size: 12,
        ..SimConfig::default()
    }
}
