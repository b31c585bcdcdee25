//! `Over` and `AggregateExt::over`: an aggregate applied to a value taken from each event.

use super::Aggregate;
use std::marker::PhantomData;

/// An aggregate applied to a value taken from each event; see
/// [`AggregateExt::over`].
pub struct Over<A, F, V> {
    aggregate: A,
    extract: F,
    _value: PhantomData<fn() -> V>,
}

impl<A: Clone, F: Clone, V> Clone for Over<A, F, V> {
    fn clone(&self) -> Self {
        Self {
            aggregate: self.aggregate.clone(),
            extract: self.extract.clone(),
            _value: PhantomData,
        }
    }
}

impl<T, V, A, F> Aggregate<T> for Over<A, F, V>
where
    A: Aggregate<V>,
    F: Fn(&T) -> V + Send + Sync,
{
    type Acc = A::Acc;
    type Output = A::Output;

    fn init(&self) -> A::Acc {
        self.aggregate.init()
    }
    #[inline]
    fn update(&self, acc: &mut A::Acc, value: &T) {
        self.aggregate.update(acc, &(self.extract)(value));
    }
    fn merge(&self, acc: &mut A::Acc, other: &A::Acc) {
        self.aggregate.merge(acc, other);
    }
    fn finish(&self, acc: &A::Acc) -> A::Output {
        self.aggregate.finish(acc)
    }
}

/// Combinators on every aggregate.
pub trait AggregateExt: Sized {
    /// Applies the aggregate to a value taken from each event.
    ///
    /// ```
    /// use sluice_core::aggregate::{Aggregate, AggregateExt, Max, Mean};
    ///
    /// struct Reading { sensor: &'static str, celsius: f64 }
    /// let readings = [
    ///     Reading { sensor: "a", celsius: 20.0 },
    ///     Reading { sensor: "b", celsius: 24.0 },
    /// ];
    /// let stats = (Mean.over(|r: &Reading| r.celsius), Max.over(|r: &Reading| r.celsius));
    /// let acc = stats.fold(&readings);
    /// assert_eq!(stats.finish(&acc), (Some(22.0), Some(24.0)));
    /// # let _ = readings[0].sensor;
    /// ```
    fn over<T, V, F>(self, extract: F) -> Over<Self, F, V>
    where
        F: Fn(&T) -> V,
    {
        Over {
            aggregate: self,
            extract,
            _value: PhantomData,
        }
    }
}

impl<A> AggregateExt for A {}
