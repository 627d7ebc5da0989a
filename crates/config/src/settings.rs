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

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::error::Warning;
use crate::location::Location;
use crate::values;

/// Environment variable prefix of the settings.
pub const ENV_PREFIX: &str = "BIOMERO_STAGE_";

/// The settings file used when none is named and it exists.
pub const DEFAULT_SETTINGS_FILE: &str = "/etc/biomero-stage/biomero-stage.toml";

/// NGFF version of the OME-Zarr that biomero-stage writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NgffVersion {
    /// NGFF 0.4 on Zarr v2: what OMERO's zarr pixel buffer and OMEZarrReader read.
    #[serde(rename = "0.4")]
    #[default]
    V04,
    /// NGFF 0.5 on Zarr v3.
    #[serde(rename = "0.5")]
    V05,
}

impl fmt::Display for NgffVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NgffVersion::V04 => "0.4",
            NgffVersion::V05 => "0.5",
        })
    }
}

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

/// biomero-stage's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageSettings {
    /// Where the daemon keeps its state (queue database, descriptor cache, staging).
    pub state_dir: PathBuf,
    /// Queue database URL (`sqlite://…` or `postgres://…`); default: a SQLite file in `state_dir`.
    pub queue_url: Option<String>,
    /// Admin HTTP listen address.
    pub admin_listen: String,
    /// Bearer token for mutating admin calls.
    pub admin_token: Option<String>,
    /// A file holding the bearer token (preferred over `admin_token`).
    pub admin_token_file: Option<PathBuf>,
    /// Roots of the shared storage that inputs and results may live in.
    pub data_roots: Vec<PathBuf>,
    /// biomero-config.json with the group folder mappings (default: `$OMERO_BIOMERO_CONFIG_FILE`).
    pub group_mappings_file: Option<PathBuf>,
    /// The BIOMERO.importer integration (IMPORTER_ENABLED); the Zarr modes need it.
    pub importer_enabled: bool,
    /// PostgreSQL URL of BIOMERO.importer's database (default: `$INGEST_TRACKING_DB_URL`).
    pub importer_database_url: Option<String>,
    /// NGFF version of staged OME-Zarr inputs.
    pub ngff_version: NgffVersion,
    /// Stop at `uploaded` and publish the remote path (BIOMERO submits the job).
    pub prep_only: bool,
    /// Number of pipeline workers.
    pub workers: u32,
    /// An explicit slurm-config.ini read after BIOMERO's default locations.
    pub slurm_config: Option<PathBuf>,
    /// Read-only directories of shipped descriptors (`<host>/<owner>/<repo>/<tag>/<file>`).
    pub descriptor_dirs: Vec<PathBuf>,
    /// Descriptor cache directory (default `<state_dir>/descriptors`).
    pub descriptor_cache: Option<PathBuf>,
    /// Whether descriptors may be fetched from their repositories.
    pub descriptor_fetch: bool,
    /// Timeout of one descriptor request, in seconds.
    pub descriptor_timeout_secs: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Where inputs are staged before upload (default `<state_dir>/staging`).
    pub staging_dir: Option<PathBuf>,
    /// OMERO.web base URL (the JSON API is `<omero_url>/api/v0/`); unset: no OMERO source.
    pub omero_url: Option<String>,
    /// The OMERO server id to log in to (OMERO.web's `servers/` list).
    pub omero_server_id: u32,
    /// The OMERO account biomero-stage reads with.
    pub omero_user: Option<String>,
    /// Its password (prefer `omero_password_file` or `BIOMERO_STAGE_OMERO_PASSWORD`).
    pub omero_password: Option<Secret>,
    /// A file holding the password (mode 600).
    pub omero_password_file: Option<PathBuf>,
    /// omero-ms-pixel-buffer base URL (`<url>/tile/{image}/{z}/{c}/{t}`); unset: only on-disk Zarr.
    pub pixel_buffer_url: Option<String>,
    /// Tile requests in flight per image.
    pub omero_concurrency: u32,
    /// Timeout of one OMERO request, in seconds.
    pub omero_timeout_secs: u64,
    /// Tile edge in pixels for pixel-buffer requests.
    pub omero_tile_size: u32,
    /// An ssh config file to use instead of `~/.ssh/config` (the `[SSH] host` alias is looked up there).
    pub ssh_config_file: Option<PathBuf>,
    /// How long to wait for the SSH connection, in seconds.
    pub ssh_connect_timeout_secs: u64,
    /// Where this host mounts `slurm_data_path`, when it does: transfers become local copies.
    pub local_data_path: Option<PathBuf>,
    /// How often running jobs are polled (one query for all of them), in seconds.
    pub follow_poll_secs: u64,
    /// Whether the cluster keeps job accounting (`sacct`); off: `squeue`/`scontrol` only.
    pub slurm_accounting: bool,
    /// What runs jobs: `slurm` (sbatch over SSH) or `local` (the job script on this host,
    /// `slurm_data_path` and `slurm_script_path` being local folders).
    pub executor: Executor,
    /// Keep `biomero_<id>` and the job log on the cluster after the results are imported.
    pub keep_remote_data: bool,
    /// The import mount holding the group folders: results are kept at
    /// `<results_dir>/<group folder>/.analyzed/<submission>/<YYYYMMDD_HHMMSS>/`
    /// (default: the first data root).
    pub results_dir: Option<PathBuf>,
    /// `FROM=TO`: this daemon's mount of the results, then BIOMERO.importer's
    /// (`/srv/omero-data=/data`); unset when both see the same paths.
    pub importer_path_map: Option<String>,
    /// Hand results to BIOMERO.importer; off: results are kept and the submission ends
    /// after `collect` (trials, the demo, sites that import by hand).
    pub import_results: bool,
    /// Order only the label images of results that have them (BIOMERO's `Import_Only_Labels`).
    pub import_only_labels: bool,
    /// The NGFF version the site's OMERO reads; returned 0.5 Zarrs are re-encoded to 0.4 by default.
    pub omero_ngff_version: NgffVersion,
    /// Largest output of one job, in bytes; larger outputs are refused.
    pub max_output_bytes: u64,
    /// Most files in the output of one job.
    pub max_output_files: u64,
    /// How long an importer order may take before the submission fails, in seconds.
    pub import_timeout_secs: u64,
    /// How often importer orders are looked at at first, in seconds (then less often as an
    /// import takes longer, at most once a minute).
    pub import_poll_secs: u64,
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

