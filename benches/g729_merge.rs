//! Benchmark of the G.729 merge (docs/recordings.md): `cargo bench --bench g729_merge`.
//!
//! Builds 10-minute and 1-hour send/recv halves by repeating the fixture
//! frames, then measures
//! * `merge_files` plus the conversation figures (the voice activity
//!   detector runs on the decoder threads; the figures come from its
//!   segments: docs/recordings.md "Conversation figures") wall time and
//!   peak RSS (VmHWM, reset between runs through /proc/self/clear_refs)
//!   for both lengths: memory must not grow with the call length;
//! * the plain g729-sys decode loop over one 1-hour half;
//! * Debian's libbcg729 decoding the same half (benches/bcg729_decode.c,
//!   compiled here with `cc -O2 … -lbcg729`), when installed.
//!
//! Target: decoding, merging and the figures of a 1-hour call take no
//! longer than bcg729 needs to decode one of its halves.

use callvault::recordings::conversation::of_sides;
use callvault::recordings::g729::PcmFrames;
use callvault::recordings::merge::{merge_files, Layout};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Runs per measurement; the best is reported (the machine is shared).
const RUNS: usize = 3;
const FRAMES_PER_SEC: u64 = 100;

fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/g729");
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = std::fs::read(fixtures.join("agent.dat")).expect("agent.dat");
    let customer = std::fs::read(fixtures.join("customer.dat")).expect("customer.dat");

    let mut rows: Vec<Row> = Vec::new();
    let mut merge_hour = f64::NAN;
    for (label, secs) in [("10 min", 600u64), ("1 hour", 3600)] {
        let send = build_half(dir.path(), &format!("send_{secs}.dat"), &agent, secs);
        let recv = build_half(dir.path(), &format!("recv_{secs}.dat"), &customer, secs);
        let out = dir.path().join(format!("call_{secs}.wav"));
        for layout in [Layout::Mono, Layout::Stereo] {
            reset_hwm();
            let before = vm_hwm_kib();
            let (wall, cpu) = best_of(|| {
                let stats = merge_files(&send, &recv, &out, layout).expect("merge");
                assert_eq!(stats.frames_send, secs * FRAMES_PER_SEC);
                let figures = of_sides(&stats.speech_send, &stats.speech_recv, Default::default())
                    .expect("figures");
                std::hint::black_box(figures);
            });
            let after = vm_hwm_kib();
            if label == "1 hour" && layout == Layout::Mono {
                merge_hour = wall;
            }
            let mem = format!("{} -> {} KiB", fmt_kib(before), fmt_kib(after));
            let name = format!("merge+figures {label} {layout:?}");
            rows.push(Row {
                name,
                wall,
                cpu,
                audio: secs as f64,
                mem,
            });
        }
    }

    let hour_half = dir.path().join("send_3600.dat");
    let (wall, cpu) = best_of(|| {
        let frames = PcmFrames::new(File::open(&hour_half).expect("half")).expect("sniff");
        let mut checksum = 0i64;
        for frame in frames {
            checksum += frame
                .expect("frame")
                .iter()
                .map(|&s| i64::from(s))
                .sum::<i64>();
        }
        std::hint::black_box(checksum);
    });
    let name = "g729-sys decode, one 1 h half".to_string();
    rows.push(Row {
        name,
        wall,
        cpu,
        audio: 3600.0,
        mem: String::new(),
    });

    let bcg729 = bench_bcg729(dir.path(), &fixtures, &hour_half);
    match &bcg729 {
        Ok((wall, cpu)) => {
            let name = "libbcg729 decode, one 1 h half".to_string();
            rows.push(Row {
                name,
                wall: *wall,
                cpu: *cpu,
                audio: 3600.0,
                mem: String::new(),
            });
        }
        Err(why) => println!("libbcg729 comparison skipped: {why}"),
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\n{cores} cores, load average {}", load.trim());
    println!(
        "{:<34} {:>8} {:>8} {:>7}  peak RSS (VmHWM before -> after)",
        "case", "wall s", "cpu s", "x rt"
    );
    for r in &rows {
        let rt = r.audio / r.wall;
        println!(
            "{:<34} {:>8.3} {:>8.3} {rt:>7.0}  {}",
            r.name, r.wall, r.cpu, r.mem
        );
    }
    if let Ok((reference, _)) = bcg729 {
        let verdict = if merge_hour <= reference {
            "MET"
        } else {
            "MISSED"
        };
        println!(
            "\ntarget decode+merge+figures(1 h) <= bcg729 decode(1 half): {merge_hour:.3} s vs {reference:.3} s: {verdict}"
        );
    }
}

