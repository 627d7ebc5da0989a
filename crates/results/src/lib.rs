//! What a job returned, brought home.
//!
//! After the `collect` step has downloaded a job's `data/out`, this crate turns
//! it into results a facility keeps and BIOMERO.importer registers:
//!
//! 1. [`safety`] — the tree is refused when it holds symlinks, hard links,
//!    devices, FIFOs, names that are not UTF-8, or exceeds the size and
//!    file-count limits; archive entry names with `..` or a leading `/` are
//!    refused the same way;
//! 2. [`classify`] — Zarr plates and images, image files and attachments,
//!    matched to the inputs they came from;
//! 3. [`labels`] — label images of returned Zarrs become importable Zarrs
//!    named `<name>.zarr` (the labels list patched, as BIOMERO 2.4 does);
//!    [`plate_check`] compares a returned plate with the staged one;
//!    [`reencode`] turns NGFF 0.5 output into 0.4 when OMERO reads only 0.4;
//!    [`rename`] applies BIOMERO's `3c)` rename pattern to the result images;
//! 4. [`keep`] — everything lands atomically in
//!    `<group folder>/.analyzed/<submission>/<YYYYMMDD_HHMMSS>/` with a
//!    manifest of files, sizes and SHA-256 checksums;
//! 5. [`importer`] — orders in BIOMERO.importer's `imports` table, followed
//!    until the importer completes or fails them.
//!
//! Nothing here talks to the cluster or the queue; the daemon's `collect` and
//! `import` steps call it.

pub mod classify;
pub mod error;
pub mod importer;
pub mod keep;
pub mod labels;
pub mod plate_check;
pub mod reencode;
pub mod rename;
pub mod safety;

pub use error::{Result, ResultsError};
