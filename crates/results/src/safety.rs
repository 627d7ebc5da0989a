//! Output safety: what a job returned is checked before anything is kept.
//!
//! A job runs code nobody here reviewed, so its output tree is treated as
//! hostile: symlinks (they point anywhere), hard links (the same inode may
//! live outside the folder), device files, FIFOs and sockets, names that are
//! not UTF-8 (the importer's JSON cannot carry them) are refused, and so is a
//! tree that exceeds the configured size or file count. Archive entry names
//! are checked with [`check_relative`] before anything is unpacked: an
//! absolute path or a `..` component is refused, so nothing is ever written
//! outside the result folder.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::{Result, ResultsError};

/// Limits on one job's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Total bytes (`max_output_bytes`).
    pub max_bytes: u64,
    /// Number of files (`max_output_files`).
    pub max_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 40,
            max_files: 2_000_000,
        }
    }
}

impl Limits {
    /// Checks a tree of `files` files and `bytes` bytes against the limits.
    pub fn check(&self, files: u64, bytes: u64) -> Result<()> {
        if files > self.max_files {
            return Err(ResultsError::TooLarge {
                what: format!("{files} files"),
                limit_key: "max_output_files",
                limit: self.max_files,
            });
        }
        if bytes > self.max_bytes {
            return Err(ResultsError::TooLarge {
                what: format!("{bytes} bytes"),
                limit_key: "max_output_bytes",
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// One regular file of an output tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the tree's root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Every file of a checked output tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Total bytes.
    pub bytes: u64,
}

/// Refuses an archive entry name that is absolute or climbs out with `..`.
pub fn check_relative(name: &Path) -> Result<()> {
    for c in name.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(ResultsError::Unsafe {
                    path: name.display().to_string(),
                    reason: "the name climbs out of the output folder with `..`".into(),
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ResultsError::Unsafe {
                    path: name.display().to_string(),
                    reason: "the name is an absolute path; outputs are relative to data/out".into(),
                });
            }
        }
    }
    Ok(())
}

/// Walks `root` and returns its files, refusing anything unsafe (see the module doc).
pub fn scan(root: &Path, limits: &Limits) -> Result<Inventory> {
    walk_all(root, limits, false)
}

/// Lists a tree this crate assembled itself: the same checks, except that
/// hard links (to the download it was assembled from) are expected, and no limits.
pub fn inventory(root: &Path) -> Result<Inventory> {
    let unlimited = Limits {
        max_bytes: u64::MAX,
        max_files: u64::MAX,
    };
    walk_all(root, &unlimited, true)
}

fn walk_all(root: &Path, limits: &Limits, hard_links: bool) -> Result<Inventory> {
    let mut inv = Inventory::default();
    walk(root, "", limits, hard_links, &mut inv)?;
    inv.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(inv)
}

fn walk(
    root: &Path,
    rel: &str,
    limits: &Limits,
    hard_links: bool,
    inv: &mut Inventory,
) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| ResultsError::io(&dir, e))?;
    for e in entries {
        let e = e.map_err(|e| ResultsError::io(&dir, e))?;
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            return Err(ResultsError::Unsafe {
                path: format!("{rel}/{}", e.file_name().to_string_lossy()),
                reason: "the name is not valid UTF-8; rename it in the workflow".into(),
            });
        };
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // lstat: a symlink is seen as itself, never followed
        let meta =
            std::fs::symlink_metadata(e.path()).map_err(|er| ResultsError::io(e.path(), er))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(ResultsError::Unsafe {
                path,
                reason: format!(
                    "is a symbolic link (to `{target}`); outputs must be regular files"
                ),
            });
        }
        if ft.is_dir() {
            walk(root, &path, limits, hard_links, inv)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 && !hard_links {
                return Err(ResultsError::Unsafe {
                    path,
                    reason: format!(
                        "is a hard link ({} names for one file, possibly outside the output folder); outputs must be files of their own",
                        meta.nlink()
                    ),
                });
            }
            inv.bytes += meta.len();
            inv.files.push(FileEntry {
                path,
                bytes: meta.len(),
            });
            limits.check(inv.files.len() as u64, inv.bytes)?;
        } else {
            let what = if ft.is_fifo() {
                "a FIFO (named pipe)"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_char_device() {
                "a character device"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            return Err(ResultsError::Unsafe {
                path,
                reason: format!("is {what}; outputs must be regular files"),
            });
        }
    }
    Ok(())
}

