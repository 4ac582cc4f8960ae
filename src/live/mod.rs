//! The live wallboard (`GET /api/live`, the `/live` page): the floor now
//! — calls in progress, queues and their waiting callers, agents on calls
//! — folded from the stored call events (ARCHITECTURE.md "Live
//! wallboard").
//!
//! - [`floor`]: the pure state: events in, a [`floor::Snapshot`] out, with
//!   its caps and the expiry of stale calls.
//! - [`feed`]: the one task per server that polls the events table and
//!   publishes each change to every watcher.

pub mod feed;
pub mod floor;

pub use feed::Feed;
pub use floor::{Floor, Snapshot};
