//! The JSON sources (coocenter, IVR, cloud): `ingest::json::parse_body`,
//! and `ingest::parse_push`, which must send JSON there.
//!
//! Invariants: no panic; a parsed body has at least one document; every CDR
//! leg passes `check_leg`; `parse_push` agrees with `json::parse_body` on
//! JSON.
#![no_main]

use callvault::ingest::{self, json, om};
use callvault::model::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = json::parse_body(&text);
    if let Ok(docs) = &parsed {
        assert!(!docs.is_empty(), "Ok with no documents");
        for d in docs {
            if let Message::Cdr(leg) = &d.message {
                om::check_leg(leg).expect("a parsed leg passes check_leg");
            }
        }
    }
    if json::is_json(&text) {
        let pushed = ingest::parse_push(&text);
        assert_eq!(pushed.is_ok(), parsed.is_ok(), "parse_push disagrees");
    }
});
