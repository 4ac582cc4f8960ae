//! `callvault import FILE…`: replay captured push bodies through the same
//! ingest path as the listener (same checks, quarantine and storage).
//!
//! `callvault import --manifest FILE` replays a captured day with each
//! push's original receive time (README "Importing a captured day"), so
//! its events, queue visits and calls land on their day. The time comes
//! only from the operator's manifest, through the in-process path
//! (`Ingestor::accept_received`), never from anything a sender sends.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;

use crate::config::Config;
use crate::ingest::{BodyEnd, Incoming};
use crate::store::Store;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["files", "manifest"])))]
pub struct ImportArgs {
    /// Files, each holding one push body (one or more XML documents), stored
    /// as received now.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A capture's manifest: one push per line, `RECEIVED_AT<TAB>SOURCE_IP<TAB>FILE`
    /// (RFC 3339 time with its offset; FILE relative to the manifest's folder;
    /// `#` comments). Each push is stored with its own receive time, in time order.
    #[arg(long, value_name = "FILE", conflicts_with = "files")]
    pub manifest: Option<PathBuf>,
    /// Source IP to attribute the pushes to (selects the device when the body has no <MAC>).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub source: String,
}

pub fn run(cfg: Config, a: ImportArgs) -> anyhow::Result<ExitCode> {
    if let Some(m) = &a.manifest {
        return run_manifest(cfg, m);
    }
    let cfg = Arc::new(cfg);
    let store =
        Store::open_config(&cfg).with_context(|| format!("opening {}", cfg.db_path().display()))?;
    let (ing, _queues) = crate::server::ingestor(&store, &cfg)?;
    let mut failed = 0usize;
    super::runtime()?.block_on(async {
        for f in &a.files {
            let body = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let reply = ing
                .accept(incoming(&a.source, f, body, cfg.ingest.max_body_bytes))
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
        derive_all(&store).await
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

/// The legs and events are derived after each commit: finish before
/// exiting, so that `calls` and reports see the import at once.
async fn derive_all(store: &Store) -> anyhow::Result<()> {
    store
        .writer
        .drain()
        .await
        .context("deriving legs and events of the imported pushes")
}

/// A captured body as the listener would hand it on (too large: kept
/// whole in quarantine like a push the listener cut).
fn incoming(source: &str, file: &Path, body: Vec<u8>, max_body_bytes: usize) -> Incoming {
    let body_end = if body.len() > max_body_bytes {
        BodyEnd::TooLarge
    } else {
        BodyEnd::Whole
    };
    Incoming {
        source: source.to_string(),
        method: "IMPORT".into(),
        path: file.display().to_string(),
        query: None,
        body,
        body_end,
    }
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub received: DateTime<Utc>,
    pub source: String,
    pub file: PathBuf,
}

/// Reads a manifest: its pushes in receive-time order (stable: pushes of
/// one moment keep the capture's order). A line that cannot be read is an
/// error naming it; a time in the future too (it would settle calls and
/// close queue visits against a clock that has not come yet).
pub fn read_manifest(path: &Path, now: DateTime<Utc>) -> anyhow::Result<Vec<Captured>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let mut cols = line.splitn(3, '\t');
        let (Some(t), Some(src), Some(file)) = (cols.next(), cols.next(), cols.next()) else {
            anyhow::bail!("{}: want RECEIVED_AT<TAB>SOURCE_IP<TAB>FILE", at());
        };
        let received = DateTime::parse_from_rfc3339(t.trim())
            .with_context(|| format!("{}: {t:?} is not an RFC 3339 time with offset", at()))?
            .with_timezone(&Utc);
        anyhow::ensure!(
            received <= now,
            "{}: {t} is in the future; a capture's pushes were received in the past",
            at()
        );
        let source = src.trim();
        anyhow::ensure!(
            source.parse::<std::net::IpAddr>().is_ok(),
            "{}: {source:?} is not an IP address",
            at()
        );
        out.push(Captured {
            received,
            source: source.to_string(),
            file: base.join(file.trim()),
        });
    }
    out.sort_by_key(|c| c.received);
    Ok(out)
}

fn run_manifest(cfg: Config, manifest: &Path) -> anyhow::Result<ExitCode> {
    let pushes = read_manifest(manifest, Utc::now())?;
    let cfg = Arc::new(cfg);
    let store =
        Store::open_config(&cfg).with_context(|| format!("opening {}", cfg.db_path().display()))?;
    let (ing, _queues) = crate::server::ingestor(&store, &cfg)?;
    let bar = super::output::progress_bar("{bar:40} {pos}/{len} pushes {msg}");
    bar.set_length(pushes.len() as u64);
    let (mut stored, mut held, mut refused) = (0usize, 0usize, 0usize);
    super::runtime()?.block_on(async {
        for p in &pushes {
            let body =
                std::fs::read(&p.file).with_context(|| format!("reading {}", p.file.display()))?;
            let req = incoming(&p.source, &p.file, body, cfg.ingest.max_body_bytes);
            let reply = ing.accept_received(req, p.received).await;
            match reply.reason {
                None if reply.held => held += 1,
                None => stored += 1,
                Some(r) => {
                    refused += 1;
                    bar.suspend(|| {
                        println!("{}: refused ({}): {r}", p.file.display(), reply.status)
                    });
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        derive_all(&store).await
    })?;
    println!(
        "{}: {stored} pushes stored with their receive times, {held} held (unregistered sender), {refused} refused",
        manifest.display()
    );
    if refused > 0 {
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_read_in_time_order_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.tsv");
        std::fs::write(
            &m,
            "# captured on hq\n\
             2026-12-01T09:00:05+08:00\t192.168.1.150\tb.xml\n\
             \n\
             2026-12-01T01:00:01Z\t192.168.1.150\ta.xml\n",
        )
        .unwrap();
        let now = "2026-12-03T00:00:00Z".parse().unwrap();
        let got = read_manifest(&m, now).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].file,
            dir.path().join("a.xml"),
            "01:00:01Z comes first"
        );
        assert_eq!(got[1].file, dir.path().join("b.xml"));
        assert_eq!(
            got[1].received.to_rfc3339(),
            "2026-12-01T01:00:05+00:00",
            "09:00:05+08"
        );

        for (line, says) in [
            ("2026-12-01 09:00:00\t10.0.0.1\ta.xml", "RFC 3339"),
            ("2026-12-01T09:00:00Z\tnot-an-ip\ta.xml", "not an IP"),
            ("2026-12-01T09:00:00Z a.xml", "RECEIVED_AT<TAB>"),
            ("2027-01-01T00:00:00Z\t10.0.0.1\ta.xml", "in the future"),
        ] {
            std::fs::write(&m, format!("{line}\n")).unwrap();
            let e = format!("{:#}", read_manifest(&m, now).unwrap_err());
            assert!(e.contains(says) && e.contains("line 1"), "{line}: {e}");
        }
    }
}
