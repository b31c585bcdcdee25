//! The `Source` trait, where events enter the dataflow, and what a poll found.

use crate::{Barrier, BoxError};
use sluice_core::Batch;

/// What a source's poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// More input may be available right away.
    Ready,
    /// No input right now; poll again soon.
    Idle,
    /// The input is complete.
    Exhausted,
}

/// Where events enter the dataflow.
///
/// A source is polled by its stage's loop: it appends up to `max` events
/// with their event times to `out` and says whether more may follow. It
/// never blocks for long; a source waiting for input returns `Idle`.
pub trait Source<T>: Send {
    /// Appends up to `max` events to `out`.
    fn poll(&mut self, out: &mut Batch<T>, max: usize) -> Result<SourceStatus, BoxError>;

    /// The number of events this source will produce, when known in advance.
    fn exact_len(&self) -> Option<u64> {
        None
    }

    /// Called after every poll: a barrier to inject after the events of
    /// that poll, when a checkpoint is due. A source that returns one has
    /// recorded its position (everything it emitted so far) under its id.
    fn barrier(&mut self) -> Result<Option<Barrier>, BoxError> {
        Ok(None)
    }

    /// True when a poll may wait (for the network, or to keep a pace)
    /// instead of returning [`SourceStatus::Idle`]: the source is then
    /// polled on a thread of its own, so that the worker running its stage
    /// goes on with its other stages meanwhile. Default false.
    fn blocking(&self) -> bool {
        false
    }
}

impl<T, S: Source<T> + ?Sized> Source<T> for Box<S> {
    fn poll(&mut self, out: &mut Batch<T>, max: usize) -> Result<SourceStatus, BoxError> {
        (**self).poll(out, max)
    }
    fn exact_len(&self) -> Option<u64> {
        (**self).exact_len()
    }
    fn barrier(&mut self) -> Result<Option<Barrier>, BoxError> {
        (**self).barrier()
    }
    fn blocking(&self) -> bool {
        (**self).blocking()
    }
}
