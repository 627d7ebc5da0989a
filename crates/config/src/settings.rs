//! The daemon's own settings: `biomero-stage.toml`, overridable by `BIOMERO_STAGE_*`.
//!
//! BIOMERO's `slurm-config.ini` says what runs where on the cluster; this file
//! says how biomero-stage itself runs: its queue database, admin endpoint, data
//! roots, the importer integration. Every key can be overridden by an
//! environment variable named `BIOMERO_STAGE_` + the key in upper case (lists
//! separated by `:` like `PATH`), so a systemd `EnvironmentFile` or a container
//! can configure it without a file. Relative paths in the file are relative to
//! the file's directory. The file is read by serde with unknown keys refused, so
//! a typo is an error with a line number rather than a silently ignored key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::Dict;
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::error::Warning;
use crate::location::Location;
use crate::values;

/// Environment variable prefix of the settings.
pub const ENV_PREFIX: &str = "BIOMERO_STAGE_";

/// The settings file used when none is named and it exists.
pub const DEFAULT_SETTINGS_FILE: &str = "/etc/biomero-stage/biomero-stage.toml";

/// NGFF version of the OME-Zarr that biomero-stage writes (one type with the engine's).
pub use stage_common::NgffVersion;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (journald adds timestamps).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What runs a submission's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// `sbatch` on the `[SSH] host` (BIOMERO's way).
    #[default]
    Slurm,
    /// The job script run directly on this host, with `slurm_data_path` a local
    /// folder (the demo, and trials without a cluster).
    Local,
}

impl fmt::Display for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Executor::Slurm => "slurm",
            Executor::Local => "local",
        })
    }
}

