//! The `[WORKFLOWS]` (legacy `[MODELS]`) section: one entry per workflow.
//!
//! Each workflow `k` is spread over several keys: `k=<container folder>`,
//! `k_repo=<GitHub tree URL>`, `k_job=<job script>`, `k_job_<flag>=<value>`
//! (sbatch parameters) and `k_use_gpu=true`. BIOMERO classifies keys by suffix
//! (`_repo`, `_job`, `_job_<flag>`, `_use_gpu`; anything else names a
//! workflow), and so does this module. Both section names are read and merged;
//! a key in `[WORKFLOWS]` wins over the same key in `[MODELS]`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{ConfigError, Warning};
use crate::layered::LayeredIni;
use crate::location::{Located, Location};
use crate::sbatch::SbatchParam;
use crate::values;

/// Everything `slurm-config.ini` says about one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowEntry {
    /// The workflow key (lower case, as configparser gives it).
    pub key: String,
    /// The first line that mentions the workflow.
    pub at: Location,
    /// `k=`: the folder under `slurm_images_path` holding its container.
    pub folder: Option<Located<String>>,
    /// `k_repo=`: the GitHub tree URL (with version tag) or a direct descriptor URL.
    pub repo: Option<Located<String>>,
    /// `k_job=`: the job script under `slurm_script_path`.
    pub job: Option<Located<String>>,
    /// `k_job_<flag>=`: per-workflow sbatch parameters.
    pub job_params: Vec<SbatchParam>,
    /// `k_use_gpu=`: whether the workflow runs on a GPU by default.
    pub use_gpu: Option<Located<bool>>,
}

impl WorkflowEntry {
    fn new(key: &str, at: Location) -> Self {
        WorkflowEntry {
            key: key.to_owned(),
            at,
            folder: None,
            repo: None,
            job: None,
            job_params: Vec::new(),
            use_gpu: None,
        }
    }

    /// The container folder: `k=` or, when absent, the key itself.
    pub fn folder_name(&self) -> &str {
        self.folder.as_ref().map_or(&self.key, |f| &f.value)
    }

    /// The workflow version: the tag after `/tree/` in the repo URL, `master` → `latest`.
    pub fn version(&self) -> String {
        self.repo
            .as_ref()
            .map_or_else(|| "latest".to_owned(), |r| version_from_repo(&r.value))
    }

    /// Whether the workflow uses a GPU (`k_use_gpu`, default false).
    pub fn uses_gpu(&self) -> bool {
        self.use_gpu.as_ref().is_some_and(|g| g.value)
    }
}

/// The version named by a repository URL, as BIOMERO derives it.
pub fn version_from_repo(url: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').split('/').collect();
    match parts.iter().position(|p| *p == "tree") {
        Some(i) => match parts.get(i + 1) {
            Some(&"master") | None => "latest".to_owned(),
            Some(tag) => (*tag).to_owned(),
        },
        None => "latest".to_owned(),
    }
}

