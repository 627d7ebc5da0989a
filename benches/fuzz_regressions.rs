//! Replays every fuzz corpus and every crash the fuzzers saved through its target: an
//! input that once crashed a parser stays a test that it no longer does.
//!
//! The inputs are in `benches/fuzz/corpus/<target>/` (seeds and what the coverage-guided
//! runs kept) and `benches/fuzz/crashes/<target>/` (what crashed, kept once fixed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether `t` crashes (panics) on `bytes`.
fn crashes(t: &targets::Target, bytes: &[u8], dir: &Path) -> bool {
    catch_unwind(AssertUnwindSafe(|| (t.run)(bytes, dir))).is_err()
}

#[test]
fn every_corpus_and_crash_input_runs_without_a_crash() {
    let scratch = tempfile::tempdir().unwrap();
    let mut crashed = Vec::new();
    let mut replayed = 0;
    for t in &targets::TARGETS {
        for kind in ["corpus", "crashes"] {
            for file in files(&root().join(kind).join(t.name)) {
                let bytes = std::fs::read(&file).unwrap();
                let dir = scratch.path().join(t.name);
                std::fs::create_dir_all(&dir).unwrap();
                replayed += 1;
                if crashes(t, &bytes, &dir) {
                    crashed.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        crashed.is_empty(),
        "these inputs crash their parser: {crashed:#?}"
    );
    assert!(
        replayed >= targets::TARGETS.len(),
        "only {replayed} inputs replayed"
    );
}

#[test]
fn every_target_has_seeds_and_every_folder_a_target() {
    for t in &targets::TARGETS {
        assert!(
            !files(&root().join("corpus").join(t.name)).is_empty(),
            "target `{}` has no seed in benches/fuzz/corpus/{}/",
            t.name,
            t.name
        );
    }
    for kind in ["corpus", "crashes"] {
        for dir in std::fs::read_dir(root().join(kind))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(
                targets::by_name(&name).is_some(),
                "benches/fuzz/{kind}/{name}/ belongs to no target; its inputs would never be replayed"
            );
        }
    }
}

/// The replay tells a crash from a returned error.
#[test]
fn the_replay_tells_a_crash_from_an_error() {
    let scratch = tempfile::tempdir().unwrap();
    let panics = targets::Target {
        name: "panics",
        run: |b, _| assert!(b.is_empty(), "crash"),
    };
    assert!(crashes(&panics, b"x", scratch.path()));
    assert!(!crashes(&panics, b"", scratch.path()));
    // a real target given garbage returns its error, which is not a crash
    let tar = targets::by_name("tar_entries").unwrap();
    assert!(!crashes(tar, &[0xff; 700], scratch.path()));
}

/// The BIOMERO run-input target reads against a real configuration: its seed translates.
#[test]
fn the_run_inputs_target_reads_against_the_demo_site() {
    use biomero_stage::biomero::{accept::RunRequest, translate};
    let scratch = tempfile::tempdir().unwrap();
    let config = targets::demo_snapshot(scratch.path()).expect("the demo site loads");
    let seed = std::fs::read(root().join("corpus/run_inputs/run.json")).unwrap();
    let req: RunRequest = serde_json::from_slice(&seed).unwrap();
    let plan = translate::translate(translate::Script::Run, &req.inputs, config)
        .unwrap_or_else(|e| panic!("the seed does not translate: {e:?}"));
    assert_eq!(plan.workflows.len(), 1);
}