/// Declares the settings struct: each field once, with its documentation, serde attributes,
/// type and default; generates the struct, its `Default`, and the list of its keys.
macro_rules! settings {
    (
        $(#[$smeta:meta])*
        pub struct $S:ident {
            $( $(#[$fmeta:meta])* $name:ident : $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[$smeta])*
        pub struct $S { $( $(#[$fmeta])* pub $name: $ty, )* }

        impl Default for $S {
            fn default() -> Self {
                $S { $( $name: $default, )* }
            }
        }

        impl $S {
            /// Every setting's key, in declaration order.
            pub const KEYS: &'static [&'static str] = &[ $( stringify!($name) ),* ];
        }
    };
}

settings! {
    /// biomero-stage's own settings: each one declared once, here, with its type, default and
    /// documentation; `biomero-stage.toml` sets it by its name, `BIOMERO_STAGE_<NAME>` overrides it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct StageSettings {
    /// Where the daemon keeps its state (queue database, descriptor cache, staging).
    state_dir: PathBuf = PathBuf::from("/var/lib/biomero-stage"),
    /// Queue database URL (`sqlite://…` or `postgres://…`); default: a SQLite file in `state_dir`.
    queue_url: Option<String> = None,
    /// Admin HTTP listen address.
    admin_listen: String = "127.0.0.1:8950".to_owned(),
    /// Bearer token for mutating admin calls.
    admin_token: Option<String> = None,
    /// A file holding the bearer token (preferred over `admin_token`).
    admin_token_file: Option<PathBuf> = None,
    /// A file holding a read-only token: the status page and the API's reads, never a change.
    viewer_token_file: Option<PathBuf> = None,
    /// Roots of the shared storage that inputs and results may live in.
    #[serde(deserialize_with = "path_list")]
    data_roots: Vec<PathBuf> = vec![PathBuf::from("/data")],
    /// biomero-config.json with the group folder mappings (default: `$OMERO_BIOMERO_CONFIG_FILE`).
    group_mappings_file: Option<PathBuf> = None,
    /// The BIOMERO.importer integration (IMPORTER_ENABLED); the Zarr modes need it.
    importer_enabled: bool = false,
    /// PostgreSQL URL of BIOMERO.importer's database (default: `$INGEST_TRACKING_DB_URL`).
    importer_database_url: Option<String> = None,
    /// NGFF version of staged OME-Zarr inputs.
    ngff_version: NgffVersion = NgffVersion::V04,
    /// Zarr inputs re-encoded into NGFF 0.5 are written in Zarr v3 shards (whole chunks, up
    /// to 32 MiB each), a few files per field instead of one per chunk; NGFF 0.4 has none.
    zarr_shards: bool = false,
    /// Stop at `uploaded` and publish the remote path (BIOMERO submits the job).
    prep_only: bool = false,
    /// Number of pipeline workers.
    workers: u32 = 2,
    /// An explicit slurm-config.ini read after BIOMERO's default locations.
    slurm_config: Option<PathBuf> = None,
    /// Read-only directories of shipped descriptors (`<host>/<owner>/<repo>/<tag>/<file>`).
    #[serde(deserialize_with = "path_list")]
    descriptor_dirs: Vec<PathBuf> = Vec::new(),
    /// Descriptor cache directory (default `<state_dir>/descriptors`).
    descriptor_cache: Option<PathBuf> = None,
    /// Whether descriptors may be fetched from their repositories.
    descriptor_fetch: bool = true,
    /// Timeout of one descriptor request, in seconds.
    descriptor_timeout_secs: u64 = 10,
    /// Log format.
    log_format: LogFormat = LogFormat::Text,
    /// Where inputs are staged before upload (default `<state_dir>/staging`).
    staging_dir: Option<PathBuf> = None,
    /// OMERO.web base URL (the JSON API is `<omero_url>/api/v0/`); unset: no OMERO source.
    omero_url: Option<String> = None,
    /// The OMERO server id to log in to (OMERO.web's `servers/` list).
    omero_server_id: u32 = 1,
    /// The OMERO account biomero-stage reads with.
    omero_user: Option<String> = None,
    /// Its password (prefer `omero_password_file` or `BIOMERO_STAGE_OMERO_PASSWORD`).
    omero_password: Option<Secret> = None,
    /// A file holding the password (mode 600).
    omero_password_file: Option<PathBuf> = None,
    /// Where this host mounts OMERO's managed repository (`omero.managed.dir`, e.g.
    /// `/OMERO/ManagedRepository`): an OMERO image without a Zarr is then read from its original
    /// file (a TIFF or OME-TIFF; in-place imports' links followed, confined to the data roots
    /// and the group's folder; a link to OMERO's own path of the file is translated with
    /// `importer_path_map`) before the pixel service is asked.
    managed_repository: Option<PathBuf> = None,
    /// omero-ms-pixel-buffer base URL (`<url>/tile/{image}/{z}/{c}/{t}`); unset: only on-disk Zarr.
    pixel_buffer_url: Option<String> = None,
    /// Tile requests in flight per image.
    omero_concurrency: u32 = 8,
    /// Timeout of one OMERO request, in seconds.
    omero_timeout_secs: u64 = 60,
    /// Tile edge in pixels for pixel-buffer requests.
    omero_tile_size: u32 = 1024,
    /// OMERO's own exporter, the last source of an OMERO image's pixels (after its Zarr, its
    /// original files and the pixel service): an argument list, run on this host in the OMERO
    /// Python environment, with `{server}`, `{session}` (a session of `omero_user`),
    /// `{group}` (the submission's group), `{image}`, `{output}` (a folder the store goes
    /// in as `<image>.ome.zarr`) and `{format}` (`0.4`/`0.5`) filled in. BIOMERO's own:
    /// `["omero", "zarr", "-s", "{server}", "-k", "{session}", "-g", "{group}", "export",
    /// "--output", "{output}", "--format", "{format}", "Image:{image}"]` (omero-cli-zarr 0.8+;
    /// older ones take no `--format`). As an environment variable: shell words. Unset: no
    /// exporter.
    #[serde(deserialize_with = "command_list")]
    omero_export_command: Option<Vec<String>> = None,
    /// The OMERO server the exporter logs in to (`host` or `host:port`, as `{server}`).
    omero_server: Option<String> = None,
    /// The longest one export may take, in seconds; it is then stopped and the step fails.
    omero_export_timeout_secs: u64 = 3600,
    /// Exports running at once across the daemon (each is a Java/Python process of its own).
    omero_export_concurrency: u32 = 2,
    /// An ssh config file to use instead of `~/.ssh/config` (the `[SSH] host` alias is looked up there).
    ssh_config_file: Option<PathBuf> = None,
    /// How long to wait for the SSH connection, in seconds.
    ssh_connect_timeout_secs: u64 = 15,
    /// Which cipher the SSH master asks for first: `auto` (AES-GCM where this host's CPU has
    /// AES instructions, else OpenSSH's order), `openssh` (OpenSSH's order, chacha20-poly1305
    /// first), or a `Ciphers` list. A `Ciphers` line in the ssh config for the host wins.
    ssh_ciphers: crate::ciphers::SshCiphers = crate::ciphers::SshCiphers::Auto,
    /// Send each staged input to the cluster as soon as it is complete, on one tar stream
    /// beside the staging, instead of all of them after it (SSH transport; a stage that
    /// resumes an earlier attempt uploads after it, as with `false`). Off by default: on a
    /// 2-core host sharing its cores with the cluster it measured 1.02x with AES-GCM and
    /// 0.78x with chacha20-poly1305 end to end (benches/README.md).
    upload_while_staging: bool = false,
    /// Where this host mounts `slurm_data_path`, when it does: transfers become local copies.
    local_data_path: Option<PathBuf> = None,
    /// How often running jobs are polled (one query for all of them), in seconds.
    follow_poll_secs: u64 = 10,
    /// Whether the cluster keeps job accounting (`sacct`); off: `squeue`/`scontrol` only.
    slurm_accounting: bool = true,
    /// What runs jobs: `slurm` (sbatch over SSH) or `local` (the job script on this host,
    /// `slurm_data_path` and `slurm_script_path` being local folders).
    executor: Executor = Executor::Slurm,
    /// Keep `biomero_<id>` and the job log on the cluster after the results are imported.
    keep_remote_data: bool = false,
    /// The import mount holding the group folders: results are kept at
    /// `<results_dir>/<group folder>/.analyzed/<submission>/<YYYYMMDD_HHMMSS>/`
    /// (default: the first data root).
    results_dir: Option<PathBuf> = None,
    /// `FROM=TO`: this daemon's mount of the results, then BIOMERO.importer's
    /// (`/srv/omero-data=/data`); unset when both see the same paths.
    importer_path_map: Option<String> = None,
    /// Hand results to BIOMERO.importer; off: results are kept and the submission ends
    /// after `collect` (trials, the demo, sites that import by hand).
    import_results: bool = true,
    /// Order only the label images of results that have them (BIOMERO's `Import_Only_Labels`).
    import_only_labels: bool = true,
    /// The NGFF version the site's OMERO reads; returned 0.5 Zarrs are re-encoded to 0.4 by default.
    omero_ngff_version: NgffVersion = NgffVersion::V04,
    /// Largest output of one job, in bytes; larger outputs are refused.
    max_output_bytes: u64 = 1 << 40,
    /// Most files in the output of one job.
    max_output_files: u64 = 2_000_000,
    /// Largest pixel data one submission may write into staging (TIFFs, conversions), in bytes.
    max_stage_bytes: u64 = 1 << 41,
    /// The largest submission document on every intake (an HTTP body, `submit`'s file, a
    /// row's request), in bytes.
    max_submission_bytes: u64 = 1 << 20,
    /// The longest OMERO user, group or container name in a submission, in characters.
    max_name_chars: u32 = 255,
    /// The longest parameter value as the job receives it (an environment variable), in bytes.
    max_parameter_bytes: u32 = 4096,
    /// The most parameters in one submission.
    max_parameters: u32 = 256,
    /// The most inputs (OMERO objects and paths together) in one submission.
    max_inputs: u32 = 10_000,
    /// The longest input path (or rename pattern) in a submission, in bytes.
    max_path_bytes: u32 = 4096,
    /// The most submissions one BIOMERO run request makes (workflows × batches).
    max_run_submissions: u32 = 1000,
    /// The most pages (planes: channels × z × t) one TIFF image may have.
    max_tiff_pages: u64 = 100_000,
    /// How many times its stored size a compressed TIFF page may claim to expand to.
    max_tiff_expansion: u64 = 4096,
    /// The largest metadata file read whole (NGFF `.zattrs`/`zarr.json`, an OME-XML
    /// companion, one TIFF tag's value), in bytes.
    max_metadata_bytes: u64 = 64 << 20,
    /// How long an importer order may take before the submission fails, in seconds.
    import_timeout_secs: u64 = 3600,
    /// How often importer orders are looked at at first, in seconds (then less often as an
    /// import takes longer, at most once a minute).
    import_poll_secs: u64 = 5,
    /// Claim and run BIOMERO 2.9's detached runs: the launcher tasks BIOMERO's run scripts
    /// queue in its event store (`[ANALYTICS] sqlalchemy_url`) when the OMERO processor has
    /// `BIOMERO_DETACHED_WORKFLOWS=true`. Needs `omero_url` and `omero_user`, to look up the
    /// run's user and group; the views are then projected as BIOMERO 2.9's followers do.
    biomero_detached: bool = false,
    /// The mail relay for run notifications (BIOMERO's `E-mail`): `smtp://host:25`,
    /// `smtp://host:587?tls=required`, `smtps://user:password@host:465`; unset: no mail,
    /// and the run's history says so. Prefer `BIOMERO_STAGE_SMTP_URL` when it holds a password.
    smtp_url: Option<Secret> = None,
    /// The sender of run notifications.
    mail_from: String = "biomero-stage@localhost".to_owned(),
    /// Days the step-by-step history of a finished submission (imported, failed, cancelled)
    /// is kept; after that it is cut to the event that ended it and the notes after it. The
    /// submission itself stays (its request, final state, error, where its results were kept
    /// and what was imported), so its id stays taken. With BIOMERO's event store configured,
    /// only histories it already holds whole are cut. 0 keeps every history for ever.
    keep_history_days: u32 = 0,
    }
}

/// The most `max_run_submissions` may be set to: what listing a run's submissions reads at most.
pub const RUN_SUBMISSIONS_CEILING: u32 = 100_000;

impl StageSettings {
    /// Each limit on what users and jobs control, with the range it may be set in and why.
    fn limit_ranges(&self) -> [(&'static str, u64, u64, u64, &'static str); 10] {
        [
            (
                "max_submission_bytes",
                self.max_submission_bytes,
                1024,
                64 << 20,
                "the admin API never reads a body above 64 MiB",
            ),
            (
                "max_name_chars",
                self.max_name_chars.into(),
                1,
                255,
                "OMERO's name columns hold 255 characters",
            ),
            (
                "max_parameter_bytes",
                self.max_parameter_bytes.into(),
                1,
                128 * 1024,
                "Linux refuses an environment variable above 128 KiB (MAX_ARG_STRLEN)",
            ),
            (
                "max_parameters",
                self.max_parameters.into(),
                1,
                4096,
                "the job's environment holds them all",
            ),
            (
                "max_inputs",
                self.max_inputs.into(),
                1,
                1_000_000,
                "a submission is one document of at most 64 MiB",
            ),
            (
                "max_path_bytes",
                self.max_path_bytes.into(),
                1,
                4096,
                "Linux's PATH_MAX",
            ),
            (
                "max_run_submissions",
                self.max_run_submissions.into(),
                1,
                RUN_SUBMISSIONS_CEILING.into(),
                "one run request is queued in one transaction",
            ),
            (
                "max_tiff_pages",
                self.max_tiff_pages,
                1,
                100_000_000,
                "each page's offsets are held while the image is read",
            ),
            (
                "max_tiff_expansion",
                self.max_tiff_expansion,
                1,
                1_000_000,
                "a page's buffer is allocated from its claimed size",
            ),
            (
                "max_metadata_bytes",
                self.max_metadata_bytes,
                4096,
                4 << 30,
                "metadata files are read whole into memory",
            ),
        ]
    }

    /// The limits the file readers of this process apply (see `stage_common::limits`).
    pub fn read_limits(&self) -> stage_common::limits::ReadLimits {
        stage_common::limits::ReadLimits {
            tiff_pages: self.max_tiff_pages,
            tiff_expansion: self.max_tiff_expansion,
            metadata_bytes: self.max_metadata_bytes,
        }
    }
}

/// A secret value: read from TOML or the environment, never printed or serialised.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Why the settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not valid TOML for these settings.
    #[error("{}: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A value (from the file or the environment) is not acceptable.
    #[error("{origin}: `{key}` = `{value}`: {reason}")]
    Invalid {
        /// Where the value came from (a file or an environment variable).
        origin: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// Settings together with where they were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedSettings {
    /// The settings.
    pub settings: StageSettings,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Environment variables that overrode a key.
    pub overridden_by_env: Vec<String>,
    /// Things to look at.
    pub warnings: Vec<Warning>,
}

impl StageSettings {
    /// Reads `file` (or the default file when it exists), then applies `BIOMERO_STAGE_*`:
    /// the built-in defaults, the file and each variable are layers of one figment,
    /// extracted into the typed settings; `validate` then checks their meaning. Settings that
    /// load make their read limits the process's (`stage_common::limits`): the readers of
    /// outside files follow the settings last loaded.
    pub fn load(file: Option<&Path>, env: &Environment) -> Result<LoadedSettings, SettingsError> {
        let chosen = match file {
            Some(f) => Some(f.to_path_buf()),
            None => env
                .non_empty("BIOMERO_STAGE_CONFIG")
                .map(PathBuf::from)
                .or_else(|| {
                    Path::new(DEFAULT_SETTINGS_FILE)
                        .exists()
                        .then(|| PathBuf::from(DEFAULT_SETTINGS_FILE))
                }),
        };
        let defaults = match &chosen {
            Some(_) => StageSettings::default(),
            None => StageSettings {
                state_dir: default_state_dir(env),
                ..StageSettings::default()
            },
        };
        let mut figment = Figment::from(Serialized::defaults(defaults));
        if let Some(path) = &chosen {
            figment = figment.merge(Layer::file(path)?);
        }
        let mut warnings = Vec::new();
        let mut overridden = Vec::new();
        for (var, value) in env.with_prefix(ENV_PREFIX) {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key == "config" || value.trim().is_empty() {
                continue;
            }
            if Self::KEYS.contains(&key.as_str()) {
                figment = figment.merge(Layer::variable(var, &key, value));
                overridden.push(var.to_owned());
            } else {
                warnings.push(Warning::at(
                    Location::env(var),
                    format!("unknown setting `{key}`; ignored (check the spelling of {var})"),
                ));
            }
        }
        let mut settings: StageSettings =
            figment.extract_lossy().map_err(|e| layer_error(&e, env))?;
        if env.get("BIOMERO_STAGE_IMPORTER_ENABLED").is_none()
            && let Some(v) = env.non_empty("IMPORTER_ENABLED")
        {
            settings.importer_enabled =
                values::parse_bool(v).ok_or_else(|| SettingsError::Invalid {
                    origin: Location::env("IMPORTER_ENABLED").to_string(),
                    key: "importer_enabled".into(),
                    value: v.to_owned(),
                    reason: "not a boolean; use true or false".into(),
                })?;
            overridden.push("IMPORTER_ENABLED".to_owned());
        }
        // BIOMERO.importer's own variable, as its deployments already set it
        if settings.importer_database_url.is_none()
            && let Some(v) = env.non_empty("INGEST_TRACKING_DB_URL")
        {
            settings.importer_database_url = Some(v.to_owned());
        }
        if settings.group_mappings_file.is_none()
            && let Some(v) = env.non_empty("OMERO_BIOMERO_CONFIG_FILE")
        {
            settings.group_mappings_file = Some(PathBuf::from(v));
        }
        let origin = |key: &str| {
            let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            if overridden.contains(&var) {
                Location::env(var).to_string()
            } else {
                chosen.as_ref().map_or_else(
                    || "built-in default".to_owned(),
                    |p| p.display().to_string(),
                )
            }
        };
        settings.validate(origin, &mut warnings)?;
        Ok(LoadedSettings {
            settings,
            file: chosen,
            overridden_by_env: overridden,
            warnings,
        })
    }

    /// Reads a settings file alone (no environment); relative paths become relative to its directory.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        Figment::from(Serialized::defaults(StageSettings::default()))
            .merge(Layer::file(path)?)
            .extract_lossy()
            .map_err(|e| layer_error(&e, &Environment::default()))
    }

    fn validate(
        &self,
        origin: impl Fn(&str) -> String,
        warnings: &mut Vec<Warning>,
    ) -> Result<(), SettingsError> {
        let invalid = |key: &str, value: String, reason: &str| SettingsError::Invalid {
            origin: origin(key),
            key: key.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        let addr: SocketAddr = self.admin_listen.parse().map_err(|_| {
            invalid(
                "admin_listen",
                self.admin_listen.clone(),
                "not an address:port, e.g. 127.0.0.1:8950",
            )
        })?;
        if self.workers == 0 {
            return Err(invalid(
                "workers",
                "0".into(),
                "at least one worker is needed",
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(invalid(
                "workers",
                self.workers.to_string(),
                &format!(
                    "at most {MAX_WORKERS} workers: each holds a database connection and staging buffers, and the cluster is the bottleneck well before that (2 to 8 is typical)"
                ),
            ));
        }
        if let Some(token) = &self.admin_token {
            if token.trim().is_empty() {
                return Err(invalid(
                    "admin_token",
                    "(empty)".into(),
                    "an empty token would let anyone change the queue; set a token of at least 16 characters (better: admin_token_file), or remove the key to disable changes through the API",
                ));
            }
            if token.trim().len() < MIN_TOKEN_LEN {
                warnings.push(Warning::general(format!(
                    "admin_token is shorter than {MIN_TOKEN_LEN} characters and can be guessed; use e.g. `openssl rand -hex 32` in admin_token_file"
                )));
            }
        }
        for (key, v) in [
            ("ssh_connect_timeout_secs", self.ssh_connect_timeout_secs),
            ("follow_poll_secs", self.follow_poll_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "0".into(), "must be at least 1 second"));
            }
        }
        if self.descriptor_timeout_secs == 0 {
            return Err(invalid(
                "descriptor_timeout_secs",
                "0".into(),
                "must be at least 1",
            ));
        }
        for (key, url) in [
            ("omero_url", &self.omero_url),
            ("pixel_buffer_url", &self.pixel_buffer_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(key, u.clone(), "use an http:// or https:// URL"));
            }
        }
        if self.omero_concurrency == 0 || self.omero_timeout_secs == 0 {
            return Err(invalid(
                "omero_concurrency",
                format!("{}/{}", self.omero_concurrency, self.omero_timeout_secs),
                "omero_concurrency and omero_timeout_secs must be at least 1",
            ));
        }
        if !(64..=8192).contains(&self.omero_tile_size) {
            return Err(invalid(
                "omero_tile_size",
                self.omero_tile_size.to_string(),
                "use 64 to 8192 pixels (omero-ms-pixel-buffer limits tiles; 1024 is a good default)",
            ));
        }
        if let Some(cmd) = &self.omero_export_command {
            let shown = cmd.join(" ");
            match cmd.first() {
                None => {
                    return Err(invalid(
                        "omero_export_command",
                        "[]".into(),
                        "give the command and its arguments, or leave it unset",
                    ));
                }
                Some(_) if !cmd.iter().any(|a| a.contains("{image}")) => {
                    return Err(invalid(
                        "omero_export_command",
                        shown,
                        "name the image with {image} (e.g. `Image:{image}`)",
                    ));
                }
                Some(_) if !cmd.iter().any(|a| a.contains("{output}")) => {
                    return Err(invalid(
                        "omero_export_command",
                        shown,
                        "give the output folder with {output} (e.g. `--output {output}`)",
                    ));
                }
                Some(_) => {}
            }
            if let Some(unknown) = cmd.iter().find_map(|a| unknown_placeholder(a)) {
                return Err(invalid(
                    "omero_export_command",
                    shown,
                    &format!(
                        "`{unknown}` is not a placeholder; use {{server}}, {{session}}, {{group}}, {{image}}, {{output}} or {{format}}"
                    ),
                ));
            }
            if cmd.iter().any(|a| a.contains("{server}")) && self.omero_server.is_none() {
                return Err(invalid(
                    "omero_server",
                    "unset".into(),
                    "omero_export_command uses {server}: set omero_server to the OMERO server's host (and :port)",
                ));
            }
            if self.omero_user.is_none() {
                warnings.push(Warning::general(
                    "omero_export_command is set but omero_user is not: the exporter has no session to log in with",
                ));
            }
        }
        if self.omero_export_timeout_secs == 0 || self.omero_export_concurrency == 0 {
            return Err(invalid(
                "omero_export_concurrency",
                format!(
                    "{}/{}",
                    self.omero_export_concurrency, self.omero_export_timeout_secs
                ),
                "omero_export_concurrency and omero_export_timeout_secs must be at least 1",
            ));
        }
        if self.omero_export_concurrency > 64 {
            return Err(invalid(
                "omero_export_concurrency",
                self.omero_export_concurrency.to_string(),
                "at most 64 exports at once (each one is a process of its own)",
            ));
        }
        if self.omero_url.is_some() && self.omero_user.is_none() {
            warnings.push(Warning::general(
                "omero_url is set but omero_user is not: OMERO inputs cannot be read",
            ));
        }
        for r in &self.data_roots {
            if r.is_relative() {
                return Err(invalid(
                    "data_roots",
                    r.display().to_string(),
                    "data roots must be absolute paths",
                ));
            }
        }
        if let Some(url) = &self.queue_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "queue_url",
                stage_common::redact_url(url),
                "use sqlite://PATH or postgres://USER@HOST/DB",
            ));
        }
        if !addr.ip().is_loopback() && self.admin_token.is_none() && self.admin_token_file.is_none()
        {
            warnings.push(Warning::general(format!(
                "admin_listen {addr} is not loopback and no admin token is set: mutating admin calls will be refused until admin_token_file is set"
            )));
        }
        if let Some(m) = &self.importer_path_map
            && let Err(reason) = crate::pathmap::PathMap::parse(m)
        {
            return Err(invalid("importer_path_map", m.clone(), &reason));
        }
        if let Some(d) = &self.results_dir
            && d.is_relative()
        {
            return Err(invalid(
                "results_dir",
                d.display().to_string(),
                "must be an absolute path (the import mount holding the group folders)",
            ));
        }
        for (key, v, min, max, why) in self.limit_ranges() {
            if v < min || v > max {
                return Err(invalid(
                    key,
                    v.to_string(),
                    &format!("must be from {min} to {max}: {why}"),
                ));
            }
        }
        for (key, v) in [
            ("max_output_bytes", self.max_output_bytes),
            ("max_stage_bytes", self.max_stage_bytes),
            ("max_output_files", self.max_output_files),
            ("import_timeout_secs", self.import_timeout_secs),
            ("import_poll_secs", self.import_poll_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "0".into(), "must be at least 1"));
            }
        }
        if let Some(url) = &self.importer_database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("postgresql+psycopg2://"))
        {
            return Err(invalid(
                "importer_database_url",
                stage_common::redact_url(url),
                "use postgres://USER@HOST/DB (BIOMERO.importer's INGEST_TRACKING_DB_URL)",
            ));
        }
        if self.importer_enabled && self.import_results && self.importer_database_url.is_none() {
            warnings.push(Warning::general(
                "importer_enabled is true but importer_database_url is not set: results cannot be handed to BIOMERO.importer",
            ));
        }
        Ok(())
    }

    /// The queue database URL, defaulting to a SQLite file in the state directory.
    pub fn queue_url(&self) -> String {
        self.queue_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.state_dir.join("queue.sqlite").display()
            )
        })
    }

    /// The descriptor cache directory.
    pub fn descriptor_cache(&self) -> PathBuf {
        self.descriptor_cache
            .clone()
            .unwrap_or_else(|| self.state_dir.join("descriptors"))
    }

    /// The import mount holding the group folders (results_dir, else the first data root).
    pub fn results_dir(&self) -> Option<PathBuf> {
        self.results_dir
            .clone()
            .or_else(|| self.data_roots.first().cloned())
    }

    /// BIOMERO.importer's database URL for sqlx (`postgresql+psycopg2://` accepted as written for the importer).
    pub fn importer_database_url(&self) -> Option<String> {
        self.importer_database_url
            .as_ref()
            .map(|u| u.replacen("postgresql+psycopg2://", "postgresql://", 1))
    }

    /// The staging directory.
    pub fn staging_dir(&self) -> PathBuf {
        self.staging_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("staging"))
    }

    /// The OMERO password: from `omero_password_file` if set, else `omero_password`.
    pub fn omero_password(&self) -> Result<Option<Secret>, SettingsError> {
        match &self.omero_password_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|t| Some(Secret(t.trim_end_matches(['\n', '\r']).to_owned())))
                .map_err(|e| SettingsError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            None => Ok(self.omero_password.clone()),
        }
    }

    /// The admin token: from `admin_token_file` if set, else `admin_token`.
    pub fn admin_token(&self) -> Result<Option<String>, SettingsError> {
        match &self.admin_token_file {
            Some(path) => read_token(path, "admin").map(Some),
            None => Ok(self
                .admin_token
                .as_ref()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())),
        }
    }
}

