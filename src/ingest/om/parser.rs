//! Parser for OM push bodies (manual §1.2, §2.5 events, §2.6 CDRs, §4.5 Auth).
//!
//! A body holds one or more XML documents back to back, each an optional
//! `<?xml …?>` declaration, a message root (`<Cdr>` or `<Event>`, possibly
//! with a `<MAC>` inside) and an optional `<Auth>` block after the root that
//! belongs to it. The reader is a streaming (event) reader because the body
//! is not one well-formed XML document: it may have several roots and several
//! declarations. Whitespace is not trimmed by the reader so that every event
//! starts where the previous one ended, which gives each document's exact text
//! slice for raw storage.

use chrono::NaiveDateTime;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

use super::recording_path::{check_recording_path, UnsafePath};
use crate::model::{attr_of, Auth, Document, Event, Leg, Message, Party, OM_TIME_FORMAT};

/// Why a push body was refused. Each `Display` is one short line, fit to be
/// an HTTP 400 reason; values quoted from the body are escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is empty or only whitespace.
    #[error("empty body")]
    EmptyBody,
    /// More documents than one push may hold (`[ingest] max_documents`).
    #[error("push holds more than {limit} documents (max_documents)")]
    TooManyDocuments { limit: usize },
    /// A document with more elements than any OM message has
    /// ([`MAX_ELEMENTS`]): each would become a party or field in memory.
    #[error("document at byte {pos} holds more than {MAX_ELEMENTS} elements")]
    TooManyElements { pos: u64 },
    /// The body holds declarations or comments but no message.
    #[error("no message in body")]
    NoMessage,
    /// The XML is not well-formed.
    #[error("malformed XML at byte {pos}: {reason}")]
    Malformed { pos: u64, reason: String },
    /// A root other than `Cdr` or `Event` (e.g. `Control`, `DeviceInfo`).
    #[error("unknown root element <{}>", short(.0))]
    UnknownRoot(String),
    /// `<Cdr>` without a non-empty `id` attribute.
    #[error("Cdr without id")]
    MissingCdrId,
    /// `<Event>` without a non-empty `attribute` attribute.
    #[error("Event without attribute")]
    MissingEventAttribute,
    /// A required CDR field (TimeStart, TimeEnd, Duration) is absent or empty.
    #[error("Cdr {}: missing <{field}>", short(.cdr_id))]
    MissingField { cdr_id: String, field: &'static str },
    /// A CDR time is not `YYYYMMDDhhmmss`, or Duration is not a count of seconds.
    #[error("Cdr {}: invalid <{field}> {}", short(.cdr_id), short(.value))]
    InvalidField {
        cdr_id: String,
        field: &'static str,
        value: String,
    },
    /// `<Auth>` lacking one of nonce, timestamp, signature.
    #[error("Auth without <{0}>")]
    IncompleteAuth(&'static str),
    /// `<Auth>` that does not directly follow a message (before the first
    /// root, after a declaration, or a second one).
    #[error("Auth at byte {pos} does not follow a message")]
    MisplacedAuth { pos: u64 },
    /// An XML declaration with no message after it (a truncated push).
    #[error("XML declaration at byte {pos} without a message")]
    DanglingDeclaration { pos: u64 },
    /// Text outside any element, e.g. garbage after the last document.
    #[error("stray text at byte {pos} outside any message")]
    TrailingGarbage { pos: u64 },
    /// TimeEnd more than [`MAX_LEG_DAYS`] after TimeStart, or more than a
    /// day before it: a device clock fault, not a call. Such a leg would
    /// join every call sharing its (recycled) visitor id over the years it
    /// claims, so it is refused and kept in quarantine instead.
    #[error("Cdr {}: TimeEnd {end} is {} TimeStart {start} (a device clock fault?)", short(.cdr_id), span_words(*.start, *.end))]
    ImplausibleSpan {
        cdr_id: String,
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
    /// A talk time longer than the longest leg accepted ([`MAX_LEG_DAYS`]).
    #[error("Cdr {}: Duration {seconds} s is more than {MAX_LEG_DAYS} days (a device fault?)", short(.cdr_id))]
    ImplausibleDuration { cdr_id: String, seconds: i64 },
    /// A `<Recording>` value that could escape the recorder directory.
    #[error("Cdr {}: unsafe Recording {}: {reason}", short(.cdr_id), short(.value))]
    UnsafeRecording {
        cdr_id: String,
        value: String,
        reason: UnsafePath,
    },
}

/// One element below a message root; nested elements are flattened in
/// document order, `depth` 1 being a direct child of the root.
struct Element {
    depth: usize,
    tag: String,
    attrs: Vec<(String, String)>,
    /// Text directly inside the element, untrimmed.
    text: String,
}

/// A root element (`Cdr`, `Event`, `Auth`) read up to its end tag.
struct Tree {
    tag: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
}

impl Tree {
    fn attr(&self, name: &str) -> Option<&str> {
        attr_of(&self.attrs, name)
    }

    fn direct_children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter(|e| e.depth == 1)
    }
}

/// Elements one document may hold below its root. The largest OM message
/// (a CDR) has about twenty; without a cap a 1 MiB body of `<a/>` would be a
/// quarter of a million parties in memory.
pub const MAX_ELEMENTS: usize = 1_000;

/// Parses every document of a push body, however many.
pub fn parse_body(body: &str) -> Result<Vec<Document>, ParseError> {
    parse_documents(body, usize::MAX)
}

/// Parses every document of a push body, refusing a body of more than
/// `max_documents` documents as soon as the next one starts (memory stays
/// bounded by the cap, not by what the sender packed into the body).
pub fn parse_documents(body: &str, max_documents: usize) -> Result<Vec<Document>, ParseError> {
    // A UTF-8 BOM is not whitespace to the reader; some HTTP stacks prepend one.
    let stripped = body.strip_prefix('\u{feff}').unwrap_or(body);
    let offset = body.len() - stripped.len();
    let body = stripped;
    if body.trim().is_empty() {
        return Err(ParseError::EmptyBody);
    }
    let mut parser = BodyParser {
        offset,
        max_documents,
        reader: Reader::from_str(body),
        docs: Vec::new(),
        decl_start: None,
        last_doc_start: 0,
    };
    parser.run()?;
    if parser.docs.is_empty() {
        return Err(ParseError::NoMessage);
    }
    Ok(parser.docs)
}

/// The state of one pass over a body.
struct BodyParser<'a> {
    /// Bytes stripped before `body` (a BOM), so spans are in the caller's text.
    offset: usize,
    max_documents: usize,
    reader: Reader<&'a [u8]>,
    docs: Vec<Document>,
    /// Start of the pending declaration, which begins the next document's text.
    decl_start: Option<usize>,
    /// Start of the last document's text, to extend it over a following Auth.
    last_doc_start: usize,
}

