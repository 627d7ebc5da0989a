//! The catalogue of bad inputs: configuration, submissions, data and job
//! outputs, each refused with a message that names the thing and what to do,
//! and nothing lost. Every case runs the real binary on the demo's site
//! (`biomero-stage demo --write-only`); the output cases run real jobs through
//! the daemon with the local executor. The catalogue prints one table and
//! records its tally in the drill report.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stage_tests::drills::Drill;
use stage_tests::{Daemon, command, free_port, text, wait_submission};

/// The demo site in a temporary folder.
struct Site {
    home: tempfile::TempDir,
    dir: PathBuf,
}

impl Site {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("site");
        let o = command(home.path())
            .args(["demo", "--write-only", "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{:?}", text(&o));
        Site { home, dir }
    }

    fn settings(&self) -> PathBuf {
        self.dir.join("biomero-stage.toml")
    }

    fn ini(&self) -> PathBuf {
        self.dir.join("slurm-config.ini")
    }

    /// Runs the binary on the site's configuration (or `settings`): (exit code, stdout + stderr).
    fn run(
        &self,
        settings: &Path,
        ini: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String) {
        let o = command(self.home.path())
            .arg("--config")
            .arg(settings)
            .env("BIOMERO_SLURM_CONFIG_FILE", ini)
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        let (code, out, err) = text(&o);
        (code, format!("{out}{err}"))
    }

    /// `config check` with one settings key replaced (or added) and the ini edited.
    fn config_check(
        &self,
        key: &str,
        value: &str,
        ini_edit: fn(String) -> String,
    ) -> (i32, String) {
        let n = free_port();
        let settings = self.dir.join(format!("settings-{n}.toml"));
        let ini = self.dir.join(format!("slurm-config-{n}.ini"));
        let mut text = std::fs::read_to_string(self.settings()).unwrap();
        if !key.is_empty() {
            let line = format!("{key} = {value}");
            text = match text.lines().find(|l| l.starts_with(&format!("{key} ="))) {
                Some(old) => text.replace(old, &line),
                None => format!("{text}{line}\n"),
            };
        }
        std::fs::write(&settings, text).unwrap();
        std::fs::write(&ini, ini_edit(std::fs::read_to_string(self.ini()).unwrap())).unwrap();
        self.run(&settings, &ini, &["config", "check"], &[])
    }

    /// `submit` (or `plan`) of the demo's `mode` submission after `edit`.
    fn submit(&self, command: &str, mode: &str, edit: impl Fn(&mut Value)) -> (i32, String) {
        let mut doc: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join(format!("submissions/{mode}.json"))).unwrap(),
        )
        .unwrap();
        edit(&mut doc);
        let file = self.dir.join(format!("bad-{}.json", free_port()));
        std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        self.run(
            &self.settings(),
            &self.ini(),
            &[command, &file.display().to_string()],
            &[],
        )
    }

    fn sample(&self) -> PathBuf {
        self.dir.join("data/demo/sample")
    }
}

/// One case: where, what, and the words its refusal must hold.
struct Outcome {
    area: &'static str,
    case: &'static str,
    refused: bool,
    message: String,
    expect: &'static [&'static str],
}

