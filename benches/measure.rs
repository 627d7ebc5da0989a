//! What the benchmarks that run their steps as child processes share (included with `#[path]`:
//! a bench has no library): one measured process and the median.

use std::process::Command;
use std::time::Instant;

/// One measured child process.
#[derive(Clone, Copy)]
pub(crate) struct Run {
    /// Wall time in seconds (the step's own `elapsed` when it printed one).
    pub(crate) wall: f64,
    /// Peak RSS in MiB.
    pub(crate) rss_mib: f64,
}

/// Runs `cmd` under `/usr/bin/time`: wall time and peak RSS; panics with its stderr on failure.
pub(crate) fn measure(cmd: &[String]) -> Run {
    let tfile = std::env::temp_dir().join(format!("bench-time-{}", std::process::id()));
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&tfile)
        .args(cmd)
        .output()
        .expect("/usr/bin/time (Debian package `time`) is needed");
    // a step that times itself (after connecting) says so on stdout
    let wall = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("elapsed ")?.trim().parse().ok())
        .unwrap_or_else(|| start.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "benchmark command failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb: f64 = std::fs::read_to_string(&tfile)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    Run {
        wall,
        rss_mib: kb / 1024.0,
    }
}

/// The median (the upper one of an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
