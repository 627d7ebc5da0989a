//! Side-by-side benchmark of uploads to the cluster over the local sshd
//! (`deploy/local-cluster/slurm-up.sh`): ours (one tar stream over one SSH
//! channel, summed while sent and on the far side as tar unpacks it, the far
//! side's sizes listed after) against
//! BIOMERO's way (zip → SFTP put → unzip on the cluster), `scp -r`, and a raw
//! `tar c | ssh tar x`.
//!
//! Every contender sends over an SSH master that is already connected (ours
//! its own, the others one started here and shared through `ControlPath`), so
//! the connection handshake is not what is measured. Each round runs every
//! contender once, in turn, into a fresh folder on the cluster; one warm-up
//! round, then `--runs N` (default 3) measured rounds; medians and ratios.
//!
//! `cargo bench -p stage-benches --bench transfer [-- --runs N --only plate|tiff --remote-base DIR]`
//!
//! The far side writes into `--remote-base` (default `/dev/shm`, tmpfs): on this
//! machine's ext4 creating the plate's 2,000 directories and 19,000 files costs
//! ~14 s of kernel time whoever sends them, which would measure the disk, not the
//! transfer; `--remote-base ~` measures it anyway.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

#[path = "args.rs"]
mod args;
#[path = "peer_cipher.rs"]
mod peer_cipher;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stage_cluster::transfer::upload;
use stage_cluster::{Remote, SshTarget};

struct Data {
    name: &'static str,
    dir: PathBuf,
    files: u64,
    bytes: u64,
}

