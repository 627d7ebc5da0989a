//! What every biomero-stage crate shares, and nothing else: writing a file so
//! that readers see the old or the new content, never a part ([`atomic`]),
//! the NGFF version of the OME-Zarr we read and write ([`NgffVersion`]), how far a long
//! operation is ([`meter`]), what the readers of outside files may allocate ([`limits`]), and database
//! URLs without their passwords ([`redact_url`]), and output that fits 100 columns ([`text`]).

pub mod atomic;
pub mod limits;
pub mod meter;
mod ngff_version;
mod redact;
pub mod text;

pub use ngff_version::NgffVersion;
pub use redact::redact_url;
