//! Which `slurm-config.ini` files are read, in which order.
//!
//! BIOMERO reads `/etc/slurm-config.ini`, `/OMERO/slurm-config.ini`,
//! `~/slurm-config.ini` and then an explicitly given file, later keys winning;
//! missing default files are skipped. When `BIOMERO_SLURM_CONFIG_FILE` is set,
//! that file alone is read ("authoritative-file mode"). An explicitly named
//! file that is missing is an error here (BIOMERO would silently run on
//! defaults, which is how a typo in a path costs an afternoon).

use std::path::{Path, PathBuf};

use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrors};
use crate::ini::{self, IniDocument};
use crate::layered::LayeredIni;

/// The environment variable that makes one file authoritative.
pub const AUTHORITATIVE_FILE_VAR: &str = "BIOMERO_SLURM_CONFIG_FILE";

/// BIOMERO's default locations, in reading order (`~` expanded later).
pub const DEFAULT_LOCATIONS: [&str; 3] = [
    "/etc/slurm-config.ini",
    "/OMERO/slurm-config.ini",
    "~/slurm-config.ini",
];

/// The files to read for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchPlan {
    /// Only this file; it must exist.
    Authoritative {
        /// The file.
        path: PathBuf,
        /// Who named it (for messages).
        named_by: String,
    },
    /// The default locations (missing ones skipped), then an explicit file that must exist.
    Layered {
        /// Default locations, in order.
        defaults: Vec<PathBuf>,
        /// A file named on the command line or in the settings.
        explicit: Option<PathBuf>,
    },
}

impl SearchPlan {
    /// BIOMERO's search: `BIOMERO_SLURM_CONFIG_FILE`, else the defaults plus `explicit`.
    pub fn biomero(env: &Environment, explicit: Option<&Path>) -> Self {
        if let Some(only) = env.non_empty(AUTHORITATIVE_FILE_VAR) {
            return SearchPlan::Authoritative {
                path: env.expand_user(only),
                named_by: format!("environment variable {AUTHORITATIVE_FILE_VAR}"),
            };
        }
        SearchPlan::Layered {
            defaults: DEFAULT_LOCATIONS
                .iter()
                .map(|p| env.expand_user(p))
                .collect(),
            explicit: explicit.map(Path::to_path_buf),
        }
    }

    /// Every path this plan may read (for watching), in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            SearchPlan::Authoritative { path, .. } => vec![path.clone()],
            SearchPlan::Layered { defaults, explicit } => {
                defaults.iter().chain(explicit.iter()).cloned().collect()
            }
        }
    }

    /// Reads and merges the files of this plan.
    pub fn read(&self) -> Result<LayeredIni, ConfigErrors> {
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        match self {
            SearchPlan::Authoritative { path, named_by } => {
                read_required(path, named_by, &mut docs, &mut errors);
            }
            SearchPlan::Layered { defaults, explicit } => {
                for path in defaults {
                    match std::fs::read(path) {
                        Ok(bytes) => match ini::parse(path, &bytes) {
                            Ok(d) => docs.push(d),
                            Err(es) => errors.extend(es),
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {}
                        Err(e) => errors.push(ConfigError::Unreadable {
                            path: path.clone(),
                            reason: e.to_string(),
                        }),
                    }
                }
                if let Some(path) = explicit {
                    read_required(path, "--slurm-config", &mut docs, &mut errors);
                }
                if docs.is_empty() && errors.is_empty() {
                    errors.push(ConfigError::NoConfigFile {
                        looked_in: self
                            .paths()
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(LayeredIni::merge(docs))
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// Reads a file that must exist.
fn read_required(
    path: &Path,
    named_by: &str,
    docs: &mut Vec<IniDocument>,
    errors: &mut Vec<ConfigError>,
) {
    match std::fs::read(path) {
        Ok(bytes) => match ini::parse(path, &bytes) {
            Ok(d) => docs.push(d),
            Err(es) => errors.extend(es),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errors.push(ConfigError::Missing {
                path: path.to_path_buf(),
                named_by: named_by.to_owned(),
            });
        }
        Err(e) => errors.push(ConfigError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authoritative_file_replaces_the_search() {
        let env = Environment::from_pairs([
            (AUTHORITATIVE_FILE_VAR, "/srv/only.ini"),
            ("HOME", "/home/o"),
        ]);
        let plan = SearchPlan::biomero(&env, Some(Path::new("/x.ini")));
        assert_eq!(plan.paths(), vec![PathBuf::from("/srv/only.ini")]);
    }

    #[test]
    fn default_search_expands_home_and_appends_explicit() {
        let env = Environment::from_pairs([("HOME", "/home/o")]);
        let plan = SearchPlan::biomero(&env, Some(Path::new("/x.ini")));
        assert_eq!(
            plan.paths(),
            [
                "/etc/slurm-config.ini",
                "/OMERO/slurm-config.ini",
                "/home/o/slurm-config.ini",
                "/x.ini"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn missing_explicit_and_authoritative_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.ini");
        let plan = SearchPlan::Layered {
            defaults: vec![],
            explicit: Some(missing.clone()),
        };
        let e = plan.read().unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let plan = SearchPlan::Authoritative {
            path: missing,
            named_by: AUTHORITATIVE_FILE_VAR.into(),
        };
        assert!(
            plan.read()
                .unwrap_err()
                .to_string()
                .contains(AUTHORITATIVE_FILE_VAR)
        );
    }

    #[test]
    fn no_file_anywhere_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let plan = SearchPlan::Layered {
            defaults: vec![dir.path().join("a.ini")],
            explicit: None,
        };
        let e = plan.read().unwrap_err().to_string();
        assert!(e.contains("a.ini") && e.contains("--slurm-config"), "{e}");
    }
}
