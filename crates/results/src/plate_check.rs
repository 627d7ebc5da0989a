//! A returned plate compared with the plate that was staged for the job:
//! which wells and fields are missing or extra, so a workflow that dropped
//! part of a plate is visible in the submission's history.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use stage_ngff::PlateReader;

use crate::error::{Result, ResultsError};

/// How a returned plate differs from the staged one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlateComparison {
    /// The returned plate, relative to the results folder.
    pub plate: String,
    /// The staged plate it was compared with (its name in `data/in`).
    pub staged: String,
    /// Wells in the returned plate.
    pub wells: usize,
    /// Fields in the returned plate.
    pub fields: usize,
    /// Wells staged but not returned (`B3`).
    pub missing_wells: Vec<String>,
    /// Wells returned but never staged.
    pub extra_wells: Vec<String>,
    /// Fields staged but not returned (`B3/1`), in wells that were returned.
    pub missing_fields: Vec<String>,
    /// Fields returned but never staged.
    pub extra_fields: Vec<String>,
}

impl PlateComparison {
    /// Whether the returned plate has exactly the staged wells and fields.
    pub fn is_complete(&self) -> bool {
        self.missing_wells.is_empty()
            && self.extra_wells.is_empty()
            && self.missing_fields.is_empty()
            && self.extra_fields.is_empty()
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, list) in [
            ("missing wells", &self.missing_wells),
            ("extra wells", &self.extra_wells),
            ("missing fields", &self.missing_fields),
            ("extra fields", &self.extra_fields),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", list.join(", ")));
            }
        }
        format!(
            "returned plate {} differs from the staged plate {}: {}",
            self.plate,
            self.staged,
            parts.join("; ")
        )
    }
}

fn open(path: &Path) -> Result<PlateReader> {
    PlateReader::open(path).map_err(|source| ResultsError::Zarr {
        path: path.to_path_buf(),
        source,
    })
}

fn keys(p: &PlateReader) -> (BTreeSet<String>, BTreeSet<String>) {
    let wells = p
        .fields
        .iter()
        .map(stage_ngff::FieldRef::well_name)
        .collect();
    let fields = p
        .fields
        .iter()
        .map(|f| format!("{}/{}", f.well_name(), f.field))
        .collect();
    (wells, fields)
}

/// Validates the returned plate (either NGFF version) and compares it with `staged`.
pub fn compare(
    returned: &Path,
    plate: &str,
    staged: &Path,
    staged_name: &str,
) -> Result<PlateComparison> {
    let got = open(returned)?;
    let want = open(staged)?;
    let (gw, gf) = keys(&got);
    let (ww, wf) = keys(&want);
    let well_of = |f: &String| f.split('/').next().unwrap_or_default().to_owned();
    Ok(PlateComparison {
        plate: plate.to_owned(),
        staged: staged_name.to_owned(),
        wells: gw.len(),
        fields: gf.len(),
        missing_wells: ww.difference(&gw).cloned().collect(),
        extra_wells: gw.difference(&ww).cloned().collect(),
        missing_fields: wf
            .difference(&gf)
            .filter(|f| gw.contains(&well_of(f)))
            .cloned()
            .collect(),
        extra_fields: gf
            .difference(&wf)
            .filter(|f| ww.contains(&well_of(f)))
            .cloned()
            .collect(),
    })
}
