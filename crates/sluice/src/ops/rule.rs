//! Rules: an action run on the events a trigger fires for, and the counters of both.

use super::Downstream;
use sluice_core::Batch;
use sluice_runtime::{Operator, OperatorResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of a rule, updated once per batch.
#[derive(Debug, Default)]
pub struct RuleCounters {
    evaluated: AtomicU64,
    fired: AtomicU64,
}

impl RuleCounters {
    /// Events the trigger was evaluated on.
    pub fn evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }
    /// Events the trigger fired on (and the action ran for).
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }
}

/// `trigger -> action`: the action runs on, and only on, the events the
/// trigger fires for; its outputs flow on.
pub(crate) struct Rule<T, U, P, A> {
    pub trigger: P,
    pub action: A,
    pub counters: Arc<RuleCounters>,
    pub out: Batch<U>,
    pub down: Downstream<U>,
    pub _in: std::marker::PhantomData<fn(T)>,
}

impl<T, U, P, A> Operator<T> for Rule<T, U, P, A>
where
    U: Send,
    P: FnMut(&T) -> bool + Send,
    A: FnMut(T) -> U + Send,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        let evaluated = batch.len() as u64;
        for (item, time) in batch.drain() {
            if (self.trigger)(&item) {
                self.out.push((self.action)(item), time);
            }
        }
        self.counters
            .evaluated
            .fetch_add(evaluated, Ordering::Relaxed);
        self.counters
            .fired
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        crate::ops::send(&mut self.out, &mut self.down)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
