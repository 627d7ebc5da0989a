//! Logging to stderr (journald under systemd), as text or JSON lines.
//!
//! `RUST_LOG` overrides the level; otherwise commands log warnings and the
//! daemon logs info, and each `-v` raises the level by one step.

use std::io::IsTerminal;

use stage_config::settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_level: &str, verbosity: u8) {
    let level = match (default_level, verbosity) {
        (l, 0) => l,
        ("warn", 1) => "info",
        ("info", 1) | ("warn", 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
