//! The `fs` source: OME-Zarr stores and TIFF files on the shared storage.
//!
//! Every path is canonicalised (symlinks resolved) and must then lie inside a
//! configured data root and, when group folder mappings are configured, inside
//! the submission's group folder. `..` is refused before anything is
//! resolved, and a store that contains a symlink is refused too: a link
//! inside the root could point anywhere.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use stage_ngff::{Node, NodeKind, PlateReader};

use crate::error::{Result, SourceError};
use crate::groups::GroupFolders;

/// What a path on the shared storage holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsInput {
    /// A multiscale image group.
    Image(PathBuf),
    /// An HCS plate.
    Plate(PathBuf),
    /// A bioformats2raw store: its series (image groups).
    Series {
        /// The store.
        store: PathBuf,
        /// Series paths within it.
        series: Vec<String>,
    },
    /// A TIFF or OME-TIFF file.
    Tiff(PathBuf),
}

/// The shared storage, confined to its data roots and group folders.
#[derive(Debug, Clone)]
pub struct FsSource {
    roots: Vec<PathBuf>,
    groups: Arc<GroupFolders>,
}

fn is_tiff(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

impl FsSource {
    /// The storage under `roots` (made canonical where they exist), with `groups` folders.
    pub fn new(roots: &[PathBuf], groups: Arc<GroupFolders>) -> Self {
        FsSource {
            roots: roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            groups,
        }
    }

    /// The data roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The root that holds `canonical`, if any.
    pub fn root_of(&self, canonical: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .find(|r| canonical.starts_with(r))
            .map(PathBuf::as_path)
    }

    /// Resolves `raw` to a canonical path inside the data roots (group folders not checked).
    pub fn within_roots(&self, raw: &str) -> Result<PathBuf> {
        let p = Path::new(raw);
        if !p.is_absolute() {
            return Err(SourceError::refused(
                raw,
                "paths on the shared storage are absolute",
            ));
        }
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(SourceError::refused(
                raw,
                "`..` is not allowed in input paths",
            ));
        }
        let canonical = std::fs::canonicalize(p).map_err(|e| SourceError::NotFound {
            input: raw.to_owned(),
            reason: format!("cannot be opened ({e})"),
        })?;
        if self.root_of(&canonical).is_none() {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            let how = if canonical == p {
                String::new()
            } else {
                format!(" (it resolves to {})", canonical.display())
            };
            return Err(SourceError::refused(
                raw,
                format!(
                    "is outside the data roots{how}; inputs must lie under {}",
                    roots.join(", ")
                ),
            ));
        }
        Ok(canonical)
    }

    /// Resolves `raw` for a submission of OMERO group `group`: inside the roots and the group's folder.
    pub fn confine(&self, raw: &str, group: &str) -> Result<PathBuf> {
        let canonical = self.within_roots(raw)?;
        let Some(mappings) = self.groups.current()? else {
            return Ok(canonical);
        };
        let Some(g) = mappings.folder(group) else {
            return Err(SourceError::refused(
                raw,
                format!(
                    "OMERO group `{group}` has no folder in the group mappings ({}); a group reads only inside its folder",
                    self.groups
                        .file()
                        .map_or_else(String::new, |f| f.display().to_string())
                ),
            ));
        };
        let allowed: Vec<PathBuf> = self
            .roots
            .iter()
            .map(|r| {
                let f = r.join(&g.folder);
                std::fs::canonicalize(&f).unwrap_or(f)
            })
            .collect();
        if allowed.iter().any(|a| canonical.starts_with(a)) {
            Ok(canonical)
        } else {
            Err(SourceError::refused(
                raw,
                format!(
                    "is outside the folder of OMERO group `{group}` ({}); a group reads only inside its folder",
                    g.folder.display()
                ),
            ))
        }
    }

    /// What `path` (canonical, confined) holds; stores are checked to contain no symlinks.
    pub fn classify(&self, input: &str, path: &Path) -> Result<FsInput> {
        let data = |source| SourceError::Data {
            input: input.to_owned(),
            source: Box::new(source),
        };
        if path.is_file() {
            if is_tiff(path) {
                return Ok(FsInput::Tiff(path.to_path_buf()));
            }
            return Err(SourceError::WrongKind {
                input: input.to_owned(),
                reason: "is a file but not a TIFF; give an OME-Zarr store or a .tif/.tiff file"
                    .into(),
            });
        }
        no_symlinks(input, path)?;
        let node = Node::open(path).map_err(data)?;
        match node.kind() {
            NodeKind::Image { label: false } => Ok(FsInput::Image(path.to_path_buf())),
            NodeKind::Plate => {
                PlateReader::open(path).map_err(data)?;
                Ok(FsInput::Plate(path.to_path_buf()))
            }
            NodeKind::Bioformats2Raw => {
                let series = stage_ngff::image::bioformats2raw_series(path).map_err(data)?;
                if series.is_empty() {
                    return Err(SourceError::Empty(format!(
                        "{input} is a bioformats2raw store without series"
                    )));
                }
                Ok(FsInput::Series {
                    store: path.to_path_buf(),
                    series,
                })
            }
            other => Err(SourceError::WrongKind {
                input: input.to_owned(),
                reason: format!(
                    "is not an image, plate or bioformats2raw store (it is a {}); select the store itself",
                    match other {
                        NodeKind::Image { .. } => "label image",
                        NodeKind::Well => "well",
                        NodeKind::Labels => "labels group",
                        NodeKind::Array => "Zarr array",
                        _ => "group without OME metadata",
                    }
                ),
            }),
        }
    }
}

