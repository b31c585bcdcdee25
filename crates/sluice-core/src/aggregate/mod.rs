//! Mergeable aggregates: the monoids that make "process each micro-batch, then
//! merge" exact.
//!
//! An [`Aggregate`] folds values into an accumulator (`init`, `update`), merges
//! two accumulators (`merge`) and turns an accumulator into a result
//! (`finish`). Because `merge` is associative and commutative, the result does
//! not depend on how the input was cut into batches, on how many workers saw a
//! share of it, or on the order partial results were merged in: the **split
//! invariance** that Sluice's property tests check.
//!
//! Built-ins: [`Count`], [`Sum`] (compensated for floats, wrapping and exact
//! for integers), [`Mean`] (merged from sum and count, never by averaging
//! means), [`Min`], [`Max`], [`Variance`] and [`StdDev`] (Welford updates, Chan
//! merge). Tuples of aggregates over the same input are aggregates, and
//! [`AggregateExt::over`] applies an aggregate to a field of a larger event.
//!
//! Writing your own:
//!
//! ```
//! use sluice_core::aggregate::Aggregate;
//!
//! /// Counts the values above a threshold.
//! struct CountAbove(f64);
//!
//! impl Aggregate<f64> for CountAbove {
//!     type Acc = u64;
//!     type Output = u64;
//!     fn init(&self) -> u64 { 0 }
//!     fn update(&self, acc: &mut u64, value: &f64) { *acc += u64::from(*value > self.0) }
//!     fn merge(&self, acc: &mut u64, other: &u64) { *acc += *other }
//!     fn finish(&self, acc: &u64) -> u64 { *acc }
//! }
//!
//! let agg = CountAbove(0.5);
//! let mut left = agg.fold(&[0.1, 0.7]);
//! let right = agg.fold(&[0.9, 0.6, 0.2]);
//! agg.merge(&mut left, &right);
//! assert_eq!(agg.finish(&left), 3);
//! ```

mod compensated;
mod count;
mod extrema;
mod mean;
mod moments;
mod over;
mod sum;
mod tuple;

pub use compensated::CompensatedSum;
pub use count::Count;
pub use extrema::{Max, Min};
pub use mean::{Mean, MeanAcc};
pub use moments::{Moments, StdDev, Variance};
pub use over::{AggregateExt, Over};
pub use sum::Sum;

use std::fmt::Debug;

/// A mergeable aggregate over values of type `In`.
///
/// Laws every implementation keeps (the property tests check the built-ins):
/// - `merge` is associative and commutative, and `init()` is its identity;
/// - folding a sequence equals merging the folds of any cut of it.
///
/// For floating-point aggregates the laws hold to rounding; the built-ins keep
/// it within a relative 1e-12 (see the crate's property tests).
pub trait Aggregate<In: ?Sized>: Send + Sync {
    /// The running state.
    type Acc: Clone + Debug + Send + Sync + 'static;
    /// The final value.
    type Output;

    /// The accumulator of no values.
    fn init(&self) -> Self::Acc;
    /// Folds one value into `acc`.
    fn update(&self, acc: &mut Self::Acc, value: &In);
    /// Folds `other` (the state of other values) into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The result for the values folded into `acc`.
    fn finish(&self, acc: &Self::Acc) -> Self::Output;

    /// The accumulator of a whole slice: the batch algorithm of one micro-batch.
    fn fold(&self, values: &[In]) -> Self::Acc
    where
        In: Sized,
    {
        let mut acc = self.init();
        for value in values {
            self.update(&mut acc, value);
        }
        acc
    }
}
