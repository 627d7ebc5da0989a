//! Pixel types: the numeric types that can be staged, and their names in
//! Zarr v2 (`<u2`), Zarr v3 (`uint16`), OME-XML (`uint16`) and TIFF.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A supported pixel type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelType {
    /// `uint8`.
    Uint8,
    /// `uint16`.
    Uint16,
    /// `uint32`.
    Uint32,
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
}

impl PixelType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            PixelType::Uint8 | PixelType::Int8 => 1,
            PixelType::Uint16 | PixelType::Int16 => 2,
            PixelType::Uint32 | PixelType::Int32 | PixelType::Float32 => 4,
            PixelType::Float64 => 8,
        }
    }

    /// The Zarr v3 / OME-XML name.
    pub fn name(self) -> &'static str {
        match self {
            PixelType::Uint8 => "uint8",
            PixelType::Uint16 => "uint16",
            PixelType::Uint32 => "uint32",
            PixelType::Int8 => "int8",
            PixelType::Int16 => "int16",
            PixelType::Int32 => "int32",
            PixelType::Float32 => "float32",
            PixelType::Float64 => "float64",
        }
    }

    /// The OME-XML `Type` attribute (`float` and `double` for the float types).
    pub fn ome_name(self) -> &'static str {
        match self {
            PixelType::Float32 => "float",
            PixelType::Float64 => "double",
            other => other.name(),
        }
    }

    /// The Zarr v2 / numpy dtype string in little-endian byte order (`<u2`).
    pub fn v2_dtype(self) -> &'static str {
        match self {
            PixelType::Uint8 => "|u1",
            PixelType::Uint16 => "<u2",
            PixelType::Uint32 => "<u4",
            PixelType::Int8 => "|i1",
            PixelType::Int16 => "<i2",
            PixelType::Int32 => "<i4",
            PixelType::Float32 => "<f4",
            PixelType::Float64 => "<f8",
        }
    }

    /// Parses a Zarr v3 name, a numpy dtype string (any byte order) or an OME-XML name.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim_start_matches(['<', '>', '|', '=']);
        Some(match t {
            "uint8" | "u1" | "B" => PixelType::Uint8,
            "uint16" | "u2" | "H" => PixelType::Uint16,
            "uint32" | "u4" | "I" => PixelType::Uint32,
            "int8" | "i1" | "b" => PixelType::Int8,
            "int16" | "i2" | "h" => PixelType::Int16,
            "int32" | "i4" | "i" => PixelType::Int32,
            "float32" | "f4" | "float" | "f" => PixelType::Float32,
            "float64" | "f8" | "double" | "d" => PixelType::Float64,
            _ => return None,
        })
    }

    /// TIFF `SampleFormat`: 1 unsigned, 2 signed, 3 IEEE float.
    pub fn tiff_sample_format(self) -> u16 {
        match self {
            PixelType::Uint8 | PixelType::Uint16 | PixelType::Uint32 => 1,
            PixelType::Int8 | PixelType::Int16 | PixelType::Int32 => 2,
            PixelType::Float32 | PixelType::Float64 => 3,
        }
    }

    /// The pixel type for TIFF `BitsPerSample` and `SampleFormat`.
    pub fn from_tiff(bits: u16, sample_format: u16) -> Option<Self> {
        Some(match (bits, sample_format) {
            (8, 1) => PixelType::Uint8,
            (16, 1) => PixelType::Uint16,
            (32, 1) => PixelType::Uint32,
            (8, 2) => PixelType::Int8,
            (16, 2) => PixelType::Int16,
            (32, 2) => PixelType::Int32,
            (32, 3) => PixelType::Float32,
            (64, 3) => PixelType::Float64,
            _ => return None,
        })
    }

    /// The value zero as native-endian bytes (the fill value).
    pub fn zero(self) -> serde_json::Value {
        match self {
            PixelType::Float32 | PixelType::Float64 => serde_json::json!(0.0),
            _ => serde_json::json!(0),
        }
    }
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [
            PixelType::Uint8,
            PixelType::Uint16,
            PixelType::Uint32,
            PixelType::Int8,
            PixelType::Int16,
            PixelType::Int32,
            PixelType::Float32,
            PixelType::Float64,
        ] {
            assert_eq!(PixelType::parse(t.name()), Some(t));
            assert_eq!(PixelType::parse(t.v2_dtype()), Some(t));
            assert_eq!(PixelType::parse(t.ome_name()), Some(t));
            assert_eq!(
                PixelType::from_tiff(u16::try_from(t.size() * 8).unwrap(), t.tiff_sample_format()),
                Some(t)
            );
        }
        assert_eq!(PixelType::parse(">u2"), Some(PixelType::Uint16));
        assert_eq!(PixelType::parse("complex64"), None);
        assert_eq!(PixelType::parse("bool"), None);
    }
}
