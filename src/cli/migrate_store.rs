//! `callvault migrate-store`: copy the SQLite archive (and, with
//! `--recordings`, its recording files) into PostgreSQL (and an S3 store),
//! for moving a single box up to several collectors (README "Scaling
//! out"). The SQLite archive and the local files are left untouched.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::config::{Config, StoreUrl};
use crate::recordings::storage::s3::S3Archive;
use crate::recordings::storage::RecordingStore;
use crate::store::{copy, Store};

#[derive(Debug, Args)]
#[command(
    long_about = "Copies the SQLite archive of the data directory into a PostgreSQL \
database: every table in batches (resumable: run it again after an interruption and it goes on \
where it stopped), then checks that every table has as many rows on both sides. With --recordings \
it also uploads every archived recording file to an S3-compatible store (set up in \
[recordings.s3]) and checks each one's sha256. The SQLite archive and the local recording files \
are only read. Stop `callvault serve` first, or run it again after the last push; then point \
[store] url (and [recordings] store) at the new places."
)]
pub struct MigrateStoreArgs {
    /// The PostgreSQL archive to copy into: postgres://user:pass@host:port/db (an empty
    /// database; the schema is made).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Also copy the recording files to this store (s3://bucket/prefix, with the
    /// endpoint and keys of [recordings.s3]).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub recordings: Option<String>,
}

pub fn run(cfg: Config, a: MigrateStoreArgs) -> anyhow::Result<ExitCode> {
    if matches!(cfg.store.backend(), Ok(StoreUrl::Postgres(_))) {
        bail!(
            "[store] url already names PostgreSQL: migrate-store copies the SQLite archive of the \
             data directory; run it with the configuration of the single box"
        );
    }
    if !a.to.starts_with("postgres://") && !a.to.starts_with("postgresql://") {
        bail!(
            "--to must be a postgres:// URL, not {:?}",
            crate::config::redact_url(&a.to)
        );
    }
    let source = cfg.db_path();
    if !source.exists() {
        bail!("no SQLite archive at {}", source.display());
    }
    // Opening the SQLite store applies its pending migrations, so the
    // source has the schema this binary copies from.
    let sqlite = Store::open(&source).with_context(|| format!("opening {}", source.display()))?;
    let target = Store::open_postgres(&a.to)
        .with_context(|| format!("opening {}", crate::config::redact_url(&a.to)))?;
    let started = std::time::Instant::now();
    let bar = super::output::progress_bar(
        "{spinner} {prefix:>14} {bar:40} {pos}/{len} rows ({per_sec}, eta {eta})",
    );
    let mut current = String::new();
    let tables = copy::sqlite_to_postgres(&source, &target, &mut |table, done, total| {
        if current != table {
            current = table.to_string();
            bar.set_prefix(current.clone());
            bar.reset();
        }
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    let secs = started.elapsed().as_secs_f64();
    for t in &tables {
        println!(
            "{:<16} {:>10} rows (copied now: {})",
            t.table, t.target_rows, t.rows
        );
    }
    println!(
        "copied {rows} rows in {secs:.1} s ({:.0} rows/s); every table's count matches",
        rows as f64 / secs.max(0.001)
    );
    if let Some(to) = &a.recordings {
        let n = copy_recordings(&cfg, &sqlite, to)?;
        println!("copied and checked {n} recording files to {to}");
    } else {
        println!(
            "recordings: not copied (no --recordings); [recordings] store = {:?} still points at them",
            cfg.recordings.store
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads every archived recording (the playable file and the kept G.729
/// halves) to `to` under the same keys, and checks each playable file's
/// sha256 as stored there. An object already there with the right bytes is
/// not sent again (a second run after an interruption).
fn copy_recordings(cfg: &Config, sqlite: &Store, to: &str) -> anyhow::Result<u64> {
    let mut rcfg = cfg.recordings.clone();
    rcfg.store = to.to_string();
    let Some(s3) = S3Archive::from_config(&rcfg)? else {
        bail!("--recordings must be s3://bucket/prefix, not {to:?}");
    };
    let from = RecordingStore::from_config(cfg)?;
    let RecordingStore::File(local) = &from else {
        bail!(
            "the recordings are already in an object store ([recordings] store = {:?})",
            cfg.recordings.store
        );
    };
    let done = sqlite
        .read_blocking(|tx| crate::store::recordings::with_status(tx, &["done"], i64::MAX))?;
    let bar = super::output::progress_bar(
        "{spinner} recordings {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
    );
    bar.set_length(done.len() as u64);
    let rt = super::runtime()?;
    let mut n = 0u64;
    for r in &done {
        let (Some(file), Some(sha)) = (&r.file, &r.sha256) else {
            continue;
        };
        rt.block_on(async {
            let already = matches!(s3.hash(file).await, Ok((_, h)) if &h == sha);
            if !already {
                for key in std::iter::once(file).chain(&r.originals) {
                    let path = local.resolve(key)?;
                    s3.put_file(key, &path).await?;
                }
                let (_, h) = s3.hash(file).await?;
                if &h != sha {
                    bail!("recording {} ({file}): sha256 {h} in the object store, {sha} in the archive", r.id);
                }
            }
            Ok(())
        })
        .with_context(|| format!("copying recording {} ({file})", r.id))?;
        n += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(n)
}
