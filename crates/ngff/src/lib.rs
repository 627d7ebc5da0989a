//! The data engine of biomero-stage: OME-Zarr images, HCS plates and labels,
//! and the Zarr ↔ TIFF converters.
//!
//! Reading is lenient where real writers differ from the spec ([`meta`]);
//! writing is strict (validated with `ome_zarr_metadata` before anything is
//! written, [`write::attrs`]) and atomic ([`write::atomic`]). Pixels move plane
//! by plane or chunk by chunk with bounded memory, on all cores.
//!
//! Supports NGFF 0.4 on Zarr v2 (what OMERO reads, the default) and NGFF 0.5
//! on Zarr v3, optionally sharded.

pub mod axes;
pub mod convert;
pub mod copy;
mod double_buffer;
pub mod dtype;
pub mod error;
pub mod image;
pub mod inspect;
pub mod jobs;
pub mod meta;
pub mod names;
pub mod node;
pub mod plate;
pub mod progress;
pub mod tiff;
pub mod write;

pub use axes::{AxisMap, Sizes};
pub use dtype::PixelType;
pub use error::{NgffError, Result};
pub use image::{ImageReader, PlaneReader};
pub use node::{NgffVersion, Node, NodeKind, ZarrFormat};
pub use plate::{FieldRef, PlateReader};
