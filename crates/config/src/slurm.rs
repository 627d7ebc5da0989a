//! `slurm-config.ini` as a typed value, read exactly as BIOMERO reads it.
//!
//! [`SlurmConfig::load`] reads the files of a [`SearchPlan`], applies the
//! `BIOMERO_*` environment overrides (an environment variable beats the file;
//! an unparsable boolean or integer in the environment falls back to the file's
//! value with a warning, as BIOMERO does), and checks every value. Defaults are
//! BIOMERO's own (`host=slurm`, `slurm_data_path=my-scratch/data`, …).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrors, Warning};
use crate::layered::LayeredIni;
use crate::location::{Located, Location};
use crate::sbatch::SbatchParam;
use crate::search::SearchPlan;
use crate::ui::{self, UiToggles};
use crate::values;
use crate::workflows::{self, WorkflowEntry};

/// `[SSH]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshSettings {
    /// The alias of the cluster in the SSH client configuration.
    pub host: Located<String>,
    /// BIOMERO's `inline_ssh_env` (kept for compatibility; biomero-stage always exports explicitly).
    pub inline_ssh_env: bool,
}

/// `[SLURM]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmSettings {
    /// Where job data goes on the cluster (`<data_path>/biomero_<uuid>/data/{in,out,gt}`).
    pub data_path: Located<String>,
    /// Where workflow containers live (`<images_path>/<k>/<image>_<version>.sif`).
    pub images_path: Located<String>,
    /// Where converter containers live.
    pub converters_path: Located<String>,
    /// Where job scripts live.
    pub script_path: Located<String>,
    /// Exported to jobs as `APPTAINER_BINDPATH`.
    pub data_bind_path: Option<Located<String>>,
    /// Partition for conversion jobs.
    pub conversion_partition: Option<SbatchParam>,
    /// `slurm_default_partition` as a `--partition` parameter.
    pub default_partition: Option<SbatchParam>,
    /// A git repository of job scripts (empty: generated scripts, recommended).
    pub script_repo: Option<Located<String>>,
    /// Absolute sacct history start (`YYYY-MM-DD`).
    pub sacct_start_time: Option<Located<String>>,
    /// Rolling sacct window in days (overrides `sacct_start_time`).
    pub sacct_days_ago: Option<Located<u32>>,
    /// Pass the job environment in a file given as `$1` instead of `--export`.
    pub env_file_submission: Located<bool>,
    /// Let the job script choose `--nv` from `USE_GPU` at submission.
    pub inject_gpu_flag: Located<bool>,
    /// GPU defaults (`--partition`, `--gres` or `--gpus`) for GPU workflows.
    pub gpu_defaults: Vec<SbatchParam>,
    /// Pull container images with sbatch jobs rather than on the login node.
    pub image_pull_via_sbatch: Located<bool>,
    /// sbatch parameters of image-pull jobs (`cpus-per-task`, `mem`, `time`, `partition`).
    pub image_pull_params: Vec<SbatchParam>,
    /// How many image pulls may run at once.
    pub image_pull_concurrency: Located<u32>,
    /// `APPTAINER_TMPDIR` for pulls.
    pub apptainer_tmpdir: Option<Located<String>>,
    /// `APPTAINER_CACHEDIR` for pulls.
    pub apptainer_cachedir: Option<Located<String>>,
    /// BIOMERO's zip command on the cluster (biomero-stage transfers with tar; kept for check-setup).
    pub zip_cmd: Option<Located<String>>,
    /// Global `sbatch_<flag>` parameters.
    pub sbatch: Vec<SbatchParam>,
}

/// `[ANALYTICS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnalyticsSettings {
    /// BIOMERO's event-sourcing switch.
    pub track_workflows: bool,
    /// Database URL of BIOMERO's analytics (`SQLALCHEMY_URL` overrides).
    pub sqlalchemy_url: Option<Located<String>>,
    /// Job accounting listener.
    pub enable_job_accounting: bool,
    /// Job progress listener.
    pub enable_job_progress: bool,
    /// Workflow analytics listener.
    pub enable_workflow_analytics: bool,
    /// Replay cutoff date for analytics rebuilds.
    pub analytics_rebuild_start_time: Option<Located<String>>,
    /// Replay window in days for analytics rebuilds.
    pub analytics_rebuild_days_ago: Option<Located<u32>>,
}

