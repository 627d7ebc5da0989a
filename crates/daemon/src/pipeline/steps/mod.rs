//! One module per pipeline step.

pub mod plan;
