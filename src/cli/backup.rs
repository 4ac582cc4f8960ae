//! `callvault backup DIR` and `callvault restore DIR --data NEW_DIR`
//! (docs/operations.md "Backup and restore").
//!
//! A backup directory holds `callvault.sqlite` (the archive as of one
//! commit, taken while `serve` goes on: `store::backup`), `recordings/…`
//! (the recording files that copy refers to, under their archive keys) and
//! `MANIFEST.sha256`, written last, in `sha256sum` format: a directory
//! without it is an interrupted backup, and `sha256sum -c` checks one by
//! hand. Running `backup` again into the same directory replaces the
//! archive copy and copies only the recording files not there yet, so a
//! nightly cron line costs one archive copy plus that day's recordings.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use sha2::{Digest, Sha256};

use super::output::progress_bar;
use crate::config::{Config, StoreUrl};
use crate::recordings::archive::Archive;
use crate::store::backup::{self, RecordingFile};

const ARCHIVE: &str = "callvault.sqlite";
const MANIFEST: &str = "MANIFEST.sha256";
const RECORDINGS: &str = "recordings";

#[derive(Debug, Args)]
#[command(
    long_about = "Writes a consistent copy of the SQLite archive into DIR while callvault serves \
(the archive as of one commit; ingest goes on), the recording files it refers to under \
DIR/recordings, and DIR/MANIFEST.sha256 last (sha256sum format: `cd DIR && sha256sum -c \
MANIFEST.sha256` checks a backup by hand). Run it again into the same DIR to refresh it: only \
new recording files are copied. Recording files whose bytes do not match the sha256 kept when \
they were archived, or that are missing, are reported and make the command fail (the rest of \
the backup is still written). Recordings kept in an object store (s3://) are listed with their \
checksums, not copied: keep them with the object store's own versioning. On PostgreSQL use \
pg_dump instead."
)]
pub struct BackupArgs {
    /// Directory to write the backup into (made when missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Copy the archive only: the manifest still lists every recording file with its checksum,
    /// for recordings backed up another way.
    #[arg(long)]
    pub no_recordings: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Restores a directory written by `callvault backup` into the data directory \
given with --data NEW_DIR (or the config's data_dir with --config): checks every file against \
MANIFEST.sha256 and the archive with SQLite's integrity check before anything is put in place, \
then brings the archive's schema up to this version. Refuses a data directory that is not \
empty unless --force (which replaces its archive; recording files already there are kept)."
)]
pub struct RestoreArgs {
    /// A directory written by `callvault backup`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Restore into a data directory that is not empty (its archive is replaced).
    #[arg(long)]
    pub force: bool,
}

/// Why backup and restore are SQLite commands.
fn refuse_on_postgres(cfg: &Config, what: &str) -> anyhow::Result<()> {
    if let Ok(StoreUrl::Postgres(_)) = cfg.store.backend() {
        bail!(
            "`callvault {what}` copies the embedded SQLite archive; this archive is on PostgreSQL \
             ([store] url = {}). Back it up with PostgreSQL's own tools (`pg_dump -Fc` and \
             `pg_restore`, or continuous archiving for point-in-time recovery) and keep \
             recordings with the object store's versioning (docs/scaling.md \"Backups\")",
            crate::config::redact_url(&cfg.store.url)
        );
    }
    Ok(())
}