impl Outcome {
    fn passed(&self) -> bool {
        self.refused
            && self
                .expect
                .iter()
                .all(|w| self.message.to_lowercase().contains(&w.to_lowercase()))
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 150 {
        let mut end = 150;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

fn config_cases(s: &Site, out: &mut Vec<Outcome>) {
    let same = |t: String| t;
    let cases: [(
        &str,
        &str,
        &str,
        fn(String) -> String,
        &'static [&'static str],
    ); 22] = [
        (
            "a misspelt key",
            "workerz",
            "2",
            same,
            &["workerz", ".toml", "line"],
        ),
        (
            "an unknown NGFF version",
            "ngff_version",
            "\"0.6\"",
            same,
            &["ngff_version", "0.4"],
        ),
        (
            "an unknown executor",
            "executor",
            "\"pbs\"",
            same,
            &["executor", "slurm", "local"],
        ),
        (
            "no workers",
            "workers",
            "0",
            same,
            &["workers", "at least one"],
        ),
        (
            "a queue that is not SQLite or PostgreSQL",
            "queue_url",
            "\"mysql://db/q\"",
            same,
            &["queue_url", "sqlite://"],
        ),
        (
            "an importer database that is not PostgreSQL",
            "importer_database_url",
            "\"mysql://db/i\"",
            same,
            &["importer_database_url", "INGEST_TRACKING_DB_URL"],
        ),
        (
            "a Slurm time that is not a time",
            "",
            "",
            |t| {
                t.replace(
                    "threshold_job = threshold.sh\n",
                    "threshold_job = threshold.sh\nthreshold_job_time = soon\n",
                )
            },
            &["time=soon", "hh:mm:ss"],
        ),
        (
            "an importer path map without =",
            "importer_path_map",
            "\"/srv/data\"",
            same,
            &["importer_path_map"],
        ),
        (
            "an admin address without a port",
            "admin_listen",
            "\"localhost\"",
            same,
            &["admin_listen", "address:port"],
        ),
        (
            "a zero output limit",
            "max_output_bytes",
            "0",
            same,
            &["max_output_bytes", "at least 1"],
        ),
        (
            "a TOML syntax error",
            "workers",
            "= 2",
            same,
            &[".toml", "line"],
        ),
        (
            "a [UI] list that is not JSON",
            "",
            "",
            |t| t.replace("zarr_workflows = [", "zarr_workflows = [["),
            &["zarr_workflows", "JSON list"],
        ),
        (
            "an sbatch parameter with a shell metacharacter",
            "",
            "",
            |t| {
                t.replace(
                    "threshold_job = threshold.sh\n",
                    "threshold_job = threshold.sh\nthreshold_job_partition = gpu;rm\n",
                )
            },
            &["partition", "`;`"],
        ),
        (
            "a memory size that is not a size",
            "",
            "",
            |t| {
                t.replace(
                    "threshold_job = threshold.sh\n",
                    "threshold_job = threshold.sh\nthreshold_job_mem = lots\n",
                )
            },
            &["mem=lots", "15G"],
        ),
        (
            "an empty admin token",
            "admin_token",
            "\"\"",
            same,
            &["admin_token", "empty", "admin_token_file"],
        ),
        (
            "an admin token of blanks",
            "admin_token",
            "\"   \"",
            same,
            &["admin_token", "empty"],
        ),
        (
            "a million workers",
            "workers",
            "1000000",
            same,
            &["workers", "at most 64"],
        ),
        (
            "a job script outside slurm_script_path",
            "",
            "",
            |t| {
                t.replace(
                    "threshold_job = threshold.sh\n",
                    "threshold_job = ../../../elsewhere/evil.sh\n",
                )
            },
            &["threshold_job", "inside its folder"],
        ),
        (
            "an absolute job script",
            "",
            "",
            |t| {
                t.replace(
                    "threshold_job = threshold.sh\n",
                    "threshold_job = /tmp/evil.sh\n",
                )
            },
            &["threshold_job", "absolute"],
        ),
        (
            "a workflow key `..`",
            "",
            "",
            |t| t.replace("threshold = threshold\n", "threshold = threshold\n.. = x\n"),
            &["`..`", "starts with `.`"],
        ),
        (
            "a container folder that climbs out",
            "",
            "",
            |t| t.replace("threshold = threshold\n", "threshold = ../../x\n"),
            &["threshold", "inside its folder"],
        ),
        (
            "an interpolation bomb",
            "",
            "",
            |t| {
                let mut bomb = String::new();
                for level in 0..10 {
                    let refs = format!("%(bomb{})s", level + 1).repeat(8);
                    bomb.push_str(&format!("bomb{level} = {refs}\n"));
                }
                bomb.push_str("bomb10 = xxxxxxxxxxxxxxxx\n");
                t.replace("[WORKFLOWS]\n", &format!("[WORKFLOWS]\n{bomb}"))
            },
            &["bomb", "expands to more than"],
        ),
    ];
    for (case, key, value, edit, expect) in cases {
        let (code, message) = s.config_check(key, value, edit);
        out.push(Outcome {
            area: "config",
            case,
            refused: code != 0,
            message,
            expect,
        });
    }
    // an environment override that is not a number
    let (code, message) = s.run(
        &s.settings(),
        &s.ini(),
        &["config", "check"],
        &[("BIOMERO_STAGE_WORKERS", "many")],
    );
    out.push(Outcome {
        area: "config",
        case: "an environment override that is not a number",
        refused: code != 0,
        message,
        expect: &["BIOMERO_STAGE_WORKERS", "whole number"],
    });
    let (code, message) = s.run(
        &s.settings(),
        &s.ini(),
        &["config", "check"],
        &[("BIOMERO_STAGE_DATA_ROOTS", "data")],
    );
    out.push(Outcome {
        area: "config",
        case: "a relative data root",
        refused: code != 0,
        message,
        expect: &["data_roots", "absolute"],
    });
}

/// An edit of a submission document.
type Edit = Box<dyn Fn(&mut Value)>;

fn submission_cases(s: &Site, out: &mut Vec<Outcome>) {
    let plate = s.sample().join("plate.ome.zarr").display().to_string();
    let outside = s.home.path().join("elsewhere.ome.zarr");
    copy_dir(&s.sample().join("images/image_00.ome.zarr"), &outside);
    let outside = outside.display().to_string();
    let missing = s
        .sample()
        .join("images/no_such.ome.zarr")
        .display()
        .to_string();
    let image = s
        .sample()
        .join("images/image_00.ome.zarr")
        .display()
        .to_string();
    // a copy whose label image is half its image's size
    let bad_label = s.sample().join("images/bad_label.ome.zarr");
    copy_dir(&s.sample().join("images/image_00.ome.zarr"), &bad_label);
    for meta in [".zarray", "zarr.json"] {
        let f = bad_label.join("labels/cells/0").join(meta);
        if let Ok(text) = std::fs::read_to_string(&f) {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            let shape = v["shape"].as_array_mut().unwrap();
            let n = shape.len();
            for d in &mut shape[n - 2..] {
                *d = json!(d.as_u64().unwrap() / 2);
            }
            std::fs::write(&f, v.to_string()).unwrap();
        }
    }
    let bad_label = bad_label.display().to_string();
    let cases: Vec<(&'static str, &str, Edit, &'static [&'static str])> = vec![
        (
            "an unknown workflow",
            "tiff",
            Box::new(|d| d["workflow"] = json!("cellpose9")),
            &["cellpose9"],
        ),
        (
            "no user",
            "tiff",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("user");
            }),
            &["user"],
        ),
        (
            "a parameter of the wrong type",
            "tiff",
            Box::new(|d| d["parameters"]["min_size"] = json!("lots")),
            &["min_size", "lots"],
        ),
        (
            "an unknown parameter",
            "tiff",
            Box::new(|d| d["parameters"]["diameter"] = json!(30)),
            &["diameter"],
        ),
        (
            "no inputs",
            "tiff",
            Box::new(|d| d["inputs"]["paths"] = json!([])),
            &["input"],
        ),
        (
            "a new results Dataset",
            "tiff",
            Box::new(|d| d["results"] = json!({"new": "Dataset", "name": "out"})),
            &["results", "existing"],
        ),
        (
            "a document version from the future",
            "tiff",
            Box::new(|d| d["version"] = json!(2)),
            &["version"],
        ),
        (
            "an id that cannot name a folder",
            "tiff",
            Box::new(|d| d["id"] = json!("../etc")),
            &["id"],
        ),
        (
            "the id `..`",
            "tiff",
            Box::new(|d| d["id"] = json!("..")),
            &["id", "start with '.'"],
        ),
        (
            "the id `.`",
            "tiff",
            Box::new(|d| d["id"] = json!(".")),
            &["id", "start with '.'"],
        ),
        (
            "a hidden id",
            "tiff",
            Box::new(|d| d["id"] = json!(".hidden")),
            &["id", "start with '.'"],
        ),
        (
            "a user name of a million characters",
            "tiff",
            Box::new(|d| d["user"]["name"] = json!("u".repeat(1_000_000 - 100))),
            &["user.name", "at most 255"],
        ),
        (
            "a parameter value of 200 KB",
            "tiff",
            Box::new(|d| d["parameters"]["min_size"] = json!(format!("{}20", "0".repeat(200_000)))),
            &["min_size", "4096 bytes"],
        ),
        (
            "a document of 10 MB",
            "tiff",
            Box::new(|d| d["user"]["name"] = json!("u".repeat(10_000_000))),
            &["10000", "at most 1048576 bytes"],
        ),
    ];
    // inputs are resolved by `plan` (the daemon's first step) before any work
    let plans: Vec<(&'static str, &str, Edit, &'static [&'static str])> = vec![
        (
            "an input outside the data roots",
            "tiff",
            Box::new(move |d| d["inputs"]["paths"] = json!([outside])),
            &["elsewhere.ome.zarr", "data root"],
        ),
        (
            "an input that does not exist",
            "tiff",
            Box::new(move |d| d["inputs"]["paths"] = json!([missing])),
            &["no_such.ome.zarr"],
        ),
        (
            "a plate for an image workflow",
            "zarr",
            Box::new(move |d| d["inputs"]["paths"] = json!([plate])),
            &["is a plate", "select images"],
        ),
        (
            "an image for a plate workflow",
            "zarr-plate",
            Box::new(move |d| d["inputs"]["paths"] = json!([image])),
            &["is an image", "select plates"],
        ),
        (
            "a label image whose shape disagrees with its image",
            "zarr",
            Box::new(move |d| d["inputs"]["paths"] = json!([bad_label])),
            &[
                "bad_label.ome.zarr",
                "labels/cells",
                "must match its source's shape",
            ],
        ),
    ];
    let by_command = cases
        .into_iter()
        .map(|c| ("submit", c))
        .chain(plans.into_iter().map(|c| ("plan", c)));
    for (command, (case, mode, edit, expect)) in by_command {
        let (code, message) = s.submit(command, mode, edit);
        out.push(Outcome {
            area: "submission",
            case,
            refused: code != 0,
            message,
            expect,
        });
    }
    // the same id with other content: the first is queued, the second refused naming the change
    let with_id = |id: &'static str, min_size: u32| {
        move |d: &mut Value| {
            d["id"] = json!(id);
            d["parameters"]["min_size"] = json!(min_size);
        }
    };
    let (code, message) = s.submit("submit", "tiff", with_id("twice-1", 20));
    assert_eq!(code, 0, "{message}");
    let (code, again) = s.submit("submit", "tiff", with_id("twice-1", 20));
    assert!(code == 0 && again.contains("already submitted"), "{again}");
    let (code, message) = s.submit("submit", "tiff", with_id("twice-1", 21));
    out.push(Outcome {
        area: "submission",
        case: "the same id with other content",
        refused: code != 0,
        message,
        expect: &["twice-1", "other content", "parameters.min_size"],
    });
    // not JSON at all
    let file = s.dir.join("not-json.json");
    std::fs::write(&file, "{\"version\": 1, \"id\": ").unwrap();
    let (code, message) = s.run(
        &s.settings(),
        &s.ini(),
        &["submit", &file.display().to_string()],
        &[],
    );
    out.push(Outcome {
        area: "submission",
        case: "a document that is not JSON",
        refused: code != 0,
        message,
        expect: &["not a valid document", "line 1"],
    });
}

/// Secrets in the settings never reach output: each case runs a command that prints the
/// setting (in an error or a status line) and passes when the secret is absent and the
/// redaction marker is there. `refused` here means "the secret was held back".
fn secret_cases(s: &Site, out: &mut Vec<Outcome>) {
    const SECRET: &str = "Hunter2-S3cret";
    let cases: [(&'static str, &str, String); 5] = [
        (
            "a queue password in the user info (status)",
            "status",
            format!("postgres://stage:{SECRET}@127.0.0.1:1/q"),
        ),
        (
            "a queue password as a query parameter (status)",
            "status",
            format!("postgres://stage@127.0.0.1:1/q?password={SECRET}&sslmode=disable"),
        ),
        (
            "a queue password in the user info (serve)",
            "serve",
            format!("postgresql://stage:{SECRET}@127.0.0.1:1/q"),
        ),
        (
            "a queue password in a refused URL (config check)",
            "config check",
            format!("mysql://stage:{SECRET}@db/q"),
        ),
        (
            "an importer password in a refused URL (config check)",
            "config check importer",
            format!("mysql://imp:{SECRET}@db/i"),
        ),
    ];
    for (case, command, url) in cases {
        let key = if command.ends_with("importer") {
            "importer_database_url"
        } else {
            "queue_url"
        };
        let n = free_port();
        let settings = s.dir.join(format!("secret-{n}.toml"));
        let text = std::fs::read_to_string(s.settings()).unwrap();
        let mut text: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .collect();
        let line = format!("{key} = \"{url}\"");
        text.push(&line);
        let text = text.join("\n") + "\n";
        std::fs::write(&settings, text).unwrap();
        let args: Vec<&str> = match command {
            "status" => vec!["status"],
            "serve" => vec!["serve"],
            _ => vec!["config", "check"],
        };
        let (code, message) = s.run(&settings, &s.ini(), &args, &[]);
        out.push(Outcome {
            area: "secrets",
            case,
            refused: code != 0 && !message.contains(SECRET),
            message,
            expect: &["***"],
        });
    }
}

fn data_cases(s: &Site, out: &mut Vec<Outcome>) {
    let work = s.home.path().join("data-cases");
    std::fs::create_dir_all(&work).unwrap();
    let run = |args: &[&str]| s.run(&s.settings(), &s.ini(), args, &[]);
    // a TIFF cut short
    let src = s.sample().join("images/image_00.ome.zarr");
    let tiffs = work.join("tiffs");
    let (code, m) = run(&[
        "convert",
        "zarr-to-tiff",
        &src.display().to_string(),
        "--out",
        &tiffs.display().to_string(),
    ]);
    assert_eq!(code, 0, "{m}");
    let tif = std::fs::read_dir(&tiffs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tif"))
        .unwrap();
    let bytes = std::fs::read(&tif).unwrap();
    let cut = work.join("cut.tif");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // not a TIFF at all
    let fake = work.join("fake.tif");
    std::fs::write(&fake, "GIF89a not a tiff").unwrap();
    // a Zarr image whose array metadata is gone
    let broken = work.join("broken.ome.zarr");
    copy_dir(&src, &broken);
    std::fs::remove_file(broken.join("0/.zarray")).unwrap();
    // a folder that is not Zarr
    let plain = work.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), "hello").unwrap();
    // a plate that lists a well it does not have
    let plate = work.join("plate.zarr");
    copy_dir(&s.sample().join("plate.ome.zarr"), &plate);
    std::fs::remove_dir_all(plate.join("A/2")).unwrap();
    // an array whose chunk is truncated
    let chunky = work.join("chunky.ome.zarr");
    copy_dir(&src, &chunky);
    std::fs::write(first_chunk(&chunky.join("0")), b"\x00\x01").unwrap();
    // a 124-byte TIFF whose tag claims a billion values (AFL++ found it: the decoder reserved
    // 74 GB for them and the process aborted), kept with the fuzzer's crashes
    let bomb = work.join("tag-bomb.tif");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../benches/fuzz/crashes/tiff/afl-crashes-e95f020179a0"),
        &bomb,
    )
    .unwrap();
    let out_dir = |n: &str| work.join(n).display().to_string();
    let p = |p: &Path| p.display().to_string();
    let cases: [(&'static str, Vec<String>, &'static [&'static str]); 7] = [
        (
            "a tiny TIFF whose tag claims a billion values",
            vec![
                "convert".into(),
                "tiff-to-zarr".into(),
                p(&bomb),
                "--out".into(),
                out_dir("z-bomb"),
            ],
            &["tag-bomb.tif", "end of the file"],
        ),
        (
            "a TIFF cut short",
            vec![
                "convert".into(),
                "tiff-to-zarr".into(),
                p(&cut),
                "--out".into(),
                out_dir("z1"),
            ],
            &["cut.tif"],
        ),
        (
            "a file named .tif that is not a TIFF",
            vec![
                "convert".into(),
                "tiff-to-zarr".into(),
                p(&fake),
                "--out".into(),
                out_dir("z2"),
            ],
            &["fake.tif"],
        ),
        (
            "an OME-Zarr image without its array",
            vec!["inspect".into(), p(&broken)],
            &["broken.ome.zarr"],
        ),
        (
            "a folder that is not OME-Zarr",
            vec!["inspect".into(), p(&plain)],
            &["plain"],
        ),
        (
            "a plate missing a listed well",
            vec!["inspect".into(), p(&plate)],
            &["A/2"],
        ),
        (
            "a Zarr chunk that does not decode",
            vec![
                "convert".into(),
                "zarr-to-tiff".into(),
                p(&chunky),
                "--out".into(),
                out_dir("t2"),
            ],
            &["chunky.ome.zarr"],
        ),
    ];
    for (case, args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, message) = run(&args);
        out.push(Outcome {
            area: "data",
            case,
            refused: code != 0,
            message,
            expect,
        });
    }
    limit_setting_cases(s, &work, &tif, &src, out);
}

/// The read limits are settings: a site that lowers them has its files held to them by every
/// command that reads them, each refusal naming the setting.
fn limit_setting_cases(s: &Site, work: &Path, tif: &Path, zarr: &Path, out: &mut Vec<Outcome>) {
    let settings = work.join("limits.toml");
    std::fs::write(
        &settings,
        format!(
            "{}\nmax_tiff_pages = 1\nmax_metadata_bytes = 4096\nmax_inputs = 1\n",
            std::fs::read_to_string(s.settings()).unwrap()
        ),
    )
    .unwrap();
    // the same image, its metadata padded to 8 KiB (still valid JSON)
    let padded = work.join("padded.ome.zarr");
    copy_dir(zarr, &padded);
    let attrs = padded.join(".zattrs");
    let mut text = std::fs::read_to_string(&attrs).unwrap();
    text.push_str(&" ".repeat(8192));
    std::fs::write(&attrs, text).unwrap();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("submissions/zarr.json")).unwrap())
            .unwrap();
    let first = doc["inputs"]["paths"][0].clone();
    doc["inputs"]["paths"] = json!([first.clone(), first]);
    let two_inputs = work.join("two-inputs.json");
    std::fs::write(&two_inputs, serde_json::to_vec(&doc).unwrap()).unwrap();
    let cases: [(&'static str, Vec<String>, &'static [&'static str]); 3] = [
        (
            "a TIFF of more pages than max_tiff_pages",
            vec![
                "convert".into(),
                "tiff-to-zarr".into(),
                tif.display().to_string(),
                "--out".into(),
                work.join("z-pages").display().to_string(),
            ],
            &["pages", "max_tiff_pages"],
        ),
        (
            "NGFF metadata above max_metadata_bytes",
            vec!["inspect".into(), padded.display().to_string()],
            &[".zattrs", "max_metadata_bytes"],
        ),
        (
            "more inputs than a lowered max_inputs",
            vec!["submit".into(), two_inputs.display().to_string()],
            &["inputs", "at most 1 (max_inputs)"],
        ),
    ];
    for (case, args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, message) = s.run(&settings, &s.ini(), &args, &[]);
        out.push(Outcome {
            area: "limits",
            case,
            refused: code != 0,
            message,
            expect,
        });
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn first_chunk(array: &Path) -> PathBuf {
    let mut stack = vec![array.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                stack.push(e.path());
            } else if !name.starts_with('.') && name != "zarr.json" {
                return e.path();
            }
        }
    }
    panic!("no chunk in {}", array.display());
}