/// What a key of the workflows section says.
enum KeyRole<'a> {
    Folder(&'a str),
    Repo(&'a str),
    Job(&'a str),
    JobParam(&'a str, &'a str),
    UseGpu(&'a str),
}

fn classify(key: &str) -> KeyRole<'_> {
    if let Some(k) = key.strip_suffix("_repo") {
        KeyRole::Repo(k)
    } else if let Some(k) = key.strip_suffix("_use_gpu") {
        KeyRole::UseGpu(k)
    } else if let Some(k) = key.strip_suffix("_job") {
        KeyRole::Job(k)
    } else if let Some(i) = key.rfind("_job_") {
        KeyRole::JobParam(&key[..i], &key[i + 5..])
    } else {
        KeyRole::Folder(key)
    }
}

fn check_workflow_key(key: &str, at: &Location) -> Result<(), ConfigError> {
    let reason = if key.is_empty() {
        Some("is empty".to_owned())
    } else if key.starts_with('.') {
        // the key names folders (images, results); `.`, `..` and hidden names would escape or hide
        Some("starts with `.`".to_owned())
    } else {
        key.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map(|c| {
                if c.is_whitespace() {
                    "contains a space".to_owned()
                } else {
                    format!("contains `{c}`")
                }
            })
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidWorkflowKey {
            at: at.clone(),
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Reads `[WORKFLOWS]` and `[MODELS]` into entries keyed by workflow.
pub fn read(
    ini: &LayeredIni,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, WorkflowEntry> {
    // [MODELS] first so that [WORKFLOWS] overrides it key by key.
    let mut merged: Vec<(String, Located<Option<String>>)> = Vec::new();
    for name in ["MODELS", "WORKFLOWS"] {
        let Some(section) = ini.section(name) else {
            continue;
        };
        for entry in &section.entries {
            let value = match section.interpolated(entry) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match merged.iter_mut().find(|(k, _)| *k == entry.key) {
                Some(slot) => slot.1 = value,
                None => merged.push((entry.key.clone(), value)),
            }
        }
    }
    if ini.section("MODELS").is_some() && ini.section("WORKFLOWS").is_some() {
        warnings.push(Warning::general(
            "both [WORKFLOWS] and the legacy [MODELS] are present; their entries are merged, [WORKFLOWS] winning on the same key",
        ));
    }

    let mut out: BTreeMap<String, WorkflowEntry> = BTreeMap::new();
    for (key, value) in merged {
        let at = value.at.clone();
        let role = classify(&key);
        let name = match role {
            KeyRole::Folder(k)
            | KeyRole::Repo(k)
            | KeyRole::Job(k)
            | KeyRole::JobParam(k, _)
            | KeyRole::UseGpu(k) => k,
        };
        if let Err(e) = check_workflow_key(name, &at) {
            errors.push(e);
            continue;
        }
        let entry = out
            .entry(name.to_owned())
            .or_insert_with(|| WorkflowEntry::new(name, at.clone()));
        let text = value.value.clone().unwrap_or_default();
        match role {
            KeyRole::Folder(_) => {
                if text.trim().is_empty() {
                    warnings.push(
                        Warning::at(
                            at.clone(),
                            format!(
                                "`{key}` has no folder; the container folder defaults to `{name}`"
                            ),
                        )
                        .for_workflow(name),
                    );
                } else if let Err(e) = values::confined_relative(&key, text.trim(), &at) {
                    errors.push(e);
                } else {
                    entry.folder = Some(Located::new(text.trim().to_owned(), at));
                }
            }
            KeyRole::Repo(_) => entry.repo = values::non_empty(value),
            KeyRole::Job(_) => match values::non_empty(value) {
                Some(job) => match values::confined_relative(&key, &job.value, &job.at) {
                    Ok(()) => entry.job = Some(job),
                    Err(e) => errors.push(e),
                },
                None => entry.job = None,
            },
            KeyRole::JobParam(_, flag) => match SbatchParam::parse(flag, &text, at) {
                Ok(p) => {
                    warnings.extend(
                        crate::sbatch::unknown_flag_warning(&key, &p)
                            .map(|w| w.for_workflow(&entry.key)),
                    );
                    entry.job_params.push(p);
                }
                Err(e) => errors.push(e),
            },
            KeyRole::UseGpu(_) => match values::bool_value(&key, &text, &at) {
                Ok(b) => entry.use_gpu = Some(Located::new(b, at)),
                Err(e) => errors.push(e),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini::parse;
    use std::path::Path;

    fn read_str(
        text: &str,
    ) -> (
        BTreeMap<String, WorkflowEntry>,
        Vec<ConfigError>,
        Vec<Warning>,
    ) {
        let ini = LayeredIni::merge(vec![parse(Path::new("/c.ini"), text.as_bytes()).unwrap()]);
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let wf = read(&ini, &mut e, &mut w);
        (wf, e, w)
    }

    #[test]
    fn keys_are_grouped_by_workflow() {
        let (wf, e, _) = read_str(
            "[WORKFLOWS]\ncellpose=cellpose\ncellpose_repo=https://github.com/T/W_Cellpose/tree/v1.4.0\n\
             cellpose_job=jobs/cellpose.sh\ncellpose_job_gres=gpu:1g.10gb:1\ncellpose_job_mem=15GB\n\
             cellpose_use_gpu=true\n",
        );
        assert!(e.is_empty(), "{e:?}");
        let c = &wf["cellpose"];
        assert_eq!(c.folder_name(), "cellpose");
        assert_eq!(c.version(), "v1.4.0");
        assert_eq!(c.job.as_ref().unwrap().value, "jobs/cellpose.sh");
        let args: Vec<String> = c.job_params.iter().map(SbatchParam::to_arg).collect();
        assert_eq!(args, ["--gres=gpu:1g.10gb:1", "--mem=15GB"]);
        assert!(c.uses_gpu());
    }

    #[test]
    fn models_and_workflows_merge_with_workflows_winning() {
        let (wf, _, w) = read_str(
            "[MODELS]\nstardist=stardist\nstardist_repo=https://github.com/N/S/tree/v1.3.2\n\
             [WORKFLOWS]\nstardist_repo=https://github.com/N/S/tree/v1.4.0\nother=other\n",
        );
        assert_eq!(wf["stardist"].version(), "v1.4.0");
        assert!(wf.contains_key("other"));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn version_rules_follow_biomero() {
        assert_eq!(
            version_from_repo("https://github.com/a/b/tree/master"),
            "latest"
        );
        assert_eq!(version_from_repo("https://github.com/a/b"), "latest");
        assert_eq!(
            version_from_repo("https://github.com/a/b/tree/v0.2.5/config.yaml"),
            "v0.2.5"
        );
    }

    #[test]
    fn a_workflow_key_with_spaces_is_refused() {
        let (_, e, _) = read_str("[WORKFLOWS]\nmy workflow = x\n");
        assert_eq!(e.len(), 1);
        let msg = e[0].to_string();
        assert!(
            msg.contains("/c.ini:2") && msg.contains("contains a space"),
            "{msg}"
        );
    }

    #[test]
    fn bad_per_workflow_sbatch_values_name_the_line() {
        let (_, e, _) = read_str("[WORKFLOWS]\nc=c\nc_job_partition=gpu;reboot\n");
        assert!(e[0].to_string().contains("/c.ini:3"), "{}", e[0]);
    }
}
