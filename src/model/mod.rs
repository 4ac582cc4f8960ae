//! Domain types shared by every stage: a CDR leg and a call event as the
//! OM device reports them (manual §2.5, §2.6), independent of how they were
//! carried (XML push, import) or stored; and what the stages derive from
//! them and the store keeps: a call's facts (`call`) and a queue visit
//! (`visit`).

mod call;
pub mod conversation;
mod leg_type;
mod visit;

pub use call::{CallFacts, Direction};
pub use leg_type::LegType;
pub use visit::{Outcome, UnknownOutcome, Visit};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

pub mod checks;
pub use checks::{check_leg, check_recording_path, LegError, UnsafePath};

/// The longest call leg accepted, in days: the parser refuses longer spans
/// and talk times, and the calls stage relies on it when it looks back for
/// legs a new one overlaps. The device reports calls of seconds to hours; a
/// week leaves room for a line kept open for days. A small negative span
/// (TimeEnd before TimeStart: the clock stepped back during the call) is
/// kept, up to a day.
pub const MAX_LEG_DAYS: i64 = 7;

/// One CDR = one call *leg* (manual §2.6). Times are the device's local
/// wall-clock time exactly as sent (`YYYYMMDDhhmmss`); the device's time zone
/// turns them into instants elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// `<Cdr id="…">`: unique per device once the leg has ended.
    pub cdr_id: String,
    /// `<callid>`: NOT unique (manual §5.6 Q3); empty when absent.
    pub callid: String,
    /// `<visitor id>`: inbound call number, recycled after the call ends.
    pub visitor_id: Option<String>,
    /// `<outer id>`: outbound call number, recycled after the call ends.
    pub outer_id: Option<String>,
    /// `<Type>`: IN, OU, LO, FI, FW or CB (kept as sent when another).
    pub leg_type: LegType,
    /// `<Route>`: IP, XO, IC or OP.
    pub route: String,
    /// `<CPN>` calling number (may be empty, e.g. a menu or the callee CB leg).
    pub cpn: String,
    /// `<CDPN>` called number.
    pub cdpn: String,
    pub time_start: NaiveDateTime,
    pub time_end: NaiveDateTime,
    /// Talk seconds after answer; 0 = not answered.
    pub duration: i64,
    /// `<TrunkNumber>`; empty for internal legs.
    pub trunk_number: String,
    /// `<Recording>` relative path `YYYYMMDD/<file>` as sent (not yet sanitized).
    pub recording: Option<String>,
    /// `<RecCodec>`: G729, PCMA or PCMU.
    pub rec_codec: Option<String>,
    /// `<MAC>` inside the message when API_MAC=yes.
    pub mac: Option<String>,
}

/// One element inside an `<Event>`: `<ext id="200"/>`, `<visitor id=".." from=".." to=".." callid=".."/>`,
/// `<outer …/>`, `<menu id/>`, `<trunk id/>`, `<waiting group count reason/>`, `<recording>…</recording>`,
/// `<info>…</info>`, `<err_code>…</err_code>` … Kept generic so that no attribute
/// the manual (or a newer firmware) sends is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Element name as sent (`ext`, `visitor`, `outer`, `menu`, `trunk`, `waiting`, …).
    pub tag: String,
    /// Attributes in document order, values trimmed.
    pub attrs: Vec<(String, String)>,
    /// Text content, trimmed; `None` when the element is empty.
    pub text: Option<String>,
}

impl Party {
    /// An empty element `<tag k="v" … />`: how the simulator and the tests
    /// write the parties of an event.
    pub fn with_attrs(tag: &str, attrs: &[(&str, &str)]) -> Party {
        Party {
            tag: tag.to_string(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            text: None,
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_of(&self.attrs, name)
    }

    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }
}

/// One `<Event attribute="…">` (manual §2.5). Events carry no time of their
/// own: the receive time is stamped by ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `attribute` value, trimmed (the device sends `"RING "` with a space) and upper-cased.
    pub attribute: String,
    /// Other root attributes, e.g. `RegisterIP` on ONLINE.
    pub attrs: Vec<(String, String)>,
    /// `<MAC>` inside the message when API_MAC=yes.
    pub mac: Option<String>,
    /// Child elements in document order.
    pub parties: Vec<Party>,
}

impl Event {
    /// A root attribute (for the JSON sources: a field) by name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_of(&self.attrs, name)
    }

    /// All parties with the given tag, in document order.
    pub fn parties_tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Party> + 'a {
        self.parties.iter().filter(move |p| p.tag == tag)
    }

    pub fn first(&self, tag: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.tag == tag)
    }
}

/// The reverse-authentication block the device appends after the message
/// root (manual §4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    pub nonce: String,
    pub timestamp: String,
    pub signature: String,
}

/// What one XML document in a push carried.
// A Leg is bigger than an Event; boxing it would buy nothing for a value
// that lives only while one push is processed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Cdr(Leg),
    Event(Event),
}

/// One parsed document of a push body, with the Auth block that followed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub message: Message,
    pub auth: Option<Auth>,
    /// Where the document's own text (declaration to end of Auth) lies in
    /// the body it was parsed from, as byte offsets. The body is stored once
    /// (the `pushes` row); a copy per document made memory grow with
    /// documents × body size.
    pub span: std::ops::Range<usize>,
}

impl Document {
    /// The document's own text within `body`, the text it was parsed from.
    pub fn raw<'a>(&self, body: &'a str) -> &'a str {
        body.get(self.span.clone()).unwrap_or_default()
    }
}

impl Message {
    pub fn mac(&self) -> Option<&str> {
        match self {
            Message::Cdr(l) => l.mac.as_deref(),
            Message::Event(e) => e.mac.as_deref(),
        }
    }
}

/// A device-local time as the JSON sources send it: `2012-01-05 15:10:09`,
/// also with a `T`, or without the space (as the coocenter manual prints it).
pub fn parse_json_time(s: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s.trim(), f).ok())
}

/// The value of the first attribute called `name` in document order.
pub fn attr_of<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Format of OM timestamps: `YYYYMMDDhhmmss`.
pub const OM_TIME_FORMAT: &str = "%Y%m%d%H%M%S";
