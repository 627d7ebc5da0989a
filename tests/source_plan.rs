//! Plans and staging for every mode × source, against the shared storage and
//! the test OMERO, and every refusal the sources issue.
//!
//! Staged pixels are checked against the SHA-256 the sample generator
//! recorded for each image (level 0, little-endian, TCZYX), so a tile put in
//! the wrong place, a byte-order slip or a lost plane fails the test.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use stage_config::mode::{ModeDecision, ModeInputs};
use stage_config::settings::Secret;
use stage_ngff::convert::TiffOptions;
use stage_ngff::write::array::Compression;
use stage_ngff::{ImageReader, PlateReader};
use stage_source::omero::{OmeroClient, OmeroConfig, OmeroSource};
use stage_source::plan::{OutputFormat, PixelSource, PlateSource};
use stage_source::stage::{How, StageContext, StageManifest};
use stage_source::{FsSource, GroupFolders, InputRef, Plan, Request, SourceError, Sources};
use stage_tests::omero::{PASSWORD, TestOmero, USER, WorldData, ids, standard_world};

fn modes(zarr: bool, plate: bool, dual: bool) -> ModeDecision {
    ModeDecision::decide(
        ModeInputs {
            zarr_toggle: zarr,
            plate_toggle: plate,
            dual_toggle: dual,
            ..ModeInputs::default()
        },
        true,
    )
}

fn tiff_wf() -> ModeDecision {
    modes(false, false, false)
}
fn zarr_wf() -> ModeDecision {
    modes(true, false, false)
}
fn plate_wf() -> ModeDecision {
    modes(false, true, false)
}

struct Env {
    _dir: tempfile::TempDir,
    data: WorldData,
    omero: TestOmero,
    fs: FsSource,
    out: PathBuf,
}

fn env(size: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let (world, data) = standard_world(&root, size);
    let mappings = dir.path().join("biomero-config.json");
    std::fs::write(
        &mappings,
        r#"{"group_mappings": {"5": {"folder": "lab-a", "groupName": "Lab A"}, "6": {"folder": "lab-b", "groupName": "Lab B"}}}"#,
    )
    .unwrap();
    let fs = FsSource::new(&[root], Arc::new(GroupFolders::new(Some(mappings))));
    let out = dir.path().join("staging");
    Env {
        omero: TestOmero::start(world),
        _dir: dir,
        data,
        fs,
        out,
    }
}

fn client(e: &Env, password: &str, timeout: Duration, attempts: u32) -> Arc<OmeroClient> {
    Arc::new(
        OmeroClient::new(OmeroConfig {
            url: e.omero.url.clone(),
            server_id: 1,
            user: USER.into(),
            password: Secret::new(password),
            pixel_buffer_url: Some(e.omero.url.clone()),
            managed_repository: Some(e.data.managed.clone()),
            storage_map: Some((
                e.data.root.clone(),
                PathBuf::from(stage_tests::omero::OMERO_SIDE_ROOT),
            )),
            timeout,
            concurrency: 4,
            tile_size: 64,
            attempts,
        })
        .unwrap(),
    )
}

fn sources(e: &Env, c: &Arc<OmeroClient>) -> Sources {
    Sources {
        fs: e.fs.clone(),
        omero: Some(OmeroSource::new(c.clone())),
        exporter: false,
    }
}

fn request(inputs: Vec<InputRef>, group: &str, m: ModeDecision, ngff: &str) -> Request {
    Request {
        inputs,
        group: group.into(),
        modes: m,
        ngff_version: ngff.into(),
    }
}

fn path_in(p: &Path) -> InputRef {
    InputRef::Path(p.display().to_string())
}

fn omero(kind: &str, id: i64) -> InputRef {
    InputRef::Omero {
        kind: kind.into(),
        id,
    }
}

fn ctx(c: Option<Arc<OmeroClient>>) -> StageContext {
    StageContext {
        omero: c,
        exporter: None,
        group: "Lab A".into(),
        log: Arc::new(|_| {}),
        progress: Arc::new(()),
        cancel: Arc::new(AtomicBool::new(false)),
        tiff: TiffOptions::default(),
        compression: Compression::default(),
        sharding: stage_ngff::copy::Sharding::None,
        on_staged: None,
    }
}

async fn stage(plan: &Plan, root: &Path, c: Option<Arc<OmeroClient>>) -> StageManifest {
    stage_source::stage::execute(plan, root, &ctx(c))
        .await
        .unwrap()
}

/// SHA-256 of an OME-Zarr image's level-0 pixels in TCZYX order.
fn zarr_sha(path: &Path) -> String {
    let r = ImageReader::open(path).unwrap();
    let s = r.sizes();
    let mut pr = r.plane_reader(0, 8 << 20).unwrap();
    let mut buf = vec![0u8; pr.plane_bytes()];
    let mut h = Sha256::new();
    for t in 0..s.t {
        for c in 0..s.c {
            for z in 0..s.z {
                pr.read_plane(t, c, z, &mut buf).unwrap();
                h.update(&buf);
            }
        }
    }
    format!("{:x}", h.finalize())
}

/// SHA-256 of a TIFF's pixels in TCZYX order.
fn tiff_sha(path: &Path) -> String {
    let info = stage_ngff::tiff::read::inspect(path).unwrap();
    let mut pages = stage_ngff::tiff::read::TiffPages::open(&info).unwrap();
    let mut planes: HashMap<(u64, u64, u64), Vec<u8>> = HashMap::new();
    let mut buf = Vec::new();
    while let Some(i) = pages.next_page(&mut buf).unwrap() {
        let (t, z, c) = info.page_position(i);
        planes.insert((t, c, z), buf.clone());
    }
    let s = info.sizes;
    let mut h = Sha256::new();
    for t in 0..s.t {
        for c in 0..s.c {
            for z in 0..s.z {
                h.update(&planes[&(t, c, z)]);
            }
        }
    }
    format!("{:x}", h.finalize())
}

