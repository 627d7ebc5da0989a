//! The benches' command-line options (included with `#[path]`): `--name VALUE`.

/// The value after `name` in `args`, if it is there.
pub(crate) fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
