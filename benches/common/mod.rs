//! Helpers shared by the benches that measure in child processes (so the
//! peak RSS belongs to the measured work only).

#![allow(dead_code)]

pub mod archive;

use std::ffi::OsStr;
use std::process::Command;

/// Peak resident set size of this process in KiB (VmHWM), 0 when unknown.
pub fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs this bench binary again as `--child ARGS…` and returns the
/// whitespace-separated fields it printed; panics unless it succeeded with
/// exactly `fields` of them.
pub fn run_child<S: AsRef<OsStr>>(args: &[S], fields: usize) -> Vec<String> {
    let exe = std::env::current_exe().unwrap_or_default();
    let out = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    assert!(
        v.len() == fields && out.status.success(),
        "child failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}
