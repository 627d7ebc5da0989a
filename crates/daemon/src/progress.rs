//! A progress bar on a terminal, nothing otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stage_ngff::progress::Progress;

/// A progress bar that draws only when stderr is a terminal.
#[derive(Debug)]
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar counting `unit`s.
    pub fn new(unit: &str) -> Self {
        let pb = ProgressBar::new(0);
        if std::io::stderr().is_terminal() {
            pb.set_draw_target(ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}"
            )) {
                pb.set_style(style);
            }
        } else {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        Bar(pb)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn add_total(&self, n: u64) {
        self.0.inc_length(n);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}