/// One line of the result table.
struct Row {
    name: String,
    wall: f64,
    cpu: f64,
    /// Seconds of audio processed (for the real-time factor).
    audio: f64,
    mem: String,
}

/// Write a half of `secs` seconds by repeating `frames` (raw 10-byte frames).
fn build_half(dir: &Path, name: &str, frames: &[u8], secs: u64) -> PathBuf {
    let path = dir.join(name);
    let mut out = BufWriter::new(File::create(&path).expect("create half"));
    let mut left = (secs * FRAMES_PER_SEC * 10) as usize;
    while left > 0 {
        let n = left.min(frames.len());
        out.write_all(&frames[..n]).expect("write half");
        left -= n;
    }
    out.flush().expect("flush half");
    path
}

/// Best (wall, CPU) seconds of [`RUNS`] runs; CPU is user+system time of
/// all threads, so CPU / wall shows how much the halves ran in parallel.
fn best_of(mut f: impl FnMut()) -> (f64, f64) {
    (0..RUNS)
        .map(|_| {
            let (t, cpu) = (Instant::now(), cpu_secs());
            f();
            (t.elapsed().as_secs_f64(), cpu_secs() - cpu)
        })
        .fold((f64::INFINITY, 0.0), |best, run| {
            if run.0 < best.0 {
                run
            } else {
                best
            }
        })
}

/// User + system CPU time of this process (all threads), from /proc/self/stat
/// (clock ticks; USER_HZ is 100 on Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line; counting from the
    // state (field 3) just after the parenthesised command name: 11 and 12.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Compile benches/bcg729_decode.c against the system libbcg729, check it
/// agrees with the fixture reference, and time it on `half`.
fn bench_bcg729(tmp: &Path, fixtures: &Path, half: &Path) -> Result<(f64, f64), String> {
    if !Path::new("/usr/include/bcg729/decoder.h").exists() {
        return Err(
            "/usr/include/bcg729/decoder.h not found (apt-get install libbcg729-dev)".into(),
        );
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/bcg729_decode.c");
    let exe = tmp.join("bcg729_decode");
    let cc = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lbcg729")
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !cc.status.success() {
        return Err(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&cc.stderr)
        ));
    }
    // Same output as the fixture reference, or the comparison is meaningless.
    let pcm = tmp.join("agent.pcm");
    run_bcg729(&exe, &fixtures.join("agent.dat"), Some(&pcm))?;
    let same = std::fs::read(&pcm).ok() == std::fs::read(fixtures.join("agent.bcg729.pcm")).ok();
    println!("libbcg729 output equals agent.bcg729.pcm: {same}");
    let mut best = (f64::INFINITY, 0.0);
    for _ in 0..RUNS {
        let run = run_bcg729(&exe, half, None)?;
        if run.0 < best.0 {
            best = run;
        }
    }
    Ok(best)
}

/// Run the C decoder; returns its wall time (process start included) and
/// the CPU time it reports.
fn run_bcg729(exe: &Path, input: &Path, out: Option<&Path>) -> Result<(f64, f64), String> {
    let mut cmd = Command::new(exe);
    cmd.arg(input);
    if let Some(out) = out {
        cmd.arg(out);
    }
    let t = Instant::now();
    let run = cmd.output().map_err(|e| format!("bcg729_decode: {e}"))?;
    let wall = t.elapsed().as_secs_f64();
    if !run.status.success() {
        return Err(format!(
            "bcg729_decode failed: {}",
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    let cpu = stdout
        .split_whitespace()
        .find_map(|f| f.strip_prefix("cpu_secs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((wall, cpu))
}

/// Peak resident set size of this process, KiB (None off Linux).
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reset VmHWM to the current RSS so each case shows its own peak.
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn fmt_kib(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |k| k.to_string())
}