/// Job scripts that return bad outputs: (workflow, Zarr workflow?, script body).
const OUTPUT_JOBS: [(&str, bool, &str); 9] = [
    ("out_empty", false, "exit 0"),
    (
        "out_big",
        false,
        "truncate -s 2G \"$DATA_PATH/data/out/big.bin\"",
    ),
    (
        "out_hardlink",
        false,
        "ln \"$0\" \"$DATA_PATH/data/out/copy.txt\"",
    ),
    (
        "out_symlink",
        false,
        "ln -s /etc/passwd \"$DATA_PATH/data/out/passwd\"",
    ),
    ("out_fifo", false, "mkfifo \"$DATA_PATH/data/out/pipe\""),
    (
        "out_many",
        false,
        "for i in $(seq 40); do echo $i > \"$DATA_PATH/data/out/f$i.txt\"; done",
    ),
    (
        "out_broken_zarr",
        true,
        "mkdir -p \"$DATA_PATH/data/out/x.zarr\" && echo '{\"zarr_format\": 2}' > \"$DATA_PATH/data/out/x.zarr/.zgroup\" && echo '{\"multiscales\": [' > \"$DATA_PATH/data/out/x.zarr/.zattrs\"",
    ),
    (
        "out_csv_only",
        true,
        "echo 'cell,area' > \"$DATA_PATH/data/out/counts.csv\"",
    ),
    (
        "out_fails",
        false,
        "echo 'loading model: no such model cyto9' >&2; exit 3",
    ),
];

