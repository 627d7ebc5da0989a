//! A test site on the local cluster: a test folder in the Slurm user's home
//! with job scripts (copy, fail, slow, empty), a `slurm-config.ini` with their
//! workflows (`pcopy` is a Zarr plate workflow), a descriptor, sample data in
//! Lab A's group folder, `biomero-stage.toml`, and helpers to start the daemon
//! and read a submission's state and history.

// test fixtures: a failure here means the test machine is broken, and the panic says where
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cluster::{Lab, lab};
use crate::{Daemon, command, free_port, http_post, text};

/// A workflow script: copies data/in to data/out, records its environment and the label value.
const COPY: &str = r#"#!/bin/bash
#SBATCH --time=00:05:00
set -eo pipefail
if [ -n "${1:-}" ]; then . "$1"; fi
echo "copy job starting 10%"
env | grep -E '^(DATA_PATH|IMAGE_PATH|IMAGE_VERSION|SINGULARITY_IMAGE|SCRIPT_PATH|APPTAINER_BINDPATH|THRESHOLD|INVERT)=' | sort > "$DATA_PATH/data/out/job-env.txt"
cp -r "$DATA_PATH"/data/in/. "$DATA_PATH/data/out/"
printf '%s' "$LABEL" > "$DATA_PATH/data/out/label.txt"
echo "copy job done 100%"
"#;

/// Fails with exit code 3 and a message on stderr.
const FAIL: &str = "#!/bin/bash\necho 'loading model: no such model cyto9' >&2\nexit 3\n";
/// Runs for ten minutes.
const SLOW: &str = "#!/bin/bash\necho 'working 5%'\nsleep 600\n";
/// Succeeds and writes nothing.
const EMPTY: &str = "#!/bin/bash\necho 'nothing to do'\nexit 0\n";

/// The BIAFLOWS descriptor of every test workflow.
const DESCRIPTOR: &str = r#"{
  "name": "Copy", "description": "copies its inputs", "schema-version": "cytomine-0.1",
  "container-image": {"image": "test-lab/w_copy", "type": "singularity"},
  "inputs": [
    {"id": "label", "value-key": "@ID", "command-line-flag": "--@id", "name": "Label", "type": "String", "optional": true, "default-value": "none"},
    {"id": "threshold", "value-key": "@ID", "command-line-flag": "--@id", "name": "Threshold", "type": "Number", "optional": true, "default-value": 0.5},
    {"id": "invert", "value-key": "@ID", "command-line-flag": "--@id", "name": "Invert", "type": "Boolean", "optional": true, "default-value": false}
  ]
}"#;

/// A test site (removed with its temporary folder).
pub struct Site {
    /// The site's local folder (settings, data, state).
    pub dir: tempfile::TempDir,
    /// The local cluster.
    pub lab: Lab,
    /// The test's folder on the cluster, relative to the Slurm user's home.
    pub rel: String,
    /// The same folder, absolute.
    pub abs: PathBuf,
    /// `biomero-stage.toml`.
    pub settings: PathBuf,
    /// The admin port.
    pub port: u16,
    /// A sample image in Lab A's group folder.
    pub image: PathBuf,
}

