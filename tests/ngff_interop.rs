//! Everything the data engine writes, read back by independent readers
//! (tifffile, zarr-python, ome-zarr-py, ome-zarr-models from PyPI) with pixels
//! compared exactly; and stores written by the peers' own writers, read by us.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use stage_ngff::NgffVersion;
use stage_ngff::convert::{self, TiffOptions, ZarrOptions};
use stage_ngff::copy::{CopyMode, Sharding, pass_through, pass_through_sharded};
use stage_ngff::tiff::write::TiffCompression;
use stage_ngff::write::array::Compression;
use stage_sample::{SampleManifest, SampleSpec, write_samples};
use stage_tests::{partial_files, run_reader};

fn small_spec(version: NgffVersion) -> SampleSpec {
    SampleSpec {
        version,
        rows: 2,
        columns: 2,
        fields: 2,
        channels: 2,
        z: 2,
        size: 600, // chunks are 512: edge chunks everywhere
        images: 2,
        tiffs: true,
        levels: 2,
        ..SampleSpec::default()
    }
}

fn read(script: &str, p: &Path) -> Value {
    run_reader(script, &[p.as_os_str()])
}

/// SHA-256 (TCZYX) per image path relative to the sample folder.
fn manifest_shas(m: &SampleManifest) -> BTreeMap<String, (String, String)> {
    m.images
        .iter()
        .map(|i| {
            (
                i.path.clone(),
                (i.sha256.clone(), i.labels.as_ref().unwrap().sha256.clone()),
            )
        })
        .collect()
}

