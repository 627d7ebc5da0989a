//! The fuzz targets: each parser that reads outside input, fed one input as bytes.
//!
//! Shared by the proptest-driven bench (`benches/fuzz.rs`), the coverage-guided AFL++
//! harness (`benches/afl`) and the regression test that replays every corpus and crash
//! file (`benches/fuzz_regressions.rs`). A target returns nothing: a returned error is the
//! parser doing its job, a panic (or, under AFL++, an abort) is a crash.

use std::path::Path;
use std::sync::OnceLock;

/// One parser under test.
pub(crate) struct Target {
    /// Its name: the folder of its corpus and crashes.
    pub(crate) name: &'static str,
    /// Feeds it one input; `scratch` is a folder of its own for files it must read from disk.
    pub(crate) run: fn(&[u8], &Path),
}

fn ini(bytes: &[u8], _: &Path) {
    if let Ok(doc) = stage_config::ini::parse(Path::new("/fuzz.ini"), bytes) {
        let merged = stage_config::layered::LayeredIni::merge(vec![doc]);
        for section in &merged.sections {
            for entry in &section.entries {
                let _ = section.interpolated(entry);
            }
        }
    }
}

fn descriptor(bytes: &[u8], _: &Path) {
    let _ = stage_config::descriptor::parse(bytes, "fuzz");
}

fn submission(bytes: &[u8], _: &Path) {
    let _ = biomero_stage::intake::parse(bytes, &biomero_stage::intake::Limits::default());
}

/// The demo site's configuration, loaded once per process under the first scratch folder:
/// the workflows `threshold`, `threshold_zarr` and `threshold_plate`, descriptors pinned.
pub(crate) fn demo_snapshot(scratch: &Path) -> Option<&'static stage_config::Snapshot> {
    static SNAPSHOT: OnceLock<Option<stage_config::Snapshot>> = OnceLock::new();
    SNAPSHOT
        .get_or_init(|| {
            let dir = scratch.join("demo-site");
            let site = stage_demo::site::write_site(&dir, Path::new("/bin/true"), 9).ok()?;
            let sources = stage_config::live::ConfigSources {
                settings_file: Some(site.settings.clone()),
                slurm_config: Some(site.slurm_config.clone()),
                env: stage_config::env::Environment::from_pairs([
                    ("HOME", dir.display().to_string()),
                    (
                        "BIOMERO_SLURM_CONFIG_FILE",
                        site.slurm_config.display().to_string(),
                    ),
                ]),
                fetch_override: None,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(stage_config::live::load_snapshot(
                &sources,
                stage_config::registry::DescriptorRefresh::CacheFirst,
                1,
            ))
            .ok()
        })
        .as_ref()
}

fn run_inputs(bytes: &[u8], scratch: &Path) {
    use biomero_stage::biomero::{accept::RunRequest, translate};
    let Some(config) = demo_snapshot(scratch) else {
        return;
    };
    let Ok(req) = serde_json::from_slice::<RunRequest>(bytes) else {
        return;
    };
    let script = translate::Script::from_name(&req.script).unwrap_or(translate::Script::Run);
    let _ = translate::translate(script, &req.inputs, config);
}

fn ome_xml(bytes: &[u8], _: &Path) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = stage_ngff::tiff::ome_xml::parse(text);
    }
}

fn tiff(bytes: &[u8], scratch: &Path) {
    let file = scratch.join("input.tif");
    if std::fs::write(&file, bytes).is_err() {
        return;
    }
    if let Ok(info) = stage_ngff::tiff::read::inspect(&file)
        && let Ok(mut pages) = stage_ngff::tiff::read::TiffPages::open(&info)
    {
        let mut buf = Vec::new();
        let _ = pages.next_page(&mut buf);
        // the first band of rows, strip by strip (or tile row), as TIFF→TIFF staging reads it
        if info.samples_per_pixel <= 1
            && let Ok(row_bytes) = usize::try_from(info.sizes.x * info.dtype.size() as u64)
            && let Ok(rows) = pages.band_rows(0, row_bytes, 1 << 16)
        {
            let rows = rows.min(u32::try_from(info.sizes.y).unwrap_or(u32::MAX));
            if rows > 0 {
                let _ = pages.read_rows(0, 0, rows, row_bytes, &mut buf);
            }
        }
    }
}

fn settings(bytes: &[u8], scratch: &Path) {
    let file = scratch.join("biomero-stage.toml");
    if std::fs::write(&file, bytes).is_ok() {
        let env = stage_config::env::Environment::from_pairs::<String, String>([]);
        let _ = stage_config::settings::StageSettings::load(Some(&file), &env);
    }
}

