//! End to end: a plate for a standard (TIFF) workflow, from the shared storage
//! to TIFFs in `data/in` on the cluster, our way against BIOMERO's.
//!
//! - **ours**: the running daemon (`biomero-stage serve`, release build) is
//!   given a `prep_only` submission of the plate: plan → stage (every field to
//!   an OME-TIFF, streamed) → upload (one verified tar stream). Wall time is
//!   from `submit` to the submission's end; memory is the daemon's peak RSS.
//! - **BIOMERO's way**, reproduced with the baselines: the exported Zarr zipped
//!   (`shutil.make_archive`), SFTP put, unzipped on the cluster, then the
//!   converter job array — BIOMERO's Zarr→TIFF logic (`peers/zarr_to_tiff.py`),
//!   one process per field, two at a time (two slots on this 2-core machine).
//!   Memory is the largest process on either side.
//!
//! Both sides use an already connected SSH master to the local sshd + Slurm
//! (`deploy/local-cluster/slurm-up.sh`); the far side is on tmpfs. The
//! converter processes run as root there (the peers' Python is root's). One warm-up
//! round, then N alternating rounds; medians and the ratio.
//!
//! `cargo build --release -p biomero-stage && cargo bench -p stage-benches --bench end_to_end [-- --runs N] [--warmups N] [--plate PATH] [--state-dir DIR] [--no-peer] [--openssh-cipher]`
//!
//! `--state-dir DIR` puts the daemon's state (and so its staging) in `DIR` instead of the
//! work folder on the local disk, e.g. on tmpfs, the storage the converter's TIFFs get on
//! the far side.
//!
//! Ours runs two ways side by side, alternately, each in its own daemon: uploading each
//! input as soon as it is staged (`upload_while_staging = true`), and staging everything
//! before the upload starts (`false`, the default). `--no-peer` leaves BIOMERO's way out (to
//! compare our two quickly); `--openssh-cipher` keeps OpenSSH's cipher order for the daemon (`ssh_ciphers = "openssh"`;
//! the peers' master then too).
//!
//! `--plate` runs another NGFF 0.4 plate instead of the bench's 12-field plate (b), e.g. the
//! scale bench's largest (`$BENCH_DIR/scale/plate-192x2048/plate0/plate.ome.zarr`, 4.8 GB).

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

#[path = "args.rs"]
mod args;
#[path = "peer_cipher.rs"]
mod peer_cipher;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Peak RSS in MiB from `/usr/bin/time -f %M` output files (the largest of them).
fn peak_mib(files: &[PathBuf]) -> f64 {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
        / 1024.0
}

struct Ssh {
    config: PathBuf,
    control: PathBuf,
}