impl StageSettings {
    /// The read-only viewer token, from `viewer_token_file`.
    pub fn viewer_token(&self) -> Result<Option<String>, SettingsError> {
        self.viewer_token_file
            .as_ref()
            .map(|p| read_token(p, "viewer"))
            .transpose()
    }
}

/// A token from its file: trimmed, and refused when empty.
fn read_token(path: &std::path::Path, what: &str) -> Result<String, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SettingsError::Unreadable {
            path: path.to_path_buf(),
            reason: format!(
                "the {what} token file is empty; write a token of at least 16 characters into it (e.g. `openssl rand -hex 32`)"
            ),
        });
    }
    Ok(token.to_owned())
}

/// The most pipeline workers a daemon runs.
pub const MAX_WORKERS: u32 = 64;
/// Admin tokens shorter than this are warned about.
const MIN_TOKEN_LEN: usize = 16;

/// Keys whose value is a path, made relative to the settings file's directory.
const PATH_KEYS: [&str; 12] = [
    "state_dir",
    "managed_repository",
    "admin_token_file",
    "viewer_token_file",
    "group_mappings_file",
    "slurm_config",
    "descriptor_cache",
    "staging_dir",
    "omero_password_file",
    "ssh_config_file",
    "local_data_path",
    "results_dir",
];
/// Keys whose value is a list of paths, made relative the same way.
const PATH_LIST_KEYS: [&str; 2] = ["data_roots", "descriptor_dirs"];

