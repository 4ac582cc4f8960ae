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
//!
//! This module splits a body into documents ([`parse_documents`]) and owns
//! [`ParseError`]; [`xml`] reads one root element into a flat tree, [`cdr`]
//! turns a `<Cdr>` tree into a [`Leg`](crate::model::Leg), and [`event`] an
//! `<Event>` or `<Auth>` tree into an [`Event`](crate::model::Event) or
//! [`Auth`](crate::model::Auth). All of it is pure: no I/O, no clock.

mod cdr;
mod event;
mod xml;

use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

use crate::model::checks::short;
use crate::model::{Document, LegError, Message};
pub use xml::MAX_ELEMENTS;
use xml::{is_blank, next_event, position, read_tree, tag_name};

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
    /// A leg that fails the checks every source's legs get (span, talk
    /// time, recording path): see [`check_leg`](crate::model::check_leg).
    #[error(transparent)]
    Leg(#[from] LegError),
}

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
            Message::Cdr(cdr::build_leg(&tree)?)
        } else {
            Message::Event(event::build_event(&tree)?)
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
        let auth = event::build_auth(&tree)?;
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

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Bodies shared by the unit tests of this module and its children.
#[cfg(test)]
mod samples {
    use super::parse_body;
    use crate::model::{Event, Leg, Message};

    pub(super) const DECL: &str = r#"<?xml version="1.0" encoding="utf-8" ?>"#;
    pub(super) const BUSY: &str = r#"<Event attribute="BUSY"><ext id="208" /></Event>"#;
    pub(super) const CDR: &str = r#"<Cdr id="13620170308103713-0">
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
    pub(super) const AUTH: &str = "<Auth>\n  <nonce>2E8E52C6</nonce>\n  <timestamp>1498542290</timestamp>\n  <signature>24fe6019c3f284789f8cfacc3446e7ed</signature>\n</Auth>";

    pub(super) fn cdr_with(field: &str) -> String {
        format!(
            r#"<Cdr id="1-0"><TimeStart>20170308103709</TimeStart><TimeEnd>20170308103713</TimeEnd><Duration>2</Duration>{field}</Cdr>"#
        )
    }

    pub(super) fn only_leg(body: &str) -> Leg {
        match parse_body(body).map(|mut docs| docs.pop().map(|d| d.message)) {
            Ok(Some(Message::Cdr(leg))) => leg,
            other => panic!("expected one Cdr, got {other:?}"),
        }
    }

    pub(super) fn only_event(body: &str) -> Event {
        match parse_body(body).map(|mut docs| docs.pop().map(|d| d.message)) {
            Ok(Some(Message::Event(event))) => event,
            other => panic!("expected one Event, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use crate::model::Auth;

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