impl Ssh {
    fn cmd(&self) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(&self.config)
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()));
        c
    }

    fn run(&self, remote: &str) -> String {
        self.run_on("slurm", remote)
    }

    fn run_on(&self, host: &str, remote: &str) -> String {
        let out = self.cmd().arg(host).arg(remote).output().unwrap();
        assert!(
            out.status.success(),
            "ssh slurm {remote}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The daemon, stopped at the end; its peak RSS written by `/usr/bin/time`.
struct Daemon {
    child: Child,
    base: String,
    rss_file: PathBuf,
}

impl Daemon {
    fn stop(mut self) -> f64 {
        // SIGTERM to the daemon (the child of /usr/bin/time)
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        peak_mib(&[self.rss_file])
    }

    fn state(&self, id: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sS", &format!("{}/api/v1/submissions/{id}", self.base)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

/// One of our ways: a daemon with its own settings, state and config file.
struct Ours {
    tag: usize,
    label: &'static str,
    config: PathBuf,
    state: PathBuf,
    daemon: Daemon,
}

impl Ours {
    /// Writes the daemon's config (the common site plus `extra` settings) and starts it.
    fn start(
        tag: usize,
        exe: &Path,
        work: &Path,
        state: &Path,
        ssh_config: &Path,
        label: &'static str,
        extra: &str,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let w = work.display();
        let config = work.join(format!("biomero-stage-{tag}.toml"));
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\nadmin_listen = \"127.0.0.1:{port}\"\nslurm_config = \"{w}/slurm-config.ini\"\ndescriptor_dirs = [\"{w}/descriptors\"]\ndescriptor_fetch = false\ndata_roots = [\"{w}/data\"]\ngroup_mappings_file = \"{w}/biomero-config.json\"\nssh_config_file = \"{}\"\nprep_only = true\nworkers = 2\n{extra}",
                state.display(),
                ssh_config.display(),
            ),
        )
        .unwrap();
        let rss_file = work.join(format!("daemon-{tag}.rss"));
        let child = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(exe)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--poll-ms", "50"])
            .env("BIOMERO_SLURM_CONFIG_FILE", work.join("slurm-config.ini"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join(format!("daemon-{tag}.log"))).unwrap())
            .spawn()
            .expect("/usr/bin/time (Debian package `time`) is needed");
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "the daemon did not start; see {w}/daemon-{tag}.log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            tag,
            label,
            config,
            state: state.to_path_buf(),
            daemon: Daemon {
                child,
                base: format!("http://127.0.0.1:{port}"),
                rss_file,
            },
        }
    }
}

/// The fields of an NGFF 0.4 plate (`row/column/field`, as its wells list them) and its
/// level-0 pixel megabytes.
fn plate_fields(plate: &Path) -> (Vec<String>, f64) {
    let attrs = |p: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(p.join(".zattrs")).unwrap()).unwrap()
    };
    let mut fields = Vec::new();
    let mut bytes = 0.0;
    for well in attrs(plate)["plate"]["wells"].as_array().unwrap() {
        let well = well["path"].as_str().unwrap();
        for image in attrs(&plate.join(well))["well"]["images"]
            .as_array()
            .unwrap()
        {
            let field = format!("{well}/{}", image["path"].as_str().unwrap());
            let zarray: Value = serde_json::from_slice(
                &std::fs::read(plate.join(&field).join("0/.zarray")).unwrap(),
            )
            .unwrap();
            let item = zarray["dtype"].as_str().unwrap()[2..]
                .parse::<f64>()
                .unwrap();
            bytes += zarray["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_f64().unwrap())
                .product::<f64>()
                * item;
            fields.push(field);
        }
    }
    (fields, bytes / 1e6)
}