/// One layer of the settings: the file, or one `BIOMERO_STAGE_*` variable.
struct Layer {
    /// Where its values come from (the file's path, or `environment variable NAME`).
    name: String,
    /// Its values.
    dict: Dict,
}

impl Layer {
    /// The settings file, checked first by the typed TOML reader (unknown keys and bad
    /// values are errors with their line), its relative paths made relative to its folder.
    fn file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let toml_error = |e: toml::de::Error| SettingsError::Toml {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n    "),
        };
        toml::from_str::<StageSettings>(&text).map_err(toml_error)?;
        let mut table: toml::Table = toml::from_str(&text).map_err(toml_error)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |v: &mut toml::Value| {
            if let toml::Value::String(p) = v
                && Path::new(p.as_str()).is_relative()
            {
                *p = base.join(&*p).display().to_string();
            }
        };
        for key in PATH_KEYS {
            table.get_mut(key).map(fix);
        }
        for key in PATH_LIST_KEYS {
            if let Some(toml::Value::Array(items)) = table.get_mut(key) {
                items.iter_mut().for_each(fix);
            }
        }
        let dict = figment::value::Value::serialize(&table)
            .ok()
            .and_then(figment::value::Value::into_dict)
            .unwrap_or_default();
        Ok(Layer {
            name: path.display().to_string(),
            dict,
        })
    }

    /// One variable: its text, typed when extracted (figment's lossy reading turns
    /// `true`, `8` into a boolean or a number where the setting is one).
    fn variable(var: &str, key: &str, value: &str) -> Self {
        let mut dict = Dict::new();
        dict.insert(
            key.to_owned(),
            figment::value::Value::from(value.trim().to_owned()),
        );
        Layer {
            name: format!("environment variable {var}"),
            dict,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The settings error of a value a layer could not give its setting's type.
fn layer_error(e: &figment::Error, env: &Environment) -> SettingsError {
    use figment::error::Kind;
    let key = e.path.join(".");
    let source = e.metadata.as_ref().map(|m| m.name.to_string());
    let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
    let from_env = source.as_deref().is_some_and(|n| n.ends_with(&var));
    let origin = if from_env {
        Location::env(&var).to_string()
    } else {
        source.unwrap_or_else(|| "built-in default".to_owned())
    };
    let value = if from_env {
        env.get(&var).unwrap_or_default().trim().to_owned()
    } else {
        String::new()
    };
    let reason = match &e.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            if ["u8", "u16", "u32", "u64", "usize", "i32", "i64"]
                .iter()
                .any(|t| expected.contains(t))
            {
                "not a whole number".to_owned()
            } else if expected.contains("bool") {
                "not a boolean; use true or false".to_owned()
            } else {
                format!("expected {expected}")
            }
        }
        Kind::UnknownVariant(_, allowed) => format!("use one of: {}", allowed.join(", ")),
        other => other.to_string(),
    };
    SettingsError::Invalid {
        origin,
        key,
        value,
        reason,
    }
}

