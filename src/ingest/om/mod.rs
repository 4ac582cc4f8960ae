//! OM IPPBX push format (New Rock OM API manual §1.2, §2.5, §2.6, §4.5).
//!
//! - [`parser`]: a push body (one or more XML documents, each a `Cdr` or an
//!   `Event` with an optional trailing `Auth`) into [`crate::model::Document`]s;
//!   also the XML carried in a GET query string.
//! - [`auth`]: reverse authentication, `md5(API_SERVER_PASSWORD + nonce + timestamp)`.
//! - [`replay`]: the cache of single-use Auth nonces.
//!
//! The checks every leg gets whatever its source (span, talk time, a
//! `Recording` path that stays inside the recorder's directory) are
//! [`crate::model::checks`]'s.
//!
//! The first two are pure: no I/O, no clock (the caller passes `now`).

pub mod auth;
pub mod parser;
pub mod replay;

pub use auth::{sign, verify, AuthError};
pub use parser::{body_from_query, parse_body, parse_documents, ParseError};
