//! Bad inputs to the data engine: each refused with an error that names the
//! path and the problem, and nothing half-written left behind.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use stage_ngff::convert::{self, TiffOptions, ZarrOptions};
use stage_ngff::copy::pass_through;
use stage_ngff::write::array::Compression;
use stage_ngff::{ImageReader, NgffError, NgffVersion, PlateReader};
use stage_sample::{SampleSpec, write_samples};
use stage_tests::partial_files;

fn sample(dir: &Path, version: NgffVersion) -> PathBuf {
    let spec = SampleSpec {
        version,
        rows: 1,
        columns: 2,
        fields: 1,
        channels: 1,
        size: 64,
        images: 1,
        levels: 3,
        ..SampleSpec::default()
    };
    write_samples(dir, &spec).unwrap();
    dir.join("images/image_00.ome.zarr")
}

/// Converting `input` to TIFF fails with a message containing every `needle`, and leaves nothing behind.
fn refuse(input: &Path, needles: &[&str]) -> String {
    let out = input.parent().unwrap().join(format!(
        "out-{}",
        input.file_name().unwrap().to_string_lossy()
    ));
    let err = convert::stores_to_tiffs(&[input.to_path_buf()], &out, &TiffOptions::default(), &())
        .unwrap_err()
        .to_string();
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    err
}

fn chunk_file(img: &Path, version: NgffVersion) -> PathBuf {
    // level 0 of the 5D (t, c, z, y, x) array, chunk 0/0/0/0/0
    match version {
        NgffVersion::V04 => img.join("0/0/0/0/0/0"),
        NgffVersion::V05 => img.join("0/c/0/0/0/0/0"),
    }
}

#[test]
fn a_truncated_or_corrupt_chunk_is_named() {
    for v in [NgffVersion::V04, NgffVersion::V05] {
        let d = tempfile::tempdir().unwrap();
        let img = sample(d.path(), v);
        let chunk = chunk_file(&img, v);
        let bytes = std::fs::read(&chunk).unwrap();
        std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
        refuse(
            &img,
            &[
                "image_00.ome.zarr",
                "cannot be decoded",
                "truncated or corrupt",
                "[0, 0, 0, 0, 0]",
            ],
        );
        std::fs::write(&chunk, b"garbage that is not blosc").unwrap();
        refuse(&img, &["cannot be decoded"]);
    }
}

#[test]
fn a_missing_array_metadata_file_and_an_incomplete_pyramid_are_refused_before_any_work() {
    for v in [NgffVersion::V04, NgffVersion::V05] {
        let d = tempfile::tempdir().unwrap();
        let img = sample(d.path(), v);
        let meta = if v == NgffVersion::V04 {
            ".zarray"
        } else {
            "zarr.json"
        };
        std::fs::remove_file(img.join("0").join(meta)).unwrap();
        refuse(&img, &["level `0`", "no array on disk", meta]);
        let d = tempfile::tempdir().unwrap();
        let img = sample(d.path(), v);
        std::fs::remove_dir_all(img.join("2")).unwrap();
        refuse(&img, &["level `2`", "pyramid is incomplete"]);
    }
}

fn edit_attrs(img: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let (file, ome) = if img.join(".zattrs").exists() {
        (img.join(".zattrs"), false)
    } else {
        (img.join("zarr.json"), true)
    };
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    if ome {
        f(&mut v["attributes"]["ome"]);
    } else {
        f(&mut v);
    }
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn axes_inconsistent_with_the_array_rank_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = sample(d.path(), NgffVersion::V04);
    edit_attrs(&img, |a| {
        a["multiscales"][0]["axes"]
            .as_array_mut()
            .unwrap()
            .remove(0);
    });
    refuse(
        &img,
        &["4 axes", "5 dimensions", "inconsistent with the array rank"],
    );
}

#[test]
fn an_unsupported_data_type_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = sample(d.path(), NgffVersion::V04);
    for level in ["0", "1", "2"] {
        let f = img.join(level).join(".zarray");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        v["dtype"] = serde_json::json!("<c8");
        std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    refuse(&img, &["data type `<c8` is not supported"]);
}

#[test]
fn a_plate_whose_wells_are_missing_is_refused_with_the_wells_named() {
    let d = tempfile::tempdir().unwrap();
    sample(d.path(), NgffVersion::V04);
    let plate = d.path().join("plate.ome.zarr");
    std::fs::remove_dir_all(plate.join("A/2")).unwrap();
    let e = PlateReader::open(&plate).unwrap_err();
    assert!(matches!(e, NgffError::Plate { .. }), "{e}");
    refuse(&plate, &["plate.ome.zarr", "well A/2", "incomplete"]);
}

#[test]
fn a_label_image_of_another_shape_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let img = sample(d.path(), NgffVersion::V04);
    let label = img.join("labels/cells/0/.zarray");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&label).unwrap()).unwrap();
    v["shape"][3] = serde_json::json!(63);
    std::fs::write(&label, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = ImageReader::open(&img).unwrap();
    let e = r.label("cells").unwrap_err().to_string();
    assert!(
        e.contains("labels/cells") && e.contains("must match its source"),
        "{e}"
    );
    let i = stage_ngff::inspect::inspect(&img).unwrap();
    assert!(
        i.problems
            .iter()
            .any(|p| p.contains("must match its source")),
        "{:?}",
        i.problems
    );
}

#[test]
fn absurd_dimensions_in_metadata_are_refused_without_allocating() {
    let d = tempfile::tempdir().unwrap();
    let img = sample(d.path(), NgffVersion::V04);
    for level in ["0", "1", "2"] {
        let f = img.join(level).join(".zarray");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        v["shape"][3] = serde_json::json!(1_u64 << 40);
        v["shape"][4] = serde_json::json!(1_u64 << 40);
        std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    refuse(&img, &["1099511627776 pixels", "implausible"]);
}

#[test]
fn tiff_inputs_that_lie_or_break_are_refused_and_leave_no_store() {
    let d = tempfile::tempdir().unwrap();
    let not_tiff = d.path().join("fake.tif");
    std::fs::write(&not_tiff, b"this is not a tiff").unwrap();
    let out = d.path().join("zarr");
    let e = convert::tiffs_to_zarrs(&[not_tiff], &out, &ZarrOptions::default(), &()).unwrap_err();
    assert!(
        e.to_string().contains("fake.tif") && e.to_string().contains("not a readable TIFF"),
        "{e}"
    );
    assert!(std::fs::read_dir(&out).map_or(0, Iterator::count) == 0);
    // a truncated TIFF: metadata fine, pixel data cut off
    let spec = SampleSpec {
        images: 1,
        tiffs: true,
        rows: 1,
        columns: 1,
        fields: 1,
        size: 64,
        ..SampleSpec::default()
    };
    write_samples(&d.path().join("s"), &spec).unwrap();
    let t = d.path().join("s/tiffs/image_00.ome.tif");
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() - 2000]).unwrap();
    let out = d.path().join("zarr2");
    let e = convert::tiffs_to_zarrs(&[t], &out, &ZarrOptions::default(), &());
    assert!(e.is_err());
    assert!(partial_files(&out).is_empty() && !out.join("image_00.ome.zarr").exists());
}

#[test]
fn pass_through_refuses_an_existing_target_and_keeps_it() {
    let d = tempfile::tempdir().unwrap();
    let img = sample(d.path(), NgffVersion::V04);
    let target = d.path().join("staged.zarr");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    let e = pass_through(&img, &target, NgffVersion::V05, Compression::default()).unwrap_err();
    assert!(matches!(e, NgffError::Exists { .. }), "{e}");
    assert!(target.join("keep").exists());
}