impl<'a> BodyParser<'a> {
    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            let start = position(&self.reader);
            match next_event(&mut self.reader)? {
                XmlEvent::Decl(_) => {
                    self.decl_start.get_or_insert(start);
                }
                XmlEvent::Text(text) if is_blank(&text) => {}
                XmlEvent::Text(_) | XmlEvent::CData(_) | XmlEvent::GeneralRef(_) => {
                    return Err(ParseError::TrailingGarbage { pos: start as u64 })
                }
                XmlEvent::Comment(_) | XmlEvent::PI(_) | XmlEvent::DocType(_) => {}
                XmlEvent::Start(root) => self.root(start, &root, false)?,
                XmlEvent::Empty(root) => self.root(start, &root, true)?,
                // The reader refuses unmatched end tags itself; kept for completeness.
                XmlEvent::End(_) => {
                    return Err(ParseError::Malformed {
                        pos: start as u64,
                        reason: "unmatched end tag".into(),
                    })
                }
                XmlEvent::Eof => break,
            }
        }
        match self.decl_start {
            Some(pos) if !self.docs.is_empty() => {
                Err(ParseError::DanglingDeclaration { pos: pos as u64 })
            }
            _ => Ok(()),
        }
    }

    /// Reads one top-level element starting at byte `start`.
    fn root(&mut self, start: usize, root: &BytesStart<'_>, empty: bool) -> Result<(), ParseError> {
        let name = tag_name(root);
        if name.eq_ignore_ascii_case("Auth") {
            return self.auth(start, root, empty);
        }
        let is_cdr = name.eq_ignore_ascii_case("Cdr");
        if !is_cdr && !name.eq_ignore_ascii_case("Event") {
            return Err(ParseError::UnknownRoot(name));
        }
        if self.docs.len() >= self.max_documents {
            return Err(ParseError::TooManyDocuments {
                limit: self.max_documents,
            });
        }
        let tree = read_tree(&mut self.reader, start, root, empty)?;
        let message = if is_cdr {
            Message::Cdr(build_leg(&tree)?)
        } else {
            Message::Event(build_event(&tree)?)
        };
        let doc_start = self.decl_start.take().unwrap_or(start);
        self.last_doc_start = doc_start;
        self.docs.push(Document {
            message,
            auth: None,
            span: self.span(doc_start),
        });
        Ok(())
    }

    /// Reads an `<Auth>` and attaches it to the message right before it.
    fn auth(&mut self, start: usize, root: &BytesStart<'_>, empty: bool) -> Result<(), ParseError> {
        let follows_message =
            self.decl_start.is_none() && self.docs.last().is_some_and(|doc| doc.auth.is_none());
        if !follows_message {
            return Err(ParseError::MisplacedAuth { pos: start as u64 });
        }
        let tree = read_tree(&mut self.reader, start, root, empty)?;
        let auth = build_auth(&tree)?;
        let span = self.span(self.last_doc_start);
        if let Some(doc) = self.docs.last_mut() {
            doc.auth = Some(auth);
            doc.span = span;
        }
        Ok(())
    }

    /// The span from `from` to the reader's current position, in the
    /// caller's text (before the BOM was stripped).
    fn span(&self, from: usize) -> std::ops::Range<usize> {
        let to = position(&self.reader);
        from + self.offset..to + self.offset
    }
}