/// One `[CONVERTERS]` entry, `<src>_to_<dst>=<image>:<tag>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Converter {
    /// The key, e.g. `zarr_to_tiff`.
    pub name: String,
    /// Source format (`zarr`).
    pub from: String,
    /// Target format (`tiff`).
    pub to: String,
    /// Container image without tag.
    pub image: String,
    /// The tag (`latest` when none is given).
    pub version: String,
    /// Where it was configured.
    pub at: Location,
}

/// The whole of `slurm-config.ini`, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmConfig {
    /// `[SSH]`.
    pub ssh: SshSettings,
    /// `[SLURM]`.
    pub slurm: SlurmSettings,
    /// `[ANALYTICS]`.
    pub analytics: AnalyticsSettings,
    /// `[CONVERTERS]`.
    pub converters: Vec<Converter>,
    /// `[WORKFLOWS]` + `[MODELS]`, by key.
    pub workflows: BTreeMap<String, WorkflowEntry>,
    /// `[UI]`.
    pub ui: UiToggles,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
    /// Things worth an admin's attention.
    pub warnings: Vec<Warning>,
}

/// Sections BIOMERO knows; others draw a warning.
pub const KNOWN_SECTIONS: [&str; 8] = [
    "SSH",
    "SLURM",
    "ANALYTICS",
    "CONVERTERS",
    "WORKFLOWS",
    "MODELS",
    "UI",
    "changelog",
];

const SSH_KEYS: [&str; 2] = ["host", "inline_ssh_env"];

const SLURM_KEYS: [&str; 26] = [
    "slurm_data_path",
    "slurm_images_path",
    "slurm_converters_path",
    "slurm_script_path",
    "slurm_data_bind_path",
    "slurm_conversion_partition",
    "slurm_default_partition",
    "slurm_script_repo",
    "sacct_start_time",
    "sacct_days_ago",
    "env_file_submission",
    "inject_gpu_flag",
    "gpu_partition",
    "gpu_gres",
    "gpu_gpus",
    "slurm_image_pull_via_sbatch",
    "image_pull_cpus",
    "image_pull_mem",
    "image_pull_time",
    "image_pull_concurrency",
    "image_pull_partition",
    "apptainer_tmpdir",
    "apptainer_cachedir",
    "slurm_zip_cmd",
    // accepted by older BIOMERO releases, harmless
    "slurm_model_path",
    "slurm_model_repo",
];

const ANALYTICS_KEYS: [&str; 7] = [
    "track_workflows",
    "sqlalchemy_url",
    "enable_job_accounting",
    "enable_job_progress",
    "enable_workflow_analytics",
    "analytics_rebuild_start_time",
    "analytics_rebuild_days_ago",
];