/// Refuses a directory tree that holds symlinks, devices or FIFOs.
fn no_symlinks(input: &str, dir: &Path) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| SourceError::io(&d, e))? {
            let e = e.map_err(|e| SourceError::io(&d, e))?;
            let ft = e.file_type().map_err(|er| SourceError::io(e.path(), er))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if !ft.is_file() {
                return Err(SourceError::refused(
                    input,
                    format!(
                        "contains {} which is a symlink or special file; stores are staged only when made of plain files",
                        e.path().display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(root: &Path, mappings: Option<&str>) -> FsSource {
        let file = mappings.map(|m| {
            let f = root.join("biomero-config.json");
            std::fs::write(&f, m).unwrap();
            f
        });
        FsSource::new(&[root.to_path_buf()], Arc::new(GroupFolders::new(file)))
    }

    #[test]
    fn paths_stay_in_the_roots_and_the_group_folder() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("data");
        for f in ["lab-a/x", "lab-b/y"] {
            std::fs::create_dir_all(root.join(f)).unwrap();
        }
        std::fs::write(d.path().join("secret.tif"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.tif"), root.join("lab-a/link.tif"))
            .unwrap();
        let s = source(
            &root,
            Some(
                r#"{"group_mappings": {"1": {"folder": "lab-a", "groupName": "A"}, "2": {"folder": "lab-b", "groupName": "B"}}}"#,
            ),
        );
        let p = |x: &str| format!("{}/{x}", root.display());
        assert!(s.confine(&p("lab-a/x"), "A").is_ok());
        let e = s.confine(&p("lab-b/y"), "A").unwrap_err().to_string();
        assert!(e.contains("outside the folder of OMERO group `A`"), "{e}");
        let e = s
            .confine(&p("lab-a/../lab-b/y"), "A")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`..`"), "{e}");
        let e = s
            .confine(&p("lab-a/link.tif"), "A")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("outside the data roots") && e.contains("resolves to"),
            "{e}"
        );
        let e = s.confine("/etc/passwd", "A").unwrap_err().to_string();
        assert!(e.contains("outside the data roots"), "{e}");
        let e = s.confine(&p("lab-a/x"), "C").unwrap_err().to_string();
        assert!(e.contains("no folder in the group mappings"), "{e}");
        let e = s.confine(&p("lab-a/nope"), "A").unwrap_err().to_string();
        assert!(e.contains("cannot be opened"), "{e}");
        let open = source(&root, None);
        assert!(open.confine(&p("lab-b/y"), "A").is_ok());
    }
}
