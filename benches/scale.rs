//! How cost grows with size: the pipeline's steps on data of several sizes, along two axes,
//! and a growth table of time, throughput, peak RSS, files, and cost per GB and per field.
//!
//! `cargo bench -p stage-benches --bench scale [-- --full] [--runs N] [--only NAME] [--peers]`
//! (`--prepare` generates the data and stops).
//!
//! - **Bytes axis:** plates of 12 fields × (2, 1080²) up to 96 wells × 2 fields × (3, 2048²)
//!   uint16 (4.5 GiB of pixels, with a label image per field), and one image of 8 GiB
//!   (4 channels × 16 z × 8192²), and one single plane of 32,768² (2.1 GB, 512² chunks: the
//!   memory of a whole-slide plane). Without `--full` the three largest are scaled down (48
//!   fields; 2 × 4 × 8192²; 16,384²) so that the whole bench runs in minutes.
//! - **Objects axis:** 24-well × 1 field, 96-well × 4 and 384-well × 9 fields (3,456
//!   fields) of small (2, 256²) images, and a screen of 4 such plates (`--full`; 4 × 96-well
//!   × 4 without).
//!
//! The data is `stage_sample`'s (smooth background, round cells, noise, a label image per
//! field), generated once into `$BENCH_DIR/scale` (default `/tmp/biomero-bench/scale`) and kept.
//! Every step runs as a child process of this binary measured by `/usr/bin/time`, so peak RSS
//! is the process's own: TIFF staging, the plate passed through as it is, re-encoded to NGFF
//! 0.5, re-encoded sharded, keeping a same-sized output (SHA-256 manifest), and, when the
//! local cluster runs (`deploy/local-cluster/slurm-up.sh`), the verified upload side by side
//! with a raw `tar c | ssh tar x` of the same tree and the verified download of the TIFFs
//! (both sides over an SSH master already connected, as the daemon's is: the handshake is not
//! timed; the far side writes into `--remote-base`, default `/tmp`, a disk).
//! `--peers` adds ome-zarr-py's plate writer (`benches/peers`, its venv from `peers/setup.sh`)
//! on the middle plate of the bytes axis; its cost at the largest size is extrapolated from
//! that per GB and labelled so. The machine is shared and noisy: read ratios, not times.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::too_many_lines,
    reason = "a benchmark: a failure is a panic with the command that failed"
)]

#[path = "args.rs"]
mod args;
#[path = "peer_cipher.rs"]
mod peer_cipher;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stage_cluster::transfer::{OutputLimits, download, upload};
use stage_cluster::{Remote, SshTarget};
use stage_ngff::NgffVersion;
use stage_ngff::convert::{self, TiffOptions};
use stage_ngff::copy::{Sharding, pass_through_sharded};
use stage_ngff::write::array::Compression;
use stage_results::keep::{KeepRequest, keep};
use stage_sample::{SampleSpec, write_image, write_samples};

#[path = "measure.rs"]
mod measure;
use measure::{measure, median};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which axis a dataset is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Axis {
    Bytes,
    Objects,
}

/// One generated dataset: plates (or one image) of a shape.
struct Dataset {
    name: &'static str,
    axis: Axis,
    /// Plates (0 for a single image).
    plates: u32,
    spec: SampleSpec,
}

impl Dataset {
    fn plate(name: &'static str, axis: Axis, plates: u32, shape: [u32; 5]) -> Self {
        let [rows, columns, fields, channels, size] = shape;
        Dataset {
            name,
            axis,
            plates,
            spec: SampleSpec {
                rows,
                columns,
                fields,
                channels,
                size,
                images: 0,
                ..SampleSpec::default()
            },
        }
    }

    fn image(name: &'static str, channels: u32, z: u32, size: u32) -> Self {
        Dataset {
            name,
            axis: Axis::Bytes,
            plates: 0,
            spec: SampleSpec {
                channels,
                z,
                size,
                images: 1,
                ..SampleSpec::default()
            },
        }
    }