/// Environment overrides: (variable, section, key). Earlier variables win over later ones for the same key.
pub const ENV_OVERRIDES: [(&str, &str, &str); 23] = [
    (
        "BIOMERO_DEFAULT_PARTITION",
        "SLURM",
        "slurm_default_partition",
    ),
    ("BIOMERO_GPU_PARTITION", "SLURM", "gpu_partition"),
    ("GPU_PARTITION", "SLURM", "gpu_partition"),
    ("BIOMERO_GPU_GRES", "SLURM", "gpu_gres"),
    ("GPU_GRES", "SLURM", "gpu_gres"),
    ("BIOMERO_GPU_GPUS", "SLURM", "gpu_gpus"),
    ("GPU_GPUS", "SLURM", "gpu_gpus"),
    ("BIOMERO_SACCT_START_TIME", "SLURM", "sacct_start_time"),
    ("BIOMERO_SACCT_START_DAYS_AGO", "SLURM", "sacct_days_ago"),
    (
        "BIOMERO_ENV_FILE_SUBMISSION",
        "SLURM",
        "env_file_submission",
    ),
    ("BIOMERO_INJECT_GPU_FLAG", "SLURM", "inject_gpu_flag"),
    ("BIOMERO_SLURM_ZIP_CMD", "SLURM", "slurm_zip_cmd"),
    (
        "BIOMERO_IMAGE_PULL_VIA_SBATCH",
        "SLURM",
        "slurm_image_pull_via_sbatch",
    ),
    ("BIOMERO_PULL_CPUS", "SLURM", "image_pull_cpus"),
    ("BIOMERO_PULL_MEM", "SLURM", "image_pull_mem"),
    ("BIOMERO_PULL_TIME", "SLURM", "image_pull_time"),
    (
        "BIOMERO_PULL_CONCURRENCY",
        "SLURM",
        "image_pull_concurrency",
    ),
    ("BIOMERO_PULL_PARTITION", "SLURM", "image_pull_partition"),
    ("BIOMERO_APPTAINER_TMPDIR", "SLURM", "apptainer_tmpdir"),
    ("BIOMERO_APPTAINER_CACHEDIR", "SLURM", "apptainer_cachedir"),
    ("SQLALCHEMY_URL", "ANALYTICS", "sqlalchemy_url"),
    (
        "BIOMERO_ANALYTICS_REBUILD_START_TIME",
        "ANALYTICS",
        "analytics_rebuild_start_time",
    ),
    (
        "BIOMERO_ANALYTICS_REBUILD_DAYS_AGO",
        "ANALYTICS",
        "analytics_rebuild_days_ago",
    ),
];

/// Reads typed values out of the merged files plus the environment.
struct Reader<'a> {
    ini: &'a LayeredIni,
    env: &'a Environment,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
}

