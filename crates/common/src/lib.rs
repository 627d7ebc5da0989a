//! What every biomero-stage crate shares, and nothing else: writing a file so
//! that readers see the old or the new content, never a part ([`atomic`]),
//! the NGFF version of the OME-Zarr we read and write ([`NgffVersion`]), and database
//! URLs without their passwords ([`redact_url`]).

pub mod atomic;
mod ngff_version;
mod redact;

pub use ngff_version::NgffVersion;
pub use redact::redact_url;
