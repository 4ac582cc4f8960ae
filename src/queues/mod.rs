//! Queue visits: which caller waited in which extension-group queue, how
//! long, and how it ended — inferred from the device's `QUEUE`, `RING` and
//! `BYE` events (docs/queues.md; manual §2.5.7 and §4.12), because the OM
//! reports only the entry into a queue.
//!
//! * `parse` reads the entry/exit facts out of an [`Event`](crate::model::Event);
//! * `infer` keeps per-device state and turns events into [`VisitChange`]s
//!   ([`QueueTracker`] live, [`infer_all`] for `rebuild`, same result);
//!   `visit` holds what it hands out;
//! * `live` keeps the `queue_visits` table current while serving (the
//!   derivation hook, the start-up replay, the expiry timer);
//! * `figures` aggregates visits into daily per-group and per-agent figures.

mod cc_cdr;
mod figures;
mod infer;
pub mod live;
mod parse;
mod visit;

pub use crate::model::{Outcome, Visit};
pub use figures::{agent_counts, figures, AgentDayCount, GroupDayFigures, SHORT_ABANDON_SECONDS};
pub use infer::{infer_all, QueueTracker, PENDING_WINDOW_SECS};
pub use live::QueueError;
pub use parse::QueueEventError;
pub use visit::{GroupNumber, TrackerStats, VisitChange};
