use crate::ops::KeyedAggregate;
use crate::Stream;
use rustc_hash::FxHashMap;
use sluice_core::Aggregate;
use std::hash::Hash;

/// A stream grouped by key, made by [`Stream::key_by`].
pub struct KeyedStream<K, T> {
    stream: Stream<T>,
    key: Box<dyn FnMut(&T) -> K + Send>,
}

impl<K, T> KeyedStream<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(stream: Stream<T>, key: impl FnMut(&T) -> K + Send + 'static) -> Self {
        Self {
            stream,
            key: Box::new(key),
        }
    }

    /// One mergeable aggregate per key over the whole stream, emitted as
    /// `(key, result)` at the end of the input, in the order the keys first
    /// appeared.
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
    /// assert_eq!(stats.take(), vec![("a", (2, Some(2.0))), ("b", (1, Some(5.0)))]);
    /// # Ok::<(), sluice::Error>(())
    /// ```
    pub fn aggregate<A>(self, aggregate: A) -> Stream<(K, A::Output)>
    where
        A: Aggregate<T> + 'static,
        A::Output: Send + 'static,
    {
        let key = self.key;
        self.stream.fuse_keyed(move |down| {
            Box::new(KeyedAggregate {
                key,
                aggregate,
                index: FxHashMap::default(),
                states: Vec::new(),
                down,
            })
        })
    }
}