/// A list of paths: a TOML array, or text separated by `:` like `PATH` (an environment variable).
fn path_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Paths {
        List(Vec<PathBuf>),
        Text(String),
    }
    Ok(match Paths::deserialize(d)? {
        Paths::List(v) => v,
        Paths::Text(t) => t
            .split(':')
            .filter(|s| !s.trim().is_empty())
            .map(PathBuf::from)
            .collect(),
    })
}

/// The first `{…}` in `arg` that is not one of the exporter's placeholders.
fn unknown_placeholder(arg: &str) -> Option<String> {
    const KNOWN: [&str; 6] = ["server", "session", "group", "image", "output", "format"];
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if !KNOWN.contains(&name) {
            return Some(format!("{{{name}}}"));
        }
        rest = &after[close + 1..];
    }
    None
}

/// A command: a TOML array of arguments, or text split into shell words (an environment variable).
fn command_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Command {
        List(Vec<String>),
        Text(String),
    }
    match Option::<Command>::deserialize(d)? {
        None => Ok(None),
        Some(Command::List(v)) => Ok(Some(v)),
        Some(Command::Text(t)) => shlex::split(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{t}` is not a list of shell words (an unclosed quote?)"
            ))
        }),
    }
}

/// `$STATE_DIRECTORY` (systemd), else `$XDG_STATE_HOME/biomero-stage`, else `~/.local/state/biomero-stage`.
fn default_state_dir(env: &Environment) -> PathBuf {
    if let Some(d) = env.non_empty("STATE_DIRECTORY") {
        return PathBuf::from(d.split(':').next().unwrap_or(d));
    }
    if let Some(x) = env.non_empty("XDG_STATE_HOME") {
        return Path::new(x).join("biomero-stage");
    }
    match env.home() {
        Some(h) => h.join(".local/state/biomero-stage"),
        None => StageSettings::default().state_dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file_use_a_user_state_dir() {
        let l = StageSettings::load(None, &Environment::from_pairs([("HOME", "/home/u")]));
        let s = l.unwrap().settings;
        if !Path::new(DEFAULT_SETTINGS_FILE).exists() {
            assert_eq!(
                s.state_dir,
                PathBuf::from("/home/u/.local/state/biomero-stage")
            );
            assert_eq!(
                s.queue_url(),
                "sqlite:///home/u/.local/state/biomero-stage/queue.sqlite?mode=rwc"
            );
            assert_eq!(s.ngff_version, NgffVersion::V04);
        }
    }

    #[test]
    fn file_values_relative_paths_and_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("biomero-stage.toml");
        std::fs::write(
            &f,
            "state_dir = \"state\"\nworkers = 4\nngff_version = \"0.5\"\ndescriptor_dirs = [\"descriptors\"]\n",
        )
        .unwrap();
        let env = Environment::from_pairs([
            ("BIOMERO_STAGE_WORKERS", "8"),
            ("BIOMERO_STAGE_DATA_ROOTS", "/data:/mnt/other"),
            ("BIOMERO_STAGE_WROKERS", "1"),
            ("IMPORTER_ENABLED", "true"),
            (
                "INGEST_TRACKING_DB_URL",
                "postgresql+psycopg2://imp@db:5432/biomero",
            ),
            ("BIOMERO_STAGE_IMPORTER_PATH_MAP", "/srv/data=/data"),
            ("BIOMERO_STAGE_IMPORT_TIMEOUT_SECS", "7200"),
        ]);
        let l = StageSettings::load(Some(&f), &env).unwrap();
        assert_eq!(
            l.settings.importer_database_url().as_deref(),
            Some("postgresql://imp@db:5432/biomero")
        );
        assert_eq!(
            l.settings.importer_path_map.as_deref(),
            Some("/srv/data=/data")
        );
        assert_eq!(l.settings.import_timeout_secs, 7200);
        assert!(l.settings.import_only_labels);
        let bad = Environment::from_pairs([("BIOMERO_STAGE_IMPORTER_PATH_MAP", "data=/data")]);
        let e = StageSettings::load(Some(&f), &bad).unwrap_err().to_string();
        assert!(
            e.contains("importer_path_map") && e.contains("absolute"),
            "{e}"
        );
        assert_eq!(l.settings.state_dir, dir.path().join("state"));
        assert_eq!(
            l.settings.descriptor_dirs,
            vec![dir.path().join("descriptors")]
        );
        assert_eq!(l.settings.workers, 8);
        assert_eq!(l.settings.ngff_version, NgffVersion::V05);
        assert_eq!(
            l.settings.data_roots,
            [PathBuf::from("/data"), PathBuf::from("/mnt/other")]
        );
        assert!(l.settings.importer_enabled);
        assert!(
            l.warnings
                .iter()
                .any(|w| w.to_string().contains("BIOMERO_STAGE_WROKERS"))
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_with_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "workers = 2\nqueue_ulr = \"x\"\n").unwrap();
        let e = StageSettings::load(Some(&f), &Environment::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("queue_ulr") && msg.contains("line 2"), "{msg}");
        std::fs::write(&f, "").unwrap();
        let e = StageSettings::load(
            Some(&f),
            &Environment::from_pairs([("BIOMERO_STAGE_NGFF_VERSION", "0.6")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("BIOMERO_STAGE_NGFF_VERSION"), "{e}");
        let e = StageSettings::load(
            Some(&f),
            &Environment::from_pairs([("BIOMERO_STAGE_ADMIN_LISTEN", "localhost")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("BIOMERO_STAGE_ADMIN_LISTEN"), "{e}");
    }

    #[test]
    fn every_limit_is_a_setting_in_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        let defaults = StageSettings::default();
        // every limit of the README's table is a key of the file and of the environment
        for (key, value, min, max, why) in defaults.limit_ranges() {
            assert!(StageSettings::KEYS.contains(&key), "{key}");
            assert!((min..=max).contains(&value), "{key}'s default {value}");
            for bad in [min - 1, max + 1] {
                std::fs::write(&f, format!("{key} = {bad}\n")).unwrap();
                let e = StageSettings::load(Some(&f), &Environment::default())
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains(&format!(
                        "`{key}` = `{bad}`: must be from {min} to {max}: {why}"
                    )),
                    "{e}"
                );
            }
        }
        std::fs::write(&f, "max_tiff_pages = 7\nmax_metadata_bytes = 5000\n").unwrap();
        let l = StageSettings::load(
            Some(&f),
            &Environment::from_pairs([("BIOMERO_STAGE_MAX_TIFF_EXPANSION", "9")]),
        )
        .unwrap();
        // (that a loaded configuration applies them to the process is tested on its own, in
        // tests/read_limits.rs: other tests here load settings at the same time)
        assert_eq!(
            l.settings.read_limits(),
            stage_common::limits::ReadLimits {
                tiff_pages: 7,
                tiff_expansion: 9,
                metadata_bytes: 5000,
            }
        );
    }
}