fn ngff(bytes: &[u8], scratch: &Path) {
    let store = scratch.join("fuzz.ome.zarr");
    let _ = std::fs::create_dir_all(&store);
    if std::fs::write(store.join(".zgroup"), br#"{"zarr_format": 2}"#).is_ok()
        && std::fs::write(store.join(".zattrs"), bytes).is_ok()
    {
        let _ = stage_ngff::inspect::inspect(&store);
    }
}

fn stored_event(bytes: &[u8], _: &Path) {
    const TOPICS: [&str; 6] = [
        "biomero.eventsourcing:WorkflowRun.WorkflowInitiated",
        "biomero.eventsourcing:WorkflowRun.TaskAdded",
        "biomero.eventsourcing:Task.TaskCreated",
        "biomero.eventsourcing:Task.StatusUpdated",
        "biomero.eventsourcing:Task.ProgressUpdated",
        "other:Thing.Happened",
    ];
    let Some((first, state)) = bytes.split_first() else {
        return;
    };
    let e = stage_tracker::StoredEvent {
        id: 1,
        originator_id: uuid::Uuid::nil(),
        originator_version: i64::from(*first),
        topic: TOPICS[usize::from(*first) % TOPICS.len()].to_owned(),
        state: state.to_vec(),
    };
    if let Ok(ev) = stage_tracker::TrackedEvent::decode(&e) {
        // what decodes must fold into the projections and encode again
        let mut p = stage_tracker::Projections::new(stage_tracker::project::Enabled::ALL);
        let _ = p.apply(&ev);
        let _ = ev.state();
    }
}

fn compose(bytes: &[u8], scratch: &Path) {
    let dir = scratch.join("nl-biomero");
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("docker-compose.yml"), bytes).is_ok()
        && let Ok(a) = biomero_stage::adopt::adopt(&dir, scratch)
    {
        let _ = biomero_stage::adopt::settings_toml(&a);
    }
}

/// A job's output folder as the download reads it: a tar stream unpacked entry by entry.
/// Whatever it accepts must have landed inside the output folder, as files and folders.
fn tar_entries(bytes: &[u8], scratch: &Path) {
    let base = scratch.join("tar");
    let out = base.join("out");
    let _ = std::fs::remove_dir_all(&base);
    if std::fs::create_dir_all(&out).is_err() {
        return;
    }
    let meter = stage_common::meter::Meter::new();
    let unpacked = stage_cluster::transfer::download::unpack_tar(bytes, &out, &meter);
    // accepted or refused, nothing may appear beside the output folder
    let beside: Vec<_> = std::fs::read_dir(&base)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        beside.len() == 1 && beside[0] == "out",
        "the download wrote outside its output folder: {beside:?}"
    );
    if let Ok(written) = unpacked {
        assert_files_and_folders(&out);
        // what the download checks against the cluster's listing: the sums taken as it wrote
        for (rel, sum) in &written {
            assert_eq!(
                stage_cluster::cksum::of_file(&out.join(rel)).ok(),
                Some(*sum),
                "`{rel}` was summed as written, but holds other bytes"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Panics when anything under `dir` is neither a regular file nor a folder.
fn assert_files_and_folders(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let kind = std::fs::symlink_metadata(&p).map(|m| m.file_type()).ok();
        assert!(
            kind.is_some_and(|k| k.is_file() || k.is_dir()),
            "the download unpacked `{}`, which is neither a file nor a folder",
            p.display()
        );
        if kind.is_some_and(|k| k.is_dir()) {
            assert_files_and_folders(&p);
        }
    }
}

/// Every target, by name.
pub(crate) const TARGETS: [Target; 11] = [
    Target {
        name: "ini",
        run: ini,
    },
    Target {
        name: "descriptor",
        run: descriptor,
    },
    Target {
        name: "submission",
        run: submission,
    },
    Target {
        name: "run_inputs",
        run: run_inputs,
    },
    Target {
        name: "ome_xml",
        run: ome_xml,
    },
    Target {
        name: "tiff",
        run: tiff,
    },
    Target {
        name: "settings",
        run: settings,
    },
    Target {
        name: "ngff",
        run: ngff,
    },
    Target {
        name: "stored_event",
        run: stored_event,
    },
    Target {
        name: "compose",
        run: compose,
    },
    Target {
        name: "tar_entries",
        run: tar_entries,
    },
];

/// The target called `name`.
pub(crate) fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
