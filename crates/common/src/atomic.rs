//! Atomic file writes: the bytes go to a hidden temporary file beside the
//! target (same folder, so the same file system), and the temporary file is
//! renamed over the target. A reader, or a daemon restarted after a kill, sees
//! the old file or the new one, never a part. (No fsync: a kill cannot lose a
//! renamed file, and the steps that write these files are rerun after a host
//! crash anyway.)

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The temporary name beside `path`: `.<name>.tmp<pid>`.
fn temporary(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ))
}

/// Writes `bytes` to `path` atomically, creating its folder if needed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temporary(path);
    let written = (|| {
        std::fs::File::create(&tmp)?.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary_behind() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/manifest.json");
        write_json(&p, &serde_json::json!({ "a": 1 })).unwrap();
        write(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
        // a target that cannot be replaced (a folder) fails and cleans up after itself
        let dir = d.path().join("sub/folder");
        std::fs::create_dir_all(dir.join("x")).unwrap();
        assert!(write(&dir, b"x").is_err());
        assert!(!temporary(&dir).exists());
    }
}
