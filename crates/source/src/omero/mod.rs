//! The `omero` source: OMERO.web's JSON API for the hierarchy and metadata,
//! pixels from the image's on-disk Zarr when OMERO knows one, otherwise from
//! omero-ms-pixel-buffer tiles.

pub mod client;
mod login;
pub mod model;
pub mod resolve;
pub mod session;
pub mod tiles;

pub use client::{OmeroClient, OmeroConfig};
pub use resolve::{OmeroSource, Resolved, Unit};
pub use session::{Container, ContainerKind, EventContext, SessionError, UserSession};
