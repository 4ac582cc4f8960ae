//! Integration tests: one binary, one module per area (ripgrep style).

mod util;

mod ingest_http;
mod om_examples;
mod queues_generated;
mod calls_manual;
mod g729_reference;
mod sim_scenarios;
mod calls_sim;
mod queues_sim;
mod recordings_fetch;
mod recordings_http;
mod reports_util;
mod reports_figures;
mod reports_billing;
mod reports_cli;
mod web_chromium;
mod demo_cli;
mod reports_queues;
