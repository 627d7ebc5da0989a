//! NGFF 0.5 output re-encoded to 0.4 when the site's OMERO reads only 0.4
//! (OMERO's Zarr pixel buffer and OMEZarrReader, the default).
//!
//! The new store is written beside the old one by `stage-ngff` (chunk by
//! chunk, read back and compared), then swapped in with two renames; a run
//! interrupted between them is repaired by the next one.

use std::path::{Path, PathBuf};

use stage_ngff::NgffVersion;
use stage_ngff::copy::{pass_through, store_version};
use stage_ngff::write::array::Compression;

use crate::error::{Result, ResultsError};

fn sibling(store: &Path, tag: &str) -> PathBuf {
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    store.with_file_name(format!(".{name}.{tag}"))
}

/// Re-encodes `store` in place to `want` when it is in the other version;
/// returns whether it did.
pub fn to_version(store: &Path, want: NgffVersion) -> Result<bool> {
    let old = sibling(store, "replaced");
    // repair an interrupted swap
    if old.exists() {
        if store.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| ResultsError::io(&old, e))?;
        } else {
            std::fs::rename(&old, store).map_err(|e| ResultsError::io(store, e))?;
        }
    }
    let have = store_version(store).map_err(|source| ResultsError::Zarr {
        path: store.to_path_buf(),
        source,
    })?;
    if have == want {
        return Ok(false);
    }
    let new = sibling(store, "reencoded");
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| ResultsError::io(&new, e))?;
    }
    pass_through(store, &new, want, Compression::default()).map_err(|source| {
        ResultsError::Zarr {
            path: store.to_path_buf(),
            source,
        }
    })?;
    std::fs::rename(store, &old).map_err(|e| ResultsError::io(&old, e))?;
    std::fs::rename(&new, store).map_err(|e| ResultsError::io(store, e))?;
    std::fs::remove_dir_all(&old).map_err(|e| ResultsError::io(&old, e))?;
    Ok(true)
}
