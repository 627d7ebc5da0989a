//! A stand-in OMERO.web (JSON API + webclient annotations) and
//! omero-ms-pixel-buffer, for tests: no OMERO server can be installed here.
//!
//! It serves a small world built from the generated sample data with the
//! documented shapes (docs/contracts.md#omero-over-http, OMERO's JSON API documentation): `@id`,
//! `@type`, `omero:details` (owner, group, permissions), images with `Pixels`
//! (and `Channels` when loaded alone), wells with 0-based `Row`/`Column` and
//! `WellSamples` (Images without Pixels in plate lists, with Pixels when a
//! well is loaded alone), lists with `meta{offset,limit,maxLimit,totalCount}`
//! capped at `maxLimit`, 404 with a `message` for unknown ids, 403 without a
//! session. Login is Django's: a CSRF token from `token/` (also the
//! `csrftoken` cookie) that `login/` checks in `X-CSRFToken`, then a
//! `sessionid` cookie. The pixel service wants `X-OMERO-Session-Key` and
//! answers raw big-endian samples. Faults can be injected: every Nth tile
//! fails with 500, every Nth request is slow, sessions can be expired.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stage_ngff::{ImageReader, NgffVersion};
use stage_sample::{SampleSpec, write_samples};

const SCHEMA: &str = "http://www.openmicroscopy.org/Schemas/OME/2016-06";
/// Where OMERO's side (its server, BIOMERO.importer) sees the data root: in-place import
/// links in the managed repository hold paths under it, which do not exist on the test host.
pub const OMERO_SIDE_ROOT: &str = "/omero-side/data";
/// The test account.
pub const USER: &str = "biomero-stage";
/// Its password.
pub const PASSWORD: &str = "s3cret-omero-pw";

/// How an image's pixels are known to live in a Zarr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZarrHint {
    /// Not at all: pixels only through the pixel service.
    None,
    /// `ExternalInfo` with the NGFF entity type.
    ExternalInfo,
    /// A `biomero.import` map annotation with `Filepath`.
    Annotation,
}

/// An image of the world.
#[derive(Debug, Clone)]
pub struct Img {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// The image group on disk the pixel service reads.
    pub path: PathBuf,
    /// How OMERO points at the Zarr.
    pub hint: ZarrHint,
    /// Its fileset's original files, as paths in the managed repository
    /// ([`WorldData::managed`]); empty: no fileset.
    pub originals: Vec<String>,
    /// Which series of its fileset it is (`omero:series`).
    pub series: i64,
}

/// A well.
#[derive(Debug, Clone)]
pub struct WellDef {
    /// Id.
    pub id: i64,
    /// 0-based row.
    pub row: usize,
    /// 0-based column.
    pub column: usize,
    /// (image id, acquisition id).
    pub fields: Vec<(i64, i64)>,
}

/// A plate.
#[derive(Debug, Clone)]
pub struct PlateDef {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Group.
    pub group: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
    /// Acquisitions (id, name, max fields).
    pub acquisitions: Vec<(i64, String, u32)>,
    /// Wells.
    pub wells: Vec<WellDef>,
    /// Its store on disk.
    pub store: PathBuf,
}

/// The OMERO world.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Images by id.
    pub images: HashMap<i64, Img>,
    /// Datasets: id → (name, group, image ids).
    pub datasets: HashMap<i64, (String, String, Vec<i64>)>,
    /// Plates by id.
    pub plates: HashMap<i64, PlateDef>,
    /// Screens: id → (name, group, plate ids).
    pub screens: HashMap<i64, (String, String, Vec<i64>)>,
}

/// Ids of the standard world.
pub mod ids {
    /// Screen of group `Lab A` with plates [`PLATE_TILES`] and [`PLATE_ZARR`].
    pub const SCREEN: i64 = 1;
    /// A plate whose pixels come only from the pixel service.
    pub const PLATE_TILES: i64 = 11;
    /// A plate whose fields point (ExternalInfo) into a plate store on disk.
    pub const PLATE_ZARR: i64 = 12;
    /// Dataset of `Lab A`: images [`IMG_EXTERNAL`], [`IMG_ANNOTATED`], [`IMG_TILES`].
    pub const DATASET: i64 = 21;
    /// Dataset of group `Lab B`.
    pub const DATASET_OTHER_GROUP: i64 = 22;
    /// Image with an ExternalInfo Zarr path.
    pub const IMG_EXTERNAL: i64 = 201;
    /// Image with a `biomero.import` Filepath annotation.
    pub const IMG_ANNOTATED: i64 = 202;
    /// Image only in the pixel service.
    pub const IMG_TILES: i64 = 203;
    /// An image of `Lab A` in no dataset, imported in place: its original OME-TIFF on the
    /// storage, linked from the managed repository.
    pub const IMG_ORIGINAL: i64 = 211;
    /// Likewise, but the link points into Lab B's folder.
    pub const IMG_ORIGINAL_OUTSIDE: i64 = 212;
    /// Likewise, but the file holds other pixels than OMERO describes.
    pub const IMG_ORIGINAL_MISMATCH: i64 = 213;
    /// Likewise, a format biomero-stage does not read (`.czi`).
    pub const IMG_ORIGINAL_CZI: i64 = 214;
    /// Likewise, its link holding OMERO's path of the file ([`super::OMERO_SIDE_ROOT`]).
    pub const IMG_ORIGINAL_OMERO_PATH: i64 = 215;
    /// Imported in place from a multi-file OME-TIFF fileset: channel 0 in one file (with
    /// the OME-XML), channel 1 in another (`BinaryOnly`, pointing at the first).
    pub const IMG_ORIGINAL_MULTIFILE: i64 = 216;
    /// Series 2 of a three-series OME-TIFF (`omero:series` 2).
    pub const IMG_ORIGINAL_SERIES: i64 = 217;
    /// An ImageJ hyperstack TIFF (2 channels).
    pub const IMG_ORIGINAL_IMAGEJ: i64 = 218;
    /// An OME-TIFF cut short on the storage.
    pub const IMG_ORIGINAL_TRUNCATED: i64 = 219;
    /// A multi-file fileset one of whose files is gone from the storage.
    pub const IMG_ORIGINAL_MISSING: i64 = 220;
    /// A plate of one well whose four fields are imported in place: [`IMG_ORIGINAL`],
    /// [`IMG_ORIGINAL_MULTIFILE`], [`IMG_ORIGINAL_SERIES`], [`IMG_ORIGINAL_IMAGEJ`].
    pub const PLATE_ORIGINALS: i64 = 13;
    /// Image of `Lab B`.
    pub const IMG_OTHER_GROUP: i64 = 301;
    /// First well id of [`PLATE_TILES`].
    pub const FIRST_WELL: i64 = 1100;
}

/// The sample data behind the world, as written.
#[derive(Debug, Clone)]
pub struct WorldData {
    /// The data root.
    pub root: PathBuf,
    /// Lab A's folder (`<root>/lab-a`).
    pub lab_a: PathBuf,
    /// Samples of plate [`ids::PLATE_TILES`] and the dataset images.
    pub samples_a: PathBuf,
    /// Samples of plate [`ids::PLATE_ZARR`].
    pub samples_b: PathBuf,
    /// Samples of Lab B.
    pub samples_other: PathBuf,
    /// OMERO's managed repository (outside the data roots, as `/OMERO/ManagedRepository` is):
    /// in-place imports are links from it to the files on the storage.
    pub managed: PathBuf,
}

