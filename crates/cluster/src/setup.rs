//! `init` and `check-setup`: what BIOMERO's "Slurm Init" and "Slurm Check
//! Setup" scripts do.
//!
//! `init` creates the cluster folders (data, scripts, images and one image
//! folder per workflow), writes the generated job scripts of workflows that
//! have none, and optionally starts a container pull for each workflow whose
//! image version is missing (as an sbatch job, or in the background when
//! `image_pull_via_sbatch` is off), each appending to the pull log.
//! `check-setup` reports, in one remote command: the folders (present,
//! writable), per workflow the container versions present under
//! `<images>/<k>/` (`<image>_<version>.sif`) and whether the configured one
//! is among them, the job scripts, the converters and the pull log's tail.

use serde::Serialize;

use crate::error::Result;
use crate::layout::{Layout, check_path};
use crate::ssh::Remote;

/// What `init` and `check-setup` need to know about one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowSetup {
    /// The workflow key.
    pub key: String,
    /// Its folder under `slurm_images_path`.
    pub folder: String,
    /// The configured version.
    pub version: String,
    /// The container image (`owner/name`), when the descriptor names one.
    pub image: Option<String>,
    /// The job script, relative to `slurm_script_path`.
    pub job_script: String,
    /// The script `init` writes, for workflows whose job script is generated.
    #[serde(skip)]
    pub generated_script: Option<String>,
}

impl WorkflowSetup {
    /// The image's name without owner and tag (`w_cellpose`); the folder when unknown.
    pub fn image_name(&self) -> String {
        self.image
            .as_deref()
            .map(|i| {
                let last = i.rsplit('/').next().unwrap_or(i);
                last.split(':').next().unwrap_or(last).to_owned()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.folder.clone())
    }

    /// `<image>_<version>.sif` (`SINGULARITY_IMAGE`).
    pub fn sif(&self) -> String {
        sif_name(&self.image_name(), &self.version)
    }
}

/// `<image>_<version>.sif`.
pub fn sif_name(image: &str, version: &str) -> String {
    format!("{image}_{version}.sif")
}

/// A converter image to look for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConverterSetup {
    /// `<src>_to_<dst>`.
    pub name: String,
    /// The image (`owner/name`).
    pub image: String,
    /// Its version.
    pub version: String,
}

/// A folder on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderCheck {
    /// What it is for (`slurm_data_path`, …).
    pub role: String,
    /// The path.
    pub path: String,
    /// It exists.
    pub exists: bool,
    /// The Slurm user can write into it.
    pub writable: bool,
}

/// One workflow as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowCheck {
    /// The workflow key.
    pub key: String,
    /// The configured version.
    pub version: String,
    /// The container file it needs.
    pub sif: String,
    /// The versions present under its image folder.
    pub available: Vec<String>,
    /// The configured version is present.
    pub image_ready: bool,
    /// The job script.
    pub job_script: String,
    /// The job script is present.
    pub script_ready: bool,
}

/// A converter as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConverterCheck {
    /// `<src>_to_<dst>`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The container file.
    pub sif: String,
    /// Present under `slurm_converters_path`.
    pub present: bool,
}

/// What `check-setup` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    /// The SSH alias.
    pub host: String,
    /// The folders.
    pub folders: Vec<FolderCheck>,
    /// The workflows, by key.
    pub workflows: Vec<WorkflowCheck>,
    /// Keys of workflows that cannot run yet (image or script missing).
    pub pending: Vec<String>,
    /// The converters (biomero-stage converts on this host; listed for BIOMERO parity).
    pub converters: Vec<ConverterCheck>,
    /// The last lines of the container pull log.
    pub pull_log: Vec<String>,
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct InitReport {
    /// Folders made sure of.
    pub folders: Vec<String>,
    /// Job scripts written.
    pub scripts: Vec<String>,
    /// Container pulls started: workflow key and what started it (a job id or `background`).
    pub pulls: Vec<(String, String)>,
}

/// How `init --pull` fetches images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// Submit each pull as an sbatch job (else run it in the background).
    pub via_sbatch: bool,
    /// sbatch options for pull jobs.
    pub sbatch_args: Vec<String>,
}

/// The pull log (every pull appends to it).
pub fn pull_log(layout: &Layout) -> String {
    format!("{}/biomero-stage-pull.log", layout.images_path)
}

const CHECK: &str = r#"
for d in "$1" "$2" "$3" "$4"; do
  e=0; w=0
  [ -d "$d" ] && e=1
  [ -w "$d" ] && w=1
  printf 'DIR\t%s\t%s\t%s\n' "$d" "$e" "$w"
