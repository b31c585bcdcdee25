//! `KeyedProcess`: keyed, stateful processing with one state per key, and the operator running it.

use super::Downstream;
use rustc_hash::FxHashMap;
use sluice_core::{Batch, Timestamp};
use sluice_runtime::{Operator, OperatorResult};
use std::hash::Hash;
use std::sync::Arc;

/// Keyed, stateful processing of events: the building block for joins and
/// custom per-key logic. One `State` per key lives on the worker the key is
/// exchanged to.
///
/// ```
/// use sluice::prelude::*;
/// use sluice::{Batch, KeyedProcess, Timestamp};
///
/// /// Emits a key's running total every third event, and what is left at the end.
/// #[derive(Clone)]
/// struct EveryThird;
/// impl KeyedProcess<char, (char, u32)> for EveryThird {
///     type State = (u32, u32);
///     type Output = (char, u32);
///     fn on_event(&self, key: &char, state: &mut (u32, u32), event: (char, u32), time: Timestamp, out: &mut Batch<(char, u32)>) {
///         state.0 += 1;
///         state.1 += event.1;
///         if state.0 % 3 == 0 {
///             out.push((*key, state.1), time);
///         }
///     }
///     fn on_end(&self, key: &char, state: &mut (u32, u32), out: &mut Batch<(char, u32)>) {
///         if state.0 % 3 != 0 {
///             out.push((*key, state.1), 0);
///         }
///     }
/// }
///
/// let p = Pipeline::new();
/// let out = p
///     .source(IterSource::new([('a', 1), ('a', 2), ('a', 3), ('b', 5)]))
///     .key_by(|e| e.0)
///     .process(EveryThird)
///     .collect();
/// p.run()?;
/// let mut out = out.take();
/// out.sort();
/// assert_eq!(out, vec![('a', 6), ('b', 5)]);
/// # Ok::<(), sluice::Error>(())
/// ```
pub trait KeyedProcess<K, T>: Clone + Send + 'static {
    /// The state of one key.
    type State: Default + Send;
    /// What it emits.
    type Output: Send + 'static;

    /// One event of `key`, with its event time.
    fn on_event(
        &self,
        key: &K,
        state: &mut Self::State,
        event: T,
        time: Timestamp,
        out: &mut Batch<Self::Output>,
    );

    /// The input ended: emit what the key still holds.
    fn on_end(&self, _key: &K, _state: &mut Self::State, _out: &mut Batch<Self::Output>) {}
}

/// Runs a [`KeyedProcess`] on one worker's keys.
pub(crate) struct KeyedProcessOperator<K, T, P: KeyedProcess<K, T>> {
    pub key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub process: P,
    pub states: FxHashMap<K, P::State>,
    pub out: Batch<P::Output>,
    pub down: Downstream<P::Output>,
}

impl<K, T, P> Operator<T> for KeyedProcessOperator<K, T, P>
where
    K: Hash + Eq + Clone + Send,
    T: Send,
    P: KeyedProcess<K, T>,
{
    fn on_batch(&mut self, batch: &mut Batch<T>) -> OperatorResult {
        for (event, time) in batch.drain() {
            let key = (self.key)(&event);
            let state = self.states.entry(key.clone()).or_default();
            self.process
                .on_event(&key, state, event, time, &mut self.out);
        }
        super::send(&mut self.out, &mut self.down)
    }

    fn on_end(&mut self) -> OperatorResult {
        for (key, mut state) in self.states.drain() {
            self.process.on_end(&key, &mut state, &mut self.out);
        }
        super::send(&mut self.out, &mut self.down)?;
        self.down.on_end()
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
        Some(&mut self.down)
    }
}