/// A site named `name` (its cluster folder `<home>/<name>-<random>`), with extra
/// `[SLURM]` lines and extra settings.
pub fn site(name: &str, slurm_extra: &str, settings_extra: &str) -> Site {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let (rel, abs) = lab.folder(name);
    let scripts = abs.join("scripts");
    lab.script(&scripts, "copy.sh", COPY);
    lab.script(&scripts, "fail.sh", FAIL);
    lab.script(&scripts, "slow.sh", SLOW);
    lab.script(&scripts, "empty.sh", EMPTY);
    let repo = "https://github.com/test-lab/W_Copy/tree/v1.0.0";
    let wf = |k: &str, job: &str, extra: &str| {
        format!("{k} = {k}\n{k}_repo = {repo}\n{k}_job = {job}\n{extra}")
    };
    let ini = format!(
        "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = {rel}/data\nslurm_images_path = {rel}/images\nslurm_converters_path = {rel}/converters\nslurm_script_path = {rel}/scripts\nslurm_data_bind_path = /data/bind\n{slurm_extra}\n[WORKFLOWS]\n{}{}{}{}{}{}{}",
        wf("copy", "copy.sh", ""),
        wf("fail", "fail.sh", ""),
        wf("slow", "slow.sh", ""),
        wf("timeout", "slow.sh", "timeout_job_time = 00:01:00\n"),
        wf("empty", "empty.sh", ""),
        wf(
            "badpart",
            "copy.sh",
            "badpart_job_partition = no-such-partition\n"
        ),
        "gen = gen\ngen_repo = https://github.com/test-lab/W_Copy/tree/v1.0.0\n",
    ) + &wf("pcopy", "copy.sh", "")
        + "[UI]\nplate_workflows = [\"pcopy\"]\n";
    std::fs::write(dir.path().join("slurm-config.ini"), ini).unwrap();
    let descriptors = dir.path().join("descriptors");
    let d = descriptors.join("github.com/test-lab/W_Copy/v1.0.0");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("descriptor.json"), DESCRIPTOR).unwrap();
    // inputs on the shared storage, in Lab A's group folder
    let data = dir.path().join("data");
    let sample = data.join("lab-a/sample");
    write_sample(dir.path(), &sample, 64, 2, 1);
    let mappings = dir.path().join("biomero-config.json");
    std::fs::write(
        &mappings,
        r#"{"group_mappings": {"5": {"folder": "lab-a", "groupName": "Lab A"}}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("admin-token"), "test-token\n").unwrap();
    let port = free_port();
    let settings = dir.path().join("biomero-stage.toml");
    std::fs::write(
        &settings,
        format!(
            "state_dir = \"{d}/state\"\nqueue_url = \"sqlite://{d}/queue.sqlite?mode=rwc\"\nadmin_listen = \"127.0.0.1:{port}\"\nadmin_token_file = \"{d}/admin-token\"\nimporter_enabled = true\nslurm_config = \"{d}/slurm-config.ini\"\ndescriptor_dirs = [\"{d}/descriptors\"]\ndescriptor_fetch = false\nworkers = 2\ndata_roots = [\"{d}/data\"]\ngroup_mappings_file = \"{d}/biomero-config.json\"\nssh_config_file = \"{ssh}\"\nfollow_poll_secs = 1\n{settings_extra}\n",
            d = dir.path().display(),
            ssh = lab.ssh_config.display(),
        ),
    )
    .unwrap();
    Site {
        image: sample.join("images/image_00.ome.zarr"),
        dir,
        lab,
        rel,
        abs,
        settings,
        port,
    }
}

/// Writes sample data at `out` with `biomero-stage sample`: a 1-row plate of `columns`
/// wells (two fields each) and `images` single images, all `size`² pixels.
pub fn write_sample(home: &Path, out: &Path, size: u32, images: u32, columns: u32) {
    let o = command(home)
        .arg("sample")
        .arg("--out")
        .arg(out)
        .args(["--size", &size.to_string(), "--images", &images.to_string()])
        .args(["--rows", "1", "--columns", &columns.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
}

/// Starts the daemon of `s` (fast polling and retries) with extra arguments.
pub fn start(s: &Site, args: &[&str]) -> Daemon {
    let mut all = vec!["--poll-ms", "200", "--retry-ms", "300"];
    all.extend_from_slice(args);
    Daemon::start(
        s.dir.path(),
        &s.settings,
        s.port,
        &all,
        &[(
            "BIOMERO_SLURM_CONFIG_FILE",
            &s.dir.path().join("slurm-config.ini").display().to_string(),
        )],
    )
}

/// Submits `image` to `workflow` as alice of Lab A.
pub fn submit(
    d: &Daemon,
    id: &str,
    workflow: &str,
    image: &Path,
    parameters: Value,
    options: Value,
) {
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": id, "workflow": workflow,
            "inputs": {"paths": [image.display().to_string()]},
            "parameters": parameters,
            "user": {"name": "alice", "group": "Lab A"},
            "options": options,
        }),
    );
    assert_eq!(r["created"], true, "{r}");
}

