//! biomero-stage: stages BIOMERO analysis workflows between OMERO and Slurm.
//!
//! This crate is the binary's library half: the command line ([`cli`]), the
//! rendering of reports ([`report`]) and logging setup ([`logging`]). The work
//! itself lives in the `stage-*` crates; see ARCHITECTURE.md for the map.

pub mod adopt;
pub mod biomero;
pub mod cli;
pub mod cluster;
pub mod http;
pub mod importer;
pub mod intake;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod process_metrics;
pub mod progress;
pub mod queue_identity;
pub mod report;
pub mod retention;
pub mod runtime;
pub mod serve;
pub mod sources;
#[cfg(test)]
mod test_site;
pub mod versions;
pub mod worker;