/// Reads the rest of a root element (its start tag already read) into a
/// flat list of descendants.
fn read_tree(
    reader: &mut Reader<&[u8]>,
    root_start: usize,
    root: &BytesStart<'_>,
    empty: bool,
) -> Result<Tree, ParseError> {
    let mut tree = Tree {
        tag: tag_name(root),
        attrs: attributes(root_start, root)?,
        children: Vec::new(),
    };
    if empty {
        return Ok(tree);
    }
    // Indices into `tree.children` of the open elements; empty = inside the root.
    let mut open: Vec<usize> = Vec::new();
    loop {
        let start = position(reader);
        if tree.children.len() >= MAX_ELEMENTS {
            return Err(ParseError::TooManyElements {
                pos: root_start as u64,
            });
        }
        let piece = match next_event(reader)? {
            XmlEvent::Start(e) => {
                open.push(tree.children.len());
                tree.children.push(element(start, &e, open.len())?);
                continue;
            }
            XmlEvent::Empty(e) => {
                tree.children.push(element(start, &e, open.len() + 1)?);
                continue;
            }
            XmlEvent::End(_) => {
                // The reader has checked that the name matches the open tag.
                if open.pop().is_none() {
                    return Ok(tree);
                }
                continue;
            }
            // Borrowed where the input allows: most pieces are indentation
            // between elements, dropped below without a copy.
            XmlEvent::Text(text) => decoded(reader, text.decode())?,
            XmlEvent::CData(data) => decoded(reader, data.decode())?,
            XmlEvent::GeneralRef(reference) => resolve_reference(start, &reference)?.into(),
            XmlEvent::Comment(_) | XmlEvent::PI(_) => continue,
            // A declaration inside a root means the previous document was cut short.
            XmlEvent::Decl(_) | XmlEvent::DocType(_) => {
                return Err(ParseError::Malformed {
                    pos: start as u64,
                    reason: format!("unclosed <{}>", short(&tree.tag)),
                })
            }
            XmlEvent::Eof => {
                return Err(ParseError::Malformed {
                    pos: start as u64,
                    reason: format!("body ends inside <{}>", short(&tree.tag)),
                })
            }
        };
        // Text directly inside the root (normally only indentation) is not kept.
        if let Some(&index) = open.last() {
            if let Some(element) = tree.children.get_mut(index) {
                element.text.push_str(&piece);
            }
        }
    }
}

fn element(tag_start: usize, tag: &BytesStart<'_>, depth: usize) -> Result<Element, ParseError> {
    Ok(Element {
        depth,
        tag: tag_name(tag),
        attrs: attributes(tag_start, tag)?,
        text: String::new(),
    })
}

/// Attributes in document order, values unescaped and trimmed. The reader
/// parses attributes lazily, after the tag's event, so errors are placed at
/// the tag's start byte (the reason gives the offset inside the tag).
fn attributes(
    tag_start: usize,
    start: &BytesStart<'_>,
) -> Result<Vec<(String, String)>, ParseError> {
    let at_tag = |reason: String| ParseError::Malformed {
        pos: tag_start as u64,
        reason: format!("in <{}>: {}", short(&tag_name(start)), one_line(&reason)),
    };
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| at_tag(e.to_string()))?;
        let value = attr.unescape_value().map_err(|e| at_tag(e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        attrs.push((key, value.trim().to_string()));
    }
    Ok(attrs)
}

fn build_leg(tree: &Tree) -> Result<Leg, ParseError> {
    let cdr_id = tree
        .attr("id")
        .filter(|id| !id.is_empty())
        .ok_or(ParseError::MissingCdrId)?
        .to_string();
    let mut fields = CdrFields::default();
    for child in tree.direct_children() {
        // The manual's tags are mixed case (`TimeStart`, `callid`) and firmware
        // varies (`Recording` / `recording`): match case-insensitively.
        let slot = match child.tag.to_ascii_lowercase().as_str() {
            "callid" => &mut fields.callid,
            "timestart" => &mut fields.time_start,
            "timeend" => &mut fields.time_end,
            "type" => &mut fields.leg_type,
            "route" => &mut fields.route,
            "cpn" => &mut fields.cpn,
            "cdpn" => &mut fields.cdpn,
            "duration" => &mut fields.duration,
            "trunknumber" => &mut fields.trunk_number,
            "recording" => &mut fields.recording,
            "reccodec" => &mut fields.rec_codec,
            "mac" => &mut fields.mac,
            "visitor" => {
                fields.visitor_id = attr_of(&child.attrs, "id").map(str::to_string);
                continue;
            }
            "outer" => {
                fields.outer_id = attr_of(&child.attrs, "id").map(str::to_string);
                continue;
            }
            _ => {
                tracing::debug!(cdr_id = %cdr_id, tag = %child.tag, "ignoring unknown Cdr field");
                continue;
            }
        };
        *slot = Some(child.text.trim().to_string());
    }
    fields.into_leg(cdr_id)
}

