//! The command line: global options and subcommands.
//!
//! Only subcommands that work are exposed. Each subcommand lives in its own
//! module and returns an exit code; errors reaching this level are printed
//! once, with their chain, and give exit code 1.

mod adopt_cmd;
mod biomero_cmd;
mod cluster_cmd;
mod config_cmd;
mod data_cmd;
mod descriptors_cmd;
mod queue_cmd;
mod stage_cmd;
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
#[command(
    name = "biomero-stage",
    version,
    propagate_version = true,
    after_help = "Start here:\n  biomero-stage demo                       the whole chain on this machine, in seconds\n  biomero-stage --config FILE config check  a site's workflows, input modes and what to fix\n  biomero-stage --config FILE serve         the daemon (deploy/biomero-stage.service runs it)\n\nEvery setting of biomero-stage.toml can be overridden by BIOMERO_STAGE_<KEY>; BIOMERO_*\nvariables override slurm-config.ini keys as in BIOMERO. README.md has the operations guide."
)]
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
    /// Run the whole chain on this machine: sample data, the daemon on SQLite, one run per input mode
    Demo(stage_demo::DemoArgs),
    /// The demo's workflow: segment data/in by threshold into data/out (run by its job script)
    #[command(hide = true)]
    DemoThreshold(stage_demo::ThresholdArgs),
    /// Check, show and follow the configuration
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// List workflows with their versions, input modes and descriptor parameters
    Workflows(workflows_cmd::WorkflowsArgs),
    /// Adopt a BIOMERO deployment: `nl-biomero DIR` writes the matching biomero-stage.toml and systemd drop-in
    #[command(subcommand)]
    Adopt(adopt_cmd::AdoptCommand),
    /// Workflow descriptors: `pin` fetches each configured workflow's into a descriptor directory for offline use
    #[command(subcommand)]
    Descriptors(descriptors_cmd::DescriptorsCommand),
    /// Write deterministic sample data: an HCS plate with labels and single images
    Sample(data_cmd::SampleArgs),
    /// Convert between OME-Zarr and TIFF
    #[command(subcommand)]
    Convert(data_cmd::ConvertCommand),
    /// Describe an OME-Zarr store (image, plate, labels) and list its problems; exit 1 if any
    Inspect(data_cmd::InspectArgs),
    /// Resolve a submission's inputs and print what would be staged, under which names
    Plan(stage_cmd::PlanArgs),
    /// Stage a submission's inputs into DIR/data/in (with DIR/stage-manifest.json)
    Stage(stage_cmd::StageArgs),
    /// Run the daemon: workers, lease reaper, admin HTTP endpoint (systemd Type=notify)
    Serve(queue_cmd::ServeArgs),
    /// Validate a submission (JSON file, or - for stdin) and queue it
    Submit(queue_cmd::SubmitArgs),
    /// Queue a BIOMERO run request (script inputs as JSON, the user's OMERO session)
    BiomeroRun(biomero_cmd::BiomeroRunArgs),
    /// Show submissions, or one submission's history
    Status(queue_cmd::StatusArgs),
    /// Ask for a submission to be cancelled
    Cancel(queue_cmd::CancelArgs),
    /// Prepare the cluster: folders, generated job scripts, container pulls (--pull)
    Init(cluster_cmd::InitArgs),
    /// Show what the cluster has: folders, workflow images and scripts, converters, pull log
    CheckSetup(cluster_cmd::CheckSetupArgs),
}

/// The bytes of `file`, or of standard input for `-`.
fn read_file_or_stdin(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    use std::io::Read as _;
    if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

/// Makes the settings' read limits (`max_tiff_pages`, `max_tiff_expansion`,
/// `max_metadata_bytes`) this process's, for the data commands that need no other setting.
/// Settings that cannot be read leave the defaults, with a warning.
fn apply_read_limits(global: &GlobalArgs) {
    let sources = global.sources();
    match stage_config::StageSettings::load(sources.settings_file.as_deref(), &sources.env) {
        Ok(l) => stage_common::limits::set(l.settings.read_limits()),
        Err(e) => {
            eprintln!("warning: the settings cannot be read ({e}); the default read limits apply");
        }
    }
}

/// The daemon's log format from its settings (text when they cannot be read yet).
fn serve_log_format(global: &GlobalArgs) -> LogFormat {
    let sources = global.sources();
    stage_config::StageSettings::load(sources.settings_file.as_deref(), &sources.env)
        .map_or(LogFormat::Text, |l| l.settings.log_format)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.global.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let format = match (cli.global.log_format.as_deref(), &cli.command) {
        (None, Command::Serve(_)) => serve_log_format(&cli.global),
        _ => format,
    };
    crate::logging::init(format, default_level, cli.global.verbose);
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
            Command::Demo(a) => stage_demo::run(&a).await,
            Command::DemoThreshold(a) => {
                tokio::task::spawn_blocking(move || stage_demo::run_threshold(&a)).await?
            }
            Command::Config(c) => config_cmd::run(c, &cli.global).await,
            Command::Workflows(a) => workflows_cmd::run(a, &cli.global).await,
            Command::Descriptors(c) => descriptors_cmd::run(c, &cli.global).await,
            Command::Adopt(c) => adopt_cmd::run(&c),
            Command::Sample(a) => tokio::task::spawn_blocking(move || data_cmd::sample(&a)).await?,
            Command::Convert(c) => {
                apply_read_limits(&cli.global);
                tokio::task::spawn_blocking(move || data_cmd::convert(&c)).await?
            }
            Command::Inspect(a) => {
                apply_read_limits(&cli.global);
                tokio::task::spawn_blocking(move || data_cmd::inspect(&a)).await?
            }
            Command::Plan(a) => stage_cmd::plan(&a, &cli.global).await,
            Command::Stage(a) => stage_cmd::stage(&a, &cli.global).await,
            Command::Serve(a) => queue_cmd::serve(&a, &cli.global).await,
            Command::Submit(a) => queue_cmd::submit(&a, &cli.global).await,
            Command::BiomeroRun(a) => biomero_cmd::run(&a, &cli.global).await,
            Command::Status(a) => queue_cmd::status(&a, &cli.global).await,
            Command::Cancel(a) => queue_cmd::cancel(&a, &cli.global).await,
            Command::Init(a) => cluster_cmd::init(&a, &cli.global).await,
            Command::CheckSetup(a) => cluster_cmd::check_setup(&a, &cli.global).await,
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
