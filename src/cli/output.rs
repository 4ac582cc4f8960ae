//! Where a command's output goes: stdout, or `-o FILE` written to a temporary
//! name beside it and renamed into place only on success, so a failed cron
//! run never leaves a half-written report that looks complete.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub enum Output {
    Stdout(BufWriter<Stdout>),
    File {
        tmp: PathBuf,
        dest: PathBuf,
        file: Option<BufWriter<File>>,
    },
}

impl Output {
    pub fn open(path: Option<&Path>) -> anyhow::Result<Output> {
        let Some(dest) = path else {
            return Ok(Output::Stdout(BufWriter::with_capacity(
                64 * 1024,
                io::stdout(),
            )));
        };
        let name = dest
            .file_name()
            .with_context(|| format!("{} is not a file name", dest.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Output::File {
            tmp,
            dest: dest.to_path_buf(),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
        })
    }

    /// Flushes and, for a file, syncs and renames it into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        match &mut self {
            Output::Stdout(w) => w.flush().context("writing to stdout")?,
            Output::File { tmp, dest, file } => {
                let f = file.take().context("output already committed")?;
                let f = f
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("writing output")?;
                f.sync_all().context("syncing output")?;
                std::fs::rename(&*tmp, &*dest)
                    .with_context(|| format!("renaming to {}", dest.display()))?;
            }
        }
        Ok(())
    }

    /// A description for messages.
    pub fn describe(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".into(),
            Output::File { dest, .. } => dest.display().to_string(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File { file: Some(f), .. } => f.write(buf),
            Output::File { file: None, .. } => Err(io::Error::other("output already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File { file: Some(f), .. } => f.flush(),
            Output::File { file: None, .. } => Ok(()),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Output::File {
            tmp, file: Some(_), ..
        } = self
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Whether `-o FILE` names an Excel workbook (the default format then).
pub fn is_xlsx_name(path: Option<&Path>) -> bool {
    path.and_then(Path::extension)
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"))
}

/// Refuses what an .xlsx output cannot be: with a BOM, or binary on a terminal.
pub fn check_xlsx(bom: bool, path: Option<&Path>) -> anyhow::Result<()> {
    if bom {
        anyhow::bail!("--bom is for CSV; an .xlsx file needs none");
    }
    if path.is_none() && io::stdout().is_terminal() {
        anyhow::bail!("an .xlsx file is binary: give -o FILE.xlsx, or redirect stdout");
    }
    Ok(())
}

/// A progress bar on stderr for a long command (`rebuild`, `migrate-store`,
/// `backup`, `restore`), hidden when stderr is not a terminal (cron, logs).
pub fn progress_bar(template: &str) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}