    fn fields(&self) -> u64 {
        let s = &self.spec;
        if self.plates == 0 {
            1
        } else {
            u64::from(self.plates * s.rows * s.columns * s.fields)
        }
    }

    /// Pixel bytes of level 0 (labels not counted).
    fn pixel_bytes(&self) -> u64 {
        let s = &self.spec;
        self.fields() * u64::from(s.channels) * u64::from(s.z) * u64::from(s.size).pow(2) * 2
    }

    /// The stores to stage, generated on first use.
    fn stores(&self, root: &Path) -> Vec<PathBuf> {
        let dir = root.join(self.name);
        let done = dir.join("DONE");
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "generating {} ({:.2} GB of pixels) ...",
                self.name,
                self.pixel_bytes() as f64 / 1e9
            );
            if self.plates == 0 {
                write_image(&dir, "image", &self.spec).unwrap();
            } else {
                for p in 0..self.plates {
                    let spec = SampleSpec {
                        seed: self.spec.seed + u64::from(p),
                        ..self.spec
                    };
                    write_samples(&dir.join(format!("plate{p}")), &spec).unwrap();
                }
            }
            std::fs::write(&done, b"").unwrap();
        }
        if self.plates == 0 {
            vec![dir.join("image.ome.zarr")]
        } else {
            (0..self.plates)
                .map(|p| dir.join(format!("plate{p}/plate.ome.zarr")))
                .collect()
        }
    }
}

fn files_under(root: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Runs the child step `cmd` `runs` times, `before` each: the median wall time and the highest
/// peak RSS.
fn repeated(runs: usize, cmd: &[String], mut before: impl FnMut()) -> (f64, f64) {
    let mut walls = Vec::new();
    let mut rss: f64 = 0.0;
    for _ in 0..runs {
        before();
        let r = measure(cmd);
        walls.push(r.wall);
        rss = rss.max(r.rss_mib);
    }
    (median(walls), rss)
}

/// Runs a shell pipeline; panics when it fails.
fn shell(script: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "failed: {script}");
}

fn rm(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
    let _ = std::fs::remove_file(p);
}

fn remote(config: &Path, control: &Path) -> (tokio::runtime::Runtime, Remote) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = Remote::new(SshTarget {
        host: "slurm".into(),
        config_file: Some(config.to_path_buf()),
        control_dir: control.to_path_buf(),
        connect_timeout: Duration::from_secs(10),
        // the daemon's default: AES-GCM first where the CPU has AES
        ciphers: stage_cluster::ssh_ciphers::resolve(&stage_config::ciphers::SshCiphers::Auto),
    });
    (rt, r)
}

