//! HTTP edge: the ingest listener (any path, any method = a push) and the
//! API/web listener. All API routes are listed in `router.rs`.

pub mod audit;
pub mod auth;
pub mod calls;
pub mod connections;
pub mod devices;
pub mod error;
pub mod headers;
pub mod ingest;
pub mod legs;
pub mod live;
pub mod openapi;
pub mod queues;
pub mod recordings;
pub mod reports;
pub mod rights;
pub mod router;
pub mod serve_api;
pub mod serve_device;
pub mod session;
pub mod stream;
pub mod throttle;
pub mod tls;
pub mod web;

pub use error::AppError;
pub use router::{api_router, AppState};
