use crate::BoxError;
use sluice_core::{Batch, Timestamp};
use std::time::Duration;
use thiserror::Error;

/// Why an operator stopped.
#[derive(Debug, Error)]
pub enum OperatorError {
    /// The stage behind an edge has stopped; it reports its own error, so
    /// this one only ends the sending stage.
    #[error("the downstream stage has stopped")]
    DownstreamGone,
    /// User code or a sink failed.
    #[error(transparent)]
    Failed(BoxError),
}

/// The result of an operator's step.
pub type OperatorResult = Result<(), OperatorError>;

/// One step of a fused stage: receives a batch and pushes its output into
/// the operator after it.
///
/// The contract, which every operator of Sluice keeps:
/// - `on_batch` may consume the batch's events and leave it in any state;
///   the caller clears it and reuses its buffers;
/// - `on_tick` is called with the processing time after every input batch
///   and when a deadline an operator asked for has passed; it returns the
///   earliest deadline the operator and those after it need, if any;
/// - `on_watermark` says that no event with an earlier event time will
///   follow (except late ones); it comes after the events that raised it,
///   and an operator passes it on after what it released because of it;
/// - `on_idle` says that the input has no events for now and should not
///   hold the watermark of the operators after it back;
/// - `on_end` is called once when the input is complete: an operator
///   releases what it holds, then passes `on_end` on;
/// - `on_barrier` marks a checkpoint: every event before it has been passed
///   to `on_batch`, none after it; an operator with state snapshots it, then
///   releases what its output edge holds and passes the barrier on;
/// - errors travel up to the stage loop, which stops the stage and reports them.
pub trait Operator<T>: Send {
    /// Processes one batch.
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult;

    /// Processing time has advanced; returns the next deadline needed.
    fn on_tick(&mut self, _now: Duration) -> Result<Option<Duration>, OperatorError> {
        Ok(None)
    }

    /// The event-time watermark has advanced to `watermark`.
    ///
    /// The default does nothing: right for sinks; every operator with an
    /// operator after it must pass it on.
    fn on_watermark(&mut self, _watermark: Timestamp) -> OperatorResult {
        Ok(())
    }

    /// The input is idle. The default does nothing (see `on_watermark`).
    fn on_idle(&mut self) -> OperatorResult {
        Ok(())
    }

    /// The input is complete.
    fn on_end(&mut self) -> OperatorResult {
        Ok(())
    }

    /// A checkpoint barrier: the events before it are all in. The default
    /// does nothing (see `on_watermark`).
    fn on_barrier(&mut self, _barrier: Barrier) -> OperatorResult {
        Ok(())
    }
}

/// A checkpoint barrier, injected by a source between two polls and
/// aligned at every stage with several inputs: everything before it
/// belongs to checkpoint `id`, everything after it to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Barrier {
    /// The checkpoint's number, increasing from 1 within a run.
    pub id: u64,
}

impl<T, O: Operator<T> + ?Sized> Operator<T> for Box<O> {
    #[inline]
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        (**self).on_batch(batch)
    }
    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        (**self).on_tick(now)
    }
    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        (**self).on_watermark(watermark)
    }
    fn on_idle(&mut self) -> OperatorResult {
        (**self).on_idle()
    }
    fn on_end(&mut self) -> OperatorResult {
        (**self).on_end()
    }
    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        (**self).on_barrier(barrier)
    }
}

/// Where results leave the dataflow: a file, a collection, a topic.
pub trait Sink<T>: Send {
    /// Writes a batch; the sink may take the events out of it. An error
    /// stops the run and is reported with the sink's stage.
    fn write(&mut self, batch: &mut Batch<T>) -> Result<(), BoxError>;

    /// Called once after the last batch: flush and release resources.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// A checkpoint barrier: everything before it has been written. A
    /// transactional sink makes it durable and records how far it got.
    fn checkpoint(&mut self, _barrier: Barrier) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Runs a [`Sink`] as the last operator of a stage.
pub struct SinkOperator<S>(pub S);

impl<T, S: Sink<T>> Operator<T> for SinkOperator<S> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        self.0.write(batch).map_err(OperatorError::Failed)
    }
    fn on_end(&mut self) -> OperatorResult {
        self.0.close().map_err(OperatorError::Failed)
    }
    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        self.0.checkpoint(barrier).map_err(OperatorError::Failed)
    }
}
