//! Time-bounded fuzzing of the parsers that read outside input, driven by proptest.
//!
//! `cargo bench -p stage-benches --bench fuzz [-- SECONDS [TARGET…]]` (default 20 s per
//! target; not part of the test suite). Each target starts from its seed corpus in
//! `benches/fuzz/corpus/<target>/` and feeds the parser mutated seeds (bytes flipped,
//! inserted, deleted, spans duplicated) and fresh random bytes, as proptest generates them.
//! A panic is a crash: its input is written to `benches/fuzz/crashes/<target>/` to become a
//! regression test, and the run goes on. Returned errors are the parser doing its job.
//!
//! Targets: `ini` (slurm-config.ini with `[DEFAULT]` and `%(name)s` interpolation, every value
//! expanded), `descriptor` (BIAFLOWS, biomero-schema, bilayers), `submission` (the
//! submission JSON), `ome_xml`, `tiff` (the TIFF reader's `inspect` and first page),
//! `settings` (biomero-stage.toml), `ngff` (a store's `.zattrs`, read by `inspect`),
//! `stored_event` (a row of BIOMERO's event store, decoded), `compose` (an NL-BIOMERO
//! docker-compose.yml, read by `adopt`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// One parser under test.
struct Target {
    name: &'static str,
    run: fn(&[u8], &Path),
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

const TARGETS: [Target; 9] = [
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
];

/// A mutation of a seed.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Flip(at, x) => {
                if let Some(v) = b.get_mut(at % n) {
                    *v ^= x | 1;
                }
            }
            Edit::Insert(at, bytes) => {
                let at = at % (b.len() + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete(at, len) => {
                let at = at % n;
                let end = (at + len % 64).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            Edit::Repeat(at, len, times) => {
                let at = at % n;
                let end = (at + 1 + len % 256).min(b.len());
                if at < end && b.len() < 1 << 20 {
                    let span = b[at..end].to_vec();
                    for _ in 0..(times % 16) {
                        b.splice(end..end, span.iter().copied());
                    }
                }
            }
        }
    }
    b
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(a, x)| Edit::Flip(a, x)),
        2 => (any::<usize>(), prop::collection::vec(
            prop_oneof![any::<u8>(), Just(b'%'), Just(b'('), Just(b')'), Just(b's'), Just(b'\n'),
                Just(b'['), Just(b']'), Just(b'='), Just(b'"'), Just(b'{'), Just(b'}'), Just(0xff)],
            1..12,
        )).prop_map(|(a, v)| Edit::Insert(a, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        1 => (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(a, l, t)| Edit::Repeat(a, l, t)),
    ]
}

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok().map(|b| (e.path(), b)))
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    let mut out: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    out.push(Vec::new());
    out
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let only: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let scratch = tempfile::tempdir().expect("a scratch folder");
    // a crash is reported by the run, not by the default panic printer
    std::panic::set_hook(Box::new(|_| {}));
    println!("target        seconds   executions   exec/s   crashes");
    for t in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.name))
    {
        let seeds = corpus(&root.join("corpus").join(t.name));
        let strategy = (
            0..seeds.len(),
            prop::collection::vec(edit(), 0..8),
            prop::collection::vec(any::<u8>(), 0..512),
            0..10u8,
        );
        let mut runner = TestRunner::new(Config::default());
        let started = Instant::now();
        let (mut execs, mut crashes) = (0u64, 0u64);
        while started.elapsed() < Duration::from_secs(seconds) {
            let Ok(tree) = strategy.new_tree(&mut runner) else {
                break;
            };
            let (seed, edits, random, pick) = tree.current();
            // one input in ten is fresh random bytes, the rest mutated seeds
            let input = if pick == 0 {
                random
            } else {
                apply(&seeds[seed], &edits)
            };
            execs += 1;
            if catch_unwind(AssertUnwindSafe(|| (t.run)(&input, scratch.path()))).is_err() {
                crashes += 1;
                let dir = root.join("crashes").join(t.name);
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join(format!("crash-{execs}")), &input);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = execs as f64 / secs.max(1e-9);
        println!(
            "{:<12} {:>8.1} {:>12} {:>8.0} {:>9}",
            t.name, secs, execs, rate, crashes
        );
    }
}
