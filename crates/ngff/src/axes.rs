//! Axes: which array dimension is t, c, z, y and x.
//!
//! NGFF allows any subset of t, c, z (in that order) before the spatial y, x,
//! which are always last. Everything that stages pixels works in TCZYX terms;
//! [`AxisMap`] translates between that and an array's own dimensions, and
//! refuses axes that do not fit the array.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{NgffError, Result};
use crate::meta::AxisMeta;

/// The five dimensions biomero-stage stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sizes {
    /// Time points.
    pub t: u64,
    /// Channels.
    pub c: u64,
    /// Z planes.
    pub z: u64,
    /// Rows.
    pub y: u64,
    /// Columns.
    pub x: u64,
}

impl std::fmt::Display for Sizes {
    /// `T×C×Z×Y×X` (e.g. `1×2×1×64×64`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}×{}×{}×{}×{} (T×C×Z×Y×X)",
            self.t, self.c, self.z, self.y, self.x
        )
    }
}

impl Sizes {
    /// Number of YX planes.
    pub fn planes(&self) -> u64 {
        self.t * self.c * self.z
    }

    /// As a TCZYX shape.
    pub fn tczyx(&self) -> [u64; 5] {
        [self.t, self.c, self.z, self.y, self.x]
    }
}

/// Where t, c, z, y, x are in an array's dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AxisMap {
    /// Axis names as written (lower case).
    pub names: Vec<String>,
    /// Units as written, per axis.
    pub units: Vec<Option<String>>,
    /// Index of t, if present.
    pub t: Option<usize>,
    /// Index of c, if present.
    pub c: Option<usize>,
    /// Index of z, if present.
    pub z: Option<usize>,
    /// Index of y.
    pub y: usize,
    /// Index of x.
    pub x: usize,
}

impl AxisMap {
    /// The standard TCZYX map.
    pub fn tczyx() -> Self {
        AxisMap {
            names: ["t", "c", "z", "y", "x"].map(String::from).to_vec(),
            units: vec![None; 5],
            t: Some(0),
            c: Some(1),
            z: Some(2),
            y: 3,
            x: 4,
        }
    }

    /// Builds the map from metadata axes and checks it against the array rank.
    pub fn from_meta(axes: &[AxisMeta], rank: usize, path: &Path) -> Result<Self> {
        let err = |message: String| NgffError::Axes {
            path: path.to_path_buf(),
            message,
        };
        let names: Vec<String> = if axes.is_empty() {
            // NGFF 0.1/0.2 had no axes: always 5D TCZYX
            if rank != 5 {
                return Err(err(format!(
                    "no axes in multiscales and the array has {rank} dimensions; without axes only 5D TCZYX can be read"
                )));
            }
            ["t", "c", "z", "y", "x"].map(String::from).to_vec()
        } else {
            axes.iter().map(|a| a.name().to_ascii_lowercase()).collect()
        };
        if names.len() != rank {
            return Err(err(format!(
                "multiscales lists {} axes ({}) but the array has {rank} dimensions: axes inconsistent with the array rank",
                names.len(),
                names.join(", ")
            )));
        }
        let mut map = AxisMap {
            units: if axes.is_empty() {
                vec![None; rank]
            } else {
                axes.iter().map(|a| a.unit().map(str::to_owned)).collect()
            },
            names: names.clone(),
            t: None,
            c: None,
            z: None,
            y: usize::MAX,
            x: usize::MAX,
        };
        for (i, name) in names.iter().enumerate() {
            let kind = axes.get(i).and_then(AxisMeta::kind);
            let slot = match (name.as_str(), kind) {
                ("t", _) | (_, Some("time")) => &mut map.t,
                ("c", _) | (_, Some("channel")) => &mut map.c,
                ("z", _) => &mut map.z,
                ("y", _) => {
                    map.y = i;
                    continue;
                }
                ("x", _) => {
                    map.x = i;
                    continue;
                }
                (other, _) => {
                    return Err(err(format!(
                        "axis `{other}` is not one of t, c, z, y, x; biomero-stage cannot stage it"
                    )));
                }
            };
            if slot.is_some() {
                return Err(err(format!("axis `{name}` appears twice")));
            }
            *slot = Some(i);
        }
        if map.y == usize::MAX || map.x == usize::MAX {
            return Err(err(format!("axes {} lack y or x", names.join(", "))));
        }
        if map.x + 1 != rank || map.y + 2 != rank {
            return Err(err(format!(
                "y and x must be the last two axes (NGFF order), got {}",
                names.join(", ")
            )));
        }
        Ok(map)
    }

    /// The TCZYX sizes of an array with this map.
    pub fn sizes(&self, shape: &[u64]) -> Sizes {
        let at = |i: Option<usize>| i.map_or(1, |i| shape[i]);
        Sizes {
            t: at(self.t),
            c: at(self.c),
            z: at(self.z),
            y: shape[self.y],
            x: shape[self.x],
        }
    }

    /// Array indices of the first pixel of plane (t, c, z).
    pub fn plane_origin(&self, t: u64, c: u64, z: u64) -> Vec<u64> {
        let mut idx = vec![0; self.names.len()];
        for (slot, v) in [(self.t, t), (self.c, c), (self.z, z)] {
            if let Some(i) = slot {
                idx[i] = v;
            }
        }
        idx
    }

    /// The unit of the axis at `i`, if any.
    pub fn unit(&self, i: Option<usize>) -> Option<&str> {
        i.and_then(|i| self.units.get(i)).and_then(|u| u.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<AxisMeta> {
        names.iter().map(|n| AxisMeta::Name((*n).into())).collect()
    }

    #[test]
    fn subsets_of_tczyx_are_mapped() {
        let m = AxisMap::from_meta(&named(&["c", "y", "x"]), 3, Path::new("i")).unwrap();
        assert_eq!((m.t, m.c, m.z, m.y, m.x), (None, Some(0), None, 1, 2));
        assert_eq!(
            m.sizes(&[3, 10, 20]),
            Sizes {
                t: 1,
                c: 3,
                z: 1,
                y: 10,
                x: 20
            }
        );
        assert_eq!(m.plane_origin(0, 2, 0), vec![2, 0, 0]);
    }

    #[test]
    fn inconsistent_axes_are_refused() {
        let p = Path::new("img.zarr");
        let e = AxisMap::from_meta(&named(&["t", "c", "z", "y", "x"]), 4, p).unwrap_err();
        assert!(
            e.to_string().contains("inconsistent with the array rank"),
            "{e}"
        );
        assert!(AxisMap::from_meta(&named(&["y", "x", "c"]), 3, p).is_err());
        assert!(AxisMap::from_meta(&named(&["q", "y", "x"]), 3, p).is_err());
        assert!(AxisMap::from_meta(&named(&["c", "c", "y", "x"]), 4, p).is_err());
        assert!(AxisMap::from_meta(&[], 3, p).is_err());
        assert!(AxisMap::from_meta(&[], 5, p).is_ok());
    }
}
