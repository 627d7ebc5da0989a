//! `biomero-stage config check` and `workflows` on real files: the shipped
//! example, BIOMERO's search order and precedence, and every bad input of the
//! foundation issue — each refused with one clear message, none panicking.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use stage_tests::{command, repo_root, text, write_settings};

fn check_json(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, Value, String) {
    let out = command(home)
        .args(args)
        .args(["config", "check", "--json"])
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_ne!(code, 101, "biomero-stage panicked: {stderr}");
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, v, stderr)
}

fn workflow<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["key"] == key)
        .unwrap_or_else(|| panic!("no workflow {key} in {report}"))
}

/// Runs `config check` on one slurm-config.ini given as bytes (authoritative file).
fn check_ini(bytes: &[u8], importer: bool) -> (i32, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(&ini, bytes).unwrap();
    let settings = write_settings(dir.path(), importer);
    let (code, v, _) = check_json(
        dir.path(),
        &["--config", settings.to_str().unwrap()],
        &[("BIOMERO_SLURM_CONFIG_FILE", ini.to_str().unwrap())],
    );
    (code, v, dir)
}

fn errors(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn config_check_on_the_shipped_example_prints_the_right_modes() {
    let home = tempfile::tempdir().unwrap();
    let example = repo_root().join("config/biomero-stage.toml");
    let state = home.path().join("state");
    let (code, v, stderr) = check_json(
        home.path(),
        &["--config", example.to_str().unwrap()],
        &[
            ("BIOMERO_STAGE_DESCRIPTOR_FETCH", "false"),
            ("BIOMERO_STAGE_STATE_DIR", state.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["warnings"].as_array().unwrap().len(),
        0,
        "{}",
        v["warnings"]
    );
    let modes: Vec<(String, String)> = v["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["key"].as_str().unwrap().into(),
                w["mode"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("cellexpansion", "tiff"),
        ("cellpose", "tiff"),
        ("deconvolve", "zarr-plate"),
        ("plate-threshold", "zarr-plate"),
        ("spotcounting", "tiff"),
        ("stardist", "tiff"),
        ("zarr-cellpose", "zarr"),
    ];
    assert_eq!(
        modes,
        expect.map(|(k, m)| (k.to_owned(), m.to_owned())).to_vec()
    );
    let deconvolve = workflow(&v, "deconvolve");
    assert_eq!(
        deconvolve["image_mode"], "zarr",
        "dual mode takes images as Zarr"
    );
    assert_eq!(workflow(&v, "plate-threshold")["image_mode"], Value::Null);
    assert_eq!(workflow(&v, "zarr-cellpose")["plate_mode"], Value::Null);
    let cellpose = workflow(&v, "cellpose");
    assert_eq!(cellpose["version"], "v1.4.0");
    assert_eq!(
        cellpose["sbatch"],
        serde_json::json!([
            "--mem=15GB",
            "--time=02:00:00",
            "--partition=gpu-short",
            "--gres=gpu:1g.10gb:1",
            "--mail-type=FAIL"
        ])
    );
    assert_eq!(workflow(&v, "cellexpansion")["job_script_generated"], true);
    assert_eq!(
        workflow(&v, "stardist")["sbatch"][0],
        "--partition=cpu-long"
    );
    assert_eq!(
        workflow(&v, "spotcounting")["descriptor"]["parameters"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // the human table names every workflow and its mode
    let out = command(home.path())
        .args(["--config", example.to_str().unwrap(), "config", "check"])
        .env("BIOMERO_STAGE_DESCRIPTOR_FETCH", "false")
        .env("BIOMERO_STAGE_STATE_DIR", state.to_str().unwrap())
        .output()
        .unwrap();
    let (code, stdout, _) = text(&out);
    assert_eq!(code, 0);
    for (k, m) in expect {
        assert!(
            stdout.lines().any(|l| l.contains(k) && l.contains(m)),
            "{k} {m} in\n{stdout}"
        );
    }
    assert!(stdout.contains("No warnings."));
}

#[test]
fn without_the_importer_the_example_stages_tiff_and_says_which_toggles_have_no_effect() {
    let home = tempfile::tempdir().unwrap();
    let example = repo_root().join("config/biomero-stage.toml");
    let (code, v, _) = check_json(
        home.path(),
        &["--config", example.to_str().unwrap()],
        &[
            ("BIOMERO_STAGE_DESCRIPTOR_FETCH", "false"),
            ("BIOMERO_STAGE_IMPORTER_ENABLED", "false"),
            (
                "BIOMERO_STAGE_STATE_DIR",
                home.path().join("s").to_str().unwrap(),
            ),
        ],
    );
    assert_eq!(code, 0);
    for w in v["workflows"].as_array().unwrap() {
        assert_eq!(w["mode"], "tiff", "{}", w["key"]);
    }
    let texts: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("slurm-config.ini:")
            && t.contains("plate_workflows")
            && t.contains("no effect")),
        "{texts:#?}"
    );
}

#[test]
fn home_file_and_explicit_file_layer_in_biomero_order() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("slurm-config.ini"),
        "[SSH]\nhost = fromhome\n[SLURM]\nslurm_data_path = /home-data\nsbatch_mem = 2GB\n[WORKFLOWS]\nw = w\n",
    )
    .unwrap();
    let explicit = home.path().join("explicit.ini");
    std::fs::write(
        &explicit,
        "[SSH]\nhost = explicit\n[WORKFLOWS]\nw_job_mem = 9GB\n",
    )
    .unwrap();
    let settings = write_settings(home.path(), true);
    let (code, v, stderr) = check_json(
        home.path(),
        &[
            "--config",
            settings.to_str().unwrap(),
            "--slurm-config",
            explicit.to_str().unwrap(),
        ],
        &[("BIOMERO_DEFAULT_PARTITION", "envpart")],
    );
    assert_eq!(code, 0, "{v} {stderr}");
    assert_eq!(
        v["ssh_host"], "explicit",
        "the explicit file is read last and wins"
    );
    assert_eq!(
        v["slurm"]["data_path"], "/home-data",
        "sections merge across files"
    );
    assert_eq!(
        workflow(&v, "w")["sbatch"],
        serde_json::json!(["--mem=9GB", "--partition=envpart"]),
        "workflow params beat the environment's default partition, which beats globals"
    );
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.last().copied(), explicit.to_str());

    // BIOMERO_SLURM_CONFIG_FILE makes one file authoritative: ~/slurm-config.ini is not read
    let (code, v, _) = check_json(
        home.path(),
        &["--config", settings.to_str().unwrap()],
        &[("BIOMERO_SLURM_CONFIG_FILE", explicit.to_str().unwrap())],
    );
    assert_eq!(code, 0);
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["slurm"]["data_path"], "my-scratch/data",
        "BIOMERO's default"
    );
}

