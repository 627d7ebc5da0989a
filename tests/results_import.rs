//! Results brought home, against real parts: returned plates and images are
//! checked, kept atomically with a manifest, their label images made
//! importable, NGFF 0.5 re-encoded to 0.4; orders are written into an
//! `imports` table that BIOMERO.importer's own SQLAlchemy model created, read
//! back and validated by its own `UploadOrderManager`, and completed or
//! failed by a test importer loop that appends rows the way its poller does.
//! Unsafe and useless outputs are refused with their reason, leaving nothing
//! behind.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use stage_ngff::NgffVersion;
use stage_results::classify::ItemKind;
use stage_results::importer::{self, OrderRules, PathMap};
use stage_results::keep::{KeepRequest, MANIFEST, ResultManifest, find_kept, keep};
use stage_results::safety::Limits;
use stage_sample::{SampleSpec, write_samples};
use stage_tests::{TestImporter, importer_db, run_reader};

fn spec(version: NgffVersion, columns: u32, images: u32) -> SampleSpec {
    SampleSpec {
        version,
        rows: 1,
        columns,
        fields: 2,
        channels: 1,
        size: 32,
        images,
        ..SampleSpec::default()
    }
}

/// Writes samples into a scratch folder and moves `what` (relative) to `to`.
fn sample_into(spec: &SampleSpec, what: &str, to: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    write_samples(scratch.path(), spec).unwrap();
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::rename(scratch.path().join(what), to).unwrap();
}

struct Job {
    dir: tempfile::TempDir,
    out: PathBuf,
    staged: PathBuf,
    root: PathBuf,
    analyzed: PathBuf,
}

fn job(id: &str) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("staging").join(id).join("data/out");
    let staged = dir.path().join("staging").join(id).join("data/in");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&staged).unwrap();
    let root = dir.path().join("data");
    let analyzed = root.join("lab-a/.analyzed").join(id);
    Job {
        dir,
        out,
        staged,
        root,
        analyzed,
    }
}

