//! Time-bounded fuzzing of the parsers that read outside input, driven by proptest.
//!
//! `cargo bench -p stage-benches --bench fuzz [-- SECONDS [TARGET…]]` (default 20 s per
//! target; not part of the test suite). Each target starts from its seed corpus in
//! `benches/fuzz/corpus/<target>/` and feeds the parser mutated seeds (bytes flipped,
//! inserted, deleted, spans duplicated) and fresh random bytes, as proptest generates them.
//! A panic is a crash: its input is written to `benches/fuzz/crashes/<target>/` to become a
//! regression test, and the run goes on. Returned errors are the parser doing its job.
//!
//! The targets are in `fuzz/targets.rs`, shared with the coverage-guided AFL++ harness
//! (`benches/afl`) and the regression test that replays the corpora and crashes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

#[path = "fuzz/targets.rs"]
mod targets;

use targets::TARGETS;

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
    if let Some(unknown) = only.iter().find(|n| targets::by_name(n).is_none()) {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!("fuzz: no target `{unknown}`; targets: {}", names.join(", "));
        std::process::exit(2);
    }
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