/// Writes the sample data under `root` (`lab-a/…`, `lab-b/…`) and builds the standard world on it.
pub fn standard_world(root: &Path, size: u32) -> (World, WorldData) {
    let spec = SampleSpec {
        version: NgffVersion::V04,
        rows: 2,
        columns: 2,
        fields: 2,
        channels: 2,
        z: 1,
        size,
        images: 3,
        tiffs: true,
        levels: 1,
        seed: 7,
    };
    let lab_a = root.join("lab-a");
    let samples_a = lab_a.join("run-a");
    let samples_b = lab_a.join("run-b");
    let samples_other = root.join("lab-b/run-c");
    write_samples(&samples_a, &spec).expect("sample data a");
    write_samples(&samples_b, &SampleSpec { seed: 8, ..spec }).expect("sample data b");
    write_samples(
        &samples_other,
        &SampleSpec {
            seed: 9,
            images: 1,
            ..spec
        },
    )
    .expect("sample data c");
    let mut w = World::default();
    let plate =
        |id: i64, name: &str, store: PathBuf, first_image: i64, hint: ZarrHint, w: &mut World| {
            let mut wells = Vec::new();
            let mut next = first_image;
            for row in 0..2usize {
                for column in 0..2usize {
                    let mut fields = Vec::new();
                    for f in 0..2 {
                        let rn = ["A", "B"][row];
                        let path = store
                            .join(rn)
                            .join((column + 1).to_string())
                            .join(f.to_string());
                        w.images.insert(
                            next,
                            Img {
                                id: next,
                                name: format!("{name} [Well {rn}{}, Field {}]", column + 1, f + 1),
                                group: "Lab A".into(),
                                path,
                                hint,
                                originals: Vec::new(),
                                series: 0,
                            },
                        );
                        fields.push((next, id * 10 + 1));
                        next += 1;
                    }
                    wells.push(WellDef {
                        id: id * 100 + i64::try_from(row * 2 + column).unwrap_or(0),
                        row,
                        column,
                        fields,
                    });
                }
            }
            w.plates.insert(
                id,
                PlateDef {
                    id,
                    name: name.into(),
                    group: "Lab A".into(),
                    rows: 2,
                    columns: 2,
                    acquisitions: vec![(id * 10 + 1, format!("Run {id}"), 2)],
                    wells,
                    store,
                },
            );
        };
    plate(
        ids::PLATE_TILES,
        "Plate Tiles",
        samples_a.join("plate.ome.zarr"),
        1101,
        ZarrHint::None,
        &mut w,
    );
    plate(
        ids::PLATE_ZARR,
        "Plate (on disk)",
        samples_b.join("plate.ome.zarr"),
        1201,
        ZarrHint::ExternalInfo,
        &mut w,
    );
    w.screens.insert(
        ids::SCREEN,
        (
            "Screen A".into(),
            "Lab A".into(),
            vec![ids::PLATE_TILES, ids::PLATE_ZARR],
        ),
    );
    for (i, (id, hint, name)) in [
        (ids::IMG_EXTERNAL, ZarrHint::ExternalInfo, "nuclei 1.tif"),
        (ids::IMG_ANNOTATED, ZarrHint::Annotation, "nuclei [2]"),
        (ids::IMG_TILES, ZarrHint::None, "kernels µ 3"),
    ]
    .into_iter()
    .enumerate()
    {
        w.images.insert(
            id,
            Img {
                id,
                name: name.into(),
                group: "Lab A".into(),
                path: samples_a.join(format!("images/image_{i:02}.ome.zarr")),
                hint,
                originals: Vec::new(),
                series: 0,
            },
        );
    }
    w.datasets.insert(
        ids::DATASET,
        (
            "Dataset A".into(),
            "Lab A".into(),
            vec![ids::IMG_EXTERNAL, ids::IMG_ANNOTATED, ids::IMG_TILES],
        ),
    );
    w.images.insert(
        ids::IMG_OTHER_GROUP,
        Img {
            id: ids::IMG_OTHER_GROUP,
            name: "other".into(),
            group: "Lab B".into(),
            path: samples_other.join("images/image_00.ome.zarr"),
            hint: ZarrHint::None,
            originals: Vec::new(),
            series: 0,
        },
    );
    w.datasets.insert(
        ids::DATASET_OTHER_GROUP,
        (
            "Dataset B".into(),
            "Lab B".into(),
            vec![ids::IMG_OTHER_GROUP],
        ),
    );
    // images imported in place (BIOMERO.importer's `--transfer=ln_s`): the managed repository
    // holds links to their original files on the storage
    let managed = root
        .parent()
        .unwrap_or(root)
        .join("OMERO/ManagedRepository");
    let small = lab_a.join("run-small");
    write_samples(
        &small,
        &SampleSpec {
            size: size / 2,
            images: 1,
            seed: 9,
            ..spec
        },
    )
    .expect("small sample data");
    for (id, name, file, pixels) in [
        (
            ids::IMG_ORIGINAL,
            "image_00.ome.tif",
            samples_a.join("tiffs/image_00.ome.tif"),
            samples_a.join("images/image_00.ome.zarr"),
        ),
        (
            ids::IMG_ORIGINAL_OUTSIDE,
            "elsewhere.ome.tif",
            samples_other.join("tiffs/image_00.ome.tif"),
            samples_other.join("images/image_00.ome.zarr"),
        ),
        (
            ids::IMG_ORIGINAL_MISMATCH,
            "smaller.ome.tif",
            small.join("tiffs/image_00.ome.tif"),
            samples_a.join("images/image_01.ome.zarr"),
        ),
        (
            ids::IMG_ORIGINAL_CZI,
            "scan.czi [0]",
            samples_a.join("tiffs/image_02.ome.tif"),
            samples_a.join("images/image_02.ome.zarr"),
        ),
        (
            ids::IMG_ORIGINAL_OMERO_PATH,
            "image_01.ome.tif",
            Path::new(OMERO_SIDE_ROOT).join(
                samples_a
                    .join("tiffs/image_01.ome.tif")
                    .strip_prefix(root)
                    .expect("under the root"),
            ),
            samples_a.join("images/image_01.ome.zarr"),
        ),
    ] {
        let ext = if id == ids::IMG_ORIGINAL_CZI {
            "czi"
        } else {
            "ome.tif"
        };
        let rel = format!("alice_60/2026-12/01/10-00-{id}.000/original.{ext}");
        let link = managed.join(&rel);
        std::fs::create_dir_all(link.parent().expect("parent")).expect("managed repository");
        std::os::unix::fs::symlink(&file, &link).expect("in-place link");
        w.images.insert(
            id,
            Img {
                id,
                name: name.into(),
                group: "Lab A".into(),
                path: pixels,
                hint: ZarrHint::None,
                originals: vec![rel],
                series: 0,
            },
        );
    }
    in_place_filesets(&mut w, &samples_a, &managed);
    (
        w,
        WorldData {
            root: root.to_path_buf(),
            lab_a,
            samples_a,
            samples_b,
            samples_other,
            managed,
        },
    )
}

/// The planes of a sample image (t, z, c order, c fastest), its size and pixel type.
fn sample_planes(image: &Path) -> (u32, u32, stage_ngff::PixelType, Vec<Vec<u8>>) {
    let r = ImageReader::open(image).expect("sample image");
    let s = r.sizes();
    let mut reader = r.plane_reader(0, 8 << 20).expect("plane reader");
    let mut planes = Vec::new();
    for t in 0..s.t {
        for z in 0..s.z {
            for c in 0..s.c {
                let mut buf = vec![0u8; reader.plane_bytes()];
                reader.read_plane(t, c, z, &mut buf).expect("plane");
                planes.push(buf);
            }
        }
    }
    let (w, h) = (
        u32::try_from(s.x).expect("width"),
        u32::try_from(s.y).expect("height"),
    );
    (w, h, r.dtype, planes)
}

/// Writes a TIFF of `pages` with `description` (as OME-TIFF writers and ImageJ write them).
fn write_tiff(
    path: &Path,
    description: String,
    (w, h, dtype): (u32, u32, stage_ngff::PixelType),
    pages: &[&[u8]],
) {
    use stage_ngff::tiff::write::{TiffCompression, TiffLayout, TiffWriter};
    let layout = TiffLayout {
        width: w,
        height: h,
        samples_per_pixel: 1,
        dtype,
        pages: pages.len() as u64,
        description,
        compression: TiffCompression::None,
    };
    let mut writer = TiffWriter::create(path, layout, false).expect("tiff");
    for p in pages {
        writer.write_page(p).expect("page");
    }
    writer.finish().expect("finish");
}

