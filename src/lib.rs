//! callvault: archives CDRs and call recordings pushed by office phone
//! systems (New Rock OM IPPBX first) and turns them into calls, billing CSVs,
//! recordings by call and reports. The source tree mirrors the pipeline:
//! `ingest → store → calls → recordings / queues → reports`, `live` (the
//! wallboard, from stored events), with `http`
//! and `cli` at the edge and `sim` a simulated OM device. What both edges
//! share sits beside them: `query` (call filters), `roles`, `audit` (the
//! audit log's rules) and `telemetry`.

pub mod audit;
pub mod calls;
pub mod cli;
pub mod config;
pub mod device_status;
pub mod http;
pub mod ingest;
pub mod live;
pub mod log_throttle;
pub mod model;
pub mod query;
pub mod queues;
pub mod recordings;
pub mod reports;
pub mod retention;
pub mod roles;
pub mod server;
pub mod sim;
pub mod store;
pub mod telemetry;
