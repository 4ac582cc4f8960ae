//! Integration tests: one binary, one module per area (ripgrep style).

mod util;

mod api_mutations;
mod architecture;
mod calls_http;
mod calls_manual;
mod calls_sim;
mod demo_cli;
mod fuzz_regressions;
mod g729_reference;
mod ingest_crash;
mod ingest_derive;
mod ingest_devices;
mod ingest_hostile;
mod ingest_http;
mod ingest_limits;
mod ingest_mutations;
mod json_sources;
mod om_examples;
mod queues_generated;
mod queues_rebuild;
mod queues_sim;
mod recordings_fetch;
mod recordings_hostile;
mod recordings_http;
mod recordings_s3;
mod reports_billing;
mod reports_cli;
mod reports_figures;
mod reports_queues;
mod reports_util;
mod sim_plan;
mod sim_pushes;
mod sim_scenarios;
mod sim_truth;
mod web_chromium;