/// OME-XML of several images of 2 channels (`XYCZT`), the planes of image `k` stored as
/// `blocks[k]`: (first c, IFD, plane count, file name).
fn ome_xml(uuid: &str, images: &[(&str, (u32, u32), Vec<(u32, u32, u32, &str)>)]) -> String {
    let mut x = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{SCHEMA}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" UUID="urn:uuid:{uuid}" Creator="OME Bio-Formats 7.3.0">"#
    );
    for (k, (name, (w, h), blocks)) in images.iter().enumerate() {
        x.push_str(&format!(
            r#"<Image ID="Image:{k}" Name="{name}"><Pixels ID="Pixels:{k}" DimensionOrder="XYCZT" Type="uint16" SizeX="{w}" SizeY="{h}" SizeZ="1" SizeC="2" SizeT="1" BigEndian="false" Interleaved="false"><Channel ID="Channel:{k}:0" Name="ch0" Color="-16776961" SamplesPerPixel="1"/><Channel ID="Channel:{k}:1" Name="ch1" Color="16711935" SamplesPerPixel="1"/>"#
        ));
        for (c, ifd, count, file) in blocks {
            x.push_str(&format!(
                r#"<TiffData FirstC="{c}" FirstT="0" FirstZ="0" IFD="{ifd}" PlaneCount="{count}"><UUID FileName="{file}">urn:uuid:{file}</UUID></TiffData>"#
            ));
        }
        x.push_str("</Pixels></Image>");
    }
    x.push_str("</OME>");
    x
}

/// Links `files` (on the storage) from a fileset folder of the managed repository; the
/// repository paths, in the order given.
fn link_fileset(managed: &Path, id: i64, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let name = f.file_name().expect("file name").to_string_lossy();
            let rel = format!("alice_60/2026-12/02/11-00-{id}.000/{name}");
            let link = managed.join(&rel);
            std::fs::create_dir_all(link.parent().expect("parent")).expect("managed repository");
            std::os::unix::fs::symlink(f, &link).expect("in-place link");
            rel
        })
        .collect()
}

/// The in-place imports of every shape BIOMERO.importer leaves: a multi-file OME-TIFF, a
/// later series of a multi-series file, an ImageJ hyperstack, a file cut short, a fileset
/// missing a file, and a plate of such fields.
fn in_place_filesets(w: &mut World, samples: &Path, managed: &Path) {
    let dir = samples.join("in-place");
    std::fs::create_dir_all(&dir).expect("in-place folder");
    let image = |k: usize| samples.join(format!("images/image_{k:02}.ome.zarr"));
    let (width, height, dtype, p0) = sample_planes(&image(0));
    let format = (width, height, dtype);
    let add =
        |w: &mut World, id: i64, name: &str, pixels: PathBuf, files: &[PathBuf], series: i64| {
            let originals = link_fileset(managed, id, files);
            w.images.insert(
                id,
                Img {
                    id,
                    name: name.into(),
                    group: "Lab A".into(),
                    path: pixels,
                    hint: ZarrHint::None,
                    originals,
                    series,
                },
            );
        };
    // a multi-file fileset: the OME-XML in the first file, the second `BinaryOnly`
    for (sub, gone) in [("multi", false), ("multi-missing", true)] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("fileset folder");
        let xml = ome_xml(
            "aaaa",
            &[(
                "multi",
                (width, height),
                vec![(0, 0, 1, "multi_0.ome.tif"), (1, 0, 1, "multi_1.ome.tif")],
            )],
        );
        let (a, b) = (d.join("multi_0.ome.tif"), d.join("multi_1.ome.tif"));
        write_tiff(&a, xml, format, &[&p0[0]]);
        write_tiff(
            &b,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{SCHEMA}" UUID="urn:uuid:bbbb"><BinaryOnly MetadataFile="multi_0.ome.tif" UUID="urn:uuid:aaaa"/></OME>"#
            ),
            format,
            &[&p0[1]],
        );
        // OMERO lists the file that was imported first: the one without metadata
        let files = [b.clone(), a.clone()];
        if gone {
            add(
                w,
                ids::IMG_ORIGINAL_MISSING,
                "multi.ome.tif",
                image(0),
                &files,
                0,
            );
            std::fs::remove_file(&b).expect("remove a fileset file");
        } else {
            add(
                w,
                ids::IMG_ORIGINAL_MULTIFILE,
                "multi.ome.tif",
                image(0),
                &files,
                0,
            );
        }
    }
    // three series in one file; the image is the third
    let planes: Vec<Vec<Vec<u8>>> = (0..3).map(|k| sample_planes(&image(k)).3).collect();
    let names = ["image_00", "image_01", "image_02"];
    let xml = ome_xml(
        "cccc",
        &(0..3u32)
            .map(|k| {
                (
                    names[k as usize],
                    (width, height),
                    vec![(0, 2 * k, 2, "series.ome.tif")],
                )
            })
            .collect::<Vec<_>>(),
    );
    let series = dir.join("series.ome.tif");
    let pages: Vec<&[u8]> = planes.iter().flatten().map(Vec::as_slice).collect();
    write_tiff(&series, xml, format, &pages);
    add(
        w,
        ids::IMG_ORIGINAL_SERIES,
        "series.ome.tif [image_02]",
        image(2),
        &[series],
        2,
    );
    // an ImageJ hyperstack, written by tifffile as ImageJ writes it (one contiguous block)
    let hyper = dir.join("hyperstack.tif");
    crate::run_reader(
        "write_peer.py",
        &[
            "imagej-of".as_ref(),
            image(1).as_os_str(),
            hyper.as_os_str(),
        ],
    );
    add(
        w,
        ids::IMG_ORIGINAL_IMAGEJ,
        "hyperstack.tif",
        image(1),
        &[hyper],
        0,
    );
    // an OME-TIFF cut short
    let cut = dir.join("truncated.ome.tif");
    let whole = std::fs::read(samples.join("tiffs/image_00.ome.tif")).expect("sample tiff");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("truncated tiff");
    add(
        w,
        ids::IMG_ORIGINAL_TRUNCATED,
        "truncated.ome.tif",
        image(0),
        &[cut],
        0,
    );
    // a plate of one well, its fields imported in place
    let fields = [
        ids::IMG_ORIGINAL,
        ids::IMG_ORIGINAL_MULTIFILE,
        ids::IMG_ORIGINAL_SERIES,
        ids::IMG_ORIGINAL_IMAGEJ,
    ];
    let acquisition = ids::PLATE_ORIGINALS * 10 + 1;
    w.plates.insert(
        ids::PLATE_ORIGINALS,
        PlateDef {
            id: ids::PLATE_ORIGINALS,
            name: "Plate In Place".into(),
            group: "Lab A".into(),
            rows: 1,
            columns: 1,
            acquisitions: vec![(acquisition, "Run in place".into(), 4)],
            wells: vec![WellDef {
                id: ids::PLATE_ORIGINALS * 100,
                row: 0,
                column: 0,
                fields: fields.iter().map(|f| (*f, acquisition)).collect(),
            }],
            store: dir.join("no-plate-store"),
        },
    );
}

/// Injected faults and counters.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every Nth tile request answers 500 (0: never).
    pub tile_fail_every: AtomicU64,
    /// Every Nth request (any) waits `slow_ms` first (0: never).
    pub slow_every: AtomicU64,
    /// How long a slow request waits.
    pub slow_ms: AtomicU64,
    /// Every tile request waits this long (for timeouts).
    pub tile_delay_ms: AtomicU64,
    /// `maxLimit` of lists.
    pub max_limit: AtomicU64,
    /// Requests served.
    pub requests: AtomicU64,
    /// Tile requests served.
    pub tiles: AtomicU64,
    /// Successful logins.
    pub logins: AtomicU64,
    /// Answers 403 because there was no (live) session.
    pub refused: AtomicU64,
    /// The Nth `annotate_file` upload answers 500 (once; 0: never).
    pub attach_fail_at: AtomicU64,
    /// `annotate_file` uploads received.
    pub attach_calls: AtomicU64,
}