/// When each step of a submission's history ended, in seconds after its first event.
fn step_ends(v: &Value) -> String {
    let events = v["events"].as_array().cloned().unwrap_or_default();
    let at = |e: &Value| {
        e["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let Some(start) = events.first().and_then(at) else {
        return String::new();
    };
    events
        .iter()
        .filter(|e| e["outcome"] == "succeeded")
        .filter_map(|e| {
            let t = at(e)?;
            Some(format!(
                "{} {:.1} s",
                e["step"].as_str().unwrap_or("?"),
                (t - start).num_milliseconds() as f64 / 1e3
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args::opt(&args, name);
    let runs: usize = opt("--runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let warmups: usize = opt("--warmups").and_then(|v| v.parse().ok()).unwrap_or(1);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = repo.join("target/release/biomero-stage");
    assert!(
        exe.exists(),
        "{} is missing: cargo build --release -p biomero-stage",
        exe.display()
    );
    let lab =
        PathBuf::from(std::env::var("SLURMLAB_DIR").unwrap_or_else(|_| "/tmp/slurmlab".into()));
    let ssh_config = lab.join("client/ssh_config");
    assert!(
        ssh_config.exists(),
        "no local cluster: run deploy/local-cluster/slurm-up.sh as root first"
    );
    let bench_dir = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/biomero-bench".into());
    let ok = Command::new("bash")
        .arg(repo.join("benches/peers/setup.sh"))
        .env("BENCH_DIR", &bench_dir)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "benches/peers/setup.sh failed");
    let b = PathBuf::from(&bench_dir);
    let python = b.join("venv/bin/python");
    let work = b.join(format!("e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let state = opt("--state-dir").map_or_else(
        || work.join("state"),
        |d| PathBuf::from(d).join(format!("e2e-state-{}", std::process::id())),
    );
    // the plate in a group folder of the shared storage (hard links to the data set)
    let data = work.join("data");
    let plate = data.join("bench/plate.ome.zarr");
    std::fs::create_dir_all(plate.parent().unwrap()).unwrap();
    let source = opt("--plate").map_or_else(
        || b.join("data/plate_ngff04_zarrv2.ome.zarr"),
        PathBuf::from,
    );
    run(Command::new("cp").arg("-al").arg(&source).arg(&plate));
    let (fields, pixel_mb) = plate_fields(&plate);
    let n_fields = fields.len();
    // a round's limit: minutes per GB, at least 5
    let limit = Duration::from_secs_f64((pixel_mb / 1e3 * 120.0).max(300.0));
    // the far side, on tmpfs
    let ssh = Ssh {
        config: ssh_config.clone(),
        control: work.join("peer-ctl"),
    };
    // over the cipher the daemon asks for (the sftp put goes through this master)
    let cipher = if args.iter().any(|a| a == "--openssh-cipher") {
        Vec::new()
    } else {
        peer_cipher::peer_cipher_options()
    };
    run(ssh.cmd().args(cipher).args(["-M", "-f", "-N", "slurm"]));
    // the converter runs as root on the far side: the peers' Python lives in root's pyenv
    let root_ssh = Ssh {
        config: ssh_config.clone(),
        control: work.join("peer-root-ctl"),
    };
    run(root_ssh.cmd().args(["-M", "-f", "-N", "slurm-root"]));
    let far = format!("/dev/shm/bench-e2e-{}", std::process::id());
    ssh.run(&format!("mkdir -p {far}/peer {far}/ours {far}/scripts"));
    // BIOMERO's converter on the cluster (the slurm user reads our checkout through a copy)
    run(ssh
        .cmd()
        .arg("slurm")
        .arg(format!("cat > {far}/zarr_to_tiff.py"))
        .stdin(std::fs::File::open(repo.join("benches/peers/zarr_to_tiff.py")).unwrap()));
    // our site: BIOMERO's ini, settings, the TIFF workflow's descriptor
    let desc = work.join("descriptors/github.com/bench/W_Tiff/v1.0.0");
    std::fs::create_dir_all(&desc).unwrap();
    std::fs::copy(
        repo.join("config/demo/descriptor.json"),
        desc.join("descriptor.json"),
    )
    .unwrap();
    std::fs::write(
        work.join("slurm-config.ini"),
        format!(
            "[SSH]\nhost = slurm\n[SLURM]\nslurm_data_path = {far}/ours\nslurm_images_path = {far}/images\nslurm_converters_path = {far}/converters\nslurm_script_path = {far}/scripts\n[WORKFLOWS]\ntiffwf = tiffwf\ntiffwf_repo = https://github.com/bench/W_Tiff/tree/v1.0.0\ntiffwf_job = none.sh\n"
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("biomero-config.json"),
        r#"{"group_mappings": {"1": {"folder": "bench", "groupName": "bench"}}}"#,
    )
    .unwrap();
    let cipher_setting = if args.iter().any(|a| a == "--openssh-cipher") {
        "openssh"
    } else {
        "auto"
    };
    // our two ways, side by side in the same run: each input uploaded as soon as it is
    // staged, and everything staged before the upload starts (the default)
    let ways: Vec<Ours> = [
        ("while staging", true),
        ("stage, then upload (the default)", false),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (label, streamed))| {
        Ours::start(
            i,
            &exe,
            &work,
            &state.join(format!("daemon-{i}")),
            &ssh_config,
            label,
            &format!("upload_while_staging = {streamed}\nssh_ciphers = \"{cipher_setting}\"\n"),
        )
    })
    .collect();
    let ours_round = |daemon: &Ours, round: usize| -> f64 {
        let id = format!("e2e-{}-{round}", daemon.tag);
        let doc = work.join(format!("{id}.json"));
        std::fs::write(
            &doc,
            serde_json::json!({
                "version": 1, "id": id, "workflow": "tiffwf",
                "inputs": {"paths": [plate.display().to_string()]},
                "user": {"name": "bench", "group": "bench"},
            })
            .to_string(),
        )
        .unwrap();
        let started = Instant::now();
        run(Command::new(&exe)
            .arg("--config")
            .arg(&daemon.config)
            .env("BIOMERO_SLURM_CONFIG_FILE", work.join("slurm-config.ini"))
            .arg("submit")
            .arg(&doc));
        loop {
            let v = daemon.daemon.state(&id);
            if v["submission"]["done"] == true {
                assert_eq!(
                    v["submission"]["state"], "uploaded",
                    "{}",
                    v["submission"]["error"]
                );
                let transfer = &v["submission"]["data"]["upload"]["transfer"];
                assert_eq!(transfer["files"], n_fields, "{transfer}");
                eprintln!(
                    "ours ({}), round {round}: steps ended at {} ({})",
                    daemon.label,
                    step_ends(&v),
                    transfer["method"].as_str().unwrap_or("?")
                );
                break;
            }
            assert!(started.elapsed() < limit, "{v}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(daemon.state.join("staging").join(&id));
        ssh.run(&format!("rm -rf {far}/ours/biomero_{id}"));
        t
    };
    let zip = work.join("export.zip");
    let peer_round = |round: usize| -> (f64, f64) {
        let target = format!("{far}/peer/biomero_{round}");
        let local_rss = work.join(format!("peer-{round}.rss"));
        let started = Instant::now();
        // export (the plate as OMERO exported it) zipped here
        let _ = std::fs::remove_file(&zip);
        run(Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&local_rss)
            .arg(&python)
            .args([
                "-c",
                "import shutil,sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2])",
            ])
            .arg(zip.with_extension(""))
            .arg(plate.parent().unwrap()));
        // SFTP put, unzip there
        ssh.run(&format!("mkdir -p {target}/data/in {target}/zarr"));
        let batch = work.join("sftp-batch");
        std::fs::write(
            &batch,
            format!("put {} {target}/export.zip\n", zip.display()),
        )
        .unwrap();
        run(Command::new("sftp")
            .arg("-F")
            .arg(&ssh_config)
            .arg("-o")
            .arg(format!("ControlPath={}", ssh.control.display()))
            .arg("-q")
            .arg("-b")
            .arg(&batch)
            .arg("slurm"));
        ssh.run(&format!(
            "unzip -q -o {target}/export.zip -d {target}/zarr && rm -f {target}/export.zip"
        ));
        // the converter job array: one process per field, two slots
        let jobs: Vec<String> = fields
            .iter()
            .map(|f| format!("{f} {}", f.replace('/', "_")))
            .collect();
        root_ssh.run_on("slurm-root", &format!(
            "printf '{jobs}' | xargs -P 2 -L 1 sh -c '/usr/bin/time -f %M -a -o {target}/rss {py} {far}/zarr_to_tiff.py {target}/zarr/plate.ome.zarr/$0 --output {target}/data/in/plate_$1.tif'",
            jobs = jobs.join("\\n") + "\\n",
            py = python.display(),
        ));
        let t = started.elapsed().as_secs_f64();
        let n = ssh.run(&format!("ls {target}/data/in | wc -l"));
        assert_eq!(
            n.trim(),
            n_fields.to_string(),
            "the converter wrote {n} TIFFs"
        );
        let remote_rss: f64 = ssh
            .run(&format!("cat {target}/rss"))
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .fold(0.0, f64::max)
            / 1024.0;
        ssh.run(&format!("rm -rf {target}"));
        (t, remote_rss.max(peak_mib(&[local_rss])))
    };
    println!(
        "End to end: HCS plate {} ({n_fields} fields, {pixel_mb:.0} MB of pixels) from the shared storage to {n_fields} TIFFs in data/in on the cluster (local sshd, far side on tmpfs; our staging in {}); {warmups} warm-up, {runs} measured rounds, medians.",
        source.display(),
        state.display()
    );
    let with_peer = !args.iter().any(|a| a == "--no-peer");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    let (mut peer, mut peer_rss) = (Vec::new(), Vec::new());
    for round in 0..warmups + runs {
        for (way, t) in ways.iter().zip(times.iter_mut()) {
            let o = ours_round(way, round);
            if round >= warmups {
                t.push(o);
            }
        }
        if with_peer {
            let (p, rss) = peer_round(round);
            if round >= warmups {
                peer.push(p);
                peer_rss.push(rss);
            }
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    println!("| way | wall | MB/s of pixels | peak RSS |");
    println!("|---|---|---|---|");
    for (way, o) in ways.into_iter().zip(&medians) {
        let label = way.label;
        let rss = way.daemon.stop();
        println!(
            "| biomero-stage daemon: plan, stage (Zarr→TIFF), upload (verified tar stream) {label} | {o:.2} s | {:.0} | {rss:.0} MiB (the daemon, all rounds) |",
            pixel_mb / o
        );
    }
    if with_peer {
        let p = median(peer);
        println!(
            "| BIOMERO: zip → SFTP → unzip → converter job array (2 slots) | {p:.2} s | {:.0} | {:.0} MiB (largest process) |",
            pixel_mb / p,
            median(peer_rss)
        );
        println!(
            "ratio (BIOMERO / ours, uploading while staging): {:.1}×; (BIOMERO / ours, staging then uploading): {:.1}×",
            p / medians[0],
            p / medians[1]
        );
    }
    println!(
        "uploading while staging vs staging then uploading: {:.2}× (time of the second / time of the first)",
        medians[1] / medians[0]
    );
    ssh.run(&format!("rm -rf {far}"));
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&state);
}
