//! A snapshot of the process environment.
//!
//! Configuration reads environment variables (`BIOMERO_*` overrides,
//! `BIOMERO_STAGE_*` settings, `HOME`) through this value instead of
//! `std::env`, so a reload sees one consistent view and tests can give each
//! case its own environment without touching the process's.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Environment variables captured at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process environment (variables that are not UTF-8 are skipped).
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A variable's value if set and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// All variables whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.vars
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The home directory: `$HOME`, as Python's `os.path.expanduser` uses it.
    pub fn home(&self) -> Option<PathBuf> {
        self.non_empty("HOME").map(PathBuf::from)
    }

    /// Expands a leading `~/` against [`Environment::home`].
    pub fn expand_user(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.home()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if path == "~" => self.home().unwrap_or_else(|| PathBuf::from(path)),
            _ => PathBuf::from(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_listing_and_home_expansion() {
        let env = Environment::from_pairs([
            ("BIOMERO_A", "1"),
            ("BIOMERO_B", ""),
            ("HOME", "/home/omero"),
            ("OTHER", "x"),
        ]);
        let names: Vec<_> = env.with_prefix("BIOMERO_").map(|(k, _)| k).collect();
        assert_eq!(names, ["BIOMERO_A", "BIOMERO_B"]);
        assert_eq!(env.non_empty("BIOMERO_B"), None);
        assert_eq!(
            env.expand_user("~/slurm-config.ini"),
            PathBuf::from("/home/omero/slurm-config.ini")
        );
        assert_eq!(env.expand_user("/etc/x"), PathBuf::from("/etc/x"));
    }
}