/// A file attached through the webclient's `annotate_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedFile {
    /// The FileAnnotation's id.
    pub annotation: i64,
    /// The file's name.
    pub name: String,
    /// Its MIME type, as the upload gave it.
    pub mime: String,
    /// Its bytes.
    pub content: Vec<u8>,
    /// The objects it is linked to: (`image`, `dataset`, `plate`, …, id).
    pub targets: Vec<(String, i64)>,
}

/// A Dataset or Screen created through `m/save/`: (kind, id, name, group id).
type Created = (String, i64, String, i64);

struct ServerState {
    world: World,
    sessions: Mutex<HashMap<String, String>>,
    /// Users' own OMERO sessions: uuid → their eventContext.
    user_sessions: Mutex<HashMap<String, Value>>,
    /// Experimenters' e-mail addresses by user id.
    emails: Mutex<HashMap<i64, String>>,
    /// Experimenters known without a session (the runs BIOMERO recorded): id → (name, group ids).
    experimenters: Mutex<HashMap<i64, (String, Vec<i64>)>>,
    /// FileAnnotations: id → (file name, content).
    files: Mutex<HashMap<i64, (String, Vec<u8>)>>,
    /// Files attached through the webclient's `annotate_file`.
    attached: Mutex<Vec<AttachedFile>>,
    created: Mutex<Vec<Created>>,
    /// The `Description` each created container was saved with, by id.
    descriptions: Mutex<HashMap<i64, String>>,
    csrf: Mutex<Vec<String>>,
    faults: Arc<Faults>,
    counter: AtomicU64,
}

/// A running test OMERO.
pub struct TestOmero {
    /// OMERO.web base URL.
    pub url: String,
    /// Faults and counters.
    pub faults: Arc<Faults>,
    state: Arc<ServerState>,
}

impl TestOmero {
    /// Serves `world` on a free port (its own runtime; usable from sync and async tests).
    pub fn start(world: World) -> TestOmero {
        let faults = Arc::new(Faults::default());
        faults.max_limit.store(500, Ordering::Relaxed);
        let state = Arc::new(ServerState {
            world,
            sessions: Mutex::new(HashMap::new()),
            user_sessions: Mutex::new(HashMap::new()),
            emails: Mutex::new(HashMap::new()),
            experimenters: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            attached: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            descriptions: Mutex::new(HashMap::new()),
            csrf: Mutex::new(Vec::new()),
            faults: faults.clone(),
            counter: AtomicU64::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        // its own runtime on its own thread: usable from sync tests and from inside #[tokio::test]
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(l) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(l, app).await;
                }
            });
        });
        TestOmero {
            url: format!("http://{addr}"),
            faults,
            state,
        }
    }

    /// Ends every session (as an OMERO restart or a session timeout would).
    pub fn expire_sessions(&self) {
        if let Ok(mut s) = self.state.sessions.lock() {
            s.clear();
        }
        if let Ok(mut s) = self.state.user_sessions.lock() {
            s.clear();
        }
    }

    /// Opens an OMERO session for a user, as OMERO does when a script job starts:
    /// `(user id, name)` acting in `(group id, name)`, a member of `member_of`.
    /// Returns its key.
    pub fn open_user_session(
        &self,
        (user_id, user): (i64, &str),
        (group_id, group): (i64, &str),
        member_of: &[i64],
    ) -> String {
        let n = self.state.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let key = format!("5e55{n:04}-{user_id:04}-4000-8000-{group_id:012}");
        let ctx = json!({"userName": user, "eventId": -1, "sessionUuid": key, "eventType": "User",
            "userId": user_id, "sessionId": n, "groupName": group, "isAdmin": false,
            "memberOfGroups": member_of, "leaderOfGroups": [], "groupId": group_id});
        if let Ok(mut s) = self.state.user_sessions.lock() {
            s.insert(key.clone(), ctx);
        }
        key
    }

    /// Adds experimenter `user_id` named `name`, a member of `groups` (5 is `Lab A`, 6 `Lab B`).
    pub fn add_experimenter(&self, user_id: i64, name: &str, groups: &[i64]) {
        if let Ok(mut e) = self.state.experimenters.lock() {
            e.insert(user_id, (name.to_owned(), groups.to_vec()));
        }
    }

    /// Gives experimenter `user_id` an e-mail address.
    pub fn set_email(&self, user_id: i64, email: &str) {
        if let Ok(mut e) = self.state.emails.lock() {
            e.insert(user_id, email.to_owned());
        }
    }

    /// Adds a FileAnnotation (a file a user attached in OMERO).
    pub fn add_file_annotation(&self, id: i64, name: &str, content: &[u8]) {
        if let Ok(mut f) = self.state.files.lock() {
            f.insert(id, (name.to_owned(), content.to_vec()));
        }
    }

    /// The files attached through the webclient's `annotate_file`, in order.
    pub fn attached(&self) -> Vec<AttachedFile> {
        self.state
            .attached
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// The Datasets and Screens created through `m/save/`: (kind, id, name, group id).
    pub fn created(&self) -> Vec<(String, i64, String, i64)> {
        self.state
            .created
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn message(status: StatusCode, m: &str) -> Response {
    json_response(status, &json!({ "message": m }))
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn q_u64(q: &[(String, String)], k: &str) -> Option<u64> {
    q.iter()
        .find(|(a, _)| a == k)
        .and_then(|(_, v)| v.parse().ok())
}

fn details(group: &str) -> Value {
    let gid = if group == "Lab A" { 5 } else { 6 };
    json!({
        "@type": "TBD#Details",
        "owner": {"@id": 2, "@type": format!("{SCHEMA}#Experimenter"), "UserName": "alice", "FirstName": "Alice", "LastName": "Smith"},
        "group": {"@id": gid, "@type": format!("{SCHEMA}#ExperimenterGroup"), "Name": group},
        "permissions": {"@type": "TBD#Permissions", "perm": "rwra--", "isGroupRead": true, "canEdit": false}
    })
}

fn pixels(img: &Img, with_channels: bool) -> Value {
    let r = ImageReader::open(&img.path).expect("sample image");
    let s = r.sizes();
    let mut p = json!({
        "@id": img.id + 50_000,
        "@type": format!("{SCHEMA}#Pixels"),
        "SizeX": s.x, "SizeY": s.y, "SizeZ": s.z, "SizeC": s.c, "SizeT": s.t,
        "PhysicalSizeX": {"@type": "TBD#LengthI", "Unit": "MICROMETER", "Symbol": "µm", "Value": 0.65},
        "PhysicalSizeY": {"@type": "TBD#LengthI", "Unit": "MICROMETER", "Symbol": "µm", "Value": 0.65},
        "Type": {"@id": 6, "@type": "TBD#PixelsType", "value": r.dtype.name()},
        "SignificantBits": r.dtype.size() * 8,
        "omero:sha1": "",
        "omero:details": details(&img.group),
    });
    if with_channels {
        p["Channels"] = r
            .channel_names()
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"@id": img.id * 10 + i64::try_from(i).unwrap_or(0), "@type": format!("{SCHEMA}#Channel"), "Name": n, "SamplesPerPixel": 1}))
            .collect();
    }
    p
}

/// The colour the stand-in's OMERO renders channel `c` in (not the store's own).
pub fn rendered_color(c: usize) -> &'static str {
    ["FF0000", "FFFF00", "00FFFF", "FF00FF"][c % 4]
}

/// The display window the stand-in's OMERO renders channel `c` with.
pub fn rendered_window(c: usize) -> (f64, f64) {
    let c = f64::from(u32::try_from(c).unwrap_or(0));
    (50.0 + c, 3000.0 + 10.0 * c)
}