/// The steps, run in a child process: `--child MODE OUT SRC…`.
fn child(args: &[String]) {
    let mode = args[0].as_str();
    let out = PathBuf::from(&args[1]);
    let srcs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
    match mode {
        "tiff" => {
            convert::stores_to_tiffs(&srcs, &out, &TiffOptions::default(), &()).unwrap();
        }
        "tiff2tiff" => {
            // a TIFF input restaged to TIFF (staging of TIFFs that are not whole OME-TIFFs)
            std::fs::create_dir_all(&out).unwrap();
            for e in std::fs::read_dir(&srcs[0]).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "tif") {
                    let info = stage_ngff::tiff::read::inspect(&p).unwrap();
                    let target = out.join(p.file_name().unwrap());
                    convert::tiff_image_to_tiff(&info, &target, &TiffOptions::default(), &())
                        .unwrap();
                }
            }
        }
        "link" | "reencode" | "sharded" => {
            std::fs::create_dir_all(&out).unwrap();
            let (want, sharding) = match mode {
                "link" => (NgffVersion::V04, Sharding::None),
                "reencode" => (NgffVersion::V05, Sharding::None),
                _ => (NgffVersion::V05, Sharding::Shards),
            };
            for (i, s) in srcs.iter().enumerate() {
                pass_through_sharded(
                    s,
                    &out.join(format!("{i}.ome.zarr")),
                    want,
                    Compression::default(),
                    sharding,
                )
                .unwrap();
            }
        }
        "keep" => {
            // a job's output of the same size: the staged TIFFs, kept with their SHA-256 manifest
            let outputs = &srcs[0];
            let analyzed = out.join("group/.analyzed/scale");
            keep(&KeepRequest {
                outputs,
                root: &out,
                analyzed: &analyzed,
                submission: "scale",
                workflow: "bench",
                staged: outputs,
                staged_inputs: Vec::new(),
                original_names: std::collections::BTreeMap::new(),
                limits: stage_results::safety::Limits::default(),
                omero_ngff: NgffVersion::V04,
                expect_images: false,
                rename: None,
            })
            .unwrap();
        }
        "upload" | "download" => {
            // out: the remote folder; srcs: [ssh config, control dir, local folder]
            let (rt, r) = remote(&srcs[0], &srcs[1]);
            let remote_dir = args[1].as_str();
            // connected first, as the daemon's master is: the transfer is timed, not the
            // handshake (the peer's master is connected too); the parent reads `elapsed`
            rt.block_on(r.run("true", &[])).unwrap();
            let started = Instant::now();
            rt.block_on(async {
                if mode == "upload" {
                    upload::upload(&r, &srcs[2], remote_dir).await.unwrap();
                } else {
                    download::download(&r, remote_dir, &srcs[2], &OutputLimits::NONE)
                        .await
                        .unwrap();
                }
            });
            println!("elapsed {}", started.elapsed().as_secs_f64());
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// One row of the growth table.
struct Row {
    dataset: &'static str,
    step: &'static str,
    fields: u64,
    gb: f64,
    wall: f64,
    rss: f64,
    files: u64,
}

fn print_row(r: &Row) {
    // a peer run outside /usr/bin/time has no RSS or file count here
    let dash = |v: String| if v == "0" { "—".to_owned() } else { v };
    println!(
        "| {} | {} | {:.2} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} |",
        r.dataset,
        r.fields,
        r.gb,
        r.step,
        r.wall,
        r.gb * 1e3 / r.wall,
        r.wall / r.gb,
        r.wall * 1e3 / r.fields as f64,
        dash(format!("{:.0}", r.rss)),
        dash(r.files.to_string())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    let opt = |name: &str| args::opt(&args, name);
    let full = flag("--full");
    let runs: usize = opt("--runs").and_then(|v| v.parse().ok()).unwrap_or(1);
    let only = opt("--only");
    let bench_dir =
        PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/biomero-bench".into()));
    let root = bench_dir.join("scale");
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let me = std::env::current_exe().unwrap().display().to_string();
    let prepare_only = flag("--prepare");

    let datasets = [
        Dataset::plate("plate-12x1080", Axis::Bytes, 1, [2, 3, 2, 2, 1080]),
        Dataset::plate("plate-48x2048", Axis::Bytes, 1, [4, 6, 2, 3, 2048]),
        if full {
            Dataset::plate("plate-192x2048", Axis::Bytes, 1, [8, 12, 2, 3, 2048])
        } else {
            Dataset::plate("plate-96x2048", Axis::Bytes, 1, [8, 6, 2, 3, 2048])
        },
        if full {
            Dataset::image("image-8GiB", 4, 16, 8192)
        } else {
            Dataset::image("image-1GiB", 2, 4, 8192)
        },
        // one whole-slide-sized plane: memory must not follow the plane (512² chunks)
        if full {
            Dataset::image("plane-32768", 1, 1, 32768)
        } else {
            Dataset::image("plane-16384", 1, 1, 16384)
        },
        Dataset::plate("24-well", Axis::Objects, 1, [4, 6, 1, 2, 256]),
        Dataset::plate("96-well-x4", Axis::Objects, 1, [8, 12, 4, 2, 256]),
        Dataset::plate("384-well-x9", Axis::Objects, 1, [16, 24, 9, 2, 256]),
        if full {
            Dataset::plate(
                "screen-4x384-well-x9",
                Axis::Objects,
                4,
                [16, 24, 9, 2, 256],
            )
        } else {
            Dataset::plate("screen-4x96-well-x4", Axis::Objects, 4, [8, 12, 4, 2, 256])
        },
    ];

    if prepare_only {
        for d in datasets
            .iter()
            .filter(|d| only.as_deref().is_none_or(|o| d.name.contains(o)))
        {
            d.stores(&root);
        }
        return;
    }
    let lab =
        PathBuf::from(std::env::var("SLURMLAB_DIR").unwrap_or_else(|_| "/tmp/slurmlab".into()));
    let ssh_config = lab.join("client/ssh_config");
    let cluster = ssh_config.exists();
    let remote_base = opt("--remote-base").unwrap_or_else(|| "/tmp".into());
    let control = out.join("ctl");
    if cluster {
        std::fs::create_dir_all(&control).unwrap();
    } else {
        eprintln!(
            "no local cluster ({} missing): the upload and download steps are skipped",
            ssh_config.display()
        );
    }
    // the peers' master over the cipher ours asks for
    let ssh_base = format!(
        "-F {} -o ControlMaster=auto -o ControlPersist=60 -o ControlPath={}/peer-%C {}",
        ssh_config.display(),
        control.display(),
        peer_cipher::peer_cipher_options().join(" ")
    );

    println!(
        "\nGrowth table ({} sizes; {runs} run(s) per step, medians; peak RSS is the step's process)\n",
        if full { "full" } else { "reduced" }
    );
    println!(
        "| dataset | fields | GB | step | wall s | MB/s | s per GB | ms per field | RSS MiB | files out |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<Row> = Vec::new();
    let mut upload_ratios: Vec<(&str, f64, f64)> = Vec::new();
    for ds in datasets
        .iter()
        .filter(|d| only.as_deref().is_none_or(|o| d.name.contains(o)))
    {
        let stores = ds.stores(&root);
        let src: Vec<String> = stores.iter().map(|p| p.display().to_string()).collect();
        let gb = ds.pixel_bytes() as f64 / 1e9;
        let tiffs = out.join("tiffs");
        let steps: [(&str, &str, PathBuf); 4] = [
            ("stage: TIFF", "tiff", tiffs.clone()),
            ("stage: Zarr as it is", "link", out.join("link")),
            ("stage: re-encode to 0.5", "reencode", out.join("reencode")),
            ("stage: re-encode, sharded", "sharded", out.join("sharded")),
        ];
        // one child step of this dataset: `mode` from `inputs` into `target`, measured
        let child_step = |step: &'static str, mode: &str, target: &Path, inputs: &[String]| {
            let mut cmd = vec![me.clone(), "--child".into(), mode.into()];
            cmd.push(target.display().to_string());
            cmd.extend(inputs.iter().cloned());
            let (wall, rss) = repeated(runs, &cmd, || rm(target));
            let row = Row {
                dataset: ds.name,
                step,
                fields: ds.fields(),
                gb,
                wall,
                rss,
                files: files_under(target),
            };
            print_row(&row);
            row
        };
        for (step, mode, target) in steps {
            rows.push(child_step(step, mode, &target, &src));
            if target != tiffs {
                rm(&target);
            }
        }
        let staged = [tiffs.display().to_string()];
        // a single image's TIFF read back as a TIFF input: memory must follow the band here too
        if ds.plates == 0 {
            let again = out.join("tiff2tiff");
            rows.push(child_step(
                "restage: TIFF → TIFF",
                "tiff2tiff",
                &again,
                &staged,
            ));
            rm(&again);
        }
        // keep the TIFFs as a job's output of the same size
        let kept = out.join("kept");
        rows.push(child_step(
            "collect and keep (SHA-256)",
            "keep",
            &kept,
            &staged,
        ));
        rm(&kept);
        if cluster {
            let there = format!("{remote_base}/bench-scale-{}", std::process::id());
            let mut ours = Vec::new();
            let mut raw = Vec::new();
            let mut down = Vec::new();
            let mut raw_down = Vec::new();
            let (mut rss_up, mut rss_down): (f64, f64) = (0.0, 0.0);
            // what is uploaded: the stores as staging passes them through (hard links)
            let upload_src = out.join("staged");
            rm(&upload_src);
            std::fs::create_dir_all(&upload_src).unwrap();
            for (i, s) in stores.iter().enumerate() {
                let ok = Command::new("cp")
                    .arg("-rl")
                    .arg(s)
                    .arg(upload_src.join(format!("{i}.ome.zarr")))
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "cp -rl failed");
            }
            let up_files = files_under(&upload_src);
            let wipe = |dir: &str| {
                shell(&format!("ssh {ssh_base} slurm 'rm -rf {dir}'"));
            };
            for round in 0..=runs {
                let target = format!("{there}/up-{round}");
                let r = measure(&[
                    me.clone(),
                    "--child".into(),
                    "upload".into(),
                    format!("{target}/data/in"),
                    ssh_config.display().to_string(),
                    control.join("ours").display().to_string(),
                    upload_src.display().to_string(),
                ]);
                if round > 0 {
                    ours.push(r.wall);
                    rss_up = rss_up.max(r.rss_mib);
                }
                wipe(&target);
                let started = Instant::now();
                shell(&format!(
                    "tar cf - -C '{}' . | ssh {ssh_base} slurm 'mkdir -p {target}/raw && tar xf - -C {target}/raw'",
                    upload_src.display()
                ));
                if round > 0 {
                    raw.push(started.elapsed().as_secs_f64());
                }
                wipe(&target);
            }
            // a same-sized output: the TIFFs, put there once, downloaded verified
            let outputs = format!("{there}/out");
            shell(&format!(
                "tar cf - -C '{}' . | ssh {ssh_base} slurm 'mkdir -p {outputs} && tar xf - -C {outputs}'",
                tiffs.display()
            ));
            let local = out.join("downloaded");
            for _ in 0..runs {
                rm(&local);
                let r = measure(&[
                    me.clone(),
                    "--child".into(),
                    "download".into(),
                    outputs.clone(),
                    ssh_config.display().to_string(),
                    control.join("ours").display().to_string(),
                    local.display().to_string(),
                ]);
                down.push(r.wall);
                rss_down = rss_down.max(r.rss_mib);
                rm(&local);
                std::fs::create_dir_all(&local).unwrap();
                let started = Instant::now();
                shell(&format!(
                    "ssh {ssh_base} slurm 'cd {outputs} && tar cf - .' | tar xf - -C '{}'",
                    local.display()
                ));
                raw_down.push(started.elapsed().as_secs_f64());
            }
            let down_files = files_under(&local);
            rm(&local);
            wipe(&there);
            rm(&upload_src);
            let (o, w) = (median(ours), median(raw));
            let (down, raw_down) = (median(down), median(raw_down));
            for (step, wall, rss, files) in [
                ("upload, verified (ours)", o, rss_up, up_files),
                ("upload, raw tar over ssh (peer)", w, 0.0, 0),
                ("download, verified (ours)", down, rss_down, down_files),
                ("download, raw ssh tar (peer)", raw_down, 0.0, 0),
            ] {
                let row = Row {
                    dataset: ds.name,
                    step,
                    fields: ds.fields(),
                    gb,
                    wall,
                    rss,
                    files,
                };
                print_row(&row);
                rows.push(row);
            }
            upload_ratios.push((ds.name, w / o, raw_down / down));
        }
        rm(&tiffs);
    }

    // the peer, on a stated subset: ome-zarr-py's plate writer on the middle plate
    let mut peer_per_gb = None;
    if flag("--peers") {
        let py = bench_dir.join("venv/bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/plate_copy.py");
        if py.exists() {
            let middle = &datasets[1];
            let stores = middle.stores(&root);
            let target = out.join("peer-plate");
            rm(&target);
            let r = measure(&[
                py.display().to_string(),
                script.display().to_string(),
                stores[0].display().to_string(),
                target.display().to_string(),
                "--ngff".into(),
                "0.5".into(),
            ]);
            rm(&target);
            let gb = middle.pixel_bytes() as f64 / 1e9;
            println!(
                "| {} | {} | {gb:.2} | ome-zarr-py plate writer (peer) | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | |",
                middle.name,
                middle.fields(),
                r.wall,
                gb * 1e3 / r.wall,
                r.wall / gb,
                r.wall * 1e3 / middle.fields() as f64,
                r.rss_mib
            );
            peer_per_gb = Some((middle.name, r.wall / gb));
        } else {
            eprintln!("--peers: no {} (run benches/peers/setup.sh)", py.display());
        }
    }

    println!(
        "\nGrowth: cost per unit at the largest size / at the middle size of each axis (target <= 1.3)\n"
    );
    println!("| axis | step | per GB | per field |");
    println!("|---|---|---:|---:|");
    for (axis, name, plates_only) in [
        (Axis::Bytes, "bytes (plates)", true),
        (Axis::Objects, "objects", false),
    ] {
        let sizes: Vec<&'static str> = datasets
            .iter()
            .filter(|d| d.axis == axis && (!plates_only || d.plates > 0))
            .map(|d| d.name)
            .collect();
        if sizes.len() < 3 {
            continue;
        }
        let (mid, last) = (sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
        let steps: Vec<&str> = {
            let mut s: Vec<&str> = rows.iter().map(|r| r.step).collect();
            s.dedup();
            s.sort_unstable();
            s.dedup();
            s
        };
        for step in steps {
            let find = |d: &str| rows.iter().find(|r| r.dataset == d && r.step == step);
            if let (Some(m), Some(l)) = (find(mid), find(last)) {
                println!(
                    "| {name} ({mid} → {last}) | {step} | {:.2}× | {:.2}× |",
                    (l.wall / l.gb) / (m.wall / m.gb),
                    (l.wall / l.fields as f64) / (m.wall / m.fields as f64)
                );
            }
        }
    }
    let worst = rows.iter().fold(None::<&Row>, |w, r| match w {
        Some(w) if w.rss >= r.rss => Some(w),
        _ => Some(r),
    });
    if let Some(w) = worst {
        println!(
            "\nFlat memory: highest peak RSS {:.0} MiB ({} on {}); target <= 256 MiB at every size",
            w.rss, w.step, w.dataset
        );
    }
    for (d, up, down) in &upload_ratios {
        println!(
            "Verified transfers vs raw tar over ssh on {d}: upload {up:.2}× (target >= 0.9×), download {down:.2}×"
        );
    }
    if let Some((d, per_gb)) = peer_per_gb {
        let ours = rows
            .iter()
            .find(|r| r.dataset == d && r.step == "stage: re-encode to 0.5");
        if let Some(o) = ours {
            println!(
                "Plate re-encode vs ome-zarr-py on {d}: {:.1}× (target >= 10×)",
                per_gb / (o.wall / o.gb)
            );
        }
        if let Some(l) = rows
            .iter()
            .filter(|r| r.dataset.starts_with("plate-") && r.step == "stage: re-encode to 0.5")
            .max_by(|a, b| a.gb.total_cmp(&b.gb))
        {
            println!(
                "ome-zarr-py on {} extrapolated from {d} per GB (not measured): {:.0} s, ours measured {:.1} s",
                l.dataset,
                per_gb * l.gb,
                l.wall
            );
        }
    }
    rm(&out);
}
