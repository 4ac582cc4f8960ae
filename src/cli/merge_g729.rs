//! `callvault merge-g729 SEND RECV -o OUT.wav`: the G.729 merge as a
//! standalone tool (e.g. for halves copied off a device by hand).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
#[command(
    after_help = "The halves may be raw 10-byte G.729 frames (what the OM device writes) or ITU \
serial frames (sync word 0x6B21); the framing is detected. A trailing partial frame is dropped with a \
warning; the shorter half is padded with silence. OUT is written atomically (temporary file, fsync, rename)."
)]
pub struct MergeArgs {
    /// The send half (`*_send.dat`): what the extension said.
    #[arg(value_name = "SEND")]
    pub send: PathBuf,
    /// The recv half (`*_recv.dat`): what the extension heard.
    #[arg(value_name = "RECV")]
    pub recv: PathBuf,
    /// The WAV file to write (8 kHz, 16-bit).
    #[arg(short, long, value_name = "OUT.wav")]
    pub output: PathBuf,
    /// mono: one channel, saturating sum of both halves; stereo: left = send, right = recv.
    #[arg(long, default_value = "mono", value_parser = ["mono", "stereo"])]
    pub layout: String,
}

#[cfg(feature = "g729")]
pub fn run(a: MergeArgs) -> anyhow::Result<ExitCode> {
    use crate::recordings::merge::{merge_files, Layout};
    let layout: Layout = a.layout.parse()?;
    let stats = merge_files(&a.send, &a.recv, &a.output, layout)?;
    println!(
        "{}: {:.2} s ({} send frames, {} recv frames, {layout:?})",
        a.output.display(),
        stats.duration_secs,
        stats.frames_send,
        stats.frames_recv
    );
    for (side, n) in [
        ("send", stats.partial_bytes_dropped_send),
        ("recv", stats.partial_bytes_dropped_recv),
    ] {
        if n > 0 {
            eprintln!(
                "warning: dropped a trailing partial frame of {n} bytes from the {side} half"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "g729"))]
pub fn run(_a: MergeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this callvault was built without the g729 feature")
}