fn rendering_json(img: &Img) -> Value {
    let r = ImageReader::open(&img.path).expect("sample image");
    let s = r.sizes();
    let max = match r.dtype.size() {
        1 => 255.0,
        2 => 65535.0,
        _ => 4_294_967_295.0,
    };
    let channels: Vec<Value> = r
        .channel_names()
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let (start, end) = rendered_window(c);
            json!({
                "emissionWave": null,
                "label": label,
                "color": rendered_color(c),
                "inverted": false,
                "reverseIntensity": false,
                "family": "linear",
                "coefficient": 1.0,
                "window": {"min": 0.0, "max": max, "start": start, "end": end},
                "active": true,
            })
        })
        .collect();
    json!({
        "id": img.id,
        "meta": {
            "imageName": img.name, "imageDescription": "", "imageAuthor": "Alice A",
            "imageArchived": false, "projectName": "Multiple", "projectId": null,
            "projectDescription": "", "datasetName": "Multiple", "datasetId": null,
            "datasetDescription": "", "wellSampleId": "", "wellId": "",
            "imageTimestamp": 1_700_000_000.0, "imageId": img.id, "pixelsType": r.dtype.name(),
        },
        "perms": {"canAnnotate": true, "canEdit": true, "canDelete": true, "canLink": true},
        "tiles": false,
        "interpolate": true,
        "size": {"width": s.x, "height": s.y, "z": s.z, "t": s.t, "c": s.c},
        "pixel_size": {"x": 0.65, "y": 0.65, "z": null},
        "init_zoom": 0,
        "pixel_range": [0, max],
        "channels": channels,
        "split_channel": {"g": {"width": s.x, "height": s.y, "border": 2, "gridx": 2, "gridy": 1},
                          "c": {"width": s.x, "height": s.y, "border": 2, "gridx": 2, "gridy": 1}},
        "rdefs": {"model": "color", "projection": "normal", "defaultZ": 0, "defaultT": 0, "invertAxis": false},
    })
}

fn image_json(img: &Img, with_pixels: bool, with_channels: bool) -> Value {
    let mut v = json!({
        "@id": img.id,
        "@type": format!("{SCHEMA}#Image"),
        "Name": img.name,
        "AcquisitionDate": 1_700_000_000_000_i64,
        "omero:series": img.series,
        "omero:details": details(&img.group),
        "url:image": format!("/api/v0/m/images/{}/", img.id),
    });
    if img.hint == ZarrHint::ExternalInfo {
        v["omero:details"]["externalInfo"] = json!({
            "@type": "TBD#ExternalInfo",
            "EntityId": 3,
            "EntityType": "com.glencoesoftware.ngff:multiscales",
            "Lsid": img.path.display().to_string(),
        });
    }
    if with_pixels {
        v["Pixels"] = pixels(img, with_channels);
    }
    v
}

fn well_json(w: &WellDef, world: &World, plate: &PlateDef, with_pixels: bool) -> Value {
    let samples: Vec<Value> = w
        .fields
        .iter()
        .map(|(img, acq)| {
            let i = &world.images[img];
            json!({
                "@id": img * 3,
                "@type": format!("{SCHEMA}#WellSample"),
                "omero:details": details(&plate.group),
                "PositionX": {"@type": "TBD#LengthI", "Unit": "REFERENCEFRAME", "Symbol": "reference frame", "Value": 100.0},
                "Image": image_json(i, with_pixels, false),
                "PlateAcquisition": {"@id": acq, "@type": format!("{SCHEMA}#PlateAcquisition"), "MaximumFieldCount": 2, "omero:details": details(&plate.group)},
            })
        })
        .collect();
    json!({
        "@id": w.id,
        "@type": format!("{SCHEMA}#Well"),
        "Row": w.row,
        "Column": w.column,
        "omero:details": details(&plate.group),
        "url:well": format!("/api/v0/m/wells/{}/", w.id),
        "WellSamples": samples,
    })
}

fn plate_json(p: &PlateDef) -> Value {
    json!({
        "@id": p.id,
        "@type": format!("{SCHEMA}#Plate"),
        "Name": p.name,
        "Rows": p.rows,
        "Columns": p.columns,
        "RowNamingConvention": "letter",
        "ColumnNamingConvention": "number",
        "omero:details": details(&p.group),
        "url:wells": format!("/api/v0/m/plates/{}/wells/", p.id),
    })
}

fn list(items: Vec<Value>, q: &[(String, String)], max_limit: u64) -> Response {
    let limit = q_u64(q, "limit").unwrap_or(200).min(max_limit);
    let offset = q_u64(q, "offset").unwrap_or(0);
    let total = items.len() as u64;
    let page: Vec<Value> = items
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"data": page, "meta": {"offset": offset, "limit": limit, "maxLimit": max_limit, "totalCount": total}}),
    )
}

fn id_of(seg: &str) -> Option<i64> {
    seg.parse().ok()
}

