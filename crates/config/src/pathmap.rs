//! A path prefix mapping between two mounts of the same storage
//! (`/srv/omero-data=/data`: this daemon's mount, then another program's).

use std::path::Path;

/// Rewrites paths under one prefix to another (on whole path components).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathMap {
    from: String,
    to: String,
}

impl PathMap {
    /// Parses `FROM=TO` (both absolute); an empty string maps nothing.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(PathMap::default());
        }
        let Some((from, to)) = s.split_once('=') else {
            return Err(format!(
                "`{s}` is not FROM=TO (for example /srv/omero-data=/data: this daemon's mount, then the importer's)"
            ));
        };
        let (from, to) = (from.trim(), to.trim());
        if !from.starts_with('/') || !to.starts_with('/') {
            return Err(format!("`{s}`: both sides must be absolute paths"));
        }
        Ok(PathMap {
            from: from.trim_end_matches('/').to_owned(),
            to: to.trim_end_matches('/').to_owned(),
        })
    }

    /// `path` as the other side sees it (unchanged outside the prefix).
    pub fn apply(&self, path: &Path) -> String {
        let p = path.to_string_lossy();
        if self.from.is_empty() && self.to.is_empty() {
            return p.into_owned();
        }
        match p.strip_prefix(&self.from) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", self.to),
            _ => p.into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_are_mapped_on_component_boundaries() {
        let m = PathMap::parse("/srv/omero-data/=/data").unwrap();
        assert_eq!(
            m.apply(Path::new("/srv/omero-data/lab/x.zarr")),
            "/data/lab/x.zarr"
        );
        assert_eq!(
            m.apply(Path::new("/srv/omero-data2/x")),
            "/srv/omero-data2/x"
        );
        assert_eq!(PathMap::default().apply(Path::new("/a/b")), "/a/b");
        assert!(PathMap::parse("data=/x").unwrap_err().contains("absolute"));
        assert!(PathMap::parse("/a").unwrap_err().contains("FROM=TO"));
    }
}
