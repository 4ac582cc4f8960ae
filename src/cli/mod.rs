//! The command line (clap). Each command's `--help` explains it; every
//! command takes `--data DIR` or `--config FILE`.

mod audit;
mod backup;
mod calls;
mod demo;
mod devices;
mod export;
mod import;
mod merge_g729;
mod migrate_store;
mod output;
mod purge;
mod rebuild;
mod recordings;
mod report;
mod serve;
mod simulate;
pub mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "callvault",
    version,
    about = "Archive CDRs and call recordings pushed by office phone systems (New Rock OM IPPBX)",
    long_about = "callvault receives the XML pushes of New Rock OM IPPBX devices (call events and CDRs), \
stores them durably in an embedded SQLite archive, merges call legs into logical calls, fetches \
recordings, and serves billing exports (CSV, Excel), reports and recordings over HTTP and this command line."
)]
pub struct Cli {
    /// Configuration file (TOML). Every key can also be set as CALLVAULT_<SECTION>_<KEY>.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding the archive and recordings (overrides the config's data_dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try callvault without a PBX: serve on ./demo-data with a simulated OM device pushing calls.
    Demo(demo::DemoArgs),
    /// Run the ingest listener (devices push here) and the API/web listener.
    Serve(serve::ServeArgs),
    /// Feed captured push bodies (one body per file) through the ingest path, as if pushed.
    Import(import::ImportArgs),
    /// List logical calls of device-local days.
    Calls(calls::CallsArgs),
    /// Recompute all calls and queue visits from the stored legs and events (same result as live).
    Rebuild(rebuild::RebuildArgs),
    /// Run the simulated OM device alone, pushing calls to a collector.
    Simulate(simulate::SimulateArgs),
    /// Recording archiver: counts by status, or one fetch pass now.
    #[command(subcommand)]
    Recordings(recordings::RecordingsCmd),
    /// Merge the send and recv halves of a G.729 recording into one WAV.
    #[command(name = "merge-g729")]
    MergeG729(merge_g729::MergeArgs),
    /// Devices allowed to push: list them and the unregistered senders, register or remove one.
    Devices {
        #[command(subcommand)]
        cmd: Option<devices::DevicesCmd>,
        #[command(flatten)]
        out: devices::ListFormat,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Named reports and the daily report.
    #[command(subcommand)]
    Report(report::ReportCmd),
    /// Exports for other systems (billing as CSV or an Excel workbook).
    #[command(subcommand)]
    Export(export::ExportCmd),
    /// Write a consistent copy of the archive and its recording files into a directory, while serving.
    Backup(backup::BackupArgs),
    /// Restore a backup directory into a new data directory (checked against its manifest first).
    Restore(backup::RestoreArgs),
    /// The audit log: who played recordings, viewed calls, exported billing and reports, and refusals.
    Audit(audit::AuditArgs),
    /// Remove what [retention] says is past its time (recordings, calls, raw pushes, quarantine, audit).
    Purge(purge::PurgeArgs),
    /// Copy the SQLite archive (and its recordings) into PostgreSQL (and an S3 store).
    #[command(name = "migrate-store")]
    MigrateStore(migrate_store::MigrateStoreArgs),
}

/// Loads the configuration: file, then environment, then `--data`.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = &cli.data {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("callvault: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&cli)?;
    crate::telemetry::init_logging(cfg.log.format);
    let data_given = cli.data.is_some()
        || cli.config.is_some()
        || std::env::var_os("CALLVAULT_DATA_DIR").is_some();
    match cli.command {
        Command::Serve(a) => serve::run(cfg, a),
        Command::Demo(a) => demo::run(cfg, a, data_given),
        Command::Import(a) => import::run(cfg, a),
        Command::Token(t) => token::run(cfg, t),
        Command::Devices { cmd, out } => devices::run(cfg, cmd, out),
        Command::Calls(a) => calls::run(cfg, a),
        Command::Rebuild(a) => rebuild::run(cfg, a),
        Command::Simulate(a) => simulate::run(cfg, a),
        Command::Recordings(r) => recordings::run(cfg, r),
        Command::MergeG729(a) => merge_g729::run(a),
        Command::Report(r) => report::run(cfg, r),
        Command::Export(e) => export::run(cfg, e),
        Command::MigrateStore(a) => migrate_store::run(cfg, a),
        Command::Audit(a) => audit::run(cfg, a),
        Command::Purge(a) => purge::run(cfg, a),
        Command::Backup(a) => backup::backup(cfg, a),
        Command::Restore(a) => backup::restore(cfg, a, data_given),
    }
}

/// A multi-threaded runtime for commands that need async.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