/// The text of each CDR field as found, before validation.
#[derive(Default)]
struct CdrFields {
    callid: Option<String>,
    visitor_id: Option<String>,
    outer_id: Option<String>,
    leg_type: Option<String>,
    route: Option<String>,
    cpn: Option<String>,
    cdpn: Option<String>,
    time_start: Option<String>,
    time_end: Option<String>,
    duration: Option<String>,
    trunk_number: Option<String>,
    recording: Option<String>,
    rec_codec: Option<String>,
    mac: Option<String>,
}

impl CdrFields {
    fn into_leg(self, cdr_id: String) -> Result<Leg, ParseError> {
        let time_start = om_time(&cdr_id, "TimeStart", self.time_start)?;
        let time_end = om_time(&cdr_id, "TimeEnd", self.time_end)?;
        check_span(&cdr_id, time_start, time_end)?;
        let duration_text = required(&cdr_id, "Duration", self.duration)?;
        let duration = duration_text
            .parse::<i64>()
            .ok()
            .filter(|seconds| *seconds >= 0)
            .ok_or_else(|| ParseError::InvalidField {
                cdr_id: cdr_id.clone(),
                field: "Duration",
                value: duration_text.clone(),
            })?;
        let leg = Leg {
            callid: self.callid.unwrap_or_default(),
            visitor_id: non_empty(self.visitor_id),
            outer_id: non_empty(self.outer_id),
            leg_type: self.leg_type.unwrap_or_default().to_ascii_uppercase(),
            route: self.route.unwrap_or_default().to_ascii_uppercase(),
            cpn: self.cpn.unwrap_or_default(),
            cdpn: self.cdpn.unwrap_or_default(),
            time_start,
            time_end,
            duration,
            trunk_number: self.trunk_number.unwrap_or_default(),
            recording: non_empty(self.recording),
            rec_codec: non_empty(self.rec_codec).map(|codec| codec.to_ascii_uppercase()),
            mac: non_empty(self.mac),
            cdr_id,
        };
        check_leg(&leg)?;
        Ok(leg)
    }
}

/// A span longer than [`MAX_LEG_DAYS`], or ending more than a day before
/// it starts, is a device clock fault, not a call.
fn check_span(cdr_id: &str, start: NaiveDateTime, end: NaiveDateTime) -> Result<(), ParseError> {
    let span = end - start;
    if span > chrono::Duration::days(MAX_LEG_DAYS) || span < -chrono::Duration::days(1) {
        return Err(ParseError::ImplausibleSpan {
            cdr_id: cdr_id.to_string(),
            start,
            end,
        });
    }
    Ok(())
}

