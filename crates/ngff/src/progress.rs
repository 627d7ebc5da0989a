//! Progress reporting, for a progress bar on a terminal (or nothing).

/// Receives progress of long operations, in planes.
pub trait Progress: Sync {
    /// More work became known.
    fn add_total(&self, _n: u64) {}
    /// Work was done.
    fn advance(&self, _n: u64) {}
    /// One output (an image or a plate, of `bytes` pixel bytes) is complete.
    fn output_done(&self, _bytes: u64) {}
}

/// No progress reporting.
impl Progress for () {}
