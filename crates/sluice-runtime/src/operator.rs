//! The `Operator` trait and its contract, the signals passed beside batches, barriers, and sinks.

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

    /// The operator this one pushes into, to which the hooks below pass
    /// their signals on unless the operator implements them: an operator
    /// implements only the hooks it acts on. `None` ends the chain (a
    /// sink, an edge's sender). No default: every operator says which, so
    /// that none can swallow a barrier (and block every checkpoint) by
    /// forgetting to pass it on.
    fn downstream(&mut self) -> Option<&mut dyn Signals>;

    /// Processing time has advanced; returns the next deadline needed.
    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.downstream().map_or(Ok(None), |d| d.tick(now))
    }

    /// The event-time watermark has advanced to `watermark`. An operator
    /// that releases events because of it does so before passing it on.
    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.downstream().map_or(Ok(()), |d| d.watermark(watermark))
    }

    /// The input is idle.
    fn on_idle(&mut self) -> OperatorResult {
        self.downstream().map_or(Ok(()), |d| d.idle())
    }

    /// The input is complete: an operator releases what it holds first.
    fn on_end(&mut self) -> OperatorResult {
        self.downstream().map_or(Ok(()), |d| d.end())
    }

    /// A checkpoint barrier: the events before it are all in. An operator
    /// with state snapshots it first.
    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        self.downstream().map_or(Ok(()), |d| d.barrier(barrier))
    }
}

/// The signals that travel beside the events (ticks, watermarks, idleness,
/// the end, barriers): what an operator passes on to the one after it,
/// whatever that one's event type.
pub trait Signals: Send {
    /// Passes [`Operator::on_tick`] on.
    fn tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError>;
    /// Passes [`Operator::on_watermark`] on.
    fn watermark(&mut self, watermark: Timestamp) -> OperatorResult;
    /// Passes [`Operator::on_idle`] on.
    fn idle(&mut self) -> OperatorResult;
    /// Passes [`Operator::on_end`] on.
    fn end(&mut self) -> OperatorResult;
    /// Passes [`Operator::on_barrier`] on.
    fn barrier(&mut self, barrier: Barrier) -> OperatorResult;
}

impl<U> Signals for Box<dyn Operator<U>> {
    fn tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        (**self).on_tick(now)
    }
    fn watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        (**self).on_watermark(watermark)
    }
    fn idle(&mut self) -> OperatorResult {
        (**self).on_idle()
    }
    fn end(&mut self) -> OperatorResult {
        (**self).on_end()
    }
    fn barrier(&mut self, barrier: Barrier) -> OperatorResult {
        (**self).on_barrier(barrier)
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
    fn downstream(&mut self) -> Option<&mut dyn Signals> {
        (**self).downstream()
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

    /// Processing time has advanced to `now` (after every batch, and when
    /// the deadline it asked for has passed): a sink that holds writes
    /// back (waiting for a broker's answer) hands them on here, and
    /// returns when it wants to be called again.
    fn tick(&mut self, _now: Duration) -> Result<Option<Duration>, BoxError> {
        Ok(None)
    }
}

/// Runs a [`Sink`] as the last operator of a stage.
pub struct SinkOperator<S>(pub S);

impl<T, S: Sink<T>> Operator<T> for SinkOperator<S> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        self.0.write(batch).map_err(OperatorError::Failed)
    }
    fn downstream(&mut self) -> Option<&mut dyn Signals> {
        None
    }
    fn on_end(&mut self) -> OperatorResult {
        self.0.close().map_err(OperatorError::Failed)
    }
    fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
        self.0.checkpoint(barrier).map_err(OperatorError::Failed)
    }
    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        self.0.tick(now).map_err(OperatorError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Handles events only: every signal goes on by default.
    struct Doubles(Box<dyn Operator<u32>>);

    impl Operator<u32> for Doubles {
        fn on_batch(&mut self, batch: &mut Batch<u32>) -> OperatorResult {
            self.0.on_batch(batch)
        }
        fn downstream(&mut self) -> Option<&mut dyn Signals> {
            Some(&mut self.0)
        }
    }

    /// The end of the chain: records what reaches it.
    struct Record(Arc<Mutex<Vec<String>>>);

    impl Operator<u32> for Record {
        fn on_batch(&mut self, _batch: &mut Batch<u32>) -> OperatorResult {
            Ok(())
        }
        fn downstream(&mut self) -> Option<&mut dyn Signals> {
            None
        }
        fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("tick {}", now.as_millis()));
            Ok(Some(now + Duration::from_millis(5)))
        }
        fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
            self.0
                .lock()
                .unwrap()
                .push(format!("watermark {watermark}"));
            Ok(())
        }
        fn on_idle(&mut self) -> OperatorResult {
            self.0.lock().unwrap().push("idle".into());
            Ok(())
        }
        fn on_barrier(&mut self, barrier: Barrier) -> OperatorResult {
            self.0
                .lock()
                .unwrap()
                .push(format!("barrier {}", barrier.id));
            Ok(())
        }
        fn on_end(&mut self) -> OperatorResult {
            self.0.lock().unwrap().push("end".into());
            Ok(())
        }
    }

    #[test]
    fn an_operator_passes_on_every_signal_it_does_not_handle() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut chain: Box<dyn Operator<u32>> =
            Box::new(Doubles(Box::new(Doubles(Box::new(Record(seen.clone()))))));
        let deadline = chain.on_tick(Duration::from_millis(10)).unwrap();
        chain.on_watermark(7).unwrap();
        chain.on_idle().unwrap();
        chain.on_barrier(Barrier { id: 3 }).unwrap();
        chain.on_end().unwrap();
        assert_eq!(deadline, Some(Duration::from_millis(15)));
        assert_eq!(
            *seen.lock().unwrap(),
            ["tick 10", "watermark 7", "idle", "barrier 3", "end"]
        );
    }
}