impl Reader<'_> {
    /// The file's value (interpolated), if present.
    fn file_value(&mut self, section: &str, key: &str) -> Option<Located<Option<String>>> {
        match self.ini.get(section, key)? {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// The environment override for a key, if any (first matching variable wins).
    fn env_value(&self, section: &str, key: &str) -> Option<Located<String>> {
        ENV_OVERRIDES
            .iter()
            .filter(|(_, s, k)| *s == section && *k == key)
            .find_map(|(var, _, _)| {
                self.env
                    .get(var)
                    .map(|v| Located::new(v.to_owned(), Location::env(*var)))
            })
    }

    /// A string, environment first; empty counts as unset.
    fn opt_string(&mut self, section: &str, key: &str) -> Option<Located<String>> {
        if let Some(v) = self.env_value(section, key) {
            return values::non_empty(v.map(Some));
        }
        self.file_value(section, key).and_then(values::non_empty)
    }

    /// A string with a default; present-but-empty is an error.
    fn required_string(&mut self, section: &str, key: &str, default: &str) -> Located<String> {
        let v = self
            .env_value(section, key)
            .map(|v| v.map(Some))
            .or_else(|| self.file_value(section, key));
        match v {
            None => Located::default_value(default.to_owned()),
            Some(v) => {
                let at = v.at.clone();
                match values::non_empty(v) {
                    Some(s) => s,
                    None => {
                        self.errors.push(ConfigError::InvalidValue {
                            at,
                            key: key.to_owned(),
                            value: String::new(),
                            reason: format!(
                                "must not be empty; remove the line to use BIOMERO's default `{default}`"
                            ),
                        });
                        Located::default_value(default.to_owned())
                    }
                }
            }
        }
    }

    /// A boolean: an unparsable environment value warns and falls back to the file.
    fn boolean(&mut self, section: &str, key: &str, default: bool) -> Located<bool> {
        if let Some(v) = self.env_value(section, key) {
            match values::parse_bool(&v.value) {
                Some(b) => return Located::new(b, v.at),
                None => self.warnings.push(Warning::at(
                    v.at.clone(),
                    format!(
                        "`{}` is not a boolean; ignored, the file's value of `{key}` is used",
                        v.value
                    ),
                )),
            }
        }
        match self.file_value(section, key) {
            None => Located::default_value(default),
            Some(v) => {
                let text = v.value.unwrap_or_default();
                if text.trim().is_empty() {
                    return Located::new(default, v.at);
                }
                match values::bool_value(key, &text, &v.at) {
                    Ok(b) => Located::new(b, v.at),
                    Err(e) => {
                        self.errors.push(e);
                        Located::default_value(default)
                    }
                }
            }
        }
    }

    /// An optional whole number, with the same environment fallback rule.
    fn opt_u32(&mut self, section: &str, key: &str) -> Option<Located<u32>> {
        if let Some(v) = self.env_value(section, key)
            && !v.value.trim().is_empty()
        {
            match v.value.trim().parse::<u32>() {
                Ok(n) => return Some(Located::new(n, v.at)),
                Err(_) => self.warnings.push(Warning::at(
                    v.at.clone(),
                    format!(
                        "`{}` is not a whole number; ignored, the file's value of `{key}` is used",
                        v.value
                    ),
                )),
            }
        }
        let v = self.file_value(section, key).and_then(values::non_empty)?;
        match values::u32_value(key, &v.value, &v.at) {
            Ok(n) => Some(Located::new(n, v.at)),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// An optional value that becomes an sbatch parameter (checked like one).
    fn opt_param(&mut self, section: &str, key: &str, flag: &str) -> Option<SbatchParam> {
        let v = self.opt_string(section, key)?;
        match SbatchParam::parse(flag, &v.value, v.at) {
            Ok(p) => Some(p),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// An optional value restricted to characters safe in a remote command.
    fn opt_token(
        &mut self,
        section: &str,
        key: &str,
        allowed: &str,
        what: &str,
    ) -> Option<Located<String>> {
        let v = self.opt_string(section, key)?;
        if v.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || allowed.contains(c))
        {
            Some(v)
        } else {
            self.errors.push(ConfigError::InvalidValue {
                at: v.at,
                key: key.to_owned(),
                value: v.value,
                reason: format!("must be {what}"),
            });
            None
        }
    }

    fn warn_unknown_keys(
        &mut self,
        section: &str,
        known: &[&str],
        extra_ok: impl Fn(&str) -> bool,
    ) {
        let Some(s) = self.ini.section(section) else {
            return;
        };
        for e in &s.entries {
            if !known.contains(&e.key.as_str()) && !extra_ok(&e.key) {
                self.warnings.push(Warning::at(
                    e.at.clone(),
                    format!(
                        "unknown key `{}` in [{section}] is ignored; check its spelling",
                        e.key
                    ),
                ));
            }
        }
    }
}

impl SlurmConfig {
    /// Reads the files of `plan`, applies `env`, and checks everything.
    pub fn load(plan: &SearchPlan, env: &Environment) -> Result<Self, ConfigErrors> {
        let ini = plan.read()?;
        Self::from_layered(&ini, env)
    }

    /// Builds the typed configuration from already merged files.
    pub fn from_layered(ini: &LayeredIni, env: &Environment) -> Result<Self, ConfigErrors> {
        let mut r = Reader {
            ini,
            env,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for s in &ini.sections {
            if !KNOWN_SECTIONS.contains(&s.name.as_str()) {
                let hint = KNOWN_SECTIONS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&s.name))
                    .map(|k| format!(" (section names are case-sensitive: did you mean [{k}]?)"))
                    .unwrap_or_default();
                r.warnings.push(Warning::at(
                    s.at.clone(),
                    format!("unknown section [{}] is ignored{hint}", s.name),
                ));
            }
        }
        r.warn_unknown_keys("SSH", &SSH_KEYS, |_| false);
        r.warn_unknown_keys("SLURM", &SLURM_KEYS, |k| k.starts_with("sbatch_"));
        r.warn_unknown_keys("ANALYTICS", &ANALYTICS_KEYS, |_| false);

        let ssh = read_ssh(&mut r);
        let slurm = read_slurm(&mut r);
        let analytics = AnalyticsSettings {
            track_workflows: r.boolean("ANALYTICS", "track_workflows", true).value,
            sqlalchemy_url: r.opt_string("ANALYTICS", "sqlalchemy_url"),
            enable_job_accounting: r.boolean("ANALYTICS", "enable_job_accounting", true).value,
            enable_job_progress: r.boolean("ANALYTICS", "enable_job_progress", true).value,
            enable_workflow_analytics: r
                .boolean("ANALYTICS", "enable_workflow_analytics", true)
                .value,
            analytics_rebuild_start_time: r.opt_token(
                "ANALYTICS",
                "analytics_rebuild_start_time",
                "-",
                "a date, YYYY-MM-DD",
            ),
            analytics_rebuild_days_ago: r.opt_u32("ANALYTICS", "analytics_rebuild_days_ago"),
        };
        let converters = read_converters(&mut r);
        let mut errors = std::mem::take(&mut r.errors);
        let mut warnings = std::mem::take(&mut r.warnings);
        let workflows = workflows::read(ini, &mut errors, &mut warnings);
        if ini.section("WORKFLOWS").is_none() && ini.section("MODELS").is_none() {
            warnings.push(Warning::general(
                "no [WORKFLOWS] (or legacy [MODELS]) section: no workflow can run; add one per workflow (k, k_repo, k_job)",
            ));
        }
        let ui = ui::read(ini, &mut errors);
        if errors.is_empty() {
            Ok(SlurmConfig {
                ssh,
                slurm,
                analytics,
                converters,
                workflows,
                ui,
                files: ini.files.clone(),
                warnings,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn read_ssh(r: &mut Reader<'_>) -> SshSettings {
    let host = match r.file_value("SSH", "host") {
        None => Located::default_value("slurm".to_owned()),
        Some(v) => {
            let at = v.at.clone();
            values::non_empty(v).unwrap_or_else(|| {
                r.errors.push(ConfigError::EmptySshHost { at: at.clone() });
                Located::new(String::new(), at)
            })
        }
    };
    if !host.value.is_empty()
        && !host
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        r.errors.push(ConfigError::InvalidValue {
            at: host.at.clone(),
            key: "host".into(),
            value: host.value.clone(),
            reason: "an SSH alias holds only letters, digits, '.', '_', '-' and '@'".into(),
        });
    }
    let inline_ssh_env = r.boolean("SSH", "inline_ssh_env", true).value;
    SshSettings {
        host,
        inline_ssh_env,
    }
}

fn read_slurm(r: &mut Reader<'_>) -> SlurmSettings {
    let s = "SLURM";
    let mut gpu_defaults: Vec<SbatchParam> = Vec::new();
    gpu_defaults.extend(r.opt_param(s, "gpu_partition", "partition"));
    let gres = r.opt_param(s, "gpu_gres", "gres");
    let gpus = r.opt_param(s, "gpu_gpus", "gpus");
    if let (Some(g), Some(p)) = (&gres, &gpus) {
        r.errors.push(ConfigError::GpuGresAndGpus {
            gres_at: g.at.clone(),
            gpus_at: p.at.clone(),
        });
    }
    gpu_defaults.extend(gres);
    gpu_defaults.extend(gpus);
    let mut image_pull_params = Vec::new();
    image_pull_params.extend(r.opt_param(s, "image_pull_cpus", "cpus-per-task"));
    image_pull_params.extend(r.opt_param(s, "image_pull_mem", "mem"));
    image_pull_params.extend(r.opt_param(s, "image_pull_time", "time"));
    image_pull_params.extend(r.opt_param(s, "image_pull_partition", "partition"));
    let mut sbatch = Vec::new();
    if let Some(section) = r.ini.section(s) {
        for e in &section.entries {
            let Some(flag) = e.key.strip_prefix("sbatch_") else {
                continue;
            };
            match section.interpolated(e) {
                Ok(v) => {
                    let text = v.value.unwrap_or_default();
                    if text.trim().is_empty() {
                        continue; // BIOMERO skips empty globals
                    }
                    match SbatchParam::parse(flag, &text, v.at) {
                        Ok(p) => {
                            r.warnings
                                .extend(crate::sbatch::unknown_flag_warning(&e.key, &p));
                            sbatch.push(p);
                        }
                        Err(e) => r.errors.push(e),
                    }
                }
                Err(e) => r.errors.push(e),
            }
        }
    }
    SlurmSettings {
        data_path: r.required_string(s, "slurm_data_path", "my-scratch/data"),
        images_path: r.required_string(
            s,
            "slurm_images_path",
            "my-scratch/singularity_images/workflows",
        ),
        converters_path: r.required_string(
            s,
            "slurm_converters_path",
            "my-scratch/singularity_images/converters",
        ),
        script_path: r.required_string(s, "slurm_script_path", "slurm-scripts"),
        data_bind_path: r.opt_string(s, "slurm_data_bind_path"),
        conversion_partition: r.opt_param(s, "slurm_conversion_partition", "partition"),
        default_partition: r.opt_param(s, "slurm_default_partition", "partition"),
        script_repo: r.opt_string(s, "slurm_script_repo"),
        sacct_start_time: r.opt_token(s, "sacct_start_time", "-T:", "a date, YYYY-MM-DD"),
        sacct_days_ago: r.opt_u32(s, "sacct_days_ago"),
        env_file_submission: r.boolean(s, "env_file_submission", false),
        inject_gpu_flag: r.boolean(s, "inject_gpu_flag", false),
        gpu_defaults,
        image_pull_via_sbatch: r.boolean(s, "slurm_image_pull_via_sbatch", false),
        image_pull_params,
        image_pull_concurrency: r
            .opt_u32(s, "image_pull_concurrency")
            .unwrap_or_else(|| Located::default_value(1)),
        apptainer_tmpdir: r.opt_string(s, "apptainer_tmpdir"),
        apptainer_cachedir: r.opt_string(s, "apptainer_cachedir"),
        zip_cmd: r.opt_token(
            s,
            "slurm_zip_cmd",
            "._/-",
            "a command name such as 7z, 7za or zip",
        ),
        sbatch,
    }
}

fn read_converters(r: &mut Reader<'_>) -> Vec<Converter> {
    let Some(section) = r.ini.section("CONVERTERS") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in &section.entries {
        let v = match section.interpolated(e) {
            Ok(v) => v,
            Err(err) => {
                r.errors.push(err);
                continue;
            }
        };
        let Some(image) = values::non_empty(v) else {
            continue;
        };
        let Some((from, to)) = e.key.split_once("_to_") else {
            r.warnings.push(Warning::at(
                e.at.clone(),
                format!(
                    "converter `{}` is not named <from>_to_<to> (e.g. zarr_to_tiff); ignored",
                    e.key
                ),
            ));
            continue;
        };
        let (name, version) = split_image_tag(&image.value);
        out.push(Converter {
            name: e.key.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            image: name.to_owned(),
            version: version.unwrap_or("latest").to_owned(),
            at: image.at,
        });
    }
    out
}

/// Splits `org/name:tag` into `org/name` and `tag` (a registry port is not a tag).
pub fn split_image_tag(image: &str) -> (&str, Option<&str>) {
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], Some(&image[i + 1..])),
        _ => (image, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini::parse;
    use std::path::Path;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<SlurmConfig, ConfigErrors> {
        let ini = LayeredIni::merge(vec![parse(Path::new("/c.ini"), text.as_bytes()).unwrap()]);
        SlurmConfig::from_layered(&ini, &Environment::from_pairs(env.iter().copied()))
    }

    #[test]
    fn biomero_defaults_apply_to_a_minimal_file() {
        let c = load("[WORKFLOWS]\n", &[]).unwrap();
        assert_eq!(c.ssh.host.value, "slurm");
        assert_eq!(c.slurm.data_path.value, "my-scratch/data");
        assert_eq!(c.slurm.script_path.value, "slurm-scripts");
        assert!(!c.slurm.env_file_submission.value);
        assert!(c.analytics.track_workflows);
        assert_eq!(c.slurm.image_pull_concurrency.value, 1);
    }

    #[test]
    fn environment_overrides_win_and_name_their_variable() {
        let c = load(
            "[SLURM]\nslurm_default_partition=cpu\ngpu_gres=gpu:1\n[WORKFLOWS]\n",
            &[
                ("BIOMERO_DEFAULT_PARTITION", "short"),
                ("GPU_GRES", "gpu:legacy"),
                ("BIOMERO_GPU_GRES", "gpu:2"),
                ("BIOMERO_INJECT_GPU_FLAG", "yes"),
                ("BIOMERO_SACCT_START_DAYS_AGO", "7"),
            ],
        )
        .unwrap();
        let dp = c.slurm.default_partition.unwrap();
        assert_eq!(dp.value, "short");
        assert_eq!(dp.at, Location::env("BIOMERO_DEFAULT_PARTITION"));
        assert_eq!(c.slurm.gpu_defaults[0].value, "gpu:2");
        assert!(c.slurm.inject_gpu_flag.value);
        assert_eq!(c.slurm.sacct_days_ago.unwrap().value, 7);
    }

    #[test]
    fn an_unparsable_environment_boolean_falls_back_to_the_file_with_a_warning() {
        let c = load(
            "[SLURM]\nenv_file_submission=true\n[WORKFLOWS]\n",
            &[("BIOMERO_ENV_FILE_SUBMISSION", "perhaps")],
        )
        .unwrap();
        assert!(c.slurm.env_file_submission.value);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.to_string().contains("BIOMERO_ENV_FILE_SUBMISSION"))
        );
    }

    #[test]
    fn gpu_gres_and_gpus_together_is_an_error_naming_both() {
        let e = load("[SLURM]\ngpu_gres=gpu:1\ngpu_gpus=1\n", &[]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/c.ini:2") && msg.contains("/c.ini:3"),
            "{msg}"
        );
        // also when one comes from the environment
        let e = load("[SLURM]\ngpu_gres=gpu:1\n", &[("BIOMERO_GPU_GPUS", "2")]).unwrap_err();
        assert!(e.to_string().contains("BIOMERO_GPU_GPUS"));
    }

    #[test]
    fn empty_ssh_host_is_an_error() {
        let e = load("[SSH]\nhost =\n", &[]).unwrap_err();
        assert!(matches!(e.0[0], ConfigError::EmptySshHost { .. }));
    }

    #[test]
    fn global_sbatch_and_converters_are_typed() {
        let c = load(
            "[SLURM]\nsbatch_mem=8GB\nsbatch_time=01:00:00\nsbatch_account=\n\
             [CONVERTERS]\nzarr_to_tiff=cellularimagingcf/convert_zarr_to_tiff:2.0.0\nbogus=x\n",
            &[],
        )
        .unwrap();
        let args: Vec<String> = c.slurm.sbatch.iter().map(SbatchParam::to_arg).collect();
        assert_eq!(args, ["--mem=8GB", "--time=01:00:00"]);
        assert_eq!(
            c.converters[0].image,
            "cellularimagingcf/convert_zarr_to_tiff"
        );
        assert_eq!(c.converters[0].version, "2.0.0");
        assert!(c.warnings.iter().any(|w| w.message.contains("bogus")));
    }

    #[test]
    fn unknown_sections_warn_with_a_case_hint() {
        let c = load("[slurm]\nx=1\n[changelog]\n# edited\n[WORKFLOWS]\n", &[]).unwrap();
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("did you mean [SLURM]"), "{w:?}");
    }

    #[test]
    fn registry_ports_are_not_tags() {
        assert_eq!(
            split_image_tag("reg:5000/org/img"),
            ("reg:5000/org/img", None)
        );
        assert_eq!(
            split_image_tag("reg:5000/org/img:1.0"),
            ("reg:5000/org/img", Some("1.0"))
        );
    }
}