/// Deterministic bytes: half noise, half runs of zeros (like real chunks).
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if (i / 512) % 2 == 1 {
                return 0;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// A plate-shaped Zarr v2 tree: 8×12 wells × 2 fields × 100 chunks of ~4 KiB.
fn plate(root: &Path) -> Data {
    let dir = root.join("plate");
    let store = dir.join("plate.zarr");
    let (mut files, mut bytes) = (0u64, 0u64);
    if !store.exists() {
        let tmp = root.join("plate.part");
        let _ = std::fs::remove_dir_all(&tmp);
        for r in "ABCDEFGH".chars() {
            for c in 1..=12 {
                for f in 0..2 {
                    let level = tmp.join(format!("plate.zarr/{r}/{c}/{f}/0"));
                    std::fs::create_dir_all(&level).unwrap();
                    std::fs::write(level.join(".zarray"), br#"{"zarr_format":2}"#).unwrap();
                    for k in 0..100u64 {
                        let seed = (u64::from(r as u8) << 32) | (c << 16) | (f << 8) | k;
                        let len = 3500 + (seed % 1200) as usize;
                        let d = level.join(format!("0/0/0/{}", k / 10));
                        std::fs::create_dir_all(&d).unwrap();
                        std::fs::write(d.join(format!("{}", k % 10)), body(seed, len)).unwrap();
                    }
                }
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::rename(tmp.join("plate.zarr"), &store).unwrap();
    }
    for e in walk(&dir) {
        files += 1;
        bytes += std::fs::metadata(e).unwrap().len();
    }
    Data {
        name: "plate",
        dir,
        files,
        bytes,
    }
}

/// One large TIFF-sized file (512 MiB).
fn big_tiff(root: &Path) -> Data {
    let dir = root.join("tiff");
    let f = dir.join("image_00.tif");
    let len: usize = 512 << 20;
    if std::fs::metadata(&f).map_or(0, |m| m.len()) != len as u64 {
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = Vec::with_capacity(len);
        let mut k = 0;
        while out.len() < len {
            out.extend_from_slice(&body(k, (1 << 20).min(len - out.len())));
            k += 1;
        }
        std::fs::write(&f, out).unwrap();
    }
    Data {
        name: "tiff",
        dir,
        files: 1,
        bytes: len as u64,
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

struct Ssh {
    config: PathBuf,
    control: PathBuf,
}

impl Ssh {
    fn base(&self) -> Vec<String> {
        vec![
            "-F".into(),
            self.config.display().to_string(),
            "-o".into(),
            format!("ControlPath={}", self.control.display()),
        ]
    }

    fn run(&self, remote_cmd: &str) {
        let ok = Command::new("ssh")
            .args(self.base())
            .arg("slurm")
            .arg(remote_cmd)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh slurm {remote_cmd} failed");
    }

    fn sh(script: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script} failed");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args::opt(&args, name);
    let runs: usize = opt("--runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let only = opt("--only");
    let lab =
        PathBuf::from(std::env::var("SLURMLAB_DIR").unwrap_or_else(|_| "/tmp/slurmlab".into()));
    let config = lab.join("client/ssh_config");
    assert!(
        config.exists(),
        "no local cluster: run deploy/local-cluster/slurm-up.sh as root first"
    );
    let root =
        PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/biomero-bench".into()))
            .join("transfer");
    std::fs::create_dir_all(&root).unwrap();
    let work = tempfile_dir(&root);
    let ssh = Ssh {
        config: config.clone(),
        control: work.join("ctl"),
    };
    // the peers' master, shared through ControlPath, over the cipher ours asks for
    let ok = Command::new("ssh")
        .args(ssh.base())
        .args(peer_cipher::peer_cipher_options())
        .args(["-M", "-f", "-N", "slurm"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "cannot start the peers' SSH master");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ours = Remote::new(SshTarget {
        host: "slurm".into(),
        config_file: Some(config),
        control_dir: work.join("ours"),
        connect_timeout: Duration::from_secs(10),
        // the daemon's default: AES-GCM first where the CPU has AES
        ciphers: stage_cluster::ssh_ciphers::resolve(&stage_config::ciphers::SshCiphers::Auto),
    });
    rt.block_on(ours.run("true", &[])).unwrap();
    // the cluster's side on tmpfs by default: what differs between the contenders is the
    // transfer, not how fast the far filesystem creates inodes (`--remote-base ~` for the home disk)
    let base = opt("--remote-base").unwrap_or_else(|| "/dev/shm".into());
    let remote_root = format!("{base}/bench-transfer-{}", std::process::id());
    println!(
        "Uploads over the local sshd (127.0.0.1:2222) into {base}, {runs} measured rounds after one warm-up; medians."
    );
    let datasets: Vec<Data> = [plate(&root), big_tiff(&root)]
        .into_iter()
        .filter(|d| only.as_deref().is_none_or(|o| o == d.name))
        .collect();
    for data in &datasets {
        let zip = work.join(format!("{}.zip", data.name));
        let mut times: Vec<(&str, Vec<f64>)> = vec![
            ("biomero-stage (tar stream, verified)", vec![]),
            ("BIOMERO: zip -> sftp put -> unzip", vec![]),
            ("scp -r", vec![]),
            ("raw tar c | ssh tar x", vec![]),
        ];
        for round in 0..=runs {
            for (i, (_, t)) in times.iter_mut().enumerate() {
                let target = format!("{remote_root}/{}-{round}-{i}", data.name);
                let started = Instant::now();
                match i {
                    0 => {
                        let r = rt
                            .block_on(upload::upload(
                                &ours,
                                &data.dir,
                                &format!("{target}/data/in"),
                            ))
                            .unwrap();
                        assert_eq!(r.files, data.files);
                    }
                    1 => {
                        // BIOMERO: shutil.make_archive (zip, deflate) here, SFTP put, unzip there
                        let _ = std::fs::remove_file(&zip);
                        let ok = Command::new("python3")
                            .args([
                                "-c",
                                "import shutil,sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2])",
                                &zip.with_extension("").display().to_string(),
                                &data.dir.display().to_string(),
                            ])
                            .status()
                            .unwrap()
                            .success();
                        assert!(ok);
                        ssh.run(&format!("mkdir -p {target}/data/in"));
                        let batch = work.join("sftp-batch");
                        std::fs::write(
                            &batch,
                            format!("put {} {target}/data/in.zip\n", zip.display()),
                        )
                        .unwrap();
                        let ok = Command::new("sftp")
                            .args(ssh.base())
                            .args(["-q", "-b"])
                            .arg(&batch)
                            .arg("slurm")
                            .stdout(std::process::Stdio::null())
                            .status()
                            .unwrap()
                            .success();
                        assert!(ok, "sftp put failed");
                        ssh.run(&format!("unzip -q -o {target}/data/in.zip -d {target}/data/in && rm -f {target}/data/in.zip"));
                    }
                    2 => {
                        ssh.run(&format!("mkdir -p {target}/data"));
                        let ok = Command::new("scp")
                            .args(ssh.base())
                            .args(["-q", "-r"])
                            .arg(&data.dir)
                            .arg(format!("slurm:{target}/data/in"))
                            .status()
                            .unwrap()
                            .success();
                        assert!(ok, "scp failed");
                    }
                    _ => {
                        Ssh::sh(&format!(
                            "tar cf - -C '{}' . | ssh {} slurm 'mkdir -p {target}/data/in && tar xf - -C {target}/data/in'",
                            data.dir.display(),
                            ssh.base().join(" ")
                        ));
                    }
                }
                let took = started.elapsed().as_secs_f64();
                if round > 0 {
                    t.push(took);
                }
                ssh.run(&format!("rm -rf {target}"));
            }
        }
        let mb = data.bytes as f64 / 1e6;
        println!("\n{}: {} files, {:.1} MB", data.name, data.files, mb);
        println!("| contender | median s | MB/s | files/s | ours vs it |");
        println!("|---|---|---|---|---|");
        let ours_t = median(times[0].1.clone());
        for (label, t) in &times {
            let m = median(t.clone());
            println!(
                "| {label} | {m:.2} | {:.0} | {:.0} | {:.2}× |",
                mb / m,
                data.files as f64 / m,
                m / ours_t
            );
        }
        let biomero = median(times[1].1.clone());
        let raw = median(times[3].1.clone());
        println!(
            "ratio vs BIOMERO's way: {:.2}× (target ≥ 3× on the plate); vs raw tar over ssh: {:.2}× (target ≥ 0.9×)",
            biomero / ours_t,
            raw / ours_t
        );
    }
    ssh.run(&format!("rm -rf {remote_root}"));
    let _ = Command::new("ssh")
        .args(ssh.base())
        .args(["-O", "exit", "slurm"])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir(root: &Path) -> PathBuf {
    let d = root.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