fn output_cases(s: &Site, out: &mut Vec<Outcome>) {
    let scripts = s.dir.join("cluster/scripts");
    let mut workflows = String::new();
    let mut zarr = vec!["\"threshold_zarr\"".to_owned()];
    for (k, is_zarr, body) in OUTPUT_JOBS {
        let p = scripts.join(format!("{k}.sh"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let repo = if is_zarr {
            "W_ThresholdZarr"
        } else {
            "W_Threshold"
        };
        let _ = writeln!(
            workflows,
            "{k} = {k}\n{k}_repo = https://github.com/biomero-stage/{repo}/tree/v1.0.0\n{k}_job = {k}.sh"
        );
        if is_zarr {
            zarr.push(format!("\"{k}\""));
        }
    }
    // a job script that is not executable
    std::fs::write(scripts.join("noexec.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    let _ = writeln!(
        workflows,
        "out_noexec = out_noexec\nout_noexec_repo = https://github.com/biomero-stage/W_Threshold/tree/v1.0.0\nout_noexec_job = noexec.sh"
    );
    let ini = std::fs::read_to_string(s.ini())
        .unwrap()
        .replace("[WORKFLOWS]\n", &format!("[WORKFLOWS]\n{workflows}"))
        .replace(
            "zarr_workflows = [\"threshold_zarr\"]",
            &format!("zarr_workflows = [{}]", zarr.join(", ")),
        );
    std::fs::write(s.ini(), ini).unwrap();
    let settings = std::fs::read_to_string(s.settings()).unwrap();
    let port = free_port();
    let settings = settings
        .lines()
        .map(|l| {
            if l.starts_with("admin_listen") {
                format!("admin_listen = \"127.0.0.1:{port}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\nmax_output_files = 30\nmax_output_bytes = 100000000\n";
    std::fs::write(s.settings(), settings).unwrap();
    let ini = s.ini().display().to_string();
    let d = Daemon::start(
        s.home.path(),
        &s.settings(),
        port,
        &["--poll-ms", "200", "--retry-ms", "300"],
        &[("BIOMERO_SLURM_CONFIG_FILE", &ini)],
    );
    let image = s
        .sample()
        .join("images/image_00.ome.zarr")
        .display()
        .to_string();
    let expect: [(&str, &'static str, &'static [&'static str]); 10] = [
        ("out_empty", "a job that wrote nothing", &["wrote nothing"]),
        (
            "out_big",
            "a 2 GB (sparse) output, above max_output_bytes",
            &["max_output_bytes", "before it is downloaded"],
        ),
        (
            "out_hardlink",
            "a hard link to a file outside a local job's folder",
            &["copy.txt", "hard link", "outside the job's folder"],
        ),
        (
            "out_symlink",
            "a symlink in the output",
            &["passwd", "symlink"],
        ),
        ("out_fifo", "a FIFO in the output", &["pipe"]),
        (
            "out_many",
            "more files than max_output_files",
            &["max_output_files"],
        ),
        (
            "out_broken_zarr",
            "a returned Zarr that does not parse",
            &["x.zarr"],
        ),
        (
            "out_csv_only",
            "a Zarr workflow that returned no image",
            &["returned no image", "counts.csv"],
        ),
        (
            "out_fails",
            "a job that exits 3",
            &["exit code 3", "no such model cyto9"],
        ),
        (
            "out_noexec",
            "a job script that is not executable",
            &["noexec.sh", "chmod +x"],
        ),
    ];
    for (k, _, _) in expect {
        let file = s.dir.join(format!("{k}.json"));
        let doc = json!({
            "version": 1, "id": format!("bad-{}", k.replace('_', "-")), "workflow": k,
            "inputs": {"paths": [image]}, "user": {"name": "demo", "group": "demo"},
        });
        std::fs::write(&file, doc.to_string()).unwrap();
        let (code, m) = s.run(
            &s.settings(),
            &s.ini(),
            &["submit", &file.display().to_string()],
            &[],
        );
        assert_eq!(code, 0, "{k}: {m}");
    }
    for (k, case, words) in expect {
        let id = format!("bad-{}", k.replace('_', "-"));
        let v = wait_submission(&d, &id, 120, |v| v["submission"]["done"] == true);
        let failed = v["submission"]["state"] == "failed";
        out.push(Outcome {
            area: "output",
            case,
            refused: failed,
            message: v["submission"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            expect: words,
        });
        // nothing of a refused output is kept
        if failed {
            let kept = s.dir.join(format!("data/demo/.analyzed/{id}"));
            let n = std::fs::read_dir(&kept).map_or(0, |r| {
                r.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            });
            assert_eq!(
                n,
                0,
                "{id}: a refused output was kept in {}",
                kept.display()
            );
            // nor does any of it stay in staging
            let staged = s.dir.join(format!("state/staging/{id}/data/out"));
            assert!(
                !staged.exists(),
                "{id}: a refused output stayed in {}",
                staged.display()
            );
        }
    }
}

#[test]
fn every_bad_input_is_refused_with_a_message_that_names_it() {
    let s = Site::new();
    let mut outcomes = Vec::new();
    config_cases(&s, &mut outcomes);
    submission_cases(&s, &mut outcomes);
    secret_cases(&s, &mut outcomes);
    data_cases(&s, &mut outcomes);
    output_cases(&s, &mut outcomes);
    let mut drill = Drill::new("bad inputs refused with their message");
    let mut table = String::from(
        "\narea        case                                            refused  message\n",
    );
    for o in &outcomes {
        let ok = drill.trial(o.passed());
        let _ = writeln!(
            table,
            "{:<11} {:<47} {:<8} {}{}",
            o.area,
            o.case,
            if o.refused { "yes" } else { "NO" },
            if ok { "" } else { "✗ " },
            one_line(&o.message)
        );
    }
    eprintln!("{table}");
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "{} / {}: refused={} expected {:?} in: {}",
                o.area, o.case, o.refused, o.expect, o.message
            )
        })
        .collect();
    assert!(outcomes.len() >= 30, "only {} cases", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} cases:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}
