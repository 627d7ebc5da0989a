//! The demo's site: everything `biomero-stage demo` needs in one folder — sample
//! data in the `demo` group's folder, BIOMERO's `slurm-config.ini` with three
//! threshold workflows (one per input mode), `biomero-stage.toml` on the
//! embedded default (SQLite queue, local executor, a local folder as the Slurm
//! data path) and one submission file per mode.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;
use stage_sample::{SampleManifest, SampleSpec, write_samples};

/// The demo's job script, with `@BIOMERO_STAGE_BIN@` to fill in.
const JOB_SCRIPT: &str = include_str!("../../../config/demo/threshold.sh");
/// The BIAFLOWS descriptor of the TIFF workflow.
const DESCRIPTOR: &str = include_str!("../../../config/demo/descriptor.json");
/// The biomero-0.1 descriptor of the Zarr workflows.
const DESCRIPTOR_ZARR: &str = include_str!("../../../config/demo/descriptor-zarr.json");
/// The workflows' repositories (their descriptors are the pinned copies above).
const REPOS: [(&str, &str); 2] = [
    ("W_Threshold", DESCRIPTOR),
    ("W_ThresholdZarr", DESCRIPTOR_ZARR),
];

/// The demo's workflows: (input mode, workflow key, repository).
pub const WORKFLOWS: [(&str, &str, &str); 3] = [
    ("tiff", "threshold", "W_Threshold"),
    ("zarr", "threshold_zarr", "W_ThresholdZarr"),
    ("zarr-plate", "threshold_plate", "W_ThresholdZarr"),
];

/// A written demo site.
#[derive(Debug)]
pub struct Site {
    /// The demo folder (absolute).
    pub dir: PathBuf,
    /// `biomero-stage.toml`.
    pub settings: PathBuf,
    /// `slurm-config.ini`.
    pub slurm_config: PathBuf,
    /// The sample data folder.
    pub sample: PathBuf,
    /// What the sample holds.
    pub manifest: SampleManifest,
    /// The daemon's admin port.
    pub port: u16,
}

/// POSIX single quotes around `s`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes (or refreshes) the site in `dir`; the sample data is written once.
pub fn write_site(dir: &Path, exe: &Path, port: u16) -> anyhow::Result<Site> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let d = dir.display();
    let sample = dir.join("data/demo/sample");
    let manifest_file = sample.join("MANIFEST.json");
    let manifest: SampleManifest = match std::fs::read(&manifest_file) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{}: remove the folder to start over",
                manifest_file.display()
            )
        })?,
        Err(_) => {
            let _ = std::fs::remove_dir_all(&sample);
            write_samples(
                &sample,
                &SampleSpec {
                    rows: 1,
                    columns: 2,
                    fields: 2,
                    size: 256,
                    images: 2,
                    ..SampleSpec::default()
                },
            )?
        }
    };
    // the "cluster": BIOMERO's folders, as local folders
    let scripts = dir.join("cluster/scripts");
    let script = scripts.join("threshold.sh");
    write(
        &script,
        &JOB_SCRIPT.replace("@BIOMERO_STAGE_BIN@", &quote(&exe.display().to_string())),
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", script.display()))?;
    for f in ["data", "images", "converters"] {
        std::fs::create_dir_all(dir.join("cluster").join(f))?;
    }
    for (repo, descriptor) in REPOS {
        write(
            &dir.join(format!(
                "descriptors/github.com/biomero-stage/{repo}/v1.0.0/descriptor.json"
            )),
            descriptor,
        )?;
    }
    let mut workflows = String::new();
    for (_, k, repo) in WORKFLOWS {
        let _ = writeln!(
            workflows,
            "{k} = {k}\n{k}_repo = https://github.com/biomero-stage/{repo}/tree/v1.0.0\n{k}_job = threshold.sh"
        );
    }
    let slurm_config = dir.join("slurm-config.ini");
    write(
        &slurm_config,
        &format!(
            "# BIOMERO's slurm-config.ini for the demo: the \"cluster\" is the local folder cluster/.\n\
             [SSH]\nhost = localhost\n\n[SLURM]\nslurm_data_path = {d}/cluster/data\n\
             slurm_images_path = {d}/cluster/images\nslurm_converters_path = {d}/cluster/converters\n\
             slurm_script_path = {d}/cluster/scripts\n\n[WORKFLOWS]\n{workflows}\n\
             [UI]\nzarr_workflows = [\"threshold_zarr\"]\nplate_workflows = [\"threshold_plate\"]\n"
        ),
    )?;
    write(
        &dir.join("biomero-config.json"),
        r#"{"group_mappings": {"1": {"folder": "demo", "groupName": "demo"}}}"#,
    )?;
    let settings = dir.join("biomero-stage.toml");
    write(
        &settings,
        &format!(
            "# biomero-stage on the embedded default: a SQLite queue, the local executor, no importer.\n\
             state_dir = \"{d}/state\"\nadmin_listen = \"127.0.0.1:{port}\"\nslurm_config = \"{d}/slurm-config.ini\"\n\
             descriptor_dirs = [\"{d}/descriptors\"]\ndescriptor_fetch = false\n\
             data_roots = [\"{d}/data\"]\ngroup_mappings_file = \"{d}/biomero-config.json\"\n\
             executor = \"local\"\nfollow_poll_secs = 1\nworkers = 2\n\
             # the Zarr modes need the importer integration on; results are kept, not imported\n\
             importer_enabled = true\nimport_results = false\n"
        ),
    )?;
    Ok(Site {
        dir,
        settings,
        slurm_config,
        sample,
        manifest,
        port,
    })
}

/// The submission of `workflow` (input mode `mode`) under `id`, as a JSON document.
pub fn submission(site: &Site, id: &str, mode: &str, workflow: &str) -> serde_json::Value {
    let inputs: Vec<String> = if mode == "zarr-plate" {
        vec![site.sample.join(&site.manifest.plate).display().to_string()]
    } else {
        site.manifest
            .images
            .iter()
            .filter(|i| !i.path.starts_with(&site.manifest.plate))
            .map(|i| site.sample.join(&i.path).display().to_string())
            .collect()
    };
    json!({
        "version": 1,
        "id": id,
        "workflow": workflow,
        "inputs": {"paths": inputs},
        "parameters": {"min_size": 20},
        "user": {"name": "demo", "group": "demo"},
    })
}
