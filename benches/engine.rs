//! Side-by-side benchmark of the data engine against the Python peers.
//!
//! `cargo bench -p stage-benches --bench engine` prepares the peers and the
//! deterministic data (`peers/setup.sh`, into `$BENCH_DIR`, default
//! `/tmp/biomero-bench`), then runs every scenario as alternating pairs of
//! processes — ours, peer, ours, peer, … — after one warm-up of each, and
//! prints median wall time, MB/s of pixels, peak RSS and the ratio. Both sides
//! run as separate processes measured by `/usr/bin/time` (ours is this binary
//! re-executed in a child mode), so start-up cost and memory are counted alike.
//! The machine is shared and noisy: only the ratios of one run mean anything.
//!
//! Options (after `--`): `--runs N` (measured pairs, default 3), `--only NAME`.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use stage_ngff::NgffVersion;
use stage_ngff::convert::{self, TiffOptions, ZarrOptions};
use stage_ngff::copy::{Sharding, pass_through_sharded};
use stage_ngff::write::array::Compression;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "measure.rs"]
mod measure;
use measure::{Run, measure, median};

/// A side of a comparison: a label and a shell-free command (run after `prepare`).
struct Side {
    label: String,
    cmd: Vec<String>,
}

struct Scenario {
    name: &'static str,
    pixel_mb: f64,
    target: &'static str,
    ours: Side,
    peers: Vec<Side>,
    /// Cleans outputs before each run.
    clean: Vec<PathBuf>,
    /// Output folders a peer expects to exist.
    mkdirs: Vec<PathBuf>,
}

fn sh(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn reset(s: &Scenario) {
    rm(&s.clean);
    for d in &s.mkdirs {
        std::fs::create_dir_all(d).unwrap();
    }
}

fn rm(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    }
}

fn self_exe() -> String {
    std::env::current_exe().unwrap().display().to_string()
}