/// The checks every leg gets before it is archived, whichever source sent it
/// (the OM parser here, the JSON sources in `ingest::coocenter`): a plausible
/// span and talk time, and a recording path that cannot leave the recorder's
/// directory.
pub fn check_leg(leg: &Leg) -> Result<(), ParseError> {
    check_span(&leg.cdr_id, leg.time_start, leg.time_end)?;
    if leg.duration > MAX_LEG_DAYS * 86_400 {
        // Summed by every report: one leg of i64::MAX seconds made
        // SQLite's SUM fail ("integer overflow") for its whole day.
        return Err(ParseError::ImplausibleDuration {
            cdr_id: leg.cdr_id.clone(),
            seconds: leg.duration,
        });
    }
    if let Some(path) = &leg.recording {
        check_recording_path(path).map_err(|reason| ParseError::UnsafeRecording {
            cdr_id: leg.cdr_id.clone(),
            value: path.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn required(
    cdr_id: &str,
    field: &'static str,
    value: Option<String>,
) -> Result<String, ParseError> {
    non_empty(value).ok_or_else(|| ParseError::MissingField {
        cdr_id: cdr_id.to_string(),
        field,
    })
}

pub use crate::model::MAX_LEG_DAYS;

/// "3 days after" / "2 days before" / "26 hours after", for refusals.
fn span_words(start: NaiveDateTime, end: NaiveDateTime) -> String {
    let secs = (end - start).num_seconds();
    let (n, dir) = (
        secs.unsigned_abs(),
        if secs < 0 { "before" } else { "after" },
    );
    if n >= 2 * 86_400 {
        format!("{} days {dir}", n / 86_400)
    } else {
        format!("{} hours {dir}", n / 3_600)
    }
}

fn om_time(
    cdr_id: &str,
    field: &'static str,
    value: Option<String>,
) -> Result<NaiveDateTime, ParseError> {
    let text = required(cdr_id, field, value)?;
    digits_time(&text)
        .map(Ok)
        .unwrap_or_else(|| NaiveDateTime::parse_from_str(&text, OM_TIME_FORMAT))
        .map_err(|_| ParseError::InvalidField {
            cdr_id: cdr_id.to_string(),
            field,
            value: text,
        })
}

/// `YYYYMMDDhhmmss` read digit by digit: chrono's format-string parser was
/// a tenth of the parse time of a CDR. Anything else (or an invalid date)
/// is left to chrono, so what is accepted and refused does not change.
fn digits_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    chrono::NaiveDate::from_ymd_opt(num(0, 4) as i32, num(4, 6), num(6, 8))?.and_hms_opt(
        num(8, 10),
        num(10, 12),
        num(12, 14),
    )
}

fn build_event(tree: &Tree) -> Result<Event, ParseError> {
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

fn build_auth(tree: &Tree) -> Result<Auth, ParseError> {
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

/// Extracts a push body sent in the query string of a GET: either the whole
/// query is the (URL-encoded) XML, or some parameter's value is (`xml=%3C…`).
/// `+` decodes to a space, as in forms; returns `None` when no XML is found.
pub fn body_from_query(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    if query.is_empty() {
        return None;
    }
    // Escaping the separators makes the parser see one name spanning the
    // whole query, which is then simply the whole query percent-decoded.
    let whole = query.replace('&', "%26").replace('=', "%3D");
    if let Some((decoded, _)) = form_urlencoded::parse(whole.as_bytes()).next() {
        if decoded.trim_start().starts_with('<') {
            return Some(decoded.into_owned());
        }
    }
    form_urlencoded::parse(query.as_bytes())
        .map(|(_, value)| value)
        .find(|value| value.trim_start().starts_with('<'))
        .map(|value| value.into_owned())
}

fn next_event<'a>(reader: &mut Reader<&'a [u8]>) -> Result<XmlEvent<'a>, ParseError> {
    reader.read_event().map_err(|e| malformed(reader, e))
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn malformed(reader: &Reader<&[u8]>, error: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed {
        pos: reader.error_position(),
        reason: one_line(&error.to_string()),
    }
}

fn decoded<'t, E: std::fmt::Display>(
    reader: &Reader<&[u8]>,
    text: Result<std::borrow::Cow<'t, str>, E>,
) -> Result<std::borrow::Cow<'t, str>, ParseError> {
    text.map_err(|e| malformed(reader, e))
}

/// `&amp;`, `&#x41;` … inside element text (the reader reports them apart).
fn resolve_reference(
    start: usize,
    reference: &quick_xml::events::BytesRef<'_>,
) -> Result<String, ParseError> {
    let at_start = |reason: String| ParseError::Malformed {
        pos: start as u64,
        reason: one_line(&reason),
    };
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| at_start(e.to_string()))?
    {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| at_start(e.to_string()))?;
    resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| at_start(format!("unknown entity &{};", short(&name))))
}

