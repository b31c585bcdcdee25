//! Keyed streams: per-key aggregates, processing and windows, and the hash that routes keys.

use crate::ops::{KeyedMerge, KeyedPartial, KeyedPreAggregate, KeyedProcess, KeyedProcessOperator};
use crate::window::{Window, WindowedStream};
use crate::Stream;
use rustc_hash::{FxBuildHasher, FxHashMap};
use sluice_core::{Aggregate, Batch};
use sluice_runtime::FlushPolicy;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

/// A stream grouped by key, made by [`Stream::key_by`]. Per-key work runs
/// on the pipeline's workers: events are exchanged by a hash of their key,
/// so all events of a key meet on one worker.
pub struct KeyedStream<K, T> {
    pub(crate) stream: Stream<T>,
    pub(crate) key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub(crate) exchange_policy: FlushPolicy,
}

impl<K, T> KeyedStream<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(stream: Stream<T>, key: impl Fn(&T) -> K + Send + Sync + 'static) -> Self {
        Self {
            stream,
            key: Arc::new(key),
            exchange_policy: FlushPolicy::Forward,
        }
    }

    /// How the exchange between workers batches what it sends to each
    /// worker (default `FlushPolicy::Forward`: as it comes, one batch per
    /// incoming batch and worker). `Batches(k)` is not valid here (the
    /// number of events per worker is not known).
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::time::Duration;
    /// let p = Pipeline::new();
    /// let counts = p
    ///     .source(IterSource::new(0..100_u32))
    ///     .key_by(|x| x % 3)
    ///     .batch(FlushPolicy::CountOrInterval(1024, Duration::from_millis(5)))
    ///     .aggregate(Count)
    ///     .collect();
    /// p.run()?;
    /// assert_eq!(counts.len(), 3);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn batch(mut self, policy: FlushPolicy) -> Self {
        self.exchange_policy = policy;
        self
    }

    /// One mergeable aggregate per key over the whole stream, emitted as
    /// `(key, result)` at the end of the input. Each batch is pre-aggregated
    /// per key before the exchange between workers; the workers merge.
    /// Results of different keys come in no particular order.
    ///
    /// ```
    /// use sluice::prelude::*;
    ///
    /// let p = Pipeline::new();
    /// let stats = p
    ///     .source(IterSource::new([("a", 1.0), ("b", 5.0), ("a", 3.0)]))
    ///     .key_by(|(k, _)| *k)
    ///     .aggregate((Count, Mean.over(|(_, v): &(&str, f64)| *v)))
    ///     .collect();
    /// p.run()?;
    /// let mut stats = stats.take();
    /// stats.sort_by_key(|(k, _)| *k);
    /// assert_eq!(stats, vec![("a", (2, Some(2.0))), ("b", (1, Some(5.0)))]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn aggregate<A>(self, aggregate: A) -> Stream<(K, A::Output)>
    where
        A: Aggregate<T> + Clone + 'static,
        A::Output: Send + 'static,
    {
        let key = self.key;
        let policy = self.exchange_policy;
        let pre = aggregate.clone();
        let partials = self.stream.fuse(None, move |down| {
            let key = key.clone();
            Box::new(KeyedPreAggregate {
                key: move |event: &T| key(event),
                aggregate: pre.clone(),
                partials: FxHashMap::default(),
                out: Batch::new(),
                down,
            })
        });
        partials
            .exchange(
                Arc::new(|partial: &KeyedPartial<K, A::Acc>| key_hash(&partial.0)),
                policy,
            )
            .fuse(None, move |down| {
                Box::new(KeyedMerge {
                    aggregate: aggregate.clone(),
                    index: FxHashMap::default(),
                    states: Vec::new(),
                    down,
                    _in: PhantomData,
                })
            })
    }

    /// Processes each key's events with a [`KeyedProcess`]: per-key state,
    /// any output, a last word at the end of the input. Joins are built on it.
    pub fn process<P>(self, process: P) -> Stream<P::Output>
    where
        P: KeyedProcess<K, T>,
    {
        let key = self.key;
        self.stream
            .exchange_by_key(key.clone(), self.exchange_policy)
            .fuse(None, move |down| {
                Box::new(KeyedProcessOperator {
                    key: key.clone(),
                    process: process.clone(),
                    states: FxHashMap::default(),
                    out: Batch::new(),
                    down,
                })
            })
    }

    /// Groups each key's events into windows: tumbling, sliding, session,
    /// count, or a global window with a custom trigger.
    ///
    /// ```
    /// use sluice::prelude::*;
    /// use std::time::Duration;
    ///
    /// let p = Pipeline::new();
    /// let windows = p
    ///     .source(IterSource::new([("a", 100), ("a", 900), ("b", 1500)]).with_event_time(|e| e.1))
    ///     .key_by(|e| e.0)
    ///     .window(Window::tumbling(Duration::from_secs(1)))
    ///     .aggregate(Count);
    /// let results = windows.results.collect();
    /// p.run()?;
    /// let mut rows: Vec<_> = results.take().into_iter().map(|r| (r.key, r.window_start, r.value)).collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![("a", 0, 2), ("b", 1000, 1)]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn window(self, window: Window) -> WindowedStream<K, T>
    where
        T: Clone,
    {
        WindowedStream::new(self, window)
    }
}

/// Hashes a key for the exchange between workers.
///
/// The Fx hash is mixed again (MurmurHash3's 64-bit finaliser) because the
/// workers keep their keys in Fx hash maps too: routing by the Fx hash
/// itself would give every key of a worker the same low bits, the bits a
/// hash map picks its buckets by, so a worker of two would use half its
/// buckets and probe twice as long (W1 on two workers spent 3x the window
/// time of one).
pub(crate) fn key_hash<K: Hash>(key: &K) -> u64 {
    let mut h = FxBuildHasher.hash_one(key);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
