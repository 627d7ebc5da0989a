//! Group folder mappings (`biomero-config.json`, docs/contracts.md#group-folder-mappings): which folder of
//! the shared storage each OMERO group may read.
//!
//! ```json
//! {"group_mappings": {"3": {"folder": "lab-a", "groupName": "Lab A"}}}
//! ```
//!
//! The folder is relative to the import mount (a data root). OMERO.biomero only
//! enforces the mapping in the browser; biomero-stage enforces it for every
//! submission. The file is written by the Importer Admin tab while the daemon
//! runs, so it is re-read whenever its size or modification time changes; a
//! file that is saved half-way or malformed keeps the last good mappings in
//! force (with a warning), so an edit never opens or closes folders by accident.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use crate::error::{Result, SourceError};

/// One group's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFolder {
    /// OMERO group id (the key in the file).
    pub group_id: String,
    /// OMERO group name.
    pub group_name: String,
    /// Folder relative to the import mount.
    pub folder: PathBuf,
}

/// The mappings in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMappings {
    by_name: HashMap<String, GroupFolder>,
}

impl GroupMappings {
    /// The folder of the group named `name`.
    pub fn folder(&self, name: &str) -> Option<&GroupFolder> {
        self.by_name.get(name)
    }

    /// Number of mapped groups.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no group is mapped.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            group_mappings: HashMap<String, Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            folder: String,
            #[serde(rename = "groupName")]
            group_name: String,
        }
        let f: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name = HashMap::new();
        for (id, e) in f.group_mappings {
            let folder = PathBuf::from(e.folder.trim_matches('/'));
            if folder.as_os_str().is_empty()
                || folder
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(format!(
                    "group {id} ({}): folder `{}` must be a relative path without `..`",
                    e.group_name, e.folder
                ));
            }
            if by_name.contains_key(&e.group_name) {
                return Err(format!(
                    "group name `{}` is mapped twice; mappings are 1:1",
                    e.group_name
                ));
            }
            by_name.insert(
                e.group_name.clone(),
                GroupFolder {
                    group_id: id,
                    group_name: e.group_name,
                    folder,
                },
            );
        }
        Ok(GroupMappings { by_name })
    }
}

type Stamp = (SystemTime, u64);

/// The mappings file, re-read when it changes.
#[derive(Debug)]
pub struct GroupFolders {
    file: Option<PathBuf>,
    cache: Mutex<Option<(Stamp, Arc<GroupMappings>)>>,
}

impl GroupFolders {
    /// Mappings from `file`; `None` when no mappings file is configured (only the data roots confine paths).
    pub fn new(file: Option<PathBuf>) -> Self {
        GroupFolders {
            file,
            cache: Mutex::new(None),
        }
    }

    /// The mappings file, if configured.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The mappings in force (`None` without a mappings file).
    pub fn current(&self) -> Result<Option<Arc<GroupMappings>>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamp = std::fs::metadata(file)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .map_err(|e| SourceError::NotConfigured(format!(
                "the group folder mappings {} cannot be read ({e}); paths cannot be checked against group folders",
                file.display()
            )));
        let stamp = match (stamp, cache.as_ref()) {
            (Ok(s), _) => s,
            (Err(e), Some((_, last))) => {
                tracing::warn!(error = %e, "keeping the last good group folder mappings");
                return Ok(Some(last.clone()));
            }
            (Err(e), None) => return Err(e),
        };
        if let Some((s, m)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(Some(m.clone()));
        }
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| GroupMappings::parse(&t));
        match parsed {
            Ok(m) => {
                let m = Arc::new(m);
                tracing::info!(file = %file.display(), groups = m.len(), "group folder mappings loaded");
                *cache = Some((stamp, m.clone()));
                Ok(Some(m))
            }
            Err(reason) => match cache.as_mut() {
                Some((s, last)) => {
                    tracing::warn!(file = %file.display(), %reason, "group folder mappings are malformed; keeping the last good ones");
                    *s = stamp;
                    Ok(Some(last.clone()))
                }
                None => Err(SourceError::NotConfigured(format!(
                    "the group folder mappings {} are malformed: {reason}; fix the file (OMERO.biomero's Importer Admin tab writes it)",
                    file.display()
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_refuse_escapes() {
        let m = GroupMappings::parse(
            r#"{"other": 1, "group_mappings": {"3": {"folder": "/lab-a/", "groupName": "Lab A"}}}"#,
        )
        .unwrap();
        assert_eq!(m.folder("Lab A").unwrap().folder, PathBuf::from("lab-a"));
        assert!(m.folder("Lab B").is_none());
        for bad in [
            r#"{"group_mappings": {"3": {"folder": "../etc", "groupName": "A"}}}"#,
            r#"{"group_mappings": {"3": {"folder": "", "groupName": "A"}}}"#,
            r#"{"group_mappings": {"3": {"folder": "a", "groupName": "A"}, "4": {"folder": "b", "groupName": "A"}}}"#,
            r#"{"group_mappings": {"3": {"folder": "a"}}}"#,
        ] {
            assert!(GroupMappings::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_mappings() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("biomero-config.json");
        std::fs::write(
            &f,
            r#"{"group_mappings": {"3": {"folder": "a", "groupName": "A"}}}"#,
        )
        .unwrap();
        let g = GroupFolders::new(Some(f.clone()));
        assert!(g.current().unwrap().unwrap().folder("A").is_some());
        std::fs::write(&f, r#"{"group_mappings": {"3": {"fol"#).unwrap();
        assert!(g.current().unwrap().unwrap().folder("A").is_some());
        std::fs::write(
            &f,
            r#"{"group_mappings": {"4": {"folder": "bb", "groupName": "B"}}}"#,
        )
        .unwrap();
        let m = g.current().unwrap().unwrap();
        assert!(m.folder("A").is_none() && m.folder("B").is_some());
        let fresh = GroupFolders::new(Some(d.path().join("missing.json")));
        assert!(fresh.current().is_err());
    }
}
