//! Fan-out: several consumers of one stream. Every branch receives every
//! event (cloned), its watermarks, idleness and end; the branches stay fused
//! on the stage that produces the stream.

use crate::ops::Downstream;
use crate::pipeline::Builder;
use crate::stream::{Connect, Instances, Stream, StreamParts};
use crate::BuildError;
use sluice_core::{Batch, Timestamp};
use sluice_runtime::{Operator, OperatorError, OperatorResult};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// What the branches of one fan-out have gathered while being wired.
struct FanOutState<T> {
    upstream: Option<Connect<T>>,
    /// The operators each branch feeds, one per instance, once it is wired.
    branches: Vec<Option<Instances<T>>>,
    parallelism: usize,
}

impl<T: Clone + Send + 'static> FanOutState<T> {
    /// Wires the upstream once every branch is known.
    fn connect_if_complete(&mut self, builder: &mut Builder) -> Result<(), BuildError> {
        if self.branches.iter().any(Option::is_none) {
            return Ok(());
        }
        let Some(upstream) = self.upstream.take() else {
            return Ok(());
        };
        let mut per_branch: Vec<std::vec::IntoIter<Box<dyn Operator<T>>>> = self
            .branches
            .iter_mut()
            .filter_map(Option::take)
            .map(Vec::into_iter)
            .collect();
        let instances = (0..self.parallelism)
            .map(|_| {
                let downs: Vec<Downstream<T>> =
                    per_branch.iter_mut().filter_map(Iterator::next).collect();
                Box::new(FanOut {
                    downs,
                    copy: Batch::new(),
                }) as Box<dyn Operator<T>>
            })
            .collect();
        upstream(instances, builder)
    }
}

/// Hands every batch to each of its branches.
struct FanOut<T> {
    downs: Vec<Downstream<T>>,
    copy: Batch<T>,
}

impl<T: Clone + Send> Operator<T> for FanOut<T> {
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let Some((last, others)) = self.downs.split_last_mut() else {
            return Ok(());
        };
        for down in others {
            self.copy.clear();
            let (items, times) = self.copy.parts_mut();
            items.extend(batch.items().iter().cloned());
            times.extend_from_slice(batch.times());
            down.on_batch(&mut self.copy)?;
            // What a branch left in the copy goes now, not at the next batch.
            self.copy.clear();
        }
        last.on_batch(batch)
    }

    fn on_tick(&mut self, now: Duration) -> Result<Option<Duration>, OperatorError> {
        let mut earliest: Option<Duration> = None;
        for down in &mut self.downs {
            if let Some(d) = down.on_tick(now)? {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        Ok(earliest)
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.downs
            .iter_mut()
            .try_for_each(|d| d.on_watermark(watermark))
    }

    fn on_idle(&mut self) -> OperatorResult {
        self.downs.iter_mut().try_for_each(|d| d.on_idle())
    }

    fn on_barrier(&mut self, barrier: sluice_runtime::Barrier) -> OperatorResult {
        self.downs
            .iter_mut()
            .try_for_each(|d| d.on_barrier(barrier))
    }

    fn on_end(&mut self) -> OperatorResult {
        self.downs.iter_mut().try_for_each(|d| d.on_end())
    }
    /// Several: every hook passes its signal to each by hand.
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}

/// A branch nobody consumed: takes its events and does nothing with them
/// (as a stream without a sink does).
struct Unused;

impl<T> Operator<T> for Unused {
    fn on_batch(&mut self, _batch: &mut Batch<T>) -> OperatorResult {
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        None
    }
}

impl<T: Clone + Send + 'static> Stream<T> {
    /// Splits the stream into `branches` streams that each receive every
    /// event; several consumers of one stream. The branches stay on this
    /// stream's stage (a `batch` on a branch starts its own stage). A
    /// branch that ends in no sink receives and drops its copies.
    ///
    /// ```
    /// use sluice::prelude::*;
    ///
    /// let p = Pipeline::new();
    /// let mut branches = p.source(IterSource::new(1..=4)).fan_out(2).into_iter();
    /// let (a, b) = (branches.next().unwrap(), branches.next().unwrap());
    /// let doubled = a.map(|x| x * 2).collect();
    /// let odd = b.filter(|x| x % 2 == 1).collect();
    /// p.run()?;
    /// assert_eq!(doubled.take(), vec![2, 4, 6, 8]);
    /// assert_eq!(odd.take(), vec![1, 3]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn fan_out(self, branches: usize) -> Vec<Stream<T>> {
        let branches = branches.max(1);
        let StreamParts {
            plan,
            stage,
            exact_len,
            parallelism,
            source_stage,
            connect,
        } = self.into_parts();
        let state = Rc::new(RefCell::new(FanOutState {
            upstream: Some(connect),
            branches: (0..branches).map(|_| None).collect(),
            parallelism,
        }));
        let finish = state.clone();
        plan.borrow_mut().add_finalizer(Box::new(move |builder| {
            let mut state = finish.borrow_mut();
            if state.upstream.is_none() {
                return Ok(());
            }
            let parallelism = state.parallelism;
            for branch in state.branches.iter_mut().filter(|b| b.is_none()) {
                *branch = Some(
                    (0..parallelism)
                        .map(|_| Box::new(Unused) as Box<dyn Operator<T>>)
                        .collect(),
                );
            }
            state.connect_if_complete(builder)
        }));
        (0..branches)
            .map(|index| {
                let state = state.clone();
                Stream::new(
                    plan.clone(),
                    stage.clone(),
                    exact_len,
                    parallelism,
                    source_stage,
                    Box::new(move |downs: Instances<T>, builder: &mut Builder| {
                        let mut state = state.borrow_mut();
                        state.branches[index] = Some(downs);
                        state.connect_if_complete(builder)
                    }),
                )
            })
            .collect()
    }
}
