//! The command line: global options and subcommands.
//!
//! Only subcommands that work are exposed. Each subcommand lives in its own
//! module and returns an exit code; errors reaching this level are printed
//! once, with their chain, and give exit code 1.

mod config_cmd;
mod data_cmd;
mod workflows_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use stage_config::descriptor::store::FetchPolicy;
use stage_config::settings::LogFormat;
use stage_config::{ConfigSources, Environment};

/// Stages BIOMERO analysis workflows between OMERO and Slurm.
///
/// biomero-stage reads BIOMERO's own slurm-config.ini (the file the
/// OMERO.biomero Admin tab writes) from /etc/slurm-config.ini,
/// /OMERO/slurm-config.ini and ~/slurm-config.ini, or only from
/// $BIOMERO_SLURM_CONFIG_FILE, and its own settings from biomero-stage.toml.
#[derive(Debug, Parser)]
#[command(name = "biomero-stage", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// biomero-stage settings file [default: $BIOMERO_STAGE_CONFIG, else /etc/biomero-stage/biomero-stage.toml if it exists]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A slurm-config.ini read after BIOMERO's default locations (later keys win)
    #[arg(long, global = true, value_name = "FILE")]
    slurm_config: Option<PathBuf>,
    /// Never fetch workflow descriptors from the network; use shipped and cached copies
    #[arg(long, global = true)]
    offline: bool,
    /// Log format on stderr
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

impl GlobalArgs {
    /// Where the configuration comes from, for this invocation.
    pub fn sources(&self) -> ConfigSources {
        ConfigSources {
            settings_file: self.config.clone(),
            slurm_config: self.slurm_config.clone(),
            env: Environment::from_process(),
            fetch_override: self.offline.then_some(FetchPolicy::Offline),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, show and follow the configuration
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// List workflows with their versions, input modes and descriptor parameters
    Workflows(workflows_cmd::WorkflowsArgs),
    /// Write deterministic sample data: an HCS plate with labels and single images
    Sample(data_cmd::SampleArgs),
    /// Convert between OME-Zarr and TIFF
    #[command(subcommand)]
    Convert(data_cmd::ConvertCommand),
    /// Describe an OME-Zarr store (image, plate, labels) and list its problems; exit 1 if any
    Inspect(data_cmd::InspectArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.global.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    crate::logging::init(format, "warn", cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Config(c) => config_cmd::run(c, &cli.global).await,
            Command::Workflows(a) => workflows_cmd::run(a, &cli.global).await,
            Command::Sample(a) => tokio::task::spawn_blocking(move || data_cmd::sample(&a)).await?,
            Command::Convert(c) => {
                tokio::task::spawn_blocking(move || data_cmd::convert(&c)).await?
            }
            Command::Inspect(a) => {
                tokio::task::spawn_blocking(move || data_cmd::inspect(&a)).await?
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