/// The generator's SHA-256 of the image at `rel` in a samples folder.
fn sample_sha(samples: &Path, rel: &str) -> String {
    let m: Value =
        serde_json::from_slice(&std::fs::read(samples.join("MANIFEST.json")).unwrap()).unwrap();
    m["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == rel)
        .unwrap_or_else(|| panic!("{rel} not in the sample manifest"))["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn inputs_dir(root: &Path) -> PathBuf {
    root.join("data/in")
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    stage_tests::partial_files(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_inputs_in_every_mode() {
    let e = env(160);
    let a = &e.data.samples_a;
    let plate = a.join("plate.ome.zarr");
    let image = a.join("images/image_00.ome.zarr");
    let tiff = a.join("tiffs/image_01.ome.tif");
    let src = Sources {
        fs: e.fs.clone(),
        omero: None,
        exporter: false,
    };

    // tiff: plates flattened to one TIFF per field, images converted, TIFFs linked
    let plan = stage_source::plan(
        &request(
            vec![path_in(&plate), path_in(&image), path_in(&tiff)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let outs: Vec<&str> = plan.outputs().collect();
    assert_eq!(plan.images.len(), 10, "{outs:?}");
    assert!(
        outs.contains(&"synthetic_plate_A1_0.tif") && outs.contains(&"synthetic_plate_B2_1.tif"),
        "{outs:?}"
    );
    assert!(
        outs.contains(&"image_00.tif") && outs.contains(&"image_01.tif"),
        "{outs:?}"
    );
    let root = e.out.join("tiff");
    // each output is told, once, when it is complete in place (what the upload sends on)
    let told: Arc<std::sync::Mutex<Vec<(String, bool)>>> = Arc::default();
    let (list, d) = (told.clone(), inputs_dir(&root));
    let telling = StageContext {
        on_staged: Some(Arc::new(move |name: &str| {
            let complete = d.join(name).is_file() && partials(&d).is_empty();
            list.lock().unwrap().push((name.to_owned(), complete));
        })),
        ..ctx(None)
    };
    let m = stage_source::stage::execute(&plan, &root, &telling)
        .await
        .unwrap();
    assert_eq!(m.entries.len(), 10);
    let told_names: Vec<String> = told.lock().unwrap().iter().map(|t| t.0.clone()).collect();
    assert_eq!(told_names, outs, "told in the plan's order, each once");
    assert!(told.lock().unwrap().iter().all(|t| t.1), "{told:?}");
    let d = inputs_dir(&root);
    assert_eq!(
        tiff_sha(&d.join("synthetic_plate_A2_1.tif")),
        sample_sha(a, "plate.ome.zarr/A/2/1")
    );
    assert_eq!(
        tiff_sha(&d.join("image_00.tif")),
        sample_sha(a, "images/image_00.ome.zarr")
    );
    let linked = m
        .entries
        .iter()
        .find(|x| x.output == "image_01.tif")
        .unwrap();
    assert_eq!(linked.how, How::Linked);
    let field = m
        .entries
        .iter()
        .find(|x| x.output == "synthetic_plate_B1_0.tif")
        .unwrap();
    assert_eq!(field.origin.well.as_deref(), Some("B1"));
    assert_eq!(field.origin.field.as_deref(), Some("0"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(root.join("stage-manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["entries"].as_array().unwrap().len(), 10);

    // staging again resumes: everything is found complete, nothing is written twice, and
    // nothing is told (an upload made while staging happens only on a fresh start)
    told.lock().unwrap().clear();
    let again = stage_source::stage::execute(&plan, &root, &telling)
        .await
        .unwrap();
    assert!(again.entries.iter().all(|x| x.how == How::AlreadyStaged));
    assert!(told.lock().unwrap().is_empty());

    // zarr: images passed through (hard links), TIFFs converted; a plate is refused
    let plan = stage_source::plan(
        &request(
            vec![path_in(&image), path_in(&tiff)],
            "Lab A",
            zarr_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let root = e.out.join("zarr");
    let m = stage(&plan, &root, None).await;
    let hows: Vec<(String, How)> = m
        .entries
        .iter()
        .map(|x| (x.output.clone(), x.how))
        .collect();
    assert_eq!(
        hows,
        [
            ("image_00.zarr".into(), How::Linked),
            ("image_01.zarr".into(), How::Converted)
        ]
    );
    assert_eq!(
        zarr_sha(&inputs_dir(&root).join("image_00.zarr")),
        sample_sha(a, "images/image_00.ome.zarr")
    );
    assert_eq!(
        zarr_sha(&inputs_dir(&root).join("image_01.zarr")),
        sample_sha(a, "images/image_01.ome.zarr")
    );
    let err = stage_source::plan(
        &request(vec![path_in(&plate)], "Lab A", zarr_wf(), "0.4"),
        &src,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("is a plate") && err.contains("not a plate workflow"),
        "{err}"
    );

    // zarr-plate: the whole plate with its labels, re-encoded for NGFF 0.5
    let plan = stage_source::plan(
        &request(vec![path_in(&plate)], "Lab A", plate_wf(), "0.5"),
        &src,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            plan.plates.len(),
            plan.plates[0].wells,
            plan.plates[0].fields
        ),
        (1, 4, 8)
    );
    let root = e.out.join("plate");
    let m = stage(&plan, &root, None).await;
    assert_eq!(m.entries[0].how, How::Reencoded);
    let staged = inputs_dir(&root).join("synthetic_plate.zarr");
    let p = PlateReader::open(&staged).unwrap();
    assert_eq!(p.version, stage_ngff::NgffVersion::V05);
    assert_eq!(p.fields.len(), 8);
    assert_eq!(
        zarr_sha(&staged.join("B/2/1")),
        sample_sha(a, "plate.ome.zarr/B/2/1")
    );
    assert!(
        staged.join("A/1/0/labels/cells/zarr.json").exists(),
        "labels travel with the plate"
    );
    // the same plate staged with `zarr_shards`: sharded arrays, the same pixels
    let root = e.out.join("plate-sharded");
    let sharded_ctx = StageContext {
        sharding: stage_ngff::copy::Sharding::Shards,
        ..ctx(None)
    };
    let m = stage_source::stage::execute(&plan, &root, &sharded_ctx)
        .await
        .unwrap();
    assert_eq!(m.entries[0].how, How::Reencoded);
    let staged = inputs_dir(&root).join("synthetic_plate.zarr");
    let level0 = std::fs::read_to_string(staged.join("B/2/1/0/zarr.json")).unwrap();
    assert!(level0.contains("sharding_indexed"), "{level0}");
    assert_eq!(
        zarr_sha(&staged.join("B/2/1")),
        sample_sha(a, "plate.ome.zarr/B/2/1")
    );
    let err = stage_source::plan(
        &request(vec![path_in(&image)], "Lab A", plate_wf(), "0.4"),
        &src,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("takes only plates"), "{err}");
    // dual mode takes both
    let plan = stage_source::plan(
        &request(
            vec![path_in(&plate), path_in(&image)],
            "Lab A",
            modes(false, true, true),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    assert_eq!((plan.images.len(), plan.plates.len()), (1, 1));
    assert_eq!(plan.images[0].format, OutputFormat::Zarr);
    assert!(partials(&e.out).is_empty(), "{:?}", partials(&e.out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_refusals_name_the_input_and_the_reason() {
    let e = env(64);
    let root = &e.data.root;
    let src = Sources {
        fs: e.fs.clone(),
        omero: None,
        exporter: false,
    };
    // a broken store and a plate with a missing well, inside Lab A's folder
    let broken = e.data.lab_a.join("broken.zarr");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join(".zattrs"), "{not json").unwrap();
    std::fs::write(broken.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    let holey = e.data.lab_a.join("holey.zarr");
    copy_dir(&e.data.samples_a.join("plate.ome.zarr"), &holey);
    std::fs::remove_dir_all(holey.join("B/2")).unwrap();
    let outside = e.out.parent().unwrap().join("elsewhere.tif");
    std::fs::copy(e.data.samples_a.join("tiffs/image_00.ome.tif"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, e.data.lab_a.join("escape.tif")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (outside.display().to_string(), "outside the data roots"),
        (
            e.data.lab_a.join("escape.tif").display().to_string(),
            "resolves to",
        ),
        (
            e.data
                .samples_other
                .join("images/image_00.ome.zarr")
                .display()
                .to_string(),
            "outside the folder of OMERO group `Lab A`",
        ),
        (
            format!("{}/lab-a/../lab-b/run-c", root.display()),
            "`..` is not allowed",
        ),
        (
            e.data.lab_a.join("nope.zarr").display().to_string(),
            "cannot be opened",
        ),
        (broken.display().to_string(), "broken.zarr"),
        (holey.display().to_string(), "B/2"),
        (
            e.data.samples_a.join("MANIFEST.json").display().to_string(),
            "not a TIFF",
        ),
        (
            e.data
                .samples_a
                .join("plate.ome.zarr/A/1")
                .display()
                .to_string(),
            "it is a well",
        ),
        ("relative/path.tif".into(), "absolute"),
    ];
    for (input, want) in &cases {
        let err = stage_source::plan(
            &request(
                vec![InputRef::Path(input.clone())],
                "Lab A",
                tiff_wf(),
                "0.4",
            ),
            &src,
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{input}: `{msg}` lacks `{want}`");
        assert!(!err.is_transient(), "{input}: a refusal is not retried");
    }
    let err = stage_source::plan(&request(vec![], "Lab A", tiff_wf(), "0.4"), &src)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Empty(_)), "{err}");
    let err = stage_source::plan(
        &request(vec![omero("Image", 1)], "Lab A", tiff_wf(), "0.4"),
        &src,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("OMERO is not configured"), "{err}");
    assert!(!e.out.exists(), "nothing was staged");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omero_inputs_in_every_mode_with_paging_faults_and_session_expiry() {
    let e = env(150);
    e.omero.faults.max_limit.store(2, Ordering::Relaxed); // forces paging of 3 images, 4 wells
    e.omero.faults.tile_fail_every.store(7, Ordering::Relaxed);
    e.omero.faults.slow_every.store(5, Ordering::Relaxed);
    e.omero.faults.slow_ms.store(30, Ordering::Relaxed);
    let c = client(&e, PASSWORD, Duration::from_secs(10), 5);
    let src = sources(&e, &c);
    let a = &e.data.samples_a;

    // tiff mode from a dataset: one image from its Zarr (ExternalInfo), one
    // from a biomero.import Filepath, one through the pixel service
    let plan = stage_source::plan(
        &request(
            vec![omero("Dataset", ids::DATASET)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let by_id: HashMap<i64, &stage_source::plan::PlannedImage> = plan
        .images
        .iter()
        .map(|i| (i.origin.image_id.unwrap(), i))
        .collect();
    assert_eq!(by_id.len(), 3);
    assert!(matches!(
        by_id[&ids::IMG_EXTERNAL].source,
        PixelSource::Zarr { .. }
    ));
    assert!(matches!(
        by_id[&ids::IMG_ANNOTATED].source,
        PixelSource::Zarr { .. }
    ));
    assert!(matches!(
        by_id[&ids::IMG_TILES].source,
        PixelSource::OmeroTiles { .. }
    ));
    // named as BIOMERO's export and converter name them: `<image name>.0.tif`
    assert_eq!(by_id[&ids::IMG_TILES].output, "kernels µ 3.0.tif");
    assert_eq!(by_id[&ids::IMG_ANNOTATED].output, "nuclei [2].0.tif");
    assert_eq!(by_id[&ids::IMG_EXTERNAL].output, "nuclei 1.tif.0.tif");
    assert_eq!(
        by_id[&ids::IMG_EXTERNAL].origin.dataset_id,
        Some(ids::DATASET)
    );
    // the session ends between planning and staging: the client logs in again
    let logins = e.omero.faults.logins.load(Ordering::Relaxed);
    e.omero.expire_sessions();
    let root = e.out.join("tiff");
    let m = stage(&plan, &root, Some(c.clone())).await;
    assert_eq!(
        e.omero.faults.logins.load(Ordering::Relaxed),
        logins + 1,
        "one new login after the expiry"
    );
    let d = inputs_dir(&root);
    for (id, rel) in [
        (ids::IMG_EXTERNAL, "images/image_00.ome.zarr"),
        (ids::IMG_ANNOTATED, "images/image_01.ome.zarr"),
        (ids::IMG_TILES, "images/image_02.ome.zarr"),
    ] {
        assert_eq!(
            tiff_sha(&d.join(&by_id[&id].output)),
            sample_sha(a, rel),
            "Image {id}"
        );
    }
    let fetched = m
        .entries
        .iter()
        .find(|x| x.origin.image_id == Some(ids::IMG_TILES))
        .unwrap();
    assert_eq!(fetched.how, How::Fetched);
    // an independent reader sees the same pixels in the TIFF fetched tile by tile
    let seen = stage_tests::run_reader("read_tiff.py", &[d.join("kernels µ 3.0.tif").as_os_str()]);
    assert_eq!(
        seen["sha256_tczyx"],
        sample_sha(a, "images/image_02.ome.zarr")
    );
    assert_eq!(seen["ome"]["channels"].as_array().map(Vec::len), Some(2));
    let info = stage_ngff::tiff::read::inspect(&d.join("kernels µ 3.0.tif")).unwrap();
    assert_eq!(
        info.physical_um[0],
        Some(0.65),
        "physical sizes from OMERO travel into the OME-XML"
    );

    // zarr mode: the tile image becomes an OME-Zarr with the same pixels
    let plan = stage_source::plan(
        &request(
            vec![omero("Image", ids::IMG_TILES)],
            "Lab A",
            zarr_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let root = e.out.join("zarr");
    stage(&plan, &root, Some(c.clone())).await;
    let z = inputs_dir(&root).join("kernels µ 3.zarr");
    assert_eq!(zarr_sha(&z), sample_sha(a, "images/image_02.ome.zarr"));
    assert_eq!(ImageReader::open(&z).unwrap().channel_names().len(), 2);

    // zarr-plate from a screen: a plate assembled from tiles, a plate passed through
    let plan = stage_source::plan(
        &request(
            vec![omero("Screen", ids::SCREEN)],
            "Lab A",
            plate_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    assert_eq!(plan.plates.len(), 2);
    let tiles = plan
        .plates
        .iter()
        .find(|p| p.origin.plate_id == Some(ids::PLATE_TILES))
        .unwrap();
    let ondisk = plan
        .plates
        .iter()
        .find(|p| p.origin.plate_id == Some(ids::PLATE_ZARR))
        .unwrap();
    assert!(matches!(tiles.source, PlateSource::Omero { .. }));
    assert!(matches!(ondisk.source, PlateSource::Zarr { .. }));
    assert_eq!(
        (tiles.wells, tiles.fields, tiles.origin.screen_id),
        (4, 8, Some(ids::SCREEN))
    );
    let root = e.out.join("plate");
    let m = stage(&plan, &root, Some(c.clone())).await;
    let hows: Vec<How> = m.entries.iter().map(|x| x.how).collect();
    assert_eq!(hows, [How::Assembled, How::Linked]);
    assert_eq!(m.entries[0].fields.len(), 8);
    let staged = inputs_dir(&root).join(&tiles.output);
    let p = PlateReader::open(&staged).unwrap();
    assert_eq!(p.fields.len(), 8);
    assert_eq!(p.acquisitions().len(), 1);
    assert_eq!(p.fields[0].acquisition, Some(ids::PLATE_TILES * 10 + 1));
    for f in &p.fields {
        assert_eq!(
            zarr_sha(&f.dir),
            sample_sha(
                a,
                &format!("plate.ome.zarr/{}/{}/{}", f.row, f.column, f.field)
            ),
            "field {}",
            f.dir.display()
        );
    }
    assert!(
        inputs_dir(&root)
            .join(&ondisk.output)
            .join("A/1/0/labels/cells")
            .exists()
    );
    // ome-zarr-models, ome-zarr-py and zarr-python read the assembled plate
    let seen = stage_tests::run_reader("read_zarr.py", &[staged.as_os_str()]);
    assert_eq!(seen["kind"], "plate", "{seen}");
    assert_eq!(seen["plate"]["name"], "Plate Tiles");
    assert_eq!(
        seen["fields"]["B/1/1"]["sha256_tczyx"],
        sample_sha(a, "plate.ome.zarr/B/1/1")
    );

    // tiff mode from a plate: flattened, each field named after its image, as BIOMERO does
    let plan = stage_source::plan(
        &request(
            vec![omero("Plate", ids::PLATE_TILES)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let outs: Vec<&str> = plan.outputs().collect();
    assert_eq!(outs.len(), 8);
    assert!(
        outs.contains(&"Plate Tiles [Well B2, Field 2].0.tif"),
        "{outs:?}"
    );
    // a well selected alone
    let plan = stage_source::plan(
        &request(
            vec![omero("Well", ids::FIRST_WELL)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    assert_eq!(
        plan.outputs().collect::<Vec<_>>(),
        [
            "Plate Tiles [Well A1, Field 1].0.tif",
            "Plate Tiles [Well A1, Field 2].0.tif"
        ]
    );
    assert!(
        e.omero.faults.tiles.load(Ordering::Relaxed) > 100,
        "tiles of 64² were fetched"
    );
    assert!(partials(&e.out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omero_refusals_and_failures() {
    let e = env(96);
    let c = client(&e, PASSWORD, Duration::from_secs(5), 3);
    let src = sources(&e, &c);
    let refuse = |inputs: Vec<InputRef>, m: ModeDecision| {
        let src = src.clone();
        async move {
            stage_source::plan(&request(inputs, "Lab A", m, "0.4"), &src)
                .await
                .unwrap_err()
        }
    };
    let err = refuse(vec![omero("Image", 999)], tiff_wf()).await;
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("Image 999"), "{err}");
    let err = refuse(vec![omero("Dataset", ids::DATASET_OTHER_GROUP)], tiff_wf())
        .await
        .to_string();
    assert!(err.contains("belongs to OMERO group `Lab B`"), "{err}");
    let err = refuse(vec![omero("Image", ids::IMG_OTHER_GROUP)], tiff_wf())
        .await
        .to_string();
    assert!(err.contains("Image 301") && err.contains("Lab B"), "{err}");
    let err = refuse(vec![omero("Dataset", ids::DATASET)], plate_wf())
        .await
        .to_string();
    assert!(err.contains("takes only plates"), "{err}");
    let err = refuse(vec![omero("Plate", ids::PLATE_TILES)], zarr_wf())
        .await
        .to_string();
    assert!(err.contains("is a plate"), "{err}");

    // a login that fails: the reason, never the password
    let bad = client(&e, "wrong", Duration::from_secs(5), 3);
    let err = stage_source::plan(
        &request(
            vec![omero("Image", ids::IMG_TILES)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &sources(&e, &bad),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Login { .. }), "{msg}");
    assert!(
        msg.contains("Incorrect username or password") && !msg.contains("wrong"),
        "{msg}"
    );

    // a pixel service that times out: a transient error, nothing half-staged left behind
    let slow = client(&e, PASSWORD, Duration::from_millis(700), 2);
    let plan = stage_source::plan(
        &request(
            vec![
                omero("Image", ids::IMG_EXTERNAL),
                omero("Image", ids::IMG_TILES),
            ],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &sources(&e, &slow),
    )
    .await
    .unwrap();
    e.omero.faults.tile_delay_ms.store(2000, Ordering::Relaxed);
    let root = e.out.join("slow");
    let err = stage_source::stage::execute(&plan, &root, &ctx(Some(slow.clone())))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    let left: Vec<String> = std::fs::read_dir(inputs_dir(&root))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["nuclei 1.tif.0.tif"],
        "the finished output stays, the interrupted one is gone"
    );
    assert!(
        !root.join("stage-manifest.json").exists(),
        "no manifest until everything is staged"
    );
    // once the service recovers, staging resumes with what is missing
    e.omero.faults.tile_delay_ms.store(0, Ordering::Relaxed);
    let m = stage(&plan, &root, Some(slow)).await;
    let hows: Vec<How> = m.entries.iter().map(|x| x.how).collect();
    assert_eq!(hows, [How::AlreadyStaged, How::Fetched]);

    // cancellation stops between planes and leaves nothing that looks finished
    let cancel = ctx(Some(c.clone()));
    cancel.cancel.store(true, Ordering::Relaxed);
    let plan = stage_source::plan(
        &request(
            vec![omero("Image", ids::IMG_TILES)],
            "Lab A",
            zarr_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    let err = stage_source::stage::execute(&plan, &e.out.join("cancelled"), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Cancelled));
    assert!(partials(&e.out).is_empty(), "{:?}", partials(&e.out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omero_images_imported_in_place_are_read_from_their_original_files() {
    let e = env(64);
    let c = client(&e, PASSWORD, Duration::from_secs(5), 3);
    let src = sources(&e, &c);
    let plan = |id: i64, m: ModeDecision| {
        let src = src.clone();
        async move {
            stage_source::plan(&request(vec![omero("Image", id)], "Lab A", m, "0.4"), &src).await
        }
    };
    // the managed repository links to the OME-TIFF on the storage: the link is followed,
    // the file checked against OMERO's Pixels, and staged from disk, not from the pixel service
    let original = std::fs::canonicalize(e.data.samples_a.join("tiffs/image_00.ome.tif")).unwrap();
    for m in [tiff_wf(), zarr_wf()] {
        let p = plan(ids::IMG_ORIGINAL, m).await.unwrap();
        assert!(
            matches!(&p.images[0].source, PixelSource::Tiff { path, series: 0, .. } if *path == original),
            "{p:?}"
        );
        let tiles = e.omero.faults.tiles.load(Ordering::Relaxed);
        let root = e.out.join(format!("original-{:?}", p.images[0].format));
        let staged = stage(&p, &root, Some(c.clone())).await;
        assert_eq!(
            e.omero.faults.tiles.load(Ordering::Relaxed),
            tiles,
            "no tile was asked for"
        );
        let out = inputs_dir(&root).join(&p.images[0].output);
        let got = match p.images[0].format {
            OutputFormat::Tiff => tiff_sha(&out),
            OutputFormat::Zarr | OutputFormat::ZarrPlate => zarr_sha(&out),
        };
        assert_eq!(got, tiff_sha(&original), "{staged:?}");
    }
    // a link that holds OMERO's own path of the file is followed through the storage mapping
    let p = plan(ids::IMG_ORIGINAL_OMERO_PATH, tiff_wf()).await.unwrap();
    let expected = std::fs::canonicalize(e.data.samples_a.join("tiffs/image_01.ome.tif")).unwrap();
    assert!(
        matches!(&p.images[0].source, PixelSource::Tiff { path, .. } if *path == expected),
        "{p:?}"
    );
    // a link into another group's folder is refused, naming the file and where it leads
    let err = plan(ids::IMG_ORIGINAL_OUTSIDE, tiff_wf())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Image 212") && err.contains("links to") && err.contains("lab-b"),
        "{err}"
    );
    // a file that is not the image OMERO describes is refused with both sides, not guessed
    let err = plan(ids::IMG_ORIGINAL_MISMATCH, tiff_wf())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Image 213") && err.contains("32×32") && err.contains("64×64"),
        "{err}"
    );
    // a format this build does not read: the pixel service, and the plan says why the
    // sources before it did not apply
    let p = plan(ids::IMG_ORIGINAL_CZI, tiff_wf()).await.unwrap();
    assert!(
        matches!(p.images[0].source, PixelSource::OmeroTiles { .. }),
        "{p:?}"
    );
    let why = p.images[0].passed_over.join("; ");
    assert!(
        why.contains("zarr: OMERO knows no OME-Zarr")
            && why.contains("tiff-file: its fileset holds original.czi"),
        "{why}"
    );
}

/// The colours and windows the stand-in's OMERO renders an image's two channels with.
fn rendered() -> (Vec<String>, Vec<Value>) {
    (
        (0..2)
            .map(|c| stage_tests::omero::rendered_color(c).to_owned())
            .collect(),
        (0..2)
            .map(|c| {
                let (a, b) = stage_tests::omero::rendered_window(c);
                serde_json::json!([a, b])
            })
            .collect(),
    )
}

/// Every shape an in-place import leaves on the storage — one TIFF, a multi-file OME-TIFF
/// whose first listed file holds only pixels, the third series of a multi-series file, an
/// ImageJ hyperstack, and a plate of such fields — is staged from the files themselves (no
/// tile asked for) to TIFF, OME-Zarr and an HCS plate, and tifffile and zarr-python read
/// back exactly the pixels of the image OMERO describes, with OMERO's rendering settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_filesets_of_every_shape_stage_in_every_mode_from_the_files() {
    let e = env(96);
    let c = client(&e, PASSWORD, Duration::from_secs(10), 3);
    let src = sources(&e, &c);
    let a = &e.data.samples_a;
    let (colors, windows) = rendered();
    for (id, pixels, series, files) in [
        (ids::IMG_ORIGINAL, "images/image_00.ome.zarr", 0, 0),
        (
            ids::IMG_ORIGINAL_MULTIFILE,
            "images/image_00.ome.zarr",
            0,
            2,
        ),
        (ids::IMG_ORIGINAL_SERIES, "images/image_02.ome.zarr", 2, 0),
        (ids::IMG_ORIGINAL_IMAGEJ, "images/image_01.ome.zarr", 0, 0),
    ] {
        for m in [tiff_wf(), zarr_wf()] {
            let p = stage_source::plan(&request(vec![omero("Image", id)], "Lab A", m, "0.4"), &src)
                .await
                .unwrap();
            let img = &p.images[0];
            match &img.source {
                PixelSource::Tiff {
                    series: s,
                    files: f,
                    ..
                } => assert_eq!((*s, f.len()), (series, files), "Image {id}: {p:?}"),
                other => panic!("Image {id} is not read from its files: {other:?}"),
            }
            assert!(
                img.passed_over[0].starts_with("zarr: OMERO knows no OME-Zarr"),
                "{:?}",
                img.passed_over
            );
            let tiles = e.omero.faults.tiles.load(Ordering::Relaxed);
            let root = e.out.join(format!("in-place-{id}-{}", img.format));
            let staged = stage(&p, &root, Some(c.clone())).await;
            assert_eq!(
                e.omero.faults.tiles.load(Ordering::Relaxed),
                tiles,
                "Image {id}"
            );
            let out = inputs_dir(&root).join(&img.output);
            let (seen, sha_key) = if img.format == OutputFormat::Tiff {
                let seen = stage_tests::run_reader("read_tiff.py", &[out.as_os_str()]);
                assert_eq!(seen["series"], 1, "Image {id}: one image in its TIFF");
                (seen, "sha256_tczyx")
            } else {
                let seen = stage_tests::run_reader("read_zarr.py", &[out.as_os_str()]);
                (seen["image"].clone(), "sha256_tczyx")
            };
            assert_eq!(
                seen[sha_key],
                sample_sha(a, pixels),
                "Image {id} {}: {seen}",
                img.format
            );
            // OMERO's rendering settings travel into what was written; a file that holds
            // just this image is handed on as it is (linked), with its own metadata
            let linked = staged.entries[0].how == How::Linked;
            assert_eq!(
                linked,
                img.format == OutputFormat::Tiff
                    && [ids::IMG_ORIGINAL, ids::IMG_ORIGINAL_IMAGEJ].contains(&id),
                "Image {id}: {:?}",
                staged.entries[0].how
            );
            if img.format == OutputFormat::Zarr {
                assert_eq!(seen["colors"], serde_json::json!(colors), "Image {id}");
                assert_eq!(seen["windows"], serde_json::json!(windows), "Image {id}");
            } else if !linked {
                assert_eq!(
                    seen["ome"]["colors"],
                    serde_json::json!(colors),
                    "Image {id}"
                );
                assert_eq!(
                    seen["ome"]["windows"],
                    serde_json::json!(windows),
                    "Image {id}"
                );
            }
        }
    }
    // a plate whose fields are imported in place, assembled from their files
    let p = stage_source::plan(
        &request(
            vec![omero("Plate", ids::PLATE_ORIGINALS)],
            "Lab A",
            plate_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    assert_eq!(p.plates[0].output, "Plate In Place.zarr");
    let root = e.out.join("in-place-plate");
    let tiles = e.omero.faults.tiles.load(Ordering::Relaxed);
    stage(&p, &root, Some(c.clone())).await;
    assert_eq!(e.omero.faults.tiles.load(Ordering::Relaxed), tiles);
    let seen = stage_tests::run_reader(
        "read_zarr.py",
        &[inputs_dir(&root).join(&p.plates[0].output).as_os_str()],
    );
    assert_eq!(seen["kind"], "plate", "{seen}");
    for (field, pixels) in [
        ("A/1/0", "images/image_00.ome.zarr"),
        ("A/1/1", "images/image_00.ome.zarr"),
        ("A/1/2", "images/image_02.ome.zarr"),
        ("A/1/3", "images/image_01.ome.zarr"),
    ] {
        assert_eq!(
            seen["fields"][field]["sha256_tczyx"],
            sample_sha(a, pixels),
            "{field}"
        );
        assert_eq!(seen["fields"][field]["colors"], serde_json::json!(colors));
    }
    // the same plate for a TIFF workflow: one TIFF per field, named after the field's image
    let p = stage_source::plan(
        &request(
            vec![omero("Plate", ids::PLATE_ORIGINALS)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap();
    assert_eq!(
        p.outputs().collect::<Vec<_>>(),
        [
            "image_00.ome.tif.0.tif",
            "multi.ome.tif.0.tif",
            "series.ome.tif [image_02].0.tif",
            "hyperstack.tif.0.tif"
        ]
    );
    assert!(partials(&e.out).is_empty());
}

/// What cannot be the image OMERO describes is refused, naming the image and the file:
/// an original cut short, a fileset one of whose files is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originals_cut_short_or_missing_a_file_are_refused_by_name() {
    let e = env(64);
    let c = client(&e, PASSWORD, Duration::from_secs(5), 3);
    let src = sources(&e, &c);
    for (id, words) in [
        (ids::IMG_ORIGINAL_TRUNCATED, "truncated.ome.tif"),
        (ids::IMG_ORIGINAL_MISSING, "multi_1.ome.tif"),
    ] {
        let err = stage_source::plan(
            &request(vec![omero("Image", id)], "Lab A", tiff_wf(), "0.4"),
            &src,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("Image {id}")) && err.contains(words),
            "{err}"
        );
    }
    let err = stage_source::plan(
        &request(
            vec![omero("Image", ids::IMG_ORIGINAL_TRUNCATED)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &src,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cut short") || err.contains("end of the file"),
        "{err}"
    );
}

/// The fake `omero zarr export` (tests/readers/fake_omero_zarr.py) as omero_export_command,
/// behaving per image as `modes` says; its log of runs.
fn fake_exporter(
    e: &Env,
    tag: &str,
    modes: &[(i64, &str)],
    sleep: f64,
    timeout: Duration,
    concurrency: usize,
) -> (Arc<stage_source::export::Exporter>, PathBuf) {
    let dir = e.out.join("fake-exporter");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("runs-{tag}.log"));
    let cfg = dir.join(format!("config-{tag}.json"));
    let sources: serde_json::Map<String, Value> = [
        (ids::IMG_ORIGINAL_CZI, "images/image_02.ome.zarr"),
        (ids::IMG_TILES, "images/image_02.ome.zarr"),
        (1101, "plate.ome.zarr/A/1/0"),
    ]
    .iter()
    .map(|(id, rel)| {
        (
            id.to_string(),
            Value::from(e.data.samples_a.join(rel).display().to_string()),
        )
    })
    .collect();
    let modes: serde_json::Map<String, Value> = modes
        .iter()
        .map(|(id, m)| (id.to_string(), Value::from(*m)))
        .collect();
    std::fs::write(
        &cfg,
        serde_json::json!({
            "sources": sources, "modes": modes, "log": log, "sleep": sleep,
            "colors": rendered().0,
        })
        .to_string(),
    )
    .unwrap();
    let mut command: Vec<String> = vec![
        stage_tests::python().display().to_string(),
        stage_tests::repo_root()
            .join("tests/readers/fake_omero_zarr.py")
            .display()
            .to_string(),
        "--fake-config".into(),
        cfg.display().to_string(),
    ];
    command.extend(
        [
            "zarr",
            "-s",
            "{server}",
            "-k",
            "{session}",
            "-g",
            "{group}",
            "export",
            "--output",
            "{output}",
            "--format",
            "{format}",
            "Image:{image}",
        ]
        .map(String::from),
    );
    (
        Arc::new(stage_source::export::Exporter::new(
            stage_source::export::ExportConfig {
                command,
                server: "omeroserver:4064".into(),
                timeout,
                concurrency,
            },
        )),
        log,
    )
}

/// OMERO's exporter as the last source: chosen only when the Zarr, the original files and
/// the pixel service do not apply (and the plan says why each did not); run with the
/// daemon's own session in the user's group; its store converted to TIFF or handed on as
/// OME-Zarr with the pixels and rendering OMERO has; a failure, a timeout, a half-written
/// store or the wrong image fail with the exporter's last lines and leave nothing behind;
/// never more exports at once than allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omeros_exporter_is_the_last_source_and_nothing_half_done_counts() {
    let e = env(96);
    let a = &e.data.samples_a;
    // a site without the pixel service
    let mut cfg = client(&e, PASSWORD, Duration::from_secs(10), 3)
        .config()
        .clone();
    cfg.pixel_buffer_url = None;
    let c = Arc::new(OmeroClient::new(cfg).unwrap());
    let without = Sources {
        fs: e.fs.clone(),
        omero: Some(OmeroSource::new(c.clone())),
        exporter: false,
    };
    let err = stage_source::plan(
        &request(
            vec![omero("Image", ids::IMG_ORIGINAL_CZI)],
            "Lab A",
            tiff_wf(),
            "0.4",
        ),
        &without,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Image 214 cannot be staged")
            && err.contains("pixel_buffer_url is not set")
            && err.contains("omero_export_command"),
        "{err}"
    );
    let with = Sources {
        exporter: true,
        ..without.clone()
    };
    let plan_of = |ids: &[i64], m: ModeDecision| {
        let with = with.clone();
        let inputs: Vec<InputRef> = ids.iter().map(|i| omero("Image", *i)).collect();
        async move {
            stage_source::plan(&request(inputs, "Lab A", m, "0.4"), &with)
                .await
                .unwrap()
        }
    };
    let p = plan_of(&[ids::IMG_ORIGINAL_CZI, ids::IMG_TILES], tiff_wf()).await;
    for i in &p.images {
        assert!(matches!(i.source, PixelSource::Export { .. }), "{p:?}");
        let why = i.passed_over.join("; ");
        assert!(
            why.contains("pixel-service: pixel_buffer_url is not set"),
            "{why}"
        );
    }
    let (exporter, log) = fake_exporter(&e, "tiff", &[], 0.4, Duration::from_mins(1), 1);
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let mut stage_ctx = ctx(Some(c.clone()));
    stage_ctx.exporter = Some(exporter);
    stage_ctx.log = Arc::new(move |l| seen.lock().unwrap().push(l));
    let root = e.out.join("exported-tiff");
    let m = stage_source::stage::execute(&p, &root, &stage_ctx)
        .await
        .unwrap();
    assert!(m.entries.iter().all(|x| x.how == How::Exported), "{m:?}");
    assert!(m.entries.iter().all(|x| x.source == "omero-export"));
    for i in &p.images {
        let seen = stage_tests::run_reader(
            "read_tiff.py",
            &[inputs_dir(&root).join(&i.output).as_os_str()],
        );
        assert_eq!(
            seen["sha256_tczyx"],
            sample_sha(a, "images/image_02.ome.zarr")
        );
        assert_eq!(seen["ome"]["colors"], serde_json::json!(rendered().0));
    }
    // logged in with the daemon's own session, acting in the submission's group, one at a time
    let runs = std::fs::read_to_string(&log).unwrap();
    let key = c.session_key().await.unwrap();
    assert_eq!(runs.lines().count(), 4, "{runs}");
    assert!(
        runs.lines().all(|l| l.ends_with(&format!("{key} Lab A"))),
        "{runs}"
    );
    let events: Vec<(String, f64)> = runs
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[2].parse().unwrap())
        })
        .collect();
    let mut order = events.clone();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let kinds: Vec<&str> = order.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["start", "end", "start", "end"],
        "one export at a time: {runs}"
    );
    // what it printed reached the history, the session key blotted out
    let printed = lines.lock().unwrap().join("\n");
    assert!(
        printed.contains("Exporting to") && printed.contains("Finished."),
        "{printed}"
    );
    assert!(
        !printed.contains(&key) && printed.contains("***"),
        "{printed}"
    );
    let left: Vec<String> = std::fs::read_dir(root.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| n.ends_with(".ome.zarr")), "{left:?}");

    // the same for a Zarr workflow: the export handed on as OME-Zarr
    let p = plan_of(&[ids::IMG_ORIGINAL_CZI], zarr_wf()).await;
    let mut stage_ctx = ctx(Some(c.clone()));
    stage_ctx.exporter = Some(fake_exporter(&e, "zarr", &[], 0.0, Duration::from_mins(1), 2).0);
    let root = e.out.join("exported-zarr");
    stage_source::stage::execute(&p, &root, &stage_ctx)
        .await
        .unwrap();
    let seen = stage_tests::run_reader(
        "read_zarr.py",
        &[inputs_dir(&root).join(&p.images[0].output).as_os_str()],
    );
    assert_eq!(
        seen["image"]["sha256_tczyx"],
        sample_sha(a, "images/image_02.ome.zarr")
    );

    // failures: the exporter's last lines, nothing left, no output that looks finished
    for (mode, words, timeout) in [
        ("fail", "SecurityViolation", 60),
        ("sleep", "longer than 2 s", 2),
        ("half", "cannot be read", 60),
        ("wrong", "where OMERO describes", 60),
    ] {
        let p = plan_of(&[ids::IMG_ORIGINAL_CZI], tiff_wf()).await;
        let mut stage_ctx = ctx(Some(c.clone()));
        stage_ctx.exporter = Some(
            fake_exporter(
                &e,
                mode,
                &[(ids::IMG_ORIGINAL_CZI, mode)],
                0.0,
                Duration::from_secs(timeout),
                2,
            )
            .0,
        );
        let root = e.out.join(format!("exported-{mode}"));
        let err = stage_source::stage::execute(&p, &root, &stage_ctx)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Image 214") && msg.contains(words),
            "{mode}: {msg}"
        );
        assert!(
            !err.is_transient(),
            "{mode}: run again, it fails the same way"
        );
        assert!(!msg.contains(&key), "{msg}");
        assert_eq!(
            std::fs::read_dir(root.join("exports")).map_or(0, Iterator::count),
            0,
            "{mode}: nothing of the export is left"
        );
        assert_eq!(
            std::fs::read_dir(inputs_dir(&root)).unwrap().count(),
            0,
            "{mode}: nothing staged"
        );
    }

    // at most `concurrency` at once, across every submission sharing the exporter
    let (exporter, log) = fake_exporter(
        &e,
        "many",
        &[(1101, "wrong")],
        0.6,
        Duration::from_mins(1),
        2,
    );
    let p1 = plan_of(&[ids::IMG_ORIGINAL_CZI, ids::IMG_TILES], tiff_wf()).await;
    let p2 = plan_of(&[1101], tiff_wf()).await;
    let mut c1 = ctx(Some(c.clone()));
    c1.exporter = Some(exporter.clone());
    let mut c2 = ctx(Some(c.clone()));
    c2.exporter = Some(exporter);
    let (root1, root2) = (e.out.join("many-1"), e.out.join("many-2"));
    let (r1, r2) = tokio::join!(
        stage_source::stage::execute(&p1, &root1, &c1),
        stage_source::stage::execute(&p2, &root2, &c2),
    );
    r1.unwrap();
    let r2 = r2.unwrap_err().to_string();
    assert!(
        r2.contains("Image 1101"),
        "the mismatching export is refused: {r2}"
    );
    let mut running = 0;
    let mut most = 0;
    let mut events: Vec<(f64, i32)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[2].parse::<f64>().unwrap(),
                if f[0] == "start" { 1 } else { -1 },
            )
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, d) in events {
        running += d;
        most = most.max(running);
    }
    assert_eq!(most, 2, "two at once, never three");
}

/// Output names of OMERO images are BIOMERO's (`_SLURM_Image_Transfer.py` exports
/// `<basename(name)>.zarr`, `<name>_(N).zarr` when taken; `convert_zarr_to_tiff.py` writes
/// `<zarr without .zarr>.<first key>.tif`, the first key `0`); BIOMERO's own converter, run on
/// each staged Zarr, writes the TIFF name a TIFF workflow gets; names that collide get `_(N)`,
/// and the stage manifest says why a name differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omero_images_are_named_as_biomero_names_them() {
    let e = env(64);
    let c = client(&e, PASSWORD, Duration::from_secs(5), 3);
    let src = sources(&e, &c);
    let ok = vec![
        omero("Image", ids::IMG_ORIGINAL),
        omero("Image", ids::IMG_TILES),
        omero("Image", ids::IMG_ORIGINAL_MULTIFILE),
    ];
    for (m, expected) in [
        (
            tiff_wf(),
            [
                "image_00.ome.tif.0.tif",
                "kernels µ 3.0.tif",
                "multi.ome.tif.0.tif",
            ],
        ),
        (
            zarr_wf(),
            [
                "image_00.ome.tif.zarr",
                "kernels µ 3.zarr",
                "multi.ome.tif.zarr",
            ],
        ),
    ] {
        let p = stage_source::plan(&request(ok.clone(), "Lab A", m, "0.4"), &src)
            .await
            .unwrap();
        assert_eq!(p.outputs().collect::<Vec<_>>(), expected);
        assert!(p.images.iter().all(|i| i.renamed.is_none()));
    }
    // BIOMERO's own converter (biomero 2.8.3's convert_zarr_to_tiff.py) names the TIFF of each
    // Zarr as we name it for a TIFF workflow
    let zarr_plan = stage_source::plan(&request(ok.clone(), "Lab A", zarr_wf(), "0.4"), &src)
        .await
        .unwrap();
    let tiff_plan = stage_source::plan(&request(ok.clone(), "Lab A", tiff_wf(), "0.4"), &src)
        .await
        .unwrap();
    let root = e.out.join("biomero-converter");
    stage(&zarr_plan, &root, Some(c.clone())).await;
    let converter = biomero_converter();
    for (z, t) in zarr_plan.images.iter().zip(&tiff_plan.images) {
        let store = inputs_dir(&root).join(&z.output);
        let seen = stage_tests::run_reader(
            "biomero_converter.py",
            &[converter.as_os_str(), store.as_os_str()],
        );
        assert_eq!(
            seen["written"],
            serde_json::json!([t.output]),
            "{}",
            z.output
        );
    }
    // the same image twice: the second is `<name>_(1)`, and the plan says why
    let twice = vec![
        omero("Image", ids::IMG_TILES),
        omero("Image", ids::IMG_TILES),
    ];
    let p = stage_source::plan(&request(twice, "Lab A", tiff_wf(), "0.4"), &src)
        .await
        .unwrap();
    assert_eq!(
        p.outputs().collect::<Vec<_>>(),
        ["kernels µ 3.0.tif", "kernels µ 3_(1).0.tif"]
    );
    assert!(p.images[1].renamed.as_deref().unwrap().contains("taken"));
    let root = e.out.join("names");
    let m = stage(&p, &root, Some(c.clone())).await;
    assert!(m.entries[1].renamed.is_some() && m.entries[0].renamed.is_none());
}

/// BIOMERO's converter as the biomero 2.8.3 wheel ships it (`resources/convert_zarr_to_tiff.py`
/// in the virtualenv of `scripts/setup-biomero-py`).
fn biomero_converter() -> PathBuf {
    let py = std::env::var_os("BIOMERO_STAGE_BIOMERO_PYTHON").map_or_else(
        || stage_tests::repo_root().join("target/biomero-pyenv/bin/python"),
        PathBuf::from,
    );
    let out = std::process::Command::new(&py)
        .args([
            "-c",
            "import importlib.util as u; print(u.find_spec('resources.convert_zarr_to_tiff').origin)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-biomero-py)", py.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
