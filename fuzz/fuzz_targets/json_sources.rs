//! The JSON sources (coocenter, IVR, cloud): `ingest::json::parse_body`,
//! and `ingest::parse_push`, which must send JSON there.
//!
//! Invariants: no panic; a parsed body has at least one document, each
//! spanning a non-blank piece of the body; every CDR
//! leg passes `check_leg`; `parse_push` agrees with `json::parse_body` on
//! JSON.
#![no_main]

use callvault::ingest::{self, json};
use callvault::model::{check_leg, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = json::parse_body(&text);
    if let Ok(docs) = &parsed {
        assert!(!docs.is_empty(), "Ok with no documents");
        for d in docs {
            assert!(
                text.get(d.span.clone())
                    .is_some_and(|raw| !raw.trim().is_empty()),
                "span {:?} is no text of the body",
                d.span
            );
            if let Message::Cdr(leg) = &d.message {
                check_leg(leg).expect("a parsed leg passes check_leg");
            }
        }
    }
    if json::is_json(&text) {
        let pushed = ingest::parse_push(&text, usize::MAX);
        assert_eq!(pushed.is_ok(), parsed.is_ok(), "parse_push disagrees");
        if let Ok(docs) = json::parse_documents(&text, 3) {
            assert!(docs.len() <= 3, "more documents than allowed");
        }
    }
});
