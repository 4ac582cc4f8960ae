//! Reading one root element of a push body: its start tag is already read,
//! the rest becomes a [`Tree`] of flattened descendants with unescaped,
//! trimmed attributes and untrimmed text. Errors carry the byte position in
//! the body where the fault starts.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

use super::ParseError;
use crate::model::attr_of;
use crate::model::checks::short;

/// One element below a message root; nested elements are flattened in
/// document order, `depth` 1 being a direct child of the root.
pub(super) struct Element {
    pub depth: usize,
    pub tag: String,
    pub attrs: Vec<(String, String)>,
    /// Text directly inside the element, untrimmed.
    pub text: String,
}

/// A root element (`Cdr`, `Event`, `Auth`) read up to its end tag.
pub(super) struct Tree {
    pub tag: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

impl Tree {
    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_of(&self.attrs, name)
    }

    pub fn direct_children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter(|e| e.depth == 1)
    }
}

/// Elements one document may hold below its root. The largest OM message
/// (a CDR) has about twenty; without a cap a 1 MiB body of `<a/>` would be a
/// quarter of a million parties in memory.
pub const MAX_ELEMENTS: usize = 1_000;

/// Reads the rest of a root element (its start tag already read) into a
/// flat list of descendants.
pub(super) fn read_tree(
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

pub(super) fn next_event<'a>(reader: &mut Reader<&'a [u8]>) -> Result<XmlEvent<'a>, ParseError> {
    reader.read_event().map_err(|e| malformed(reader, e))
}

pub(super) fn position(reader: &Reader<&[u8]>) -> usize {
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

pub(super) fn is_blank(text: &quick_xml::events::BytesText<'_>) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

pub(super) fn tag_name(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.name().as_ref()).into_owned()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::super::{parse_body, ParseError};

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
    fn parse_body_unescapes_entities() {
        let event = only_event(
            r#"<Event attribute="DTMF"><info>1&amp;2&#x23;</info><x a="&lt;b&gt;"/></Event>"#,
        );
        assert_eq!(event.parties[0].text.as_deref(), Some("1&2#"));
        assert_eq!(event.parties[1].attr("a"), Some("<b>"));
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
}