#[test]
fn every_bad_input_is_refused_with_one_clear_message() {
    // (case, ini bytes, expected exit code, substrings of the single error)
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "duplicate key",
            b"[SSH]\nhost = a\n\nhost = b\n".to_vec(),
            &[
                "slurm-config.ini:4",
                "`host` appears twice",
                "first at line 2",
            ],
        ),
        (
            "[UI] value that is not a JSON list",
            b"[WORKFLOWS]\nc = c\n[UI]\nzarr_workflows = cellpose\n".to_vec(),
            &["slurm-config.ini:4", "JSON list"],
        ),
        (
            "non-UTF-8 bytes",
            b"[SSH]\nhost = sl\xe9rm\n".to_vec(),
            &["slurm-config.ini:2", "UTF-8", "column 10"],
        ),
        (
            "workflow key with spaces",
            b"[WORKFLOWS]\nmy workflow = x\n".to_vec(),
            &["slurm-config.ini:2", "`my workflow`", "contains a space"],
        ),
        (
            "gpu_gres and gpu_gpus both set",
            b"[SLURM]\ngpu_gres = gpu:1\ngpu_gpus = 1\n".to_vec(),
            &["slurm-config.ini:2", "slurm-config.ini:3", "not both"],
        ),
        (
            "SBATCH value with ;",
            b"[WORKFLOWS]\nc = c\nc_job_partition = gpu;reboot\n".to_vec(),
            &["slurm-config.ini:3", "`;` is not allowed"],
        ),
        (
            "SBATCH value with $(",
            b"[SLURM]\nsbatch_comment = $(touch /tmp/pwned)\n".to_vec(),
            &["slurm-config.ini:2", "`$` is not allowed"],
        ),
        (
            "SBATCH value with a backtick",
            b"[WORKFLOWS]\nc = c\nc_job_mem = `id`\n".to_vec(),
            &["slurm-config.ini:3", "backtick"],
        ),
        (
            "SBATCH value with a newline",
            b"[WORKFLOWS]\nc = c\nc_job_mem = 4GB\n   reboot\n".to_vec(),
            &["slurm-config.ini:3", "line break"],
        ),
        (
            "SBATCH value with a space",
            b"[WORKFLOWS]\nc = c\nc_job_time = 01:00:00 --uid=0\n".to_vec(),
            &["slurm-config.ini:3", "a space"],
        ),
        (
            "empty [SSH] host",
            b"[SSH]\nhost =\n".to_vec(),
            &["slurm-config.ini:2", "[SSH] host is empty"],
        ),
        (
            "key before any section",
            b"host = slurm\n[SSH]\n".to_vec(),
            &["slurm-config.ini:1", "before any [SECTION]"],
        ),
        (
            "bad boolean",
            b"[SLURM]\nenv_file_submission = sometimes\n".to_vec(),
            &["slurm-config.ini:2", "not a boolean"],
        ),
        (
            "bad time",
            b"[WORKFLOWS]\nc = c\nc_job_time = 8 hours\n".to_vec(),
            &["slurm-config.ini:3"],
        ),
    ];
    for (case, ini, expect) in cases {
        let (code, v, _dir) = check_ini(&ini, true);
        assert_eq!(code, 1, "{case}: {v}");
        assert_eq!(v["ok"], false, "{case}");
        let errs = errors(&v);
        assert_eq!(errs.len(), 1, "{case}: one message, got {errs:#?}");
        for e in expect {
            assert!(errs[0].contains(e), "{case}: `{e}` not in `{}`", errs[0]);
        }
    }
}

