//! Coverage-guided fuzzing of one parser under AFL++ (through cargo-afl).
//!
//! `stage-afl TARGET` reads inputs as AFL++ hands them over (persistent mode) and feeds
//! them to the target of that name from `benches/fuzz/targets.rs`, the same targets the
//! proptest bench and the regression test run. Build and run it with `benches/afl/run`.
//! Run by hand, outside AFL++, it reads one input from stdin.

#[path = "../../fuzz/targets.rs"]
mod targets;

fn main() {
    let Some(name) = std::env::args().nth(1) else {
        let names: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: stage-afl TARGET   (targets: {})", names.join(", "));
        std::process::exit(2);
    };
    let Some(target) = targets::by_name(&name) else {
        eprintln!("stage-afl: no target `{name}`");
        std::process::exit(2);
    };
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("stage-afl: no scratch folder: {e}");
            std::process::exit(1);
        }
    };
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data, scratch.path());
    });
}
