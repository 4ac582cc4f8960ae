//! Legs -> logical calls (docs/calls.md; OM manual §2.6, §5.7).
//!
//! Pure logic, no I/O:
//! - [`rules`]: when two legs belong to one call ([`joins`]), the index keys a
//!   store uses to find candidates ([`join_keys`]), and leg roles.
//! - [`group`]: connected components of a device's legs ([`group()`]), the
//!   in-memory reference the tests compare [`live`] against.
//! - [`summary`]: what a call is, derived from its legs ([`summarize`]).
//!
//! And the one stateful part, [`live`]: keeping the `calls` table current as
//! legs arrive, and `rebuild` through the same path. [`timeline`] reads a
//! call's events from the store (its rule and its words are pure functions).
//!
//! Legs arrive in any order (each CDR is pushed when its own leg ends), so
//! both grouping and summary are independent of input order.

pub mod group;
pub mod live;
pub mod rules;
pub mod summary;
pub mod timeline;

pub use crate::model::{CallFacts, Direction};
pub use group::group;
pub use rules::{is_billable, join_keys, joins, role, Role, TOLERANCE_SECS};
pub use summary::{call_id, leg_order, summarize, summarize_call};

#[cfg(test)]
mod backends_tests;
