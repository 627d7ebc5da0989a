//! Where biomero-stage's inputs come from, and the staging plan.
//!
//! A user selects images, datasets, wells, plates or screens in OMERO, or
//! paths on the shared storage; a workflow has input modes (`tiff`, `zarr`,
//! `zarr-plate`). [`planner::plan`] turns the pair into a [`Plan`] — what will
//! be staged, from where, under which names — refusing wrong input before any
//! pixel moves; [`stage::execute`] carries it out into a staging directory
//! with the ngff engine.
//!
//! - [`fs`]: the shared storage, confined to the data roots and the group
//!   folders of [`groups`];
//! - [`omero`]: OMERO.web's JSON API and omero-ms-pixel-buffer;
//! - [`plan`]: the plan's data; [`planner`]: how it is made;
//! - [`stage`]: how it is executed.

pub mod error;
pub mod export;
pub mod fs;
pub mod groups;
pub mod omero;
pub mod plan;
pub mod planner;
pub mod stage;

pub use error::{Result, SourceError};
pub use fs::FsSource;
pub use groups::GroupFolders;
pub use plan::Plan;
pub use planner::{InputRef, Request, Sources, plan};