done
[ -d "$3" ] && find "$3" -mindepth 2 -maxdepth 2 -name '*.sif' -exec printf 'SIF\t%s\n' {} +
[ -d "$4" ] && find "$4" -mindepth 1 -maxdepth 2 -name '*.sif' -exec printf 'CONV\t%s\n' {} +
[ -f "$5" ] && tail -n 20 "$5" | sed 's/^/LOG\t/'
shift 5
for s in "$@"; do [ -f "$s" ] && printf 'SCRIPT\t%s\n' "$s"; done
exit 0
"#;

const WRITE: &str = r#"mkdir -p -- "$(dirname -- "$1")" && cat > "$1.part" && chmod 755 "$1.part" && mv -f -- "$1.part" "$1""#;

const PULL: &str = r#"#!/bin/sh
# Container pull started by `biomero-stage init --pull`: $1 folder, $2 file, $3 source, $4 log.
exec >> "$4" 2>&1
echo "$(date '+%F %T') pulling $3 into $1/$2"
mkdir -p -- "$1" && cd -- "$1" || exit 1
if command -v apptainer > /dev/null 2>&1; then tool=apptainer
elif command -v singularity > /dev/null 2>&1; then tool=singularity
else module load singularity > /dev/null 2>&1; tool=singularity; fi
if "$tool" pull --name "$2.part" "$3" && mv -f -- "$2.part" "$2"; then
  echo "$(date '+%F %T') pulled $1/$2"
else
  rm -f -- "$2.part"
  echo "$(date '+%F %T') FAILED to pull $3"
  exit 1
fi
"#;

const BACKGROUND: &str = r#"nohup sh "$@" < /dev/null > /dev/null 2>&1 & echo background"#;

/// Writes `body` to `path` on the cluster (atomically, executable).
pub async fn write_file(r: &Remote, path: &str, body: &[u8]) -> Result<()> {
    check_path("remote file", path)?;
    let args = vec!["-c".into(), WRITE.into(), "sh".into(), path.to_owned()];
    let o = r.output_with_stdin("sh", &args, Some(body)).await?;
    r.checked("write", &[path.to_owned()], &o).map(|_| ())
}

/// `init`: folders, generated job scripts and (with `pull`) container pulls for missing versions.
pub async fn init(
    r: &Remote,
    layout: &Layout,
    workflows: &[WorkflowSetup],
    pull: Option<&PullOptions>,
) -> Result<InitReport> {
    let mut report = InitReport::default();
    let mut folders = vec![
        layout.data_path.clone(),
        layout.script_path.clone(),
        layout.images_path.clone(),
        layout.converters_path.clone(),
    ];
    for w in workflows {
        check_path("workflow folder", &w.folder)?;
        folders.push(layout.image_dir(&w.folder));
    }
    let mut args = vec!["-p".to_owned(), "--".to_owned()];
    args.extend(folders.iter().cloned());
    r.run("mkdir", &args).await?;
    report.folders = folders;
    for w in workflows {
        if let Some(body) = &w.generated_script {
            let path = layout.script(&w.job_script);
            write_file(r, &path, body.as_bytes()).await?;
            report.scripts.push(path);
        }
    }
    if let Some(p) = pull {
        let state = check(r, layout, workflows, &[]).await?;
        let script = layout.script("biomero-stage-pull.sh");
        write_file(r, &script, PULL.as_bytes()).await?;
        for (w, c) in workflows.iter().zip(&state.workflows) {
            if c.image_ready {
                continue;
            }
            let Some(image) = &w.image else {
                tracing::warn!(workflow = %w.key, "no container image known (no descriptor); not pulled");
                continue;
            };
            let tag = if w.version == "latest" {
                "latest"
            } else {
                w.version.trim_start_matches('v')
            };
            let source = format!("docker://{image}:{tag}");
            let pos = vec![
                layout.image_dir(&w.folder),
                w.sif(),
                source,
                pull_log(layout),
            ];
            let started = if p.via_sbatch {
                let mut a = vec![
                    "--parsable".to_owned(),
                    format!("--job-name=biomero-pull-{}", w.folder),
                    "--output=/dev/null".to_owned(),
                ];
                a.extend(p.sbatch_args.iter().cloned());
                a.push(script.clone());
                a.extend(pos);
                let out = r.run("sbatch", &a).await?;
                out.trim().to_owned()
            } else {
                let mut a = vec![
                    "-c".to_owned(),
                    BACKGROUND.to_owned(),
                    "sh".to_owned(),
                    script.clone(),
                ];
                a.extend(pos);
                r.run("sh", &a).await?.trim().to_owned()
            };
            report.pulls.push((w.key.clone(), started));
        }
    }
    Ok(report)
}

