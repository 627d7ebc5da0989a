//! Writing a store under a temporary name and renaming it into place.
//!
//! A store that a crash interrupted must never look finished: readers (and a
//! restarted daemon) would stage half an image. [`StagingDir`] writes into a
//! hidden sibling `.<name>.partial-<pid>-<n>` and renames it to the final name
//! only in [`StagingDir::commit`]; dropping it without committing removes the
//! partial directory, and leftovers of a crashed run are removed when the same
//! target is written again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{NgffError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory being written, renamed into place on commit.
#[derive(Debug)]
pub struct StagingDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagingDir {
    /// Starts writing `target`, which must not exist.
    pub fn new(target: &Path) -> Result<Self> {
        if target.exists() {
            return Err(NgffError::Exists {
                path: target.to_path_buf(),
            });
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| NgffError::io(parent, e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| NgffError::Invalid {
                message: format!("{} has no file name", target.display()),
            })?;
        // leftovers of a crashed run for the same target
        let prefix = format!(".{name}.partial-");
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let tmp = parent.join(format!(
            "{prefix}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp).map_err(|e| NgffError::io(&tmp, e))?;
        Ok(StagingDir {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the finished directory into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            return Err(NgffError::Exists {
                path: self.target.clone(),
            });
        }
        std::fs::rename(&self.tmp, &self.target).map_err(|e| NgffError::io(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Names of partial directories (for checks that nothing half-written is left).
pub fn is_partial(name: &str) -> bool {
    name.starts_with('.') && name.contains(".partial-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_writes_vanish_and_commits_appear_whole() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("img.zarr");
        {
            let s = StagingDir::new(&target).unwrap();
            std::fs::write(s.path().join("x"), b"1").unwrap();
            assert!(!target.exists());
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let s = StagingDir::new(&target).unwrap();
        std::fs::write(s.path().join("x"), b"1").unwrap();
        s.commit().unwrap();
        assert!(target.join("x").exists());
        assert!(matches!(
            StagingDir::new(&target),
            Err(NgffError::Exists { .. })
        ));
    }
}
