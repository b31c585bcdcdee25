//! Event time: the `Timestamp` type and its smallest and largest values.

/// Event time: milliseconds since the Unix epoch.
///
/// Every element of a [`Batch`](crate::Batch) carries one, either taken from a
/// field of the event or assigned when it entered the pipeline.
pub type Timestamp = i64;

/// The smallest event time; the watermark before any input has been seen.
pub const MIN_TIMESTAMP: Timestamp = i64::MIN;

/// The largest event time; the watermark at the end of a bounded input.
pub const MAX_TIMESTAMP: Timestamp = i64::MAX;