#[test]
fn sample_plates_and_images_validate_and_match_pixel_for_pixel_in_both_versions() {
    for (version, model_prefix, zarr_format) in
        [(NgffVersion::V04, "v04", 2), (NgffVersion::V05, "v05", 3)]
    {
        let d = tempfile::tempdir().unwrap();
        let m = write_samples(d.path(), &small_spec(version)).unwrap();
        let shas = manifest_shas(&m);
        let plate = read("read_zarr.py", &d.path().join("plate.ome.zarr"));
        assert_eq!(plate["model"], format!("{model_prefix}.HCS"), "{plate}");
        assert_eq!(plate["zarr_format"], zarr_format);
        assert_eq!(plate["ome_zarr_py_nodes"][0], "Plate");
        assert_eq!(plate["plate"]["wells"].as_array().unwrap().len(), 4);
        assert_eq!(plate["plate"]["acquisitions"][0]["id"], 0);
        let fields = plate["fields"].as_object().unwrap();
        assert_eq!(fields.len(), 8);
        for (key, f) in fields {
            let (sha, lsha) = &shas[&format!("plate.ome.zarr/{key}")];
            assert_eq!(f["sha256_tczyx"], *sha, "{version} field {key}");
            assert_eq!(f["levels"], 2);
            assert_eq!(
                f["labels"]["cells"]["sha256_tczyx"], *lsha,
                "{version} labels of {key}"
            );
            assert_eq!(
                f["labels"]["cells"]["shape_tczyx"],
                serde_json::json!([1, 1, 2, 600, 600])
            );
        }
        for img in stage_sample::image_paths(d.path(), &m) {
            let r = read("read_zarr.py", &img);
            assert_eq!(r["model"], format!("{model_prefix}.Image"));
            let rel = img
                .strip_prefix(d.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(r["image"]["sha256_tczyx"], shas[&rel].0);
            assert_eq!(r["image"]["channels"], serde_json::json!(["ch0", "ch1"]));
        }
    }
}

#[test]
fn zarr_to_tiff_is_read_by_tifffile_with_identical_pixels_axes_and_ome_metadata() {
    let d = tempfile::tempdir().unwrap();
    let m = write_samples(d.path(), &small_spec(NgffVersion::V05)).unwrap();
    let shas = manifest_shas(&m);
    let out = d.path().join("tiffs-out");
    for (compression, force_big) in [
        (TiffCompression::None, false),
        (TiffCompression::Deflate, true),
    ] {
        let dir = out.join(format!("{compression:?}"));
        let opts = TiffOptions {
            compression,
            force_bigtiff: force_big,
            ..TiffOptions::default()
        };
        let manifest = convert::stores_to_tiffs(
            &[
                d.path().join("plate.ome.zarr"),
                d.path().join("images/image_00.ome.zarr"),
            ],
            &dir,
            &opts,
            &(),
        )
        .unwrap();
        assert_eq!(manifest.entries.len(), 9);
        let written: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(written["entries"].as_array().unwrap().len(), 9);
        for e in &manifest.entries {
            let t = read("read_tiff.py", &dir.join(&e.file));
            assert_eq!(t["axes"], "ZCYX", "{}: tifffile squeezes T=1: {t}", e.file);
            assert_eq!(t["is_ome"], true);
            assert_eq!(t["is_bigtiff"], force_big);
            assert_eq!(
                t["compression"],
                if compression == TiffCompression::None {
                    1
                } else {
                    8
                }
            );
            assert_eq!(t["ome"]["DimensionOrder"], "XYCZT");
            assert_eq!(t["ome"]["PhysicalSizeXUnit"], "µm");
            assert_eq!(t["ome"]["channels"], serde_json::json!(["ch0", "ch1"]));
            let rel = e
                .source
                .strip_prefix(d.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(t["sha256_tczyx"], shas[&rel].0, "{}", e.file);
            if let Some(well) = &e.well {
                assert_eq!(
                    e.file,
                    format!("synthetic_plate_{well}_{}.tif", e.field.as_deref().unwrap())
                );
                assert_eq!(e.plate.as_deref(), Some("synthetic_plate"));
            } else {
                assert_eq!(e.file, "image_00.tif");
            }
        }
        assert!(partial_files(&dir).is_empty());
    }
}

#[test]
fn tiff_to_zarr_honours_ome_tiff_tifffile_and_imagej_axes() {
    let d = tempfile::tempdir().unwrap();
    let m = write_samples(d.path(), &small_spec(NgffVersion::V04)).unwrap();
    let shas = manifest_shas(&m);
    // OME-TIFFs written by us (XYZCT order) and by tifffile (CYX, TZCYX ImageJ)
    let cyx = d.path().join("cyx.tif");
    let peer_cyx = run_reader("write_peer.py", &["tiff-cyx".as_ref(), cyx.as_os_str()]);
    let ij = d.path().join("imagej.tif");
    let peer_ij = run_reader("write_peer.py", &["tiff-imagej".as_ref(), ij.as_os_str()]);
    for version in [NgffVersion::V04, NgffVersion::V05] {
        let out = d.path().join(format!("zarr-{version}"));
        let opts = ZarrOptions {
            version,
            chunk_yx: (64, 64),
            shard_yx: (version == NgffVersion::V05).then_some((128, 128)),
            compression: Compression::Zstd { level: 3 },
            levels: 3,
        };
        let reports = convert::tiffs_to_zarrs(
            &[d.path().join("tiffs"), cyx.clone(), ij.clone()],
            &out,
            &opts,
            &(),
        )
        .unwrap();
        assert_eq!(reports.len(), 4);
        for r in &reports {
            let z = read("read_zarr.py", &r.store);
            assert_eq!(
                z["model"],
                if version == NgffVersion::V04 {
                    "v04.Image"
                } else {
                    "v05.Image"
                }
            );
            assert_eq!(z["image"]["levels"], 3);
            let want = match r.source.file_name().unwrap().to_str().unwrap() {
                "cyx.tif" => peer_cyx["sha256_tczyx"].as_str().unwrap().to_owned(),
                "imagej.tif" => peer_ij["sha256_tczyx"].as_str().unwrap().to_owned(),
                name => shas[&format!("images/{}.ome.zarr", name.trim_end_matches(".ome.tif"))]
                    .0
                    .clone(),
            };
            assert_eq!(z["image"]["sha256_tczyx"], want, "{}", r.source.display());
            if r.axes_from == "ome-xml" {
                assert_eq!(
                    z["image"]["scale0"],
                    serde_json::json!([1.0, 1.0, 0.5, 0.1625, 0.1625])
                );
            }
        }
        let sources: Vec<&str> = reports.iter().map(|r| r.axes_from.as_str()).collect();
        assert!(
            sources.contains(&"tifffile")
                && sources.contains(&"imagej")
                && sources.contains(&"ome-xml"),
            "{sources:?}"
        );
    }
}

/// A TIFF input is staged to TIFF band by band, decoding only the strips or tiles a band
/// holds: tifffile's tiled and striped (deflate) pages, with edges that are not on a tile,
/// come out with the same pixels, in bands of one strip (or tile row) and in one band.
#[test]
fn tiled_and_striped_tiffs_are_restaged_band_by_band_with_identical_pixels() {
    let d = tempfile::tempdir().unwrap();
    for kind in ["tiff-tiled", "tiff-strips"] {
        let src = d.path().join(format!("{kind}.tif"));
        let peer = run_reader("write_peer.py", &[kind.as_ref(), src.as_os_str()]);
        let info = stage_ngff::tiff::read::inspect(&src).unwrap();
        for band_bytes in [1, 32 << 20] {
            let out = d.path().join(format!("{kind}-{band_bytes}.ome.tif"));
            let opts = TiffOptions {
                band_bytes,
                ..TiffOptions::default()
            };
            convert::tiff_image_to_tiff(&info, &out, &opts, &()).unwrap();
            let t = read("read_tiff.py", &out);
            assert_eq!(
                t["sha256_tczyx"], peer["sha256_tczyx"],
                "{kind}, bands of {band_bytes} bytes"
            );
        }
        // and to OME-Zarr, band by band into a pyramid whose chunks are not the strips
        let zarr = d.path().join(format!("{kind}.ome.zarr"));
        let opts = ZarrOptions {
            chunk_yx: (24, 40),
            levels: 3,
            ..ZarrOptions::default()
        };
        convert::tiff_image_to_zarr(&info, &zarr, &opts, &()).unwrap();
        let z = read("read_zarr.py", &zarr);
        assert_eq!(
            z["image"]["sha256_tczyx"], peer["sha256_tczyx"],
            "{kind} to Zarr"
        );
        assert_eq!(z["image"]["levels"], 3, "{kind} to Zarr");
    }
}

#[test]
fn stores_written_by_ome_zarr_py_are_read_leniently() {
    let d = tempfile::tempdir().unwrap();
    for version in ["0.4", "0.5"] {
        let img = d.path().join(format!("peer-{version}.ome.zarr"));
        let peer = run_reader(
            "write_peer.py",
            &["ome-zarr-image".as_ref(), img.as_os_str(), version.as_ref()],
        );
        let plate = d.path().join(format!("peer-plate-{version}.ome.zarr"));
        let peer_plate = run_reader(
            "write_peer.py",
            &[
                "ome-zarr-plate".as_ref(),
                plate.as_os_str(),
                version.as_ref(),
            ],
        );
        let out = d.path().join(format!("tiff-{version}"));
        let m = convert::stores_to_tiffs(
            &[img.clone(), plate.clone()],
            &out,
            &TiffOptions::default(),
            &(),
        )
        .unwrap();
        assert_eq!(m.entries.len(), 3);
        for e in &m.entries {
            let t = read("read_tiff.py", &out.join(&e.file));
            let want = match &e.well {
                Some(w) => peer_plate["fields"][format!("{}/{}/0", &w[..1], &w[1..])].clone(),
                None => peer["sha256_tczyx"].clone(),
            };
            assert_eq!(t["sha256_tczyx"], want, "{version} {}", e.file);
        }
        // the peer's labels (0.5: inner version keys, colours without rgba) are read too
        let reader = stage_ngff::PlateReader::open(&plate).unwrap();
        let field = reader.open_field(&reader.fields[0]).unwrap();
        assert_eq!(field.label_names().unwrap(), ["cells"]);
        field.label("cells").unwrap();
    }
}

#[test]
fn rgb_images_stored_as_cyx_become_interleaved_yxc_tiffs() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("rgb.ome.zarr");
    let peer = run_reader("write_peer.py", &["rgb-zarr".as_ref(), img.as_os_str()]);
    let out = d.path().join("out");
    let m = convert::stores_to_tiffs(&[img], &out, &TiffOptions::default(), &()).unwrap();
    assert_eq!(m.entries[0].report.axes, "YXC");
    let t = read("read_tiff.py", &out.join(&m.entries[0].file));
    assert_eq!(t["shape"], serde_json::json!([64, 80, 3]));
    assert_eq!(t["axes"], "YXS");
    assert_eq!(t["sha256_tczyx"], peer["sha256_tczyx"]);
}

/// The small sample plate alone (NGFF 0.4), with the SHA-256 of each field and its labels.
fn sample_plate() -> (tempfile::TempDir, BTreeMap<String, (String, String)>) {
    let d = tempfile::tempdir().unwrap();
    let m = write_samples(
        d.path(),
        &SampleSpec {
            images: 0,
            tiffs: false,
            ..small_spec(NgffVersion::V04)
        },
    )
    .unwrap();
    let shas = manifest_shas(&m);
    (d, shas)
}

#[test]
fn pass_through_links_matching_versions_and_reencodes_the_other_verified() {
    let (d, shas) = sample_plate();
    let src = d.path().join("plate.ome.zarr");
    let same = pass_through(
        &src,
        &d.path().join("staged-same.zarr"),
        NgffVersion::V04,
        Compression::default(),
    )
    .unwrap();
    assert_eq!(same.mode, CopyMode::Hardlink);
    let v5 = pass_through(
        &src,
        &d.path().join("staged-v05.zarr"),
        NgffVersion::V05,
        Compression::default(),
    )
    .unwrap();
    assert_eq!(v5.mode, CopyMode::Reencode);
    assert!(
        v5.arrays >= 8 * 4,
        "images and labels, two levels each: {}",
        v5.arrays
    );
    let back = pass_through(
        &v5.target,
        &d.path().join("staged-v04-again.zarr"),
        NgffVersion::V04,
        Compression::Zstd { level: 1 },
    )
    .unwrap();
    for (path, model) in [
        (&v5.target, "v05.HCS"),
        (&back.target, "v04.HCS"),
        (&same.target, "v04.HCS"),
    ] {
        let r = read("read_zarr.py", path);
        assert_eq!(r["model"], model, "{}", path.display());
        for (key, f) in r["fields"].as_object().unwrap() {
            let (sha, lsha) = &shas[&format!("plate.ome.zarr/{key}")];
            assert_eq!(f["sha256_tczyx"], *sha);
            assert_eq!(f["labels"]["cells"]["sha256_tczyx"], *lsha);
        }
    }
    assert!(partial_files(d.path()).is_empty());
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += count_files(&p);
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn a_sharded_reencode_is_read_by_zarr_python_with_the_same_pixels_in_fewer_files() {
    let (d, shas) = sample_plate();
    let src = d.path().join("plate.ome.zarr");
    let plain = pass_through(
        &src,
        &d.path().join("v05-chunks.zarr"),
        NgffVersion::V05,
        Compression::default(),
    )
    .unwrap();
    let sharded = pass_through_sharded(
        &src,
        &d.path().join("v05-shards.zarr"),
        NgffVersion::V05,
        Compression::default(),
        Sharding::Shards,
    )
    .unwrap();
    assert_eq!(sharded.mode, CopyMode::Reencode);
    let level0 = std::fs::read_to_string(sharded.target.join("A/1/0/0/zarr.json")).unwrap();
    assert!(level0.contains("sharding_indexed"), "{level0}");
    let r = read("read_zarr.py", &sharded.target);
    assert_eq!(r["model"], "v05.HCS");
    for (key, f) in r["fields"].as_object().unwrap() {
        let (sha, lsha) = &shas[&format!("plate.ome.zarr/{key}")];
        assert_eq!(f["sha256_tczyx"], *sha, "{key}");
        assert_eq!(f["labels"]["cells"]["sha256_tczyx"], *lsha, "{key}");
    }
    // 2 channels × 2 z × 4 chunks per plane at level 0: one shard file instead of 16
    let (files_plain, files_sharded) = (count_files(&plain.target), count_files(&sharded.target));
    assert!(
        files_sharded * 2 < files_plain,
        "{files_sharded} files sharded, {files_plain} in chunks"
    );
    // sharding applies to NGFF 0.5 only: to 0.4 it is the plain re-encode
    let v04 = pass_through_sharded(
        &sharded.target,
        &d.path().join("back-v04.zarr"),
        NgffVersion::V04,
        Compression::default(),
        Sharding::Shards,
    )
    .unwrap();
    let r = read("read_zarr.py", &v04.target);
    assert_eq!(r["model"], "v04.HCS");
    assert!(partial_files(d.path()).is_empty());
}

#[test]
fn inspect_finds_a_problem_in_every_store_ome_zarr_models_rejects() {
    let dir = tempfile::tempdir().unwrap();
    run_reader(
        "nonconforming.py",
        &["make".as_ref(), dir.path().as_os_str()],
    );
    for (case, stricter) in [
        ("four_space", false),
        ("finer_level", false),
        // ome-zarr-models 1.7 checks the scales only; a level larger than the one before it
        // is no pyramid, so we say so
        ("larger_level", true),
        // ome-zarr-models 1.7 takes it; OMERO would show the wrong channels, so we say so
        ("channels", true),
        ("good", false),
    ] {
        let store = dir.path().join(format!("{case}.zarr"));
        let verdict = run_reader(
            "nonconforming.py",
            &["validate".as_ref(), store.as_os_str()],
        );
        let ours = stage_ngff::inspect::inspect(&store).unwrap();
        if verdict["ok"] == false {
            assert!(
                !ours.problems.is_empty(),
                "{case}: ome-zarr-models rejects it ({}), inspect found no problem",
                verdict["error"]
            );
        } else if stricter {
            assert!(!ours.problems.is_empty(), "{case}: {ours:?}");
        } else {
            assert!(ours.problems.is_empty(), "{case}: {:?}", ours.problems);
        }
    }
}