impl Default for StageSettings {
    fn default() -> Self {
        StageSettings {
            state_dir: PathBuf::from("/var/lib/biomero-stage"),
            queue_url: None,
            admin_listen: "127.0.0.1:8950".to_owned(),
            admin_token: None,
            admin_token_file: None,
            data_roots: vec![PathBuf::from("/data")],
            group_mappings_file: None,
            importer_enabled: false,
            importer_database_url: None,
            ngff_version: NgffVersion::V04,
            prep_only: false,
            workers: 2,
            slurm_config: None,
            descriptor_dirs: Vec::new(),
            descriptor_cache: None,
            descriptor_fetch: true,
            descriptor_timeout_secs: 10,
            log_format: LogFormat::Text,
            staging_dir: None,
            omero_url: None,
            omero_server_id: 1,
            omero_user: None,
            omero_password: None,
            omero_password_file: None,
            pixel_buffer_url: None,
            omero_concurrency: 8,
            omero_timeout_secs: 60,
            omero_tile_size: 1024,
            ssh_config_file: None,
            ssh_connect_timeout_secs: 15,
            local_data_path: None,
            follow_poll_secs: 10,
            slurm_accounting: true,
            executor: Executor::Slurm,
            keep_remote_data: false,
            results_dir: None,
            importer_path_map: None,
            import_results: true,
            import_only_labels: true,
            omero_ngff_version: NgffVersion::V04,
            max_output_bytes: 1 << 40,
            max_output_files: 2_000_000,
            import_timeout_secs: 3600,
            import_poll_secs: 5,
        }
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
    /// Reads `file` (or the default file when it exists), then applies `BIOMERO_STAGE_*`.
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
        let mut settings = match &chosen {
            Some(path) => Self::from_file(path)?,
            None => StageSettings {
                state_dir: default_state_dir(env),
                ..StageSettings::default()
            },
        };
        let mut warnings = Vec::new();
        let mut overridden = Vec::new();
        for (var, value) in env.with_prefix(ENV_PREFIX) {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key == "config" {
                continue;
            }
            match settings.apply_env(&key, value, var) {
                Ok(true) => overridden.push(var.to_owned()),
                Ok(false) => warnings.push(Warning::at(
                    Location::env(var),
                    format!("unknown setting `{key}`; ignored (check the spelling of {var})"),
                )),
                Err(e) => return Err(e),
            }
        }
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

    /// Reads a settings file; relative paths become relative to its directory.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut s: StageSettings = toml::from_str(&text).map_err(|e| SettingsError::Toml {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n    "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut s.state_dir);
        s.data_roots.iter_mut().for_each(fix);
        s.descriptor_dirs.iter_mut().for_each(fix);
        for p in [
            &mut s.admin_token_file,
            &mut s.group_mappings_file,
            &mut s.slurm_config,
            &mut s.descriptor_cache,
            &mut s.staging_dir,
            &mut s.omero_password_file,
            &mut s.ssh_config_file,
            &mut s.local_data_path,
            &mut s.results_dir,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        Ok(s)
    }

    /// Applies one `BIOMERO_STAGE_<KEY>` variable; `Ok(false)` for an unknown key.
    fn apply_env(&mut self, key: &str, value: &str, var: &str) -> Result<bool, SettingsError> {
        let invalid = |reason: &str| SettingsError::Invalid {
            origin: Location::env(var).to_string(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        let opt_path = |v: &str| opt(v).map(PathBuf::from);
        let paths = |v: &str| -> Vec<PathBuf> {
            v.split(':')
                .filter(|s| !s.trim().is_empty())
                .map(PathBuf::from)
                .collect()
        };
        let boolean = |v: &str| {
            values::parse_bool(v).ok_or_else(|| invalid("not a boolean; use true or false"))
        };
        match key {
            "state_dir" => self.state_dir = PathBuf::from(value),
            "queue_url" => self.queue_url = opt(value),
            "admin_listen" => self.admin_listen = value.trim().to_owned(),
            "admin_token" => self.admin_token = opt(value),
            "admin_token_file" => self.admin_token_file = opt_path(value),
            "data_roots" => self.data_roots = paths(value),
            "group_mappings_file" => self.group_mappings_file = opt_path(value),
            "importer_enabled" => self.importer_enabled = boolean(value)?,
            "importer_database_url" => self.importer_database_url = opt(value),
            "ngff_version" => {
                self.ngff_version = match value.trim() {
                    "0.4" => NgffVersion::V04,
                    "0.5" => NgffVersion::V05,
                    _ => return Err(invalid("use 0.4 (what OMERO reads) or 0.5")),
                }
            }
            "prep_only" => self.prep_only = boolean(value)?,
            "workers" => {
                self.workers = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number"))?;
            }
            "slurm_config" => self.slurm_config = opt_path(value),
            "descriptor_dirs" => self.descriptor_dirs = paths(value),
            "descriptor_cache" => self.descriptor_cache = opt_path(value),
            "descriptor_fetch" => self.descriptor_fetch = boolean(value)?,
            "descriptor_timeout_secs" => {
                self.descriptor_timeout_secs = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds"))?;
            }
            "staging_dir" => self.staging_dir = opt_path(value),
            "omero_url" => self.omero_url = opt(value),
            "omero_server_id" => {
                self.omero_server_id = value.trim().parse().map_err(|_| {
                    invalid("not a whole number (the id in OMERO.web's servers/ list)")
                })?;
            }
            "omero_user" => self.omero_user = opt(value),
            "omero_password" => self.omero_password = opt(value).map(Secret),
            "omero_password_file" => self.omero_password_file = opt_path(value),
            "pixel_buffer_url" => self.pixel_buffer_url = opt(value),
            "omero_concurrency" => {
                self.omero_concurrency = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number"))?;
            }
            "omero_timeout_secs" => {
                self.omero_timeout_secs = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds"))?;
            }
            "omero_tile_size" => {
                self.omero_tile_size = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number of pixels"))?;
            }
            "ssh_config_file" => self.ssh_config_file = opt_path(value),
            "ssh_connect_timeout_secs" => {
                self.ssh_connect_timeout_secs = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds"))?;
            }
            "local_data_path" => self.local_data_path = opt_path(value),
            "follow_poll_secs" => {
                self.follow_poll_secs = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds"))?;
            }
            "slurm_accounting" => self.slurm_accounting = boolean(value)?,
            "keep_remote_data" => self.keep_remote_data = boolean(value)?,
            "executor" => {
                self.executor = match value.trim() {
                    "slurm" => Executor::Slurm,
                    "local" => Executor::Local,
                    _ => return Err(invalid("use slurm (sbatch over SSH) or local (this host)")),
                }
            }
            "import_results" => self.import_results = boolean(value)?,
            "results_dir" => self.results_dir = opt_path(value),
            "importer_path_map" => self.importer_path_map = opt(value),
            "import_only_labels" => self.import_only_labels = boolean(value)?,
            "omero_ngff_version" => {
                self.omero_ngff_version = match value.trim() {
                    "0.4" => NgffVersion::V04,
                    "0.5" => NgffVersion::V05,
                    _ => return Err(invalid("use 0.4 (OMERO's Zarr readers today) or 0.5")),
                }
            }
            "max_output_bytes"
            | "max_output_files"
            | "import_timeout_secs"
            | "import_poll_secs" => {
                let n: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("not a whole number"))?;
                match key {
                    "max_output_bytes" => self.max_output_bytes = n,
                    "max_output_files" => self.max_output_files = n,
                    "import_timeout_secs" => self.import_timeout_secs = n,
                    _ => self.import_poll_secs = n,
                }
            }
            "log_format" => {
                self.log_format = match value.trim() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid("use text or json")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
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
                url.clone(),
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
        for (key, v) in [
            ("max_output_bytes", self.max_output_bytes),
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
                url.clone(),
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
            Some(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_owned()).filter(|t| !t.is_empty()))
                .map_err(|e| SettingsError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            None => Ok(self.admin_token.clone()),
        }
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
}
