//! The drill report: every drill and catalogue records (drill, trials, passed)
//! as one JSON line in `target/drill-report.jsonl` (or `$BIOMERO_STAGE_DRILL_REPORT`);
//! `scripts/test` empties it before the run and prints it as a table at the end.

use std::io::Write as _;
use std::path::PathBuf;

/// One drill's tally, written when it is dropped (also when the drill panics,
/// then marked unfinished).
#[derive(Debug)]
pub struct Drill {
    name: String,
    trials: u32,
    passed: u32,
}

/// Where the report goes.
pub fn report_path() -> PathBuf {
    std::env::var_os("BIOMERO_STAGE_DRILL_REPORT").map_or_else(
        || crate::repo_root().join("target/drill-report.jsonl"),
        PathBuf::from,
    )
}

impl Drill {
    /// Starts the tally of drill `name`.
    pub fn new(name: &str) -> Self {
        Drill {
            name: name.to_owned(),
            trials: 0,
            passed: 0,
        }
    }

    /// Counts one trial, passed or not; returns `ok`.
    pub fn trial(&mut self, ok: bool) -> bool {
        self.trials += 1;
        self.passed += u32::from(ok);
        ok
    }

    /// Trials so far.
    pub fn trials(&self) -> u32 {
        self.trials
    }

    /// Trials passed so far.
    pub fn passed(&self) -> u32 {
        self.passed
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        let line = serde_json::json!({
            "drill": self.name,
            "trials": self.trials,
            "passed": self.passed,
            "finished": !std::thread::panicking(),
        });
        let path = report_path();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
