//! What every biomero-stage crate shares, and nothing else: writing a file so
//! that readers see the old or the new content, never a part ([`atomic`]),
//! and the NGFF version of the OME-Zarr we read and write ([`NgffVersion`]).

pub mod atomic;
mod ngff_version;

pub use ngff_version::NgffVersion;