/// Checks that `dest` lies under `root` through real folders only: every component of
/// `dest` below `root` is a plain name (no `..`, no absolute part), and each that exists is a
/// directory, not a symbolic link. A group member who replaces `.analyzed` (or any folder on
/// the way) with a link can otherwise make the daemon write results wherever the link points.
/// Components that do not exist yet are created by the caller, who checks again afterwards.
pub fn confined_destination(root: &Path, dest: &Path) -> Result<()> {
    use std::path::Component;
    let escapes = |path: &Path, reason: String| ResultsError::Escapes {
        path: path.to_path_buf(),
        reason,
    };
    let rel = dest.strip_prefix(root).map_err(|_| {
        escapes(
            dest,
            format!("it is not under the results folder {}", root.display()),
        )
    })?;
    let mut names = Vec::new();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(escapes(
                dest,
                format!(
                    "`{}` is not a plain folder name; check the group mappings",
                    c.as_os_str().to_string_lossy()
                ),
            ));
        };
        names.push(name);
    }
    let mut at = root.to_path_buf();
    for name in names {
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Err(escapes(
                    &at,
                    format!(
                        "it is a symbolic link (to `{target}`); results are never written through links: replace it with a real folder"
                    ),
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(escapes(
                    &at,
                    "it is not a folder; move it away so the results folder can be made".into(),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(ResultsError::io(&at, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/x.csv"), "1,2\n").unwrap();
        std::fs::write(d.path().join("y.tif"), [0u8; 10]).unwrap();
        d
    }

    #[test]
    fn a_clean_tree_is_listed() {
        let d = tree();
        let inv = scan(d.path(), &Limits::default()).unwrap();
        let paths: Vec<_> = inv.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a/b/x.csv", "y.tif"]);
        assert_eq!(inv.bytes, 14);
    }

    #[test]
    fn unsafe_entries_are_refused_by_name() {
        let cases: Vec<(&str, Box<dyn Fn(&Path)>, &str)> = vec![
            (
                "symlink",
                Box::new(|p: &Path| {
                    std::os::unix::fs::symlink("/etc/passwd", p.join("a/pw")).unwrap();
                }),
                "a/pw: is a symbolic link (to `/etc/passwd`)",
            ),
            (
                "hard link",
                Box::new(|p: &Path| {
                    std::fs::hard_link(p.join("y.tif"), p.join("a/z.tif")).unwrap();
                }),
                "is a hard link",
            ),
            (
                "fifo",
                Box::new(|p: &Path| {
                    let s = std::process::Command::new("mkfifo")
                        .arg(p.join("a/b/pipe"))
                        .status()
                        .unwrap();
                    assert!(s.success());
                }),
                "a/b/pipe: is a FIFO",
            ),
            (
                "not utf-8",
                Box::new(|p: &Path| {
                    use std::os::unix::ffi::OsStrExt;
                    std::fs::write(p.join(std::ffi::OsStr::from_bytes(b"bad\xff.tif")), "x")
                        .unwrap();
                }),
                "not valid UTF-8",
            ),
        ];
        for (what, make, want) in cases {
            let d = tree();
            make(d.path());
            let e = scan(d.path(), &Limits::default()).unwrap_err().to_string();
            assert!(e.contains(want), "{what}: {e}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let d = tree();
        let e = scan(
            d.path(),
            &Limits {
                max_bytes: 10,
                max_files: 100,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("14 bytes (max_output_bytes = 10)"), "{e}");
        let e = scan(
            d.path(),
            &Limits {
                max_bytes: 100,
                max_files: 1,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("2 files (max_output_files = 1)"), "{e}");
    }

    #[test]
    fn archive_names_stay_inside() {
        check_relative(Path::new("a/./b.tif")).unwrap();
        let e = check_relative(Path::new("a/../../etc/cron.d/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("climbs out"), "{e}");
        let e = check_relative(Path::new("/etc/passwd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute path"), "{e}");
    }
}
