//! `callvault import FILE…`: replay captured push bodies through the same
//! ingest path as the listener (same checks, quarantine and storage).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::ingest::{BodyEnd, Incoming};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files, each holding one push body (one or more XML documents).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Source IP to attribute the pushes to (selects the device when the body has no <MAC>).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub source: String,
}

pub fn run(cfg: Config, a: ImportArgs) -> anyhow::Result<ExitCode> {
    let cfg = Arc::new(cfg);
    let store =
        Store::open_config(&cfg).with_context(|| format!("opening {}", cfg.db_path().display()))?;
    let (ing, _queues) = crate::server::ingestor(&store, &cfg)?;
    let mut failed = 0usize;
    super::runtime()?.block_on(async {
        for f in &a.files {
            let body = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let body_end = if body.len() > cfg.ingest.max_body_bytes {
                BodyEnd::TooLarge
            } else {
                BodyEnd::Whole
            };
            let reply = ing
                .accept(Incoming {
                    source: a.source.clone(),
                    method: "IMPORT".into(),
                    path: f.display().to_string(),
                    query: None,
                    body,
                    body_end,
                })
                .await;
            match reply.reason {
                None if reply.held => println!(
                    "{}: stored and held: its sender is no registered device (`callvault devices`)",
                    f.display()
                ),
                None => println!(
                    "{}: stored ({} Cdr, {} Event documents)",
                    f.display(),
                    reply.legs,
                    reply.events
                ),
                Some(r) => {
                    failed += 1;
                    println!("{}: refused ({}): {r}", f.display(), reply.status);
                }
            }
        }
        // The legs and events are derived after each commit: finish before
        // exiting, so that `calls` and reports see the import at once.
        store
            .writer
            .drain()
            .await
            .context("deriving legs and events of the imported pushes")
    })?;
    if failed > 0 {
        eprintln!(
            "{failed} of {} files refused (kept in quarantine)",
            a.files.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