#[test]
fn missing_and_unreadable_files_are_named() {
    let home = tempfile::tempdir().unwrap();
    let settings = write_settings(home.path(), true);
    let missing = home.path().join("nope.ini");
    let (code, v, _) = check_json(
        home.path(),
        &[
            "--config",
            settings.to_str().unwrap(),
            "--slurm-config",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    let e = errors(&v);
    assert!(
        e[0].contains("nope.ini") && e[0].contains("--slurm-config"),
        "{e:?}"
    );

    let (code, v, _) = check_json(
        home.path(),
        &["--config", settings.to_str().unwrap()],
        &[("BIOMERO_SLURM_CONFIG_FILE", missing.to_str().unwrap())],
    );
    assert_eq!(code, 1);
    assert!(errors(&v)[0].contains("BIOMERO_SLURM_CONFIG_FILE"));

    // A directory where a file should be: unreadable even for root.
    let dir_as_file = home.path().join("dir.ini");
    std::fs::create_dir(&dir_as_file).unwrap();
    let (code, v, _) = check_json(
        home.path(),
        &["--config", settings.to_str().unwrap()],
        &[("BIOMERO_SLURM_CONFIG_FILE", dir_as_file.to_str().unwrap())],
    );
    assert_eq!(code, 1);
    assert!(errors(&v)[0].contains("cannot read"), "{v}");

    // A settings file with a typo'd key.
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "workers = 2\nimporter_enabeld = true\n").unwrap();
    let (code, v, _) = check_json(home.path(), &["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    let e = errors(&v);
    assert!(
        e[0].contains("importer_enabeld") && e[0].contains("line 2"),
        "{e:?}"
    );
}

#[test]
fn unknown_sections_warn_but_do_not_fail() {
    let (code, v, _dir) = check_ini(
        b"[SLURM]\n[Slurm]\nx = 1\n[extras]\ny = 2\n[WORKFLOWS]\n",
        true,
    );
    assert_eq!(code, 0, "{v}");
    let texts: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[Slurm]") && t.contains("did you mean [SLURM]")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("[extras]")), "{texts:?}");
}

#[test]
fn broken_descriptors_are_reported_on_their_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, r#"{"schema-version": "cwl-1.2", "name": "x"}"#).unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ \"name\": [unclosed\n\t: : -").unwrap();
    let ini = format!(
        "[WORKFLOWS]\nu = u\nu_repo = {}\ng = g\ng_repo = {}\n",
        unknown.display(),
        garbage.display()
    );
    let (code, v, _d) = check_ini(ini.as_bytes(), true);
    assert_eq!(
        code, 0,
        "descriptor problems do not stop the other workflows: {v}"
    );
    let u = workflow(&v, "u")["descriptor_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(u.contains("unknown schema-version `cwl-1.2`"), "{u}");
    let g = workflow(&v, "g")["descriptor_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(g.contains("neither JSON nor YAML"), "{g}");
}

#[test]
fn workflows_lists_descriptor_parameters() {
    let home = tempfile::tempdir().unwrap();
    let example = repo_root().join("config/biomero-stage.toml");
    let out = command(home.path())
        .args([
            "--config",
            example.to_str().unwrap(),
            "--offline",
            "workflows",
            "--json",
        ])
        .env(
            "BIOMERO_STAGE_STATE_DIR",
            home.path().join("s").to_str().unwrap(),
        )
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let cellpose = v
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["key"] == "cellpose")
        .unwrap();
    let ids: Vec<&str> = cellpose["descriptor"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "diameter",
            "prob_threshold",
            "nuc_channel",
            "use_gpu",
            "cp_model"
        ]
    );
    let out = command(home.path())
        .args([
            "--config",
            example.to_str().unwrap(),
            "--offline",
            "workflows",
        ])
        .env(
            "BIOMERO_STAGE_STATE_DIR",
            home.path().join("s").to_str().unwrap(),
        )
        .output()
        .unwrap();
    let (_, stdout, _) = text(&out);
    assert!(
        stdout.contains("cp_model") && stdout.contains("nuclei"),
        "{stdout}"
    );
}

#[test]
fn an_sbatch_key_sbatch_does_not_know_is_named_with_the_closest_option_and_strict_fails() {
    let ini = b"[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = d\nslurm_images_path = i\nslurm_converters_path = c\nslurm_script_path = s\nsbatch_mem-per-cpus = 1G\nsbatch_mem = 4GB\n[WORKFLOWS]\nstardist = stardist\nstardist_repo = https://github.com/a/b/tree/v1.0.0\nstardist_job_partiton = gpu\n";
    let (code, v, dir) = check_ini(ini, true);
    assert_eq!(code, 0, "warnings alone do not fail: {v}");
    let texts: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(
            |t| t.contains("`stardist_job_partiton` becomes `--partiton`")
                && t.contains("did you mean `--partition` (stardist_job_partition)")
                && t.contains("slurm-config.ini:13")
        ),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("`--mem-per-cpus`") && t.contains("did you mean `--mem-per-cpu`")),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("`sbatch_mem`")),
        "{texts:?}"
    );
    // --strict: the same warnings fail the check
    let settings = dir.path().join("biomero-stage.toml");
    let out = command(dir.path())
        .args([
            "--config",
            settings.to_str().unwrap(),
            "config",
            "check",
            "--strict",
        ])
        .env(
            "BIOMERO_SLURM_CONFIG_FILE",
            dir.path().join("slurm-config.ini"),
        )
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("--strict"), "{stderr}");
}

