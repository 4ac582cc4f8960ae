//! The OM XML body parser (`ingest::om::parse_body`), the dispatch of a push
//! body by content (`ingest::parse_push`) and the XML-in-a-query-string
//! extraction of GET pushes (`om::body_from_query`).
//!
//! Invariants: no panic; a parsed body has at least one document; every
//! document's span is a non-blank piece of the body; every CDR leg passes the
//! checks the parser promises (`check_leg`).
#![no_main]

use callvault::ingest::{self, om};
use callvault::model::{check_leg, Document, Message};
use libfuzzer_sys::fuzz_target;

fn check(body: &str, docs: &[Document]) {
    assert!(!docs.is_empty(), "Ok with no documents");
    for d in docs {
        assert!(
            body.get(d.span.clone())
                .is_some_and(|raw| !raw.trim().is_empty()),
            "span {:?} is no text of the body",
            d.span
        );
        if let Message::Cdr(leg) = &d.message {
            check_leg(leg).expect("a parsed leg passes check_leg");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(docs) = om::parse_body(&text) {
        check(&text, &docs);
    }
    let _ = ingest::parse_push(&text, 1_000);
    if let Ok(docs) = om::parse_documents(&text, 3) {
        assert!(docs.len() <= 3, "more documents than allowed");
    }
    if let Some(xml) = om::body_from_query(&text) {
        if let Ok(docs) = om::parse_body(&xml) {
            check(&xml, &docs);
        }
    }
});