async fn handle(
    State(st): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = st.counter.fetch_add(1, Ordering::Relaxed) + 1;
    st.faults.requests.fetch_add(1, Ordering::Relaxed);
    let slow = st.faults.slow_every.load(Ordering::Relaxed);
    if slow > 0 && n % slow == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(
            st.faults.slow_ms.load(Ordering::Relaxed),
        ))
        .await;
    }
    let path = uri.path().to_owned();
    let q = query(&uri);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // login flow
    if path == "/api/v0/token/" {
        let token = format!("csrf{n:08}");
        if let Ok(mut c) = st.csrf.lock() {
            c.push(token.clone());
        }
        let mut r = json_response(StatusCode::OK, &json!({ "data": token }));
        if let Ok(v) = format!("csrftoken={token}; Path=/").parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    if path == "/api/v0/login/" {
        if method != Method::POST {
            return message(StatusCode::METHOD_NOT_ALLOWED, "POST to log in");
        }
        let sent = headers.get("X-CSRFToken").and_then(|v| v.to_str().ok());
        let jar = cookie(&headers, "csrftoken");
        let known = st
            .csrf
            .lock()
            .is_ok_and(|c| sent.is_some_and(|s| c.iter().any(|t| t == s)));
        if sent.is_none() || sent != jar.as_deref() || !known {
            return message(
                StatusCode::FORBIDDEN,
                "CSRF verification failed. Request aborted.",
            );
        }
        let form: HashMap<String, String> = String::from_utf8_lossy(&body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), decode(v)))
            .collect();
        if form.get("server").map(String::as_str) != Some("1") {
            return message(
                StatusCode::FORBIDDEN,
                "Login failed. Reason: unknown server",
            );
        }
        // a session key as user name and password joins that session (omero.client.joinSession)
        let joined = form
            .get("username")
            .filter(|u| form.get("password") == Some(*u))
            .and_then(|u| st.user_sessions.lock().ok()?.get(u.as_str()).cloned());
        if let Some(ctx) = joined {
            let sid = format!("sid{n:08}");
            let uuid = ctx["sessionUuid"].as_str().unwrap_or_default().to_owned();
            if let Ok(mut s) = st.sessions.lock() {
                s.insert(sid.clone(), uuid);
            }
            let mut r = json_response(
                StatusCode::OK,
                &json!({"success": true, "eventContext": ctx}),
            );
            if let Ok(v) = format!("sessionid={sid}; HttpOnly; Path=/").parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            return r;
        }
        if form.get("username").map(String::as_str) != Some(USER)
            || form.get("password").map(String::as_str) != Some(PASSWORD)
        {
            return message(
                StatusCode::FORBIDDEN,
                "Login failed. Reason: Incorrect username or password",
            );
        }
        let sid = format!("sid{n:08}");
        let uuid = format!("8a3c{n:08}-0000-4000-8000-00000000{n:04}");
        if let Ok(mut s) = st.sessions.lock() {
            s.insert(sid.clone(), uuid.clone());
        }
        st.faults.logins.fetch_add(1, Ordering::Relaxed);
        let mut r = json_response(
            StatusCode::OK,
            &json!({"success": true, "eventContext": {"userName": USER, "eventId": -1, "sessionUuid": uuid, "eventType": "User", "userId": 52, "sessionId": n, "groupName": "Lab A", "isAdmin": false, "memberOfGroups": [5, 6], "leaderOfGroups": [], "groupId": 5}}),
        );
        if let Ok(v) = format!("sessionid={sid}; HttpOnly; Path=/").parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    let sessions: Vec<(String, String)> = st
        .sessions
        .lock()
        .map(|s| s.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
        .unwrap_or_default();
    // pixel service
    if segs.first() == Some(&"tile") {
        st.faults.tiles.fetch_add(1, Ordering::Relaxed);
        let key = headers
            .get("X-OMERO-Session-Key")
            .and_then(|v| v.to_str().ok());
        if !key.is_some_and(|k| sessions.iter().any(|(_, u)| u == k)) {
            st.faults.refused.fetch_add(1, Ordering::Relaxed);
            return message(StatusCode::FORBIDDEN, "Permission denied");
        }
        let delay = st.faults.tile_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let every = st.faults.tile_fail_every.load(Ordering::Relaxed);
        if every > 0 && st.faults.tiles.load(Ordering::Relaxed) % every == 0 {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "injected failure");
        }
        let parts: Vec<u64> = segs[1..].iter().filter_map(|s| s.parse().ok()).collect();
        let [image, z, c, t] = parts.as_slice() else {
            return message(StatusCode::BAD_REQUEST, "tile/{imageId}/{z}/{c}/{t}");
        };
        let Some(img) = st
            .world
            .images
            .get(&i64::try_from(*image).unwrap_or(-1))
            .cloned()
        else {
            return message(StatusCode::NOT_FOUND, "Image not found");
        };
        let (x, y, w, h) = (
            q_u64(&q, "x").unwrap_or(0),
            q_u64(&q, "y").unwrap_or(0),
            q_u64(&q, "w").unwrap_or(0),
            q_u64(&q, "h").unwrap_or(0),
        );
        let (z, c, t) = (*z, *c, *t);
        let tile = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let r = ImageReader::open(&img.path).map_err(|e| e.to_string())?;
            let s = r.sizes();
            if w == 0 || h == 0 || x + w > s.x || y + h > s.y || z >= s.z || c >= s.c || t >= s.t {
                return Err("tile outside the image".into());
            }
            let es = r.dtype.size();
            let mut pr = r.plane_reader(0, 8 << 20).map_err(|e| e.to_string())?;
            let mut plane = vec![0u8; pr.plane_bytes()];
            pr.read_plane(t, c, z, &mut plane)
                .map_err(|e| e.to_string())?;
            let sx = usize::try_from(s.x).unwrap_or(0);
            let mut out = Vec::with_capacity(usize::try_from(w * h).unwrap_or(0) * es);
            for row in y..y + h {
                let o =
                    (usize::try_from(row).unwrap_or(0) * sx + usize::try_from(x).unwrap_or(0)) * es;
                for px in plane[o..o + usize::try_from(w).unwrap_or(0) * es].chunks_exact(es) {
                    out.extend(px.iter().rev()); // native (little-endian) → big-endian
                }
            }
            Ok(out)
        })
        .await;
        return match tile {
            Ok(Ok(bytes)) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from(bytes),
            )
                .into_response(),
            Ok(Err(m)) => message(StatusCode::BAD_REQUEST, &m),
            Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    // everything else needs the Django session
    let live = cookie(&headers, "sessionid").is_some_and(|s| sessions.iter().any(|(k, _)| *k == s));
    if !live {
        st.faults.refused.fetch_add(1, Ordering::Relaxed);
        return message(StatusCode::FORBIDDEN, "Not logged in");
    }
    let w = &st.world;
    let max_limit = st.faults.max_limit.load(Ordering::Relaxed);
    let not_found = |what: &str| message(StatusCode::NOT_FOUND, &format!("{what} not found"));
    let kinds = [
        "image",
        "dataset",
        "project",
        "screen",
        "plate",
        "acquisition",
        "well",
    ];
    if path == "/webclient/annotate_file/" && method == Method::POST {
        // omeroweb/webclient/views.py annotate_file: objects from the query (`?image=1`),
        // new files in the multipart field `annotation_file`; {"fileIds": [...]}
        let sent = headers.get("X-CSRFToken").and_then(|v| v.to_str().ok());
        if sent.is_none() || sent != cookie(&headers, "csrftoken").as_deref() {
            return message(
                StatusCode::FORBIDDEN,
                "CSRF verification failed. Request aborted.",
            );
        }
        let call = st.faults.attach_calls.fetch_add(1, Ordering::Relaxed) + 1;
        if call == st.faults.attach_fail_at.load(Ordering::Relaxed) {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "injected failure");
        }
        let targets: Vec<(String, i64)> = q
            .iter()
            .filter(|(k, _)| kinds.contains(&k.as_str()))
            .filter_map(|(k, v)| v.parse::<i64>().ok().map(|id| (k.clone(), id)))
            .collect();
        if targets.is_empty() {
            return message(
                StatusCode::NOT_FOUND,
                "Need to specify objects via e.g. ?image=1",
            );
        }
        let mut req = axum::http::Request::builder().method(Method::POST);
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let Ok(req) = req.body(Body::from(body)) else {
            return message(StatusCode::BAD_REQUEST, "bad request");
        };
        let Ok(mut form) =
            <axum::extract::Multipart as axum::extract::FromRequest<()>>::from_request(req, &())
                .await
        else {
            return message(StatusCode::BAD_REQUEST, "not multipart/form-data");
        };
        let mut ids = Vec::new();
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() != Some("annotation_file") {
                continue;
            }
            let name = field.file_name().unwrap_or_default().to_owned();
            let mime = field.content_type().unwrap_or_default().to_owned();
            let Ok(content) = field.bytes().await else {
                return message(StatusCode::BAD_REQUEST, "truncated upload");
            };
            let annotation =
                700_000 + i64::try_from(st.counter.fetch_add(1, Ordering::Relaxed)).unwrap_or(0);
            if let Ok(mut a) = st.attached.lock() {
                a.push(AttachedFile {
                    annotation,
                    name,
                    mime,
                    content: content.to_vec(),
                    targets: targets.clone(),
                });
            }
            ids.push(annotation);
        }
        return json_response(StatusCode::OK, &json!({ "fileIds": ids }));
    }
    if path == "/webclient/api/annotations/" && q.iter().any(|(k, v)| k == "type" && v == "file") {
        // marshal_annotations (omeroweb/webclient/tree.py): one entry per link
        let attached = st.attached.lock().map(|a| a.clone()).unwrap_or_default();
        let class = |k: &str| {
            let mut c = k.to_owned();
            c[..1].make_ascii_uppercase();
            format!("{c}I")
        };
        let anns: Vec<Value> = q
            .iter()
            .filter(|(k, _)| kinds.contains(&k.as_str()))
            .filter_map(|(k, v)| v.parse::<i64>().ok().map(|id| (k.clone(), id)))
            .flat_map(|(k, id)| {
                attached
                    .iter()
                    .filter(|a| a.targets.contains(&(k.clone(), id)))
                    .map(|a| json!({"id": a.annotation, "class": "FileAnnotationI", "ns": null,
                        "file": {"id": a.annotation + 1, "name": a.name, "size": a.content.len(), "path": "", "mimetype": a.mime},
                        "link": {"id": a.annotation + 2, "parent": {"id": id, "class": class(&k), "name": ""}},
                        "owner": {"id": 1}}))
                    .collect::<Vec<_>>()
            })
            .collect();
        return json_response(
            StatusCode::OK,
            &json!({"annotations": anns, "experimenters": []}),
        );
    }
    if let ["webgateway", "imgData", id] = segs.as_slice() {
        // omeroweb/webgateway/marshal.py imageMarshal with channelMarshal per channel: the
        // rendering settings of the image (here: the store's channels, each recoloured as a
        // user would in OMERO.iviewer, and its window narrowed), so a test can tell them from
        // the acquisition colours and the store's own `omero` block
        let Some(img) = id_of(id).and_then(|i| w.images.get(&i)) else {
            return message(StatusCode::NOT_FOUND, &format!("Image:{id} not found"));
        };
        return json_response(StatusCode::OK, &rendering_json(img));
    }
    if let ["webgateway", "original_file_paths", id] = segs.as_slice() {
        // omeroweb/webgateway/views.py original_file_paths: {} without a fileset
        let Some(img) = id_of(id).and_then(|i| w.images.get(&i)) else {
            return not_found("Image");
        };
        return json_response(
            StatusCode::OK,
            &if img.originals.is_empty() {
                json!({})
            } else {
                let client: Vec<String> = img
                    .originals
                    .iter()
                    .map(|rel| format!("home/alice/data/{}", rel.rsplit('/').next().unwrap_or(rel)))
                    .collect();
                json!({"repo": img.originals, "client": client,
                       "fileset": {"id": img.id + 80_000}})
            },
        );
    }
    if path == "/webclient/api/annotations/" {
        let anns: Vec<Value> = q
            .iter()
            .filter(|(k, _)| k == "image")
            .filter_map(|(_, v)| v.parse::<i64>().ok())
            .filter_map(|id| w.images.get(&id))
            .filter(|i| i.hint == ZarrHint::Annotation)
            .map(|i| json!({"id": i.id + 90_000, "ns": "biomero.import", "class": "MapAnnotationI", "values": [["Import Date", "2026-11-01"], ["Filepath", i.path.display().to_string()]], "link": {"id": i.id + 91_000, "parent": {"id": i.id, "class": "ImageI", "name": i.name}}, "owner": {"id": 2}}))
            .collect();
        return json_response(
            StatusCode::OK,
            &json!({"annotations": anns, "experimenters": []}),
        );
    }
    let created = st.created.lock().map(|c| c.clone()).unwrap_or_default();
    let descriptions = st
        .descriptions
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    // omero-marshal's Dataset and Screen encoders: `Description` only when it is set
    let container = |kind: &str, id: i64, name: &str, gid: i64| {
        let group = if gid == 5 { "Lab A" } else { "Lab B" };
        let mut v = json!({"@id": id, "@type": format!("{SCHEMA}#{kind}"), "Name": name, "omero:details": details(group)});
        if let Some(d) = descriptions.get(&id) {
            v["Description"] = json!(d);
        }
        v
    };
    let gid_of = |group: &str| if group == "Lab A" { 5 } else { 6 };
    if path == "/api/v0/m/save/" {
        // omeroweb/api/views.py SaveView: POST creates a Project, Dataset or Screen (201)
        if method != Method::POST {
            return message(StatusCode::METHOD_NOT_ALLOWED, "POST to create");
        }
        let sent = headers.get("X-CSRFToken").and_then(|v| v.to_str().ok());
        if sent.is_none() || sent != cookie(&headers, "csrftoken").as_deref() {
            return message(
                StatusCode::FORBIDDEN,
                "CSRF verification failed. Request aborted.",
            );
        }
        let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
            return message(StatusCode::BAD_REQUEST, "Invalid JSON");
        };
        let Some(kind) = obj["@type"]
            .as_str()
            .and_then(|t| t.split_once('#'))
            .map(|(_, k)| k.to_owned())
        else {
            return message(StatusCode::BAD_REQUEST, "Need to specify @type attribute");
        };
        if !["Project", "Dataset", "Screen"].contains(&kind.as_str()) {
            return message(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Creation of {kind} not supported"),
            );
        }
        if obj.get("@id").is_some() {
            return message(
                StatusCode::BAD_REQUEST,
                "Object has '@id' attribute. Use PUT to update objects",
            );
        }
        let Some(gid) = q
            .iter()
            .find(|(k, _)| k == "group")
            .and_then(|(_, v)| v.parse::<i64>().ok())
        else {
            return message(
                StatusCode::BAD_REQUEST,
                "Specify Group in omero:details or query parameters ?group=:id",
            );
        };
        let id = 5000 + i64::try_from(created.len()).unwrap_or(0);
        let name = obj["Name"].as_str().unwrap_or_default().to_owned();
        if let Ok(mut c) = st.created.lock() {
            c.push((kind.clone(), id, name.clone(), gid));
        }
        let mut saved = container(&kind, id, &name, gid);
        if let Some(d) = obj["Description"].as_str() {
            if let Ok(mut ds) = st.descriptions.lock() {
                ds.insert(id, d.to_owned());
            }
            saved["Description"] = json!(d);
        }
        return json_response(StatusCode::CREATED, &json!({"data": saved}));
    }
    if let ["webclient", "annotation", id] = segs.as_slice() {
        // omeroweb/webclient/views.py download_annotation: the file, its name with spaces as
        // underscores; an unknown id is handlerInternalError's 500
        let found = id_of(id).and_then(|i| st.files.lock().ok()?.get(&i).cloned());
        return match found {
            Some((name, content)) => (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        "application/force-download".to_owned(),
                    ),
                    (header::CONTENT_LENGTH, content.len().to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename={}", name.replace(' ', "_")),
                    ),
                ],
                Body::from(content),
            )
                .into_response(),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("FileAnnotation does not exist (id:{id})."),
            )
                .into_response(),
        };
    }
    // omero-marshal's ExperimenterGroup: Name, Description, omero:details.permissions
    let group = |gid: i64| {
        let name = match gid {
            5 => "Lab A",
            6 => "Lab B",
            _ => return None,
        };
        Some(
            json!({"@id": gid, "@type": format!("{SCHEMA}#ExperimenterGroup"), "Name": name,
            "omero:details": {"@type": "TBD#Details", "permissions": {"@type": "TBD#Permissions",
            "perm": "rwra--", "isGroupRead": true, "isGroupAnnotate": true, "isGroupWrite": false,
            "isUserRead": true, "isUserAnnotate": true, "isUserWrite": true, "isWorldRead": false,
            "isWorldAnnotate": false, "isWorldWrite": false}}}),
        )
    };
    if let ["api", "v0", "m", "experimentergroups", id] = segs.as_slice() {
        return match id_of(id).and_then(group) {
            Some(g) => json_response(StatusCode::OK, &json!({ "data": g })),
            None => not_found("ExperimenterGroup"),
        };
    }
    if let ["api", "v0", "m", "experimenters", id, "experimentergroups"] = segs.as_slice() {
        // ExperimenterGroupsView filtered by experimenter: the groups the user is a member of
        let known = id_of(id).and_then(|uid| {
            st.experimenters
                .lock()
                .ok()
                .and_then(|e| e.get(&uid).map(|(_, g)| g.clone()))
        });
        let Some(groups) = known else {
            return not_found("Experimenter");
        };
        return list(
            groups.into_iter().filter_map(group).collect(),
            &q,
            max_limit,
        );
    }
    if let ["api", "v0", "m", "experimenters", id] = segs.as_slice() {
        // omero-marshal's Experimenter: UserName, FirstName, LastName, Email
        let Some(uid) = id_of(id) else {
            return not_found("Experimenter");
        };
        let known = st
            .user_sessions
            .lock()
            .ok()
            .and_then(|s| {
                s.values()
                    .find(|c| c["userId"].as_i64() == Some(uid))
                    .map(|c| c["userName"].clone())
            })
            .or_else(|| {
                st.experimenters
                    .lock()
                    .ok()
                    .and_then(|e| e.get(&uid).map(|(n, _)| json!(n)))
            });
        let Some(name) = known else {
            return not_found("Experimenter");
        };
        // omero-marshal's ExperimenterEncoder sets Email only when the experimenter has one
        let mut data = json!({"@id": uid, "@type": format!("{SCHEMA}#Experimenter"),
            "UserName": name, "FirstName": name, "LastName": ""});
        if let Some(email) = st.emails.lock().ok().and_then(|e| e.get(&uid).cloned()) {
            data["Email"] = json!(email);
        }
        return json_response(StatusCode::OK, &json!({ "data": data }));
    }
    if let ["api", "v0", "m", kind @ ("datasets" | "screens")] = segs.as_slice() {
        let (type_name, world_items) = if *kind == "datasets" {
            (
                "Dataset",
                w.datasets
                    .iter()
                    .map(|(id, (n, g, _))| (*id, n.clone(), gid_of(g)))
                    .collect::<Vec<_>>(),
            )
        } else {
            (
                "Screen",
                w.screens
                    .iter()
                    .map(|(id, (n, g, _))| (*id, n.clone(), gid_of(g)))
                    .collect::<Vec<_>>(),
            )
        };
        let group = q
            .iter()
            .find(|(k, _)| k == "group")
            .and_then(|(_, v)| v.parse::<i64>().ok());
        let mut items: Vec<(i64, String, i64)> = world_items;
        items.extend(
            created
                .iter()
                .filter(|c| c.0 == type_name)
                .map(|c| (c.1, c.2.clone(), c.3)),
        );
        items.sort_by_key(|i| i.0);
        let items = items
            .into_iter()
            .filter(|i| group.is_none_or(|g| g == i.2))
            .map(|(id, n, g)| container(type_name, id, &n, g))
            .collect();
        return list(items, &q, max_limit);
    }
    if let ["api", "v0", "m", kind @ ("datasets" | "screens"), id] = segs.as_slice() {
        let type_name = if *kind == "datasets" {
            "Dataset"
        } else {
            "Screen"
        };
        if let Some(c) = created
            .iter()
            .find(|c| c.0 == type_name && Some(c.1) == id_of(id))
        {
            return json_response(
                StatusCode::OK,
                &json!({"data": container(type_name, c.1, &c.2, c.3)}),
            );
        }
    }
    match segs.as_slice() {
        ["api", "v0", "m", "images", id] => match id_of(id).and_then(|i| w.images.get(&i)) {
            Some(img) => json_response(StatusCode::OK, &json!({"data": image_json(img, true, true)})),
            None => not_found("Image"),
        },
        ["api", "v0", "m", "datasets", id] => match id_of(id).and_then(|i| w.datasets.get(&i)) {
            Some((name, group, _)) => json_response(
                StatusCode::OK,
                &json!({"data": {"@id": id_of(id), "@type": format!("{SCHEMA}#Dataset"), "Name": name, "omero:details": details(group)}}),
            ),
            None => not_found("Dataset"),
        },
        ["api", "v0", "m", "datasets", id, "images"] => match id_of(id).and_then(|i| w.datasets.get(&i)) {
            Some((_, _, imgs)) => list(
                imgs.iter().map(|i| image_json(&w.images[i], true, false)).collect(),
                &q,
                max_limit,
            ),
            None => not_found("Dataset"),
        },
        ["api", "v0", "m", "screens", id] => match id_of(id).and_then(|i| w.screens.get(&i)) {
            Some((name, group, _)) => json_response(
                StatusCode::OK,
                &json!({"data": {"@id": id_of(id), "@type": format!("{SCHEMA}#Screen"), "Name": name, "omero:details": details(group)}}),
            ),
            None => not_found("Screen"),
        },
        ["api", "v0", "m", "screens", id, "plates"] => match id_of(id).and_then(|i| w.screens.get(&i)) {
            Some((_, _, plates)) => list(plates.iter().map(|p| plate_json(&w.plates[p])).collect(), &q, max_limit),
            None => not_found("Screen"),
        },
        ["api", "v0", "m", "plates"] => {
            let well = q_u64(&q, "well").and_then(|v| i64::try_from(v).ok());
            let plates: Vec<Value> = w
                .plates
                .values()
                .filter(|p| well.is_none_or(|wid| p.wells.iter().any(|x| x.id == wid)))
                .map(plate_json)
                .collect();
            list(plates, &q, max_limit)
        }
        ["api", "v0", "m", "plates", id] => match id_of(id).and_then(|i| w.plates.get(&i)) {
            Some(p) => json_response(StatusCode::OK, &json!({"data": plate_json(p)})),
            None => not_found("Plate"),
        },
        ["api", "v0", "m", "plates", id, "plateacquisitions"] => match id_of(id).and_then(|i| w.plates.get(&i)) {
            Some(p) => list(
                p.acquisitions
                    .iter()
                    .map(|(aid, name, max)| json!({"@id": aid, "@type": format!("{SCHEMA}#PlateAcquisition"), "Name": name, "MaximumFieldCount": max, "omero:details": details(&p.group)}))
                    .collect(),
                &q,
                max_limit,
            ),
            None => not_found("Plate"),
        },
        ["api", "v0", "m", "plates", id, "wells"] => match id_of(id).and_then(|i| w.plates.get(&i)) {
            Some(p) => list(p.wells.iter().map(|x| well_json(x, w, p, false)).collect(), &q, max_limit),
            None => not_found("Plate"),
        },
        ["api", "v0", "m", "wells", id] => {
            let found = id_of(id).and_then(|wid| {
                w.plates
                    .values()
                    .find_map(|p| p.wells.iter().find(|x| x.id == wid).map(|x| (p, x)))
            });
            match found {
                Some((p, x)) => json_response(StatusCode::OK, &json!({"data": well_json(x, w, p, true)})),
                None => not_found("Well"),
            }
        }
        _ => not_found("URL"),
    }
}

fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A daemon's site on the standard world with no cluster: the test OMERO, Lab A's group
/// folder mapping, a SQLite queue, and an `[SSH] host` alias that leads to a closed port (the
/// pipeline stops at the upload). For tests of intake, planning and staging.
pub struct OmeroSite {
    /// The site's folder.
    pub dir: tempfile::TempDir,
    /// The sample data behind the world.
    pub data: WorldData,
    /// The test OMERO.
    pub omero: TestOmero,
    /// biomero-stage.toml.
    pub settings: PathBuf,
    /// The admin endpoint's port.
    pub port: u16,
}

/// Writes an [`OmeroSite`] with images of `size`² and `extra` settings.
pub fn omero_site(size: u32, extra: &str) -> OmeroSite {
    omero_site_with(size, extra, true)
}

/// [`omero_site`], with or without omero-ms-pixel-buffer (`pixel_buffer_url`).
pub fn omero_site_with(size: u32, extra: &str, pixel_service: bool) -> OmeroSite {
    let dir = tempfile::tempdir().expect("tempdir");
    let (world, data) = standard_world(&dir.path().join("data"), size);
    let omero = TestOmero::start(world);
    let mappings = dir.path().join("biomero-config.json");
    std::fs::write(
        &mappings,
        r#"{"group_mappings": {"5": {"folder": "lab-a", "groupName": "Lab A"}}}"#,
    )
    .expect("mappings");
    let port = crate::free_port();
    let queue = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("queue.sqlite").display()
    );
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(
        &ssh_config,
        "Host slurm\n  HostName 127.0.0.1\n  Port 1\n  BatchMode yes\n",
    )
    .expect("ssh config");
    let pixels = if pixel_service {
        format!("pixel_buffer_url = \"{}\"\n", omero.url)
    } else {
        String::new()
    };
    let extra = format!(
        "data_roots = [\"{root}\"]\ngroup_mappings_file = \"{mappings}\"\nomero_url = \"{url}\"\nomero_user = \"{USER}\"\n{pixels}ssh_config_file = \"{ssh}\"\n{extra}",
        root = data.root.display(),
        mappings = mappings.display(),
        url = omero.url,
        ssh = ssh_config.display(),
    );
    let settings = crate::write_daemon_settings(dir.path(), &queue, port, &extra);
    OmeroSite {
        dir,
        data,
        omero,
        settings,
        port,
    }
}