#[test]
fn biomeros_own_cellpose_and_stardist_resolve_offline_to_their_real_pinned_descriptors() {
    // the lines of BIOMERO 2.8.3's shipped slurm-config.ini
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slurm-config.ini");
    std::fs::write(
        &ini,
        "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = d\nslurm_images_path = i\nslurm_converters_path = c\nslurm_script_path = s\n[WORKFLOWS]\ncellpose = cellpose\ncellpose_repo=https://github.com/TorecLuik/W_NucleiSegmentation-Cellpose/tree/v1.2.7\ncellpose_job=jobs/cellpose.sh\nstardist = stardist\nstardist_repo=https://github.com/Neubias-WG5/W_NucleiSegmentation-Stardist/tree/v1.3.2\nstardist_job=jobs/stardist.sh\n",
    )
    .unwrap();
    let settings = write_settings(dir.path(), true);
    let (code, v, err) = check_json(
        dir.path(),
        &["--offline", "--config", settings.to_str().unwrap()],
        &[("BIOMERO_SLURM_CONFIG_FILE", ini.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{v}\n{err}");
    for (key, param) in [("cellpose", "diameter"), ("stardist", "stardist_prob_t")] {
        let w = workflow(&v, key);
        let d = &w["descriptor"];
        assert!(d.is_object(), "{key}: {w}");
        let names: Vec<&str> = d["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap_or_default())
            .collect();
        assert!(names.contains(&param), "{key}: {names:?}");
        // the server-set BIAFLOWS inputs are not user parameters
        assert!(
            !names.iter().any(|n| n.starts_with("cytomine")),
            "{key}: {names:?}"
        );
    }
}

#[test]
fn adopt_nl_biomero_takes_biomero_29s_detached_runs_when_the_worker_queues_them() {
    // NL-BIOMERO's own files, with BIOMERO 2.9's detached mode switched on in the worker
    let home = tempfile::tempdir().unwrap();
    let site = home.path().join("nl-biomero");
    let o = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("tests/fixtures/nl-biomero"))
        .arg(&site)
        .output()
        .unwrap();
    assert!(o.status.success());
    let compose = site.join("docker-compose.yml");
    let yaml = std::fs::read_to_string(&compose).unwrap();
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("SQLALCHEMY_URL:"))
        .unwrap()
        .to_owned();
    let indent = &line[..line.len() - line.trim_start().len()];
    std::fs::write(
        &compose,
        yaml.replacen(
            &line,
            &format!("{line}\n{indent}BIOMERO_DETACHED_WORKFLOWS: \"true\""),
            1,
        ),
    )
    .unwrap();
    let adopt = |dir: &std::path::Path| {
        let o = command(home.path())
            .args(["adopt", "nl-biomero"])
            .arg(dir)
            .arg("--out")
            .arg(home.path().join("out"))
            .arg("--json")
            .env("HOME", home.path())
            .output()
            .unwrap();
        let (code, stdout, stderr) = text(&o);
        assert_eq!(code, 0, "{stdout}{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    let v = adopt(&site);
    assert_eq!(v["settings"]["biomero_detached"]["value"], true, "{v}");
    assert!(
        v["settings"]["biomero_detached"]["from"]
            .as_str()
            .unwrap()
            .contains("BIOMERO_DETACHED_WORKFLOWS")
    );
    // the files as NL-BIOMERO ships them run the scripts inline: nothing to claim
    let v = adopt(&repo_root().join("tests/fixtures/nl-biomero"));
    assert!(v["settings"]["biomero_detached"].is_null(), "{v}");
}

#[test]
fn adopt_nl_biomero_reads_its_real_deployment_files_into_settings_that_check() {
    // tests/fixtures/nl-biomero: NL-BIOMERO's own files (SOURCE.md says from which commit)
    let fixture = repo_root().join("tests/fixtures/nl-biomero");
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let o = command(home.path())
        .args(["adopt", "nl-biomero"])
        .arg(&fixture)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .env("HOME", home.path())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&o);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let setting = |k: &str| v["settings"][k]["value"].clone();
    let f = |rel: &str| fixture.join(rel).display().to_string();
    assert_eq!(setting("slurm_config"), f("web/slurm-config.ini"));
    assert_eq!(setting("data_roots"), serde_json::json!([f("web/L-Drive")]));
    assert_eq!(
        setting("importer_path_map"),
        format!("{}=/data", f("web/L-Drive"))
    );
    assert_eq!(setting("group_mappings_file"), f("web/biomero-config.json"));
    assert_eq!(setting("omero_url"), "http://127.0.0.1:4080/");
    // OMERO's /OMERO is the named volume `omero` of the project (the checkout's folder)
    assert_eq!(
        setting("managed_repository"),
        "/var/lib/docker/volumes/nl-biomero_omero/_data/ManagedRepository"
    );
    assert_eq!(setting("importer_enabled"), true);
    assert_eq!(
        setting("ssh_config_file"),
        home.path().join(".ssh/config").display().to_string(),
        "the worker's /tmp/.ssh is the host's ~/.ssh"
    );
    // every setting says where it came from
    for (k, d) in v["settings"].as_object().unwrap() {
        assert!(d["from"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    // the database has no published port: said, with what to do, not guessed
    let undecided: Vec<&str> = v["undecided"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        undecided
            .iter()
            .any(|u| u.contains("database-biomero") && u.contains("publishes no port")),
        "{undecided:?}"
    );
    assert!(v["settings"].get("importer_database_url").is_none(), "{v}");
    // the importer's user:group decides the drop-in
    let dropin =
        std::fs::read_to_string(out.join("biomero-stage.service.d/nl-biomero.conf")).unwrap();
    assert!(
        dropin.contains("[Service]")
            && dropin.contains("SupplementaryGroups=1000")
            && dropin.contains("UMask=0002"),
        "{dropin}"
    );
    // the settings written are settings biomero-stage loads: config check runs on NL-BIOMERO's
    // own slurm-config.ini with them
    let o = command(home.path())
        .arg("--offline")
        .arg("--config")
        .arg(out.join("biomero-stage.toml"))
        .args(["config", "check", "--json"])
        .env("BIOMERO_STAGE_STATE_DIR", home.path().join("state"))
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&o);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let check: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        workflow(&check, "cellpose")["version"] == "v1.4.0",
        "{check}"
    );
    assert_eq!(check["ssh_host"], "localslurm");
}
