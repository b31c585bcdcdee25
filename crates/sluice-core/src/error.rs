//! The core's errors: arguments that describe no valid cut or flush policy, and how to fix them.

use thiserror::Error;

/// Errors of the pure core: arguments that cannot describe a valid cut or aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A micro-batch size of zero was asked for.
    #[error("batch size must be at least 1 (got 0): use 1 for one event per batch")]
    ZeroBatchSize,
    /// A number of micro-batches of zero was asked for.
    #[error("number of batches must be at least 1 (got 0)")]
    ZeroBatchCount,
    /// A cut into a number of batches was asked for where the length of the
    /// input is not known in advance.
    #[error("a cut into {batches} balanced batches needs an input of known length: put it right after a bounded source, before any filter or flat_map, or cut by count instead")]
    UnknownLength {
        /// The number of batches asked for.
        batches: usize,
    },
    /// An interval of zero length was asked for.
    #[error("{what} must be longer than zero: give a positive duration such as 100ms")]
    ZeroInterval {
        /// Which interval was zero.
        what: &'static str,
    },
    /// An adaptive latency target below what the engine can measure and meet.
    #[error("the adaptive target latency must be at least 100µs (got {micros}µs): below that, reading clocks and waking threads cost more than the target")]
    LatencyTargetTooSmall {
        /// The target asked for, in microseconds.
        micros: u128,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