/// The version in `file` (`<image>_<version>.sif`).
fn version_of(file: &str, image: &str) -> String {
    let stem = file.strip_suffix(".sif").unwrap_or(file);
    stem.strip_prefix(&format!("{image}_"))
        .map(str::to_owned)
        .or_else(|| stem.rsplit_once('_').map(|(_, v)| v.to_owned()))
        .unwrap_or_else(|| stem.to_owned())
}

/// `check-setup`: one remote command, then a report.
pub async fn check(
    r: &Remote,
    layout: &Layout,
    workflows: &[WorkflowSetup],
    converters: &[ConverterSetup],
) -> Result<SetupReport> {
    let roles = [
        ("slurm_data_path", &layout.data_path),
        ("slurm_script_path", &layout.script_path),
        ("slurm_images_path", &layout.images_path),
        ("slurm_converters_path", &layout.converters_path),
    ];
    let mut args: Vec<String> = roles.iter().map(|(_, p)| (*p).clone()).collect();
    args.push(pull_log(layout));
    args.extend(workflows.iter().map(|w| layout.script(&w.job_script)));
    let out = r.script(CHECK, &args).await?;
    let mut folders = Vec::new();
    let mut sifs: Vec<String> = Vec::new();
    let mut convs: Vec<String> = Vec::new();
    let mut scripts: Vec<String> = Vec::new();
    let mut pull_log_lines = Vec::new();
    for line in out.lines() {
        let mut f = line.splitn(2, '\t');
        let (Some(tag), Some(rest)) = (f.next(), f.next()) else {
            continue;
        };
        match tag {
            "DIR" => {
                let v: Vec<&str> = rest.rsplitn(3, '\t').collect();
                if let ([w, e, path], Some((role, _))) = (v.as_slice(), roles.get(folders.len())) {
                    folders.push(FolderCheck {
                        role: (*role).to_owned(),
                        path: (*path).to_owned(),
                        exists: *e == "1",
                        writable: *w == "1",
                    });
                }
            }
            "SIF" => sifs.push(rest.to_owned()),
            "CONV" => convs.push(rest.to_owned()),
            "SCRIPT" => scripts.push(rest.to_owned()),
            "LOG" => pull_log_lines.push(rest.to_owned()),
            _ => {}
        }
    }
    let mut checks = Vec::new();
    let mut pending = Vec::new();
    for w in workflows {
        let dir = format!("{}/", layout.image_dir(&w.folder));
        let image = w.image_name();
        let mut available: Vec<String> = sifs
            .iter()
            .filter_map(|s| s.strip_prefix(&dir))
            .filter(|f| !f.contains('/'))
            .map(|f| version_of(f, &image))
            .collect();
        available.sort();
        available.dedup();
        let sif = w.sif();
        let image_ready = sifs.iter().any(|s| *s == format!("{dir}{sif}"));
        let script_ready = scripts.contains(&layout.script(&w.job_script));
        if !(image_ready && script_ready) {
            pending.push(w.key.clone());
        }
        checks.push(WorkflowCheck {
            key: w.key.clone(),
            version: w.version.clone(),
            sif,
            available,
            image_ready,
            job_script: w.job_script.clone(),
            script_ready,
        });
    }
    let converters = converters
        .iter()
        .map(|c| {
            let name = c.image.rsplit('/').next().unwrap_or(&c.image);
            let sif = sif_name(name, &c.version);
            ConverterCheck {
                name: c.name.clone(),
                version: c.version.clone(),
                present: convs.iter().any(|f| f.ends_with(&format!("/{sif}"))),
                sif,
            }
        })
        .collect();
    Ok(SetupReport {
        host: r.host().to_owned(),
        folders,
        workflows: checks,
        pending,
        converters,
        pull_log: pull_log_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(image: Option<&str>) -> WorkflowSetup {
        WorkflowSetup {
            key: "cellpose".into(),
            folder: "cellpose".into(),
            version: "v1.2.7".into(),
            image: image.map(str::to_owned),
            job_script: "jobs/cellpose.sh".into(),
            generated_script: None,
        }
    }

    #[test]
    fn container_file_names() {
        assert_eq!(
            wf(Some("cellularimagingcf/w_cellpose:v1.2.7")).sif(),
            "w_cellpose_v1.2.7.sif"
        );
        assert_eq!(wf(None).sif(), "cellpose_v1.2.7.sif");
        assert_eq!(version_of("w_cellpose_v1.2.7.sif", "w_cellpose"), "v1.2.7");
        assert_eq!(version_of("other_2.0.sif", "w_cellpose"), "2.0");
    }
}
