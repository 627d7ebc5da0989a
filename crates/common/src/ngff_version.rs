//! The NGFF (OME-Zarr) version: one type for the settings that choose it and
//! the engine that reads and writes it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// NGFF (OME-Zarr) version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum NgffVersion {
    /// 0.4 on Zarr v2: what OMERO's zarr pixel buffer and OMEZarrReader read.
    #[serde(rename = "0.4")]
    #[default]
    V04,
    /// 0.5 on Zarr v3.
    #[serde(rename = "0.5")]
    V05,
}

impl NgffVersion {
    /// `"0.4"` or `"0.5"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NgffVersion::V04 => "0.4",
            NgffVersion::V05 => "0.5",
        }
    }

    /// Parses `"0.4"`/`"0.5"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0.4" => Some(NgffVersion::V04),
            "0.5" => Some(NgffVersion::V05),
            _ => None,
        }
    }
}

impl fmt::Display for NgffVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