fn is_blank(text: &quick_xml::events::BytesText<'_>) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

fn tag_name(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.name().as_ref()).into_owned()
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A value from the body made safe for a one-line error message: escaped
/// (no newlines) and cut to a readable length.
fn short(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut cut: String = value.chars().take(MAX_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    cut.escape_debug().to_string()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = r#"<?xml version="1.0" encoding="utf-8" ?>"#;
    const BUSY: &str = r#"<Event attribute="BUSY"><ext id="208" /></Event>"#;
    const CDR: &str = r#"<Cdr id="13620170308103713-0">
  <callid>32820</callid>
  <TimeStart>20170308103709</TimeStart>
  <Type>IN</Type>
  <Route>IC</Route>
  <CPN>200</CPN>
  <CDPN>201</CDPN>
  <TimeEnd>20170308103713</TimeEnd>
  <Duration>2</Duration>
  <TrunkNumber></TrunkNumber>
  <Recording>20170308/200_201_20170308_103711_8034_cd.wav</Recording>
  <RecCodec>PCMU</RecCodec>
</Cdr>"#;
    const AUTH: &str = "<Auth>\n  <nonce>2E8E52C6</nonce>\n  <timestamp>1498542290</timestamp>\n  <signature>24fe6019c3f284789f8cfacc3446e7ed</signature>\n</Auth>";

    fn cdr_with(field: &str) -> String {
        format!(
            r#"<Cdr id="1-0"><TimeStart>20170308103709</TimeStart><TimeEnd>20170308103713</TimeEnd><Duration>2</Duration>{field}</Cdr>"#
        )
    }

    fn only_leg(body: &str) -> Leg {
        match parse_body(body).map(|mut docs| docs.pop().map(|d| d.message)) {
            Ok(Some(Message::Cdr(leg))) => leg,
            other => panic!("expected one Cdr, got {other:?}"),
        }
    }

    fn only_event(body: &str) -> Event {
        match parse_body(body).map(|mut docs| docs.pop().map(|d| d.message)) {
            Ok(Some(Message::Event(event))) => event,
            other => panic!("expected one Event, got {other:?}"),
        }
    }

    #[test]
    fn parse_body_splits_two_documents() {
        let body = format!("{DECL}\n{CDR}\n{DECL}\n{BUSY}\n");
        let docs = parse_body(&body).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(matches!(&docs[0].message, Message::Cdr(l) if l.cdr_id == "13620170308103713-0"));
        assert!(matches!(&docs[1].message, Message::Event(e) if e.attribute == "BUSY"));
        assert_eq!(docs[0].raw(&body), format!("{DECL}\n{CDR}"));
        assert_eq!(docs[1].raw(&body), format!("{DECL}\n{BUSY}"));
    }

    #[test]
    fn parse_body_accepts_documents_without_declaration() {
        let body = format!("{BUSY}{CDR}");
        let docs = parse_body(&body).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].raw(&body), BUSY);
        assert_eq!(docs[1].raw(&body), CDR);
    }

    #[test]
    fn parse_body_attaches_auth_to_preceding_document() {
        let body = format!("{DECL}\n{CDR}\n{BUSY}\n{AUTH}\n");
        let docs = parse_body(&body).unwrap();
        assert_eq!(docs[0].auth, None);
        assert_eq!(
            docs[1].auth,
            Some(Auth {
                nonce: "2E8E52C6".into(),
                timestamp: "1498542290".into(),
                signature: "24fe6019c3f284789f8cfacc3446e7ed".into(),
            })
        );
        assert_eq!(docs[1].raw(&body), format!("{BUSY}\n{AUTH}"));
    }

    #[test]
    fn parse_body_rejects_auth_before_any_message() {
        let body = format!("{AUTH}{BUSY}");
        assert_eq!(parse_body(&body), Err(ParseError::MisplacedAuth { pos: 0 }));
    }

    #[test]
    fn parse_body_rejects_second_auth() {
        let body = format!("{BUSY}{AUTH}{AUTH}");
        let pos = (BUSY.len() + AUTH.len()) as u64;
        assert_eq!(parse_body(&body), Err(ParseError::MisplacedAuth { pos }));
    }

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
    fn parse_body_unescapes_entities() {
        let event = only_event(
            r#"<Event attribute="DTMF"><info>1&amp;2&#x23;</info><x a="&lt;b&gt;"/></Event>"#,
        );
        assert_eq!(event.parties[0].text.as_deref(), Some("1&2#"));
        assert_eq!(event.parties[1].attr("a"), Some("<b>"));
    }

    #[test]
    fn parse_body_accepts_self_closing_root() {
        let event = only_event(r#"<Event attribute="BOOTUP"/>"#);
        assert!(event.parties.is_empty());
    }

    #[test]
    fn parse_body_accepts_lower_case_cdr_tags() {
        let leg = only_leg(&cdr_with(
            "<recording>20170308/a_cd.wav</recording><reccodec>g729</reccodec>",
        ));
        assert_eq!(leg.recording.as_deref(), Some("20170308/a_cd.wav"));
        assert_eq!(leg.rec_codec.as_deref(), Some("G729"));
    }

    #[test]
    fn parse_body_trims_cdr_values() {
        let leg = only_leg(&cdr_with("<callid> 32820 </callid><Type> in </Type>"));
        assert_eq!(
            (leg.callid.as_str(), leg.leg_type.as_str()),
            ("32820", "IN")
        );
    }

    #[test]
    fn parse_body_ignores_unknown_cdr_fields() {
        let leg = only_leg(&cdr_with("<Future a=\"1\">x</Future>"));
        assert_eq!(leg.cdr_id, "1-0");
    }

    #[test]
    fn parse_body_skips_bom() {
        let body = format!("\u{feff}{BUSY}");
        assert_eq!(parse_body(&body).unwrap()[0].raw(&body), BUSY);
    }

    #[test]
    fn parse_body_rejects_empty_body() {
        assert_eq!(parse_body(""), Err(ParseError::EmptyBody));
        assert_eq!(parse_body(" \r\n"), Err(ParseError::EmptyBody));
    }

    #[test]
    fn parse_body_rejects_declaration_only() {
        assert_eq!(parse_body(DECL), Err(ParseError::NoMessage));
    }

    #[test]
    fn parse_body_rejects_trailing_declaration() {
        let body = format!("{BUSY}{DECL}");
        let pos = BUSY.len() as u64;
        assert_eq!(
            parse_body(&body),
            Err(ParseError::DanglingDeclaration { pos })
        );
    }

    #[test]
    fn parse_body_rejects_unknown_root() {
        let body = format!("{DECL}\n<Control attribute=\"Query\">\n  <DeviceInfo/>\n</Control>");
        let err = parse_body(&body).unwrap_err();
        assert_eq!(err, ParseError::UnknownRoot("Control".into()));
        assert_eq!(err.to_string(), "unknown root element <Control>");
    }

    #[test]
    fn parse_body_rejects_unknown_root_after_message() {
        let body = format!("{BUSY}<DeviceInfo><mac>x</mac></DeviceInfo>");
        assert_eq!(
            parse_body(&body),
            Err(ParseError::UnknownRoot("DeviceInfo".into()))
        );
    }

    #[test]
    fn parse_body_rejects_mismatched_end_tag() {
        let err = parse_body(r#"<Event attribute="BUSY"><ext id="1"></Event>"#).unwrap_err();
        assert!(
            matches!(err, ParseError::Malformed { pos: 36, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn parse_body_rejects_unclosed_root() {
        let err = parse_body(r#"<Event attribute="BUSY"><ext id="1"/>"#).unwrap_err();
        assert!(matches!(err, ParseError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn parse_body_rejects_document_cut_by_next_declaration() {
        let body = format!("{DECL}<Cdr id=\"1-0\"><callid>1</callid>{DECL}{BUSY}");
        let err = parse_body(&body).unwrap_err();
        assert!(matches!(err, ParseError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn parse_body_rejects_broken_attribute() {
        let body = r#"<Event attribute="BUSY"><ext id=1 /></Event>"#;
        let err = parse_body(body).unwrap_err();
        assert!(
            matches!(&err, ParseError::Malformed { pos: 24, reason } if reason.starts_with("in <ext>")),
            "{err:?}"
        );
    }

    #[test]
    fn parse_body_rejects_garbage_after_document() {
        let body = format!("{DECL}\n{CDR}\nHTTP/1.1 200 OK\r\n");
        let pos = (DECL.len() + 1 + CDR.len()) as u64;
        assert_eq!(parse_body(&body), Err(ParseError::TrailingGarbage { pos }));
    }

    #[test]
    fn parse_body_rejects_non_xml_body() {
        assert_eq!(
            parse_body("hello"),
            Err(ParseError::TrailingGarbage { pos: 0 })
        );
    }

    #[test]
    fn parse_body_rejects_cdr_without_id() {
        let body = cdr_with("").replace(r#" id="1-0""#, "");
        assert_eq!(parse_body(&body), Err(ParseError::MissingCdrId));
        let body = cdr_with("").replace(r#"id="1-0""#, r#"id="""#);
        assert_eq!(parse_body(&body), Err(ParseError::MissingCdrId));
    }

    #[test]
    fn parse_body_rejects_event_without_attribute() {
        assert_eq!(
            parse_body("<Event><ext id=\"1\"/></Event>"),
            Err(ParseError::MissingEventAttribute)
        );
    }

    #[test]
    fn parse_body_rejects_missing_time_end() {
        let body = cdr_with("").replace("<TimeEnd>20170308103713</TimeEnd>", "");
        assert_eq!(
            parse_body(&body),
            Err(ParseError::MissingField {
                cdr_id: "1-0".into(),
                field: "TimeEnd"
            })
        );
    }

    #[test]
    fn parse_body_rejects_invalid_time_start() {
        let body = cdr_with("").replace("20170308103709", "2017-03-08 10:37");
        let err = parse_body(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"Cdr 1-0: invalid <TimeStart> 2017-03-08 10:37"#
        );
    }

    #[test]
    fn parse_body_refuses_legs_spanning_years_or_ending_days_before_they_start() {
        let with = |start: &str, end: &str| {
            parse_body(
                &cdr_with("")
                    .replace("20170308103709", start)
                    .replace("20170308103713", end),
            )
        };
        assert_eq!(
            with("20170308103709", "99991231235959").unwrap_err().to_string(),
            "Cdr 1-0: TimeEnd 9999-12-31 23:59:59 is 2915663 days after TimeStart 2017-03-08 10:37:09 (a device clock fault?)"
        );
        assert_eq!(
            with("20170308103709", "20170306103709").unwrap_err().to_string(),
            "Cdr 1-0: TimeEnd 2017-03-06 10:37:09 is 2 days before TimeStart 2017-03-08 10:37:09 (a device clock fault?)"
        );
        assert!(matches!(
            with("20170301000000", "20170308000001"),
            Err(ParseError::ImplausibleSpan { .. })
        ));
        let long_talk = cdr_with("").replace(
            "<Duration>2</Duration>",
            "<Duration>9223372036854775807</Duration>",
        );
        assert_eq!(
            parse_body(&long_talk).unwrap_err().to_string(),
            "Cdr 1-0: Duration 9223372036854775807 s is more than 7 days (a device fault?)"
        );
        // A week, and a clock stepped back an hour during the call: kept.
        for (start, end) in [
            ("20170301000000", "20170308000000"),
            ("20170308103709", "20170308093709"),
        ] {
            assert!(with(start, end).is_ok(), "{start} {end}");
        }
    }

    #[test]
    fn parse_body_rejects_impossible_date() {
        let body = cdr_with("").replace("20170308103709", "20170230103709");
        assert!(matches!(
            parse_body(&body),
            Err(ParseError::InvalidField {
                field: "TimeStart",
                ..
            })
        ));
    }

    #[test]
    fn parse_body_rejects_bad_duration() {
        for bad in ["<Duration>2s</Duration>", "<Duration>-1</Duration>"] {
            let body = cdr_with("").replace("<Duration>2</Duration>", bad);
            assert!(
                matches!(
                    parse_body(&body),
                    Err(ParseError::InvalidField {
                        field: "Duration",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_body_rejects_missing_duration() {
        let body = cdr_with("").replace("<Duration>2</Duration>", "<Duration></Duration>");
        assert!(matches!(
            parse_body(&body),
            Err(ParseError::MissingField {
                field: "Duration",
                ..
            })
        ));
    }

    #[test]
    fn parse_body_rejects_unsafe_recordings() {
        let cases = [
            ("../../etc/passwd", UnsafePath::DotComponent),
            ("/etc/passwd", UnsafePath::Absolute),
            ("20170309/a&#1;b.wav", UnsafePath::ControlChar),
            ("20170309\\a.wav", UnsafePath::Backslash),
        ];
        for (value, reason) in cases {
            let body = cdr_with(&format!("<Recording>{value}</Recording>"));
            match parse_body(&body) {
                Err(ParseError::UnsafeRecording { reason: got, .. }) => {
                    assert_eq!(got, reason, "{value}")
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_body_rejects_raw_nul_in_recording() {
        let body = cdr_with("<Recording>20170309/a\0b.wav</Recording>");
        let err = parse_body(&body).unwrap_err();
        assert!(
            matches!(
                err,
                ParseError::UnsafeRecording {
                    reason: UnsafePath::ControlChar,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\0'));
    }

    #[test]
    fn parse_body_rejects_nul_character_reference() {
        let body = cdr_with("<Recording>20170309/a&#0;b.wav</Recording>");
        let pos = body.find("&#0;").unwrap() as u64;
        assert!(matches!(
            parse_body(&body),
            Err(ParseError::Malformed { pos: p, .. }) if p == pos
        ));
    }

    #[test]
    fn parse_body_treats_empty_recording_as_none() {
        let leg = only_leg(&cdr_with("<Recording> </Recording><RecCodec></RecCodec>"));
        assert_eq!((leg.recording, leg.rec_codec), (None, None));
    }

    #[test]
    fn parse_error_display_is_one_short_line() {
        let value = format!("20170309/{}\n.wav", "a".repeat(100));
        let body = cdr_with(&format!("<Recording>{value}</Recording>"));
        let message = parse_body(&body).unwrap_err().to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.chars().count() < 120, "{message}");
    }

    #[test]
    fn body_from_query_decodes_whole_query() {
        let query = "%3C%3Fxml%20version%3D%221.0%22%3F%3E%3CEvent%20attribute%3D%22BUSY%22%3E%3Cext%20id%3D%22208%22%2F%3E%3C%2FEvent%3E";
        let body = body_from_query(query).unwrap();
        assert_eq!(
            body,
            r#"<?xml version="1.0"?><Event attribute="BUSY"><ext id="208"/></Event>"#
        );
        assert_eq!(parse_body(&body).unwrap().len(), 1);
    }

    /// The digit fast path gives exactly what chrono's format parser gives,
    /// valid or not (leap seconds, Feb 29, hour 24, short, signs, spaces).
    #[test]
    fn om_time_fast_path_agrees_with_chrono() {
        for t in [
            "20170309162708",
            "20820101000000",
            "20240229235959",
            "20230229120000",
            "20240101240000",
            "20241231235960",
            "00000101000000",
            "99991231235959",
            "2024010112000",
            "202401011200000",
            "+2024010112000",
            "2024 101120000",
            "20241301120000",
            "20240132120000",
            "20240101126100",
        ] {
            let fast = match digits_time(t) {
                Some(d) => Ok(d),
                None => NaiveDateTime::parse_from_str(t, OM_TIME_FORMAT),
            };
            assert_eq!(
                fast.ok(),
                NaiveDateTime::parse_from_str(t, OM_TIME_FORMAT).ok(),
                "{t}"
            );
        }
    }

    #[test]
    fn body_from_query_keeps_unencoded_separators() {
        let query = r#"<Event%20attribute="BUSY"><info>a&amp;b</info></Event>"#;
        assert_eq!(
            body_from_query(query).as_deref(),
            Some(r#"<Event attribute="BUSY"><info>a&amp;b</info></Event>"#)
        );
    }

    #[test]
    fn body_from_query_finds_xml_parameter() {
        let query = "dev=hq&xml=%3CEvent+attribute%3D%22IDLE%22%3E%3Cext+id%3D%22208%22+%2F%3E%3C%2FEvent%3E&n=1";
        assert_eq!(
            body_from_query(query).as_deref(),
            Some(r#"<Event attribute="IDLE"><ext id="208" /></Event>"#)
        );
    }

    #[test]
    fn body_from_query_ignores_plain_parameters() {
        assert_eq!(body_from_query("a=1&b=two"), None);
        assert_eq!(body_from_query(""), None);
        assert_eq!(body_from_query("?"), None);
    }
}