/// Submits the site's sample image to `workflow` as `user` of Lab A, results to Dataset 3.
pub fn submit_as(s: &Site, d: &Daemon, id: &str, workflow: &str, user: &str) {
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": id, "workflow": workflow,
            "inputs": {"paths": [s.image.display().to_string()]},
            "user": {"name": user, "group": "Lab A"},
            "results": {"type": "Dataset", "id": 3},
        }),
    );
    assert_eq!(r["created"], true, "{r}");
}

/// A submission's state in an API answer.
pub fn state(v: &Value) -> &str {
    v["submission"]["state"].as_str().unwrap_or_default()
}

/// A submission's history as `step:outcome`.
pub fn outcomes(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}:{}",
                        e["step"].as_str().unwrap(),
                        e["outcome"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Points the site's daemon at the PostgreSQL queue `url` instead of its SQLite file.
pub fn use_queue(s: &Site, url: &str) {
    let text = std::fs::read_to_string(&s.settings).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("queue_url"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &s.settings,
        text.replace(&line, &format!("queue_url = \"{url}\"")),
    )
    .unwrap();
}

/// Submits the site's sample plate to the `pcopy` plate workflow as alice of Lab A,
/// with results to Screen `screen`.
pub fn submit_plate(s: &Site, d: &Daemon, id: &str, screen: i64) {
    let plate = s.dir.path().join("data/lab-a/sample/plate.ome.zarr");
    let r = http_post(
        &d.base,
        "/api/v1/submissions",
        &json!({
            "version": 1, "id": id, "workflow": "pcopy",
            "inputs": {"paths": [plate.display().to_string()]},
            "user": {"name": "alice", "group": "Lab A"},
            "results": {"type": "Screen", "id": screen},
        }),
    );
    assert_eq!(r["created"], true, "{r}");
}

/// Asserts that exactly one Slurm job was started for each of `ids` since `since`.
pub fn assert_one_job_each(s: &Site, since: &str, ids: &[String]) {
    // slurmdbd records a job a few seconds after it ran: wait until each has one
    let started = std::time::Instant::now();
    let count = |names: &str, id: &str| {
        names
            .lines()
            .filter(|l| l.contains(&format!("-{id}-")))
            .count()
    };
    let mut names = job_names_since(s, since);
    while ids.iter().any(|id| count(&names, id) == 0)
        && started.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(500));
        names = job_names_since(s, since);
    }
    for id in ids {
        let n = count(&names, id);
        assert_eq!(n, 1, "{id}: {n} jobs\n{names}");
    }
}

/// The Slurm job names started on the cluster since `since` (the cluster's clock).
fn job_names_since(s: &Site, since: &str) -> String {
    let jobs = s
        .lab
        .ssh(&["sacct", "-n", "-X", "-a", "-o", "JobName%120", "-S", since]);
    String::from_utf8_lossy(&jobs.stdout).into_owned()
}

/// The cluster's clock now, as sacct's `-S` takes it.
pub fn cluster_now(s: &Site) -> String {
    String::from_utf8_lossy(&s.lab.ssh(&["date", "+%Y-%m-%dT%H:%M:%S"]).stdout)
        .trim()
        .to_owned()
}

/// Asserts that every pipeline step of submission `id` succeeded exactly once.
pub fn assert_each_step_once(id: &str, v: &Value) {
    let ev = outcomes(v);
    for step in [
        "plan", "stage", "upload", "submit", "follow", "collect", "import",
    ] {
        let n = ev
            .iter()
            .filter(|e| **e == format!("{step}:succeeded"))
            .count();
        assert_eq!(n, 1, "{id}: {step} succeeded {n} times: {ev:?}");
    }
}