fn child(args: &[String]) {
    let mode = args[0].as_str();
    match mode {
        "z2t" => {
            let out = PathBuf::from(&args[1]);
            let inputs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            convert::stores_to_tiffs(&inputs, &out, &TiffOptions::default(), &()).unwrap();
        }
        "t2z" => {
            let out = PathBuf::from(&args[1]);
            let levels: u32 = args[2].parse().unwrap();
            let inputs: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
            let opts = ZarrOptions {
                levels,
                ..ZarrOptions::default()
            };
            convert::tiffs_to_zarrs(&inputs, &out, &opts, &()).unwrap();
        }
        "read-only" => {
            // diagnostic: decode every plane, write nothing
            let img = stage_ngff::ImageReader::open(Path::new(&args[1])).unwrap();
            let mut r = img.plane_reader(0, 32 << 20).unwrap();
            let mut buf = vec![0u8; r.plane_bytes()];
            let s = r.sizes();
            let t0 = Instant::now();
            for t in 0..s.t {
                for z in 0..s.z {
                    for c in 0..s.c {
                        r.read_plane(t, c, z, &mut buf).unwrap();
                    }
                }
            }
            eprintln!("decode only: {:.3}s", t0.elapsed().as_secs_f64());
        }
        "orig2tiff" => {
            // an OMERO image's original OME-TIFF, rewritten as its own TIFF (what a series of
            // a multi-series file or a multi-file fileset needs)
            let info = stage_ngff::tiff::read::inspect(Path::new(&args[2])).unwrap();
            convert::tiff_image_to_tiff(&info, Path::new(&args[1]), &TiffOptions::default(), &())
                .unwrap();
        }
        "orig2zarr" => {
            let info = stage_ngff::tiff::read::inspect(Path::new(&args[2])).unwrap();
            convert::tiff_image_to_zarr(&info, Path::new(&args[1]), &ZarrOptions::default(), &())
                .unwrap();
        }
        "z2t-one" => {
            let img = stage_ngff::ImageReader::open(Path::new(&args[2])).unwrap();
            convert::image_to_tiff(&img, Path::new(&args[1]), &TiffOptions::default(), &())
                .unwrap();
        }
        mode @ ("reencode" | "reencode-sharded") => {
            pass_through_sharded(
                Path::new(&args[1]),
                Path::new(&args[2]),
                NgffVersion::V05,
                Compression::default(),
                if mode == "reencode" {
                    Sharding::None
                } else {
                    Sharding::Shards
                },
            )
            .unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bench_dir = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/biomero-bench".into());
    eprintln!("preparing peers and data in {bench_dir} (first time: several minutes) ...");
    let ok = Command::new("bash")
        .arg(repo.join("benches/peers/setup.sh"))
        .env("BENCH_DIR", &bench_dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "benches/peers/setup.sh failed");
    let b = PathBuf::from(&bench_dir);
    let data = b.join("data");
    let out = b.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let py = |venv: &str| b.join(venv).join("bin/python").display().to_string();
    let peer = |s: &str| repo.join("benches/peers").join(s).display().to_string();
    let has_prod = b.join("venv-prod/bin/python").exists()
        && Command::new(py("venv-prod"))
            .args(["-c", "import zarr, tifffile, dask"])
            .status()
            .is_ok_and(|s| s.success());
    let me = self_exe();
    let d = |p: &str| data.join(p).display().to_string();
    let o = |p: &str| out.join(p).display().to_string();

    let image_mb = 1.0 * 3.0 * 16.0 * 2048.0 * 2048.0 * 2.0 / 1e6;
    let plate_mb = 12.0 * 2.0 * 1080.0 * 1080.0 * 2.0 / 1e6;
    let tiffs_mb = 24.0 * 2.0 * 1024.0 * 1024.0 * 2.0 / 1e6;
    let fields: Vec<String> = ["A", "B"]
        .iter()
        .flat_map(|r| {
            ["1", "2", "3"]
                .iter()
                .flat_map(move |c| ["0", "1"].iter().map(move |f| format!("{r}/{c}/{f}")))
        })
        .map(|w| d(&format!("plate_ngff04_zarrv2.ome.zarr/{w}")))
        .collect();
    let job_array = {
        // one Python process per field, one after another: a Slurm job array with one slot
        let mut script = String::new();
        for (i, f) in fields.iter().enumerate() {
            script.push_str(&format!(
                "{} {} {f} --output {} && ",
                py("venv"),
                peer("zarr_to_tiff.py"),
                o(&format!("peer-plate-{i}.tif"))
            ));
        }
        script.push_str("true");
        vec!["bash".to_owned(), "-c".to_owned(), script]
    };
    let mut all_in_one = vec![py("venv"), peer("zarr_to_tiff.py")];
    all_in_one.extend(fields.iter().cloned());
    all_in_one.extend(["--outdir".to_owned(), o("peer-plate-one")]);

    let mut image_peers = vec![Side {
        label: "BIOMERO logic (current releases)".into(),
        cmd: vec![
            py("venv"),
            peer("zarr_to_tiff.py"),
            d("image_ngff04_zarrv2.ome.zarr"),
            "--output".into(),
            o("peer-a.tif"),
        ],
    }];
    if has_prod {
        image_peers.push(Side {
            label: "BIOMERO logic (container pins)".into(),
            cmd: vec![
                py("venv-prod"),
                peer("zarr_to_tiff.py"),
                d("image_ngff04_zarrv2.ome.zarr"),
                "--output".into(),
                o("peer-a-prod.tif"),
            ],
        });
    }
    let scenarios = [
        Scenario {
            name: "zarr-to-tiff-image-0.4",
            pixel_mb: image_mb,
            target: ">= 4x BIOMERO, RSS <= 128 MiB",
            ours: Side {
                label: "biomero-stage".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "z2t",
                    &o("ours-a"),
                    &d("image_ngff04_zarrv2.ome.zarr"),
                ]),
            },
            peers: image_peers,
            clean: vec![
                out.join("ours-a"),
                out.join("peer-a.tif"),
                out.join("peer-a-prod.tif"),
            ],
            mkdirs: vec![],
        },
        Scenario {
            name: "zarr-to-tiff-8192-planes-0.4",
            pixel_mb: 3.0 * 8192.0 * 8192.0 * 2.0 / 1e6,
            target: "RSS <= 256 MiB; MB/s within 1.3x of 2048² planes (zarr-to-tiff-image-0.4)",
            ours: Side {
                label: "biomero-stage".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "z2t",
                    &o("ours-large"),
                    &d("large_planes_ngff04_zarrv2.ome.zarr"),
                ]),
            },
            peers: vec![Side {
                label: "BIOMERO logic (current releases)".into(),
                cmd: vec![
                    py("venv"),
                    peer("zarr_to_tiff.py"),
                    d("large_planes_ngff04_zarrv2.ome.zarr"),
                    "--output".into(),
                    o("peer-large.tif"),
                ],
            }],
            clean: vec![out.join("ours-large"), out.join("peer-large.tif")],
            mkdirs: vec![],
        },
        Scenario {
            name: "zarr-to-tiff-image-0.5",
            pixel_mb: image_mb,
            target: ">= 4x BIOMERO",
            ours: Side {
                label: "biomero-stage".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "z2t",
                    &o("ours-a5"),
                    &d("image_ngff05_zarrv3.ome.zarr"),
                ]),
            },
            peers: vec![Side {
                label: "BIOMERO logic (current releases)".into(),
                cmd: vec![
                    py("venv"),
                    peer("zarr_to_tiff.py"),
                    d("image_ngff05_zarrv3.ome.zarr"),
                    "--output".into(),
                    o("peer-a5.tif"),
                ],
            }],
            clean: vec![out.join("ours-a5"), out.join("peer-a5.tif")],
            mkdirs: vec![],
        },
        Scenario {
            name: "zarr-to-tiff-plate-12-fields",
            pixel_mb: plate_mb,
            target: ">= 50x one process per field",
            ours: Side {
                label: "biomero-stage".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "z2t",
                    &o("ours-b"),
                    &d("plate_ngff04_zarrv2.ome.zarr"),
                ]),
            },
            peers: vec![
                Side {
                    label: "one process per field (job array, 1 slot)".into(),
                    cmd: job_array,
                },
                Side {
                    label: "all fields in one process".into(),
                    cmd: all_in_one,
                },
            ],
            clean: {
                let mut c = vec![out.join("ours-b"), out.join("peer-plate-one")];
                c.extend((0..12).map(|i| out.join(format!("peer-plate-{i}.tif"))));
                c
            },
            mkdirs: vec![out.join("peer-plate-one")],
        },
        Scenario {
            name: "tiff-to-zarr-24-files-no-pyramid-0.4",
            pixel_mb: tiffs_mb,
            target: ">= 10x ome-zarr-py",
            ours: Side {
                label: "biomero-stage".into(),
                cmd: sh(&[&me, "--child", "t2z", &o("ours-c"), "1", &d("tiffs")]),
            },
            peers: vec![Side {
                label: "ome-zarr-py 0.18, no pyramid".into(),
                cmd: vec![
                    py("venv"),
                    peer("tiff_to_zarr.py"),
                    d("tiffs"),
                    "--outdir".into(),
                    o("peer-c"),
                    "--pyramid".into(),
                    "none".into(),
                    "--ngff".into(),
                    "0.4".into(),
                ],
            }],
            clean: vec![out.join("ours-c"), out.join("peer-c")],
            mkdirs: vec![],
        },
        Scenario {
            name: "tiff-to-zarr-24-files-pyramid-0.4",
            pixel_mb: tiffs_mb,
            target: ">= 10x ome-zarr-py",
            ours: Side {
                label: "biomero-stage (5 levels)".into(),
                cmd: sh(&[&me, "--child", "t2z", &o("ours-cp"), "5", &d("tiffs")]),
            },
            peers: vec![Side {
                label: "ome-zarr-py 0.18, default pyramid".into(),
                cmd: vec![
                    py("venv"),
                    peer("tiff_to_zarr.py"),
                    d("tiffs"),
                    "--outdir".into(),
                    o("peer-cp"),
                    "--ngff".into(),
                    "0.4".into(),
                ],
            }],
            clean: vec![out.join("ours-cp"), out.join("peer-cp")],
            mkdirs: vec![],
        },
        Scenario {
            name: "plate-write-0.4-to-0.5-with-labels",
            pixel_mb: plate_mb * 1.5,
            target: ">= 10x ome-zarr-py",
            ours: Side {
                label: "biomero-stage re-encode (verified)".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "reencode",
                    &d("plate_ngff04_zarrv2.ome.zarr"),
                    &o("ours-plate5"),
                ]),
            },
            peers: vec![Side {
                label: "ome-zarr-py 0.18 plate writer".into(),
                cmd: vec![
                    py("venv"),
                    peer("plate_copy.py"),
                    d("plate_ngff04_zarrv2.ome.zarr"),
                    o("peer-plate5"),
                    "--ngff".into(),
                    "0.5".into(),
                ],
            }],
            clean: vec![out.join("ours-plate5"), out.join("peer-plate5")],
            mkdirs: vec![],
        },
        Scenario {
            name: "plate-write-0.4-to-0.5-sharded",
            pixel_mb: plate_mb * 1.5,
            target: ">= 10x ome-zarr-py; far fewer files",
            ours: Side {
                label: "biomero-stage re-encode, sharded (verified)".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "reencode-sharded",
                    &d("plate_ngff04_zarrv2.ome.zarr"),
                    &o("ours-plate5s"),
                ]),
            },
            peers: vec![Side {
                label: "ome-zarr-py 0.18 plate writer".into(),
                cmd: vec![
                    py("venv"),
                    peer("plate_copy.py"),
                    d("plate_ngff04_zarrv2.ome.zarr"),
                    o("peer-plate5s"),
                    "--ngff".into(),
                    "0.5".into(),
                ],
            }],
            clean: vec![out.join("ours-plate5s"), out.join("peer-plate5s")],
            mkdirs: vec![],
        },
    ];

    // the same pixels as an OMERO image imported in place would have them: an OME-TIFF
    let original = out.join("original-a.ome.tif");
    if !original.exists() {
        let img =
            stage_ngff::ImageReader::open(&data.join("image_ngff04_zarrv2.ome.zarr")).unwrap();
        let tmp = out.join("original-a.ome.tif.partial");
        convert::image_to_tiff(&img, &tmp, &TiffOptions::default(), &()).unwrap();
        std::fs::rename(&tmp, &original).unwrap();
    }
    let original = original.display().to_string();
    let from_originals = [
        Scenario {
            name: "stage-original-to-tiff-vs-zarr",
            pixel_mb: image_mb,
            target: "originals about as fast as Zarr (ratio near 1)",
            ours: Side {
                label: "from the original OME-TIFF (rewritten)".into(),
                cmd: sh(&[&me, "--child", "orig2tiff", &o("orig-t.tif"), &original]),
            },
            peers: vec![Side {
                label: "from the on-disk Zarr of the same pixels".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "z2t-one",
                    &o("zarr-t.tif"),
                    &d("image_ngff04_zarrv2.ome.zarr"),
                ]),
            }],
            clean: vec![out.join("orig-t.tif"), out.join("zarr-t.tif")],
            mkdirs: vec![],
        },
        Scenario {
            name: "stage-original-to-zarr-vs-zarr",
            pixel_mb: image_mb,
            target: "originals about as fast as Zarr (ratio near 1)",
            ours: Side {
                label: "from the original OME-TIFF (encoded)".into(),
                cmd: sh(&[&me, "--child", "orig2zarr", &o("orig-z.zarr"), &original]),
            },
            peers: vec![Side {
                label: "from the on-disk Zarr (re-encoded to 0.5)".into(),
                cmd: sh(&[
                    &me,
                    "--child",
                    "reencode",
                    &d("image_ngff04_zarrv2.ome.zarr"),
                    &o("zarr-z.zarr"),
                ]),
            }],
            clean: vec![out.join("orig-z.zarr"), out.join("zarr-z.zarr")],
            mkdirs: vec![],
        },
    ];

    let mut results = Vec::new();
    println!(
        "\nmachine: {} cores; {runs} measured pairs per side after one warm-up; medians",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "{:<40} {:<44} {:>8} {:>9} {:>9} {:>8}",
        "scenario", "side", "wall s", "MB/s", "RSS MiB", "ratio"
    );
    for s in scenarios
        .iter()
        .chain(from_originals.iter())
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let mut ours_runs = Vec::new();
        let mut peer_runs: Vec<Vec<Run>> = vec![Vec::new(); s.peers.len()];
        for round in 0..=runs {
            reset(s);
            let r = measure(&s.ours.cmd);
            if round > 0 {
                ours_runs.push(r);
            }
            for (i, p) in s.peers.iter().enumerate() {
                reset(s);
                let r = measure(&p.cmd);
                if round > 0 {
                    peer_runs[i].push(r);
                }
            }
        }
        rm(&s.clean);
        let ours_wall = median(ours_runs.iter().map(|r| r.wall).collect());
        let ours_rss = ours_runs.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
        println!(
            "{:<40} {:<44} {:>8.2} {:>9.1} {:>9.0} {:>8}",
            s.name,
            s.ours.label,
            ours_wall,
            s.pixel_mb / ours_wall,
            ours_rss,
            ""
        );
        let mut peers_json = Vec::new();
        for (p, rs) in s.peers.iter().zip(&peer_runs) {
            let w = median(rs.iter().map(|r| r.wall).collect());
            let rss = rs.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
            let ratio = w / ours_wall;
            println!(
                "{:<40} {:<44} {:>8.2} {:>9.1} {:>9.0} {:>7.1}x",
                "",
                p.label,
                w,
                s.pixel_mb / w,
                rss,
                ratio
            );
            peers_json.push(json!({"side": p.label, "wall_s": w, "mb_s": s.pixel_mb / w, "rss_mib": rss, "ratio": ratio}));
        }
        println!("{:<40} target: {}", "", s.target);
        results.push(json!({
            "scenario": s.name, "pixel_mb": s.pixel_mb, "target": s.target,
            "ours": {"wall_s": ours_wall, "mb_s": s.pixel_mb / ours_wall, "rss_mib": ours_rss},
            "peers": peers_json,
        }));
    }
    let path = repo.join("target/bench-engine.json");
    let _ = std::fs::write(
        &path,
        serde_json::to_vec_pretty(&Value::Array(results)).unwrap(),
    );
    eprintln!("results: {}", path.display());
}
