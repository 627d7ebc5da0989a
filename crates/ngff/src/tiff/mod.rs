//! TIFF and OME-TIFF: writing staged TIFFs, reading TIFFs to convert to Zarr.

pub mod ome_xml;
pub mod read;
pub mod write;