pub fn backup(cfg: Config, a: BackupArgs) -> anyhow::Result<ExitCode> {
    refuse_on_postgres(&cfg, "backup")?;
    let archive = cfg.db_path();
    if !archive.exists() {
        bail!("no archive at {}: nothing to back up", archive.display());
    }
    fs::create_dir_all(&a.dir).with_context(|| format!("cannot make {}", a.dir.display()))?;
    // What the previous backup into this directory holds, so its files are
    // not copied again; the manifest goes first, so an interrupted run
    // never leaves one that looks complete.
    let manifest_path = a.dir.join(MANIFEST);
    let previous = read_manifest(&manifest_path).unwrap_or_default();
    remove_if_there(&manifest_path)?;

    let partial = a.dir.join(format!("{ARCHIVE}.partial"));
    remove_if_there(&partial)?;
    let started = std::time::Instant::now();
    backup::snapshot(&archive, &partial)
        .with_context(|| format!("copying the archive {}", archive.display()))?;
    File::open(&partial)?.sync_all()?;
    let archive_hash = hash_file(&partial)?;
    fs::rename(&partial, a.dir.join(ARCHIVE))?;
    let counts = backup::counts(&a.dir.join(ARCHIVE))?;
    eprintln!(
        "archive copied in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        counts
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let files = backup::recording_files(&a.dir.join(ARCHIVE))?;
    let in_object_store = !cfg.recordings.store.trim().is_empty()
        && !cfg.recordings.store.trim().starts_with("file:");
    let copy = !a.no_recordings && !in_object_store;
    let mut manifest = vec![(archive_hash, ARCHIVE.to_string())];
    let mut problems: Vec<String> = Vec::new();
    let (mut copied, mut kept, mut unlisted) = (0u64, 0u64, 0u64);
    let source = Archive::new(cfg.recordings_dir());
    let bar = progress_bar("{spinner} recordings {bar:40} {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_length(files.len() as u64);
    for f in &files {
        bar.inc(1);
        let entry = format!("{RECORDINGS}/{}", f.key);
        if !copy {
            // Listed with the checksum kept at archiving; a kept G.729 half
            // has none and is read only when it is here to be read.
            match (&f.sha256, in_object_store) {
                (Some(h), _) => manifest.push((h.clone(), entry)),
                (None, false) => match source.resolve(&f.key).map(|p| hash_file(&p)) {
                    Ok(Ok(h)) => manifest.push((h, entry)),
                    Ok(Err(e)) => problems.push(format!("{}: {e:#}", f.key)),
                    Err(e) => problems.push(format!("{}: {e}", f.key)),
                },
                (None, true) => unlisted += 1,
            }
            continue;
        }
        match copy_recording(&source, &a.dir, f, previous.get(&entry)) {
            Ok((hash, fresh)) => {
                if fresh {
                    copied += 1;
                } else {
                    kept += 1;
                }
                manifest.push((hash, entry));
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    bar.finish_and_clear();
    write_manifest(&a.dir, &manifest)?;
    if copy {
        eprintln!(
            "recordings: {copied} copied, {kept} already in the backup, {} listed in {MANIFEST}",
            manifest.len() - 1
        );
    } else if in_object_store {
        eprintln!(
            "recordings: {} listed with their checksums, not copied: they stay in the object store \
             ([recordings] store = {:?}); keep them with its versioning{}",
            manifest.len() - 1,
            cfg.recordings.store,
            if unlisted > 0 {
                format!(" ({unlisted} kept G.729 halves have no checksum to list)")
            } else {
                String::new()
            }
        );
    } else {
        eprintln!(
            "recordings: {} listed with their checksums, not copied (--no-recordings)",
            manifest.len() - 1
        );
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("callvault: recording not backed up: {p}");
        }
        eprintln!(
            "backup written to {} without {} recording file(s) (above)",
            a.dir.display(),
            problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("backup complete in {}", a.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Copies one recording file into the backup unless the previous backup
/// already holds it with the same checksum; returns its sha256 and whether
/// it was copied now. A file whose bytes do not match the sha256 kept at
/// archiving is not copied (an error naming it).
fn copy_recording(
    source: &Archive,
    dir: &Path,
    f: &RecordingFile,
    previous: Option<&String>,
) -> anyhow::Result<(String, bool)> {
    let dest = Archive::new(dir.join(RECORDINGS)).resolve(&f.key)?;
    if let Some(prev) = previous {
        let same = f.sha256.as_ref().is_none_or(|h| h == prev);
        if same && dest.exists() {
            return Ok((prev.clone(), false));
        }
    }
    let src = source.resolve(&f.key)?;
    let hash = copy_hashed(&src, &dest).with_context(|| format!("{}", src.display()))?;
    if let Some(expected) = &f.sha256 {
        if &hash != expected {
            let _ = fs::remove_file(&dest);
            bail!(
                "{}: sha256 {hash} does not match {expected} kept when it was archived",
                src.display()
            );
        }
    }
    Ok((hash, true))
}

pub fn restore(cfg: Config, a: RestoreArgs, data_given: bool) -> anyhow::Result<ExitCode> {
    refuse_on_postgres(&cfg, "restore")?;
    if !data_given {
        bail!("say where to restore to: --data NEW_DIR (or --config FILE naming its data_dir)");
    }
    let manifest = read_manifest(&a.dir.join(MANIFEST)).with_context(|| {
        format!(
            "{} is not a complete backup (no readable {MANIFEST}; was the backup interrupted?)",
            a.dir.display()
        )
    })?;
    let Some(archive_hash) = manifest.get(ARCHIVE) else {
        bail!("{MANIFEST} in {} lists no {ARCHIVE}", a.dir.display());
    };
    let data = &cfg.data_dir;
    let not_empty = fs::read_dir(data).is_ok_and(|mut d| d.next().is_some());
    if not_empty && !a.force {
        bail!(
            "{} is not empty: restore into a new directory, or give --force to replace its archive",
            data.display()
        );
    }
    fs::create_dir_all(data).with_context(|| format!("cannot make {}", data.display()))?;

    // Everything is checked before the archive is put in place: a failed
    // restore leaves no archive that looks restored.
    let partial = data.join(format!("{ARCHIVE}.partial"));
    let got = copy_hashed(&a.dir.join(ARCHIVE), &partial)?;
    if &got != archive_hash {
        let _ = fs::remove_file(&partial);
        bail!("{ARCHIVE} in the backup does not match {MANIFEST} (sha256 {got}): not restored");
    }
    backup::check_integrity(&partial)?;

    let target = Archive::new(cfg.recordings_dir());
    let from = Archive::new(a.dir.join(RECORDINGS));
    let entries: Vec<(&str, &String)> = manifest
        .iter()
        .filter_map(|(path, hash)| Some((path.strip_prefix("recordings/")?, hash)))
        .collect();
    let bar = progress_bar("{spinner} recordings {bar:40} {pos}/{len} ({per_sec}, eta {eta})");
    bar.set_length(entries.len() as u64);
    let (mut restored, mut absent) = (0u64, 0u64);
    for (key, hash) in &entries {
        bar.inc(1);
        let src = from.resolve(key)?;
        if !src.exists() {
            // Listed, not copied: --no-recordings, or an object store.
            absent += 1;
            continue;
        }
        let dest = target.resolve(key)?;
        let got = copy_hashed(&src, &dest)?;
        if &got != *hash {
            let _ = fs::remove_file(&dest);
            let _ = fs::remove_file(&partial);
            bail!(
                "{} does not match {MANIFEST} (sha256 {got}, listed {hash}): not restored",
                src.display()
            );
        }
        restored += 1;
    }
    bar.finish_and_clear();

    // A WAL left by the replaced archive would be replayed into the
    // restored one.
    for stale in ["-wal", "-shm"] {
        remove_if_there(&PathBuf::from(format!(
            "{}{stale}",
            cfg.db_path().display()
        )))?;
    }
    fs::rename(&partial, cfg.db_path())?;
    // Brings an archive from an older version up to this one's schema.
    drop(crate::store::Store::open(&cfg.db_path())?);
    let counts = backup::counts(&cfg.db_path())?;
    eprintln!(
        "restored {} into {}: {}; {restored} recording files{}",
        a.dir.display(),
        data.display(),
        counts
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", "),
        if absent > 0 {
            format!(
                " ({absent} listed but not in the backup: recordings kept elsewhere must be put \
                 back under {} or stay in the object store)",
                target.root().display()
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn remove_if_there(p: &Path) -> anyhow::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", p.display()))
        }
        _ => Ok(()),
    }
}

fn hash_file(p: &Path) -> anyhow::Result<String> {
    let (_, h) = crate::recordings::archive::hash_file(p)
        .with_context(|| format!("cannot read {}", p.display()))?;
    Ok(h)
}

/// Copies `src` to `dest` (through a temporary name beside it, synced, then
/// renamed) and returns the sha256 of the bytes copied.
fn copy_hashed(src: &Path, dest: &Path) -> anyhow::Result<String> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
    }
    let tmp = dest.with_extension("copying");
    let mut from = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    let mut to = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut hashing = HashingWriter {
        inner: &mut to,
        hash: Sha256::new(),
    };
    std::io::copy(&mut from, &mut hashing)
        .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    let hash = hex::encode(hashing.hash.finalize());
    to.sync_all()?;
    fs::rename(&tmp, dest)?;
    Ok(hash)
}

struct HashingWriter<'a> {
    inner: &'a mut File,
    hash: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Path → sha256 of a manifest (`sha256sum` format: hash, two spaces, path).
fn read_manifest(p: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for line in BufReader::new(File::open(p)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((hash, path)) = line.split_once("  ") else {
            bail!("{}: not a sha256sum line: {line:?}", p.display());
        };
        out.insert(path.to_string(), hash.to_string());
    }
    Ok(out)
}

/// Writes the manifest (synced, renamed into place: it marks the backup complete).
fn write_manifest(dir: &Path, entries: &[(String, String)]) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{MANIFEST}.partial"));
    let mut f = File::create(&tmp)?;
    for (hash, path) in entries {
        writeln!(f, "{hash}  {path}")?;
    }
    f.sync_all()?;
    fs::rename(&tmp, dir.join(MANIFEST))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
