//! Where the judge's counts come from. Each source returns *cumulative* counts per arm since it was
//! created, already corrected for counter resets (a proxy restarted) and for proxies that went missing
//! (their last counts are kept, never counted twice), with a note saying so.

use crate::counts::Counts;

/// One reading of a source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub counts: Counts,
    /// Things an operator should see (a proxy unreachable, a counter reset), one line each.
    pub notes: Vec<String>,
}

/// A source of cumulative event counts by arm.
pub trait MetricsSource {
    /// Reads the counts now. `Err` only when nothing could be read at all (every proxy down, Prometheus
    /// unreachable): the caller waits and retries, it never judges on a failed read.
    fn read(&mut self) -> Result<Reading, String>;
}
