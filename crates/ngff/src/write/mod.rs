//! Writing OME-Zarr: images, plates and labels, in NGFF 0.4 (Zarr v2) or 0.5 (Zarr v3).

pub mod array;
pub mod atomic;
pub mod attrs;
pub mod image;
pub mod plate;
