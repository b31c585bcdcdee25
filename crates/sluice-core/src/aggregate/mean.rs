//! `Mean`: the arithmetic mean, kept as a sum and a count so that merges are exact.

use super::{Aggregate, CompensatedSum};

/// The arithmetic mean of `f64` values, `None` for no values. (For integers,
/// `Mean.over(|x: &i64| *x as f64)`.)
///
/// The state is `(sum, count)`; merging adds both. Averaging the means of
/// micro-batches is only right when the batches are of equal size; merging
/// sums and counts is right for any cut.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Mean};
///
/// // Batches of 1 and 3 values: the mean of the means would be 2.5.
/// let mut acc = Mean.fold(&[1.0]);
/// Mean.merge(&mut acc, &Mean.fold(&[2.0, 3.0, 4.0]));
/// assert_eq!(Mean.finish(&acc), Some(2.5));
/// let mut acc = Mean.fold(&[4.0]);
/// Mean.merge(&mut acc, &Mean.fold(&[1.0, 1.0, 1.0]));
/// assert_eq!(Mean.finish(&acc), Some(1.75));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Mean;

/// The state of a [`Mean`]: a sum and a count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanAcc<S> {
    /// The sum of the values.
    pub sum: S,
    /// How many values.
    pub count: u64,
}

impl Aggregate<f64> for Mean {
    type Acc = MeanAcc<CompensatedSum>;
    type Output = Option<f64>;

    fn init(&self) -> Self::Acc {
        MeanAcc::default()
    }
    #[inline]
    fn update(&self, acc: &mut Self::Acc, value: &f64) {
        acc.sum.add(*value);
        acc.count += 1;
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        acc.sum.merge(&other.sum);
        acc.count += other.count;
    }
    fn finish(&self, acc: &Self::Acc) -> Option<f64> {
        (acc.count > 0).then(|| acc.sum.value() / acc.count as f64)
    }
}