fn request<'a>(j: &'a Job, id: &'a str, inputs: &[&str], expect_images: bool) -> KeepRequest<'a> {
    KeepRequest {
        root: &j.root,
        outputs: &j.out,
        analyzed: &j.analyzed,
        submission: id,
        workflow: "plate-threshold",
        staged: &j.staged,
        staged_inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        original_names: std::collections::BTreeMap::new(),
        limits: Limits::default(),
        omero_ngff: NgffVersion::V04,
        expect_images,
        rename: None,
    }
}

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn leftovers(analyzed: &Path) -> Vec<String> {
    std::fs::read_dir(analyzed)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn wait_stage(
    rt: &tokio::runtime::Runtime,
    pool: &sqlx::PgPool,
    uuid: &str,
    want: &[&str],
) -> importer::OrderState {
    let start = Instant::now();
    loop {
        let st = rt.block_on(importer::state(pool, uuid)).unwrap().unwrap();
        if want.contains(&st.stage.as_str()) {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "order {uuid} still `{}` after 60 s",
            st.stage
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_returned_plate_with_labels_is_kept_made_importable_and_imported() {
    let id = "res-plate-1";
    let j = job(id);
    // staged: a 1×2 plate in 0.4; returned: a 1×1 plate in 0.5 (with labels) and a CSV
    sample_into(
        &spec(NgffVersion::V04, 2, 0),
        "plate.ome.zarr",
        &j.staged.join("plate.ome.zarr"),
    );
    sample_into(
        &spec(NgffVersion::V05, 1, 0),
        "plate.ome.zarr",
        &j.out.join("plate.ome.zarr"),
    );
    std::fs::write(j.out.join("measurements.csv"), "well,count\nA1,12\n").unwrap();
    let before = sha256(&j.out.join("plate.ome.zarr/zarr.json"));

    let m = keep(&request(&j, id, &["plate.ome.zarr"], true)).unwrap();
    // kept atomically under .analyzed/<id>/<YYYYMMDD_HHMMSS>, nothing partial left
    assert_eq!(m.dir.parent().unwrap(), j.analyzed);
    let stamp = m.dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&stamp, "%Y%m%d_%H%M%S").is_ok(),
        "{stamp}"
    );
    assert_eq!(leftovers(&j.analyzed), std::slice::from_ref(&stamp));
    // the manifest lists every file with its size and SHA-256
    let on_disk: ResultManifest =
        serde_json::from_slice(&std::fs::read(m.dir.join(MANIFEST)).unwrap()).unwrap();
    assert_eq!(on_disk, m);
    for f in &m.files {
        let p = m.dir.join(&f.path);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), f.bytes, "{}", f.path);
        assert_eq!(sha256(&p), f.sha256, "{}", f.path);
    }
    let csv = m
        .items
        .iter()
        .find(|i| i.path == "measurements.csv")
        .unwrap();
    assert_eq!(csv.kind, ItemKind::Attachment);
    // the plate: matched to its input, compared (A2 missing), re-encoded to 0.4, labels renamed
    let plate = m.items_of(ItemKind::Plate).next().unwrap();
    assert_eq!(plate.input.as_deref(), Some("plate.ome.zarr"));
    assert_eq!(plate.ngff.as_deref(), Some("0.4"));
    assert_eq!(m.plates[0].missing_wells, ["A2"]);
    assert!(m.plates[0].extra_wells.is_empty() && m.plates[0].missing_fields.is_empty());
    assert!(
        m.notes.iter().any(|n| n.contains("missing wells: A2")),
        "{:?}",
        m.notes
    );
    assert!(
        m.notes.iter().any(|n| n.contains("re-encoded to 0.4")),
        "{:?}",
        m.notes
    );
    let kept_plate = m.dir.join("plate.ome.zarr");
    assert!(kept_plate.join(".zgroup").is_file() && !kept_plate.join("zarr.json").exists());
    assert_eq!(plate.labels.len(), 2, "{:?}", plate.labels);
    for l in &plate.labels {
        assert!(l.ends_with("/labels/cells.zarr"), "{l}");
        assert!(m.dir.join(l).join(".zattrs").is_file(), "{l}");
    }
    // an independent reader (zarr-python, ome-zarr-py, ome-zarr-models) finds the renamed labels
    let read = run_reader("read_zarr.py", &[kept_plate.as_os_str()]);
    let fields = read["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 2, "{read}");
    for (k, f) in fields {
        assert!(f["labels"].get("cells.zarr").is_some(), "{k}: {f}");
    }
    // the download is untouched (the kept files are new inodes where they changed)
    assert_eq!(sha256(&j.out.join("plate.ome.zarr/zarr.json")), before);
    // a second run finds the kept result instead of keeping it twice
    assert_eq!(find_kept(&j.analyzed, id).unwrap().unwrap(), m);
    assert_eq!(
        keep(&request(&j, id, &["plate.ome.zarr"], true)).unwrap(),
        m
    );
    assert_eq!(leftovers(&j.analyzed).len(), 1);

    // orders: label-only (BIOMERO's Import_Only_Labels), paths as the importer sees them
    let map = PathMap::parse(&format!("{}=/importer-data", j.dir.path().display())).unwrap();
    let rules = |only_labels, paths| OrderRules {
        group: "Lab A",
        user: "alice",
        dataset: None,
        screen: Some(7),
        only_labels,
        paths,
    };
    let mapped = importer::orders_for(id, &m, &rules(true, &map)).unwrap();
    assert_eq!(mapped.len(), 1);
    assert_eq!(mapped[0].set, "plate-labels");
    assert_eq!(mapped[0].files.len(), 2);
    for f in &mapped[0].files {
        assert!(
            f.starts_with(&format!(
                "/importer-data/data/lab-a/.analyzed/{id}/{stamp}/plate.ome.zarr/A/1/"
            )),
            "{f}"
        );
    }
    assert_eq!(mapped[0].file_names, ["cells.zarr", "cells.zarr"]);
    let both = importer::orders_for(id, &m, &rules(false, &map)).unwrap();
    let sets: Vec<&str> = both.iter().map(|o| o.set.as_str()).collect();
    assert_eq!(sets, ["plates", "plate-labels"]);
    assert!(both[0].files[0].ends_with("/plate.ome.zarr"));
    // the same result gives the same uuids: a rerun never orders twice
    assert_eq!(
        importer::orders_for(id, &m, &rules(true, &map)).unwrap(),
        mapped
    );

    let (url, sa) = importer_db();
    let rt = runtime();
    let pool = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
    let orders = importer::orders_for(id, &m, &rules(false, &PathMap::default())).unwrap();
    for o in &orders {
        assert!(rt.block_on(importer::place(&pool, o)).unwrap());
        assert!(
            !rt.block_on(importer::place(&pool, o)).unwrap(),
            "placed twice"
        );
    }
    // read back through the importer's model and validated by its UploadOrderManager
    let mut args: Vec<&std::ffi::OsStr> = vec!["orders".as_ref(), sa.as_ref()];
    args.extend(orders.iter().map(|o| std::ffi::OsStr::new(o.uuid.as_str())));
    let checked = run_reader("importer.py", &args);
    for (c, o) in checked.as_array().unwrap().iter().zip(&orders) {
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(c["stages"], serde_json::json!(["Import Pending"]), "{c}");
        assert_eq!(c["order"]["DestinationType"], "Screen");
        assert_eq!(c["order"]["DestinationID"], 7);
        assert_eq!(c["order"]["Group"], "Lab A");
        assert_eq!(c["order"]["Username"], "alice");
        let files: Vec<String> = serde_json::from_value(c["order"]["Files"].clone()).unwrap();
        assert_eq!(files, o.files);
        let names: Vec<String> = serde_json::from_value(c["row"]["file_names"].clone()).unwrap();
        assert_eq!(names, o.file_names);
    }
    // the test importer completes them
    let _importer = TestImporter::start(&sa, &[]);
    for o in &orders {
        let st = wait_stage(&rt, &pool, &o.uuid, &["Import Completed", "Import Failed"]);
        assert_eq!(st.stage, "Import Completed", "{st:?}");
    }
    let after: Value = run_reader("importer.py", &args);
    assert_eq!(
        after[0]["stages"],
        serde_json::json!(["Import Pending", "Import Started", "Import Completed"])
    );
}

#[test]
fn images_are_matched_to_their_inputs_and_a_failed_import_carries_the_importers_reason() {
    let id = "res-images-1";
    let j = job(id);
    // returned: a 0.4 Zarr image with labels named after its input, a mask TIFF, a table
    sample_into(
        &spec(NgffVersion::V04, 1, 1),
        "images/image_00.ome.zarr",
        &j.out.join("image_00_seg.ome.zarr"),
    );
    std::fs::create_dir_all(j.out.join("masks")).unwrap();
    std::fs::write(j.out.join("masks/image_01_cp_masks.tif"), b"II*\0").unwrap();
    std::fs::write(j.out.join("counts.csv"), "image,count\n").unwrap();
    let m = keep(&request(&j, id, &["image_00.tif", "image_01.tif"], true)).unwrap();
    let find = |p: &str| m.items.iter().find(|i| i.path == p).unwrap().clone();
    let zarr = find("image_00_seg.ome.zarr");
    assert_eq!(
        (zarr.kind, zarr.input.as_deref()),
        (ItemKind::ZarrImage, Some("image_00.tif"))
    );
    assert_eq!(zarr.labels, ["image_00_seg.ome.zarr/labels/cells.zarr"]);
    let tif = find("masks/image_01_cp_masks.tif");
    assert_eq!(
        (tif.kind, tif.input.as_deref()),
        (ItemKind::ImageFile, Some("image_01.tif"))
    );
    assert_eq!(find("counts.csv").kind, ItemKind::Attachment);

    let (url, sa) = importer_db();
    let rt = runtime();
    let pool = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
    let orders = importer::orders_for(
        id,
        &m,
        &OrderRules {
            group: "Lab A",
            user: "alice",
            dataset: Some(666),
            screen: None,
            only_labels: false,
            paths: &PathMap::default(),
        },
    )
    .unwrap();
    let sets: Vec<&str> = orders.iter().map(|o| o.set.as_str()).collect();
    assert_eq!(sets, ["images", "labels"]);
    assert_eq!(orders[0].files.len(), 2);
    assert!(
        orders
            .iter()
            .all(|o| o.destination_type == importer::DestinationType::Dataset)
    );
    let _importer = TestImporter::start(
        &sa,
        &[
            "--fail-destination",
            "666",
            "--reason",
            "Dataset 666 is not writable by alice",
        ],
    );
    rt.block_on(importer::place(&pool, &orders[0])).unwrap();
    let st = wait_stage(
        &rt,
        &pool,
        &orders[0].uuid,
        &["Import Completed", "Import Failed"],
    );
    assert_eq!(st.stage, "Import Failed");
    assert!(
        st.description
            .as_deref()
            .unwrap_or_default()
            .contains("Dataset 666 is not writable by alice"),
        "{st:?}"
    );
    // no Dataset to import into: refused with what to do
    let e = importer::orders_for(
        id,
        &m,
        &OrderRules {
            group: "Lab A",
            user: "alice",
            dataset: None,
            screen: None,
            only_labels: true,
            paths: &PathMap::default(),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no OMERO Dataset") && e.contains("\"type\": \"Dataset\""),
        "{e}"
    );
}

#[test]
fn unsafe_empty_and_useless_outputs_are_refused_and_leave_nothing_behind() {
    type Make = Box<dyn Fn(&Path)>;
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cases: Vec<(&str, Make, Limits, bool, &str)> = vec![
        (
            "empty",
            Box::new(|_: &Path| {}),
            Limits::default(),
            true,
            "wrote nothing to data/out",
        ),
        (
            "tables only, images expected",
            Box::new(|o: &Path| std::fs::write(o.join("t.csv"), "a\n").unwrap()),
            Limits::default(),
            true,
            "returned no image",
        ),
        (
            "symlink out of the tree",
            Box::new(|o: &Path| {
                std::os::unix::fs::symlink("/etc/shadow", o.join("x.tif")).unwrap();
            }),
            Limits::default(),
            false,
            "x.tif: is a symbolic link (to `/etc/shadow`)",
        ),
        (
            "hard link",
            Box::new(|o: &Path| {
                let outside = o.parent().unwrap().join("outside.txt");
                std::fs::write(&outside, "secret").unwrap();
                std::fs::hard_link(&outside, o.join("copy.txt")).unwrap();
            }),
            Limits::default(),
            false,
            "copy.txt: is a hard link",
        ),
        (
            "fifo",
            Box::new(|o: &Path| {
                assert!(
                    Command::new("mkfifo")
                        .arg(o.join("pipe"))
                        .status()
                        .unwrap()
                        .success()
                );
            }),
            Limits::default(),
            false,
            "pipe: is a FIFO",
        ),
        (
            "too many files",
            Box::new(|o: &Path| {
                for i in 0..5 {
                    std::fs::write(o.join(format!("{i}.txt")), "x").unwrap();
                }
            }),
            Limits {
                max_bytes: 1 << 30,
                max_files: 3,
            },
            false,
            "max_output_files = 3",
        ),
        (
            "too large",
            Box::new(|o: &Path| std::fs::write(o.join("big.bin"), vec![0u8; 4096]).unwrap()),
            Limits {
                max_bytes: 1000,
                max_files: 100,
            },
            false,
            "4096 bytes (max_output_bytes = 1000)",
        ),
        (
            "broken zarr",
            Box::new(|o: &Path| {
                std::fs::create_dir(o.join("r.zarr")).unwrap();
                std::fs::write(o.join("r.zarr/zarr.json"), "{not json").unwrap();
            }),
            Limits::default(),
            true,
            "is not valid OME-Zarr",
        ),
    ];
    if is_root {
        cases.push((
            "device",
            Box::new(|o: &Path| {
                assert!(
                    Command::new("mknod")
                        .arg(o.join("null"))
                        .args(["c", "1", "3"])
                        .status()
                        .unwrap()
                        .success()
                );
            }),
            Limits::default(),
            false,
            "null: is a character device",
        ));
    }
    for (what, make, limits, expect_images, want) in cases {
        let id = "res-bad";
        let j = job(id);
        make(&j.out);
        let mut req = request(&j, id, &[], expect_images);
        req.limits = limits;
        let e = keep(&req).unwrap_err().to_string();
        assert!(e.contains(want), "{what}: {e}");
        let left = leftovers(&j.analyzed);
        assert!(left.is_empty(), "{what}: left {left:?}");
    }
}

#[test]
fn a_keep_killed_after_linking_the_download_is_done_again_from_the_untouched_download() {
    // a daemon killed inside `keep` leaves `.<stamp>.partial` holding hard links to the
    // download; the rerun must not take those links for hard-linked outputs
    let id = "res-killed-keep";
    let j = job(id);
    sample_into(
        &spec(NgffVersion::V04, 1, 1),
        "images/image_00.ome.zarr",
        &j.out.join("image_00.ome.zarr"),
    );
    std::fs::write(j.out.join("counts.csv"), "image,count\n").unwrap();
    let partial = j.analyzed.join(".20260101_000000.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::hard_link(j.out.join("counts.csv"), partial.join("counts.csv")).unwrap();
    let m = keep(&request(&j, id, &["image_00.tif"], true)).unwrap();
    assert!(
        m.files.iter().any(|f| f.path == "counts.csv"),
        "{:?}",
        m.files
    );
    assert!(!partial.exists());
    assert_eq!(
        leftovers(&j.analyzed).len(),
        1,
        "{:?}",
        leftovers(&j.analyzed)
    );
}

/// Results are kept only through real folders under the results root: whichever folder on
/// the way (the group folder, `.analyzed`, the submission's folder) is replaced by a link to
/// somewhere else, or a mapping climbs out with `..`, nothing is written there and the
/// refusal names the folder at fault.
#[test]
fn results_are_never_kept_through_a_link_or_outside_the_results_root() {
    for at in ["lab-a", "lab-a/.analyzed", "lab-a/.analyzed/s-link"] {
        let j = job("s-link");
        std::fs::write(j.out.join("result.csv"), "a,b\n1,2\n").unwrap();
        let elsewhere = j.dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let link = j.root.join(at);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let e = keep(&request(&j, "s-link", &[], false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&link.display().to_string()) && e.contains("symbolic link"),
            "{at}: {e}"
        );
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "{at}: nothing written through the link"
        );
    }
    // a destination that climbs out of the root lexically
    let j = job("s-up");
    std::fs::write(j.out.join("result.csv"), "a\n").unwrap();
    let up = j.root.join("lab-a/../../outside/.analyzed/s-up");
    let mut req = request(&j, "s-up", &[], false);
    req.analyzed = &up;
    let e = keep(&req).unwrap_err().to_string();
    assert!(e.contains("not a plain folder name"), "{e}");
    assert!(!j.dir.path().join("outside").exists());
    // and one that is not under the root at all
    let other = j.dir.path().join("other/.analyzed/s-up");
    req.analyzed = &other;
    let e = keep(&req).unwrap_err().to_string();
    assert!(e.contains("not under the results folder"), "{e}");
}

/// A returned store whose metadata names members outside it (a labels list entry, a plate's
/// well path, a well's field path) is refused before it is kept, naming the entry; readers
/// that follow those paths would otherwise leave the store.
#[test]
fn returned_metadata_that_points_outside_its_store_is_refused() {
    let patch = |file: &Path, edit: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(file, serde_json::to_vec(&v).unwrap()).unwrap();
    };
    let image_cases: [(&str, Value); 3] = [
        ("../../../../etc", serde_json::json!(["../../../../etc"])),
        ("x/../../y", serde_json::json!(["0", "x/../../y"])),
        ("/abs", serde_json::json!(["/abs"])),
    ];
    for (bad, list) in image_cases {
        let id = "res-meta-1";
        let j = job(id);
        let store = j.out.join("image_00_seg.ome.zarr");
        sample_into(
            &spec(NgffVersion::V04, 1, 1),
            "images/image_00.ome.zarr",
            &store,
        );
        patch(&store.join("labels/.zattrs"), &|v| {
            v["labels"] = list.clone();
        });
        let e = keep(&request(&j, id, &["image_00.tif"], true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("`{bad}`")) && e.contains("labels"),
            "{e}"
        );
        assert!(leftovers(&j.analyzed).is_empty(), "{bad}");
    }
    let j = job("res-meta-2");
    let store = j.out.join("plate.ome.zarr");
    sample_into(&spec(NgffVersion::V04, 2, 0), "plate.ome.zarr", &store);
    patch(&store.join(".zattrs"), &|v| {
        v["plate"]["wells"][0]["path"] = serde_json::json!("../A/1");
    });
    let e = keep(&request(&j, "res-meta-2", &["plate.ome.zarr"], true))
        .unwrap_err()
        .to_string();
    // the plate reader (or the metadata check) refuses it, naming the entry
    assert!(
        e.contains("`../A/1`") && e.contains("plate.ome.zarr"),
        "{e}"
    );
}
