//! `Sum`: compensated for `f64`, exact and wrapping for integers.

use super::{Aggregate, CompensatedSum};

/// The sum of the values.
///
/// For `f64` the sum is compensated ([`CompensatedSum`]). For integers it is
/// exact, and on overflow it wraps; wrapping addition is associative, so the
/// result still does not depend on how the input was cut.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Sum};
///
/// // Sum is an aggregate over several types: name the one you mean.
/// let ints: &dyn Aggregate<i64, Acc = i64, Output = i64> = &Sum;
/// assert_eq!(ints.finish(&ints.fold(&[1, 2, 3])), 6);
/// let acc = Sum.fold(&[0.1_f64, 0.2, 0.3]);
/// assert_eq!(Aggregate::<f64>::finish(&Sum, &acc), 0.6); // a plain f64 sum gives 0.6000000000000001
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Sum;

impl Aggregate<f64> for Sum {
    type Acc = CompensatedSum;
    type Output = f64;

    fn init(&self) -> CompensatedSum {
        CompensatedSum::default()
    }
    #[inline]
    fn update(&self, acc: &mut CompensatedSum, value: &f64) {
        acc.add(*value);
    }
    fn merge(&self, acc: &mut CompensatedSum, other: &CompensatedSum) {
        acc.merge(other);
    }
    fn finish(&self, acc: &CompensatedSum) -> f64 {
        acc.value()
    }
}

macro_rules! integer_sum {
    ($($t:ty),*) => {$(
        impl Aggregate<$t> for Sum {
            type Acc = $t;
            type Output = $t;

            fn init(&self) -> $t {
                0
            }
            #[inline]
            fn update(&self, acc: &mut $t, value: &$t) {
                *acc = acc.wrapping_add(*value);
            }
            fn merge(&self, acc: &mut $t, other: &$t) {
                *acc = acc.wrapping_add(*other);
            }
            fn finish(&self, acc: &$t) -> $t {
                *acc
            }
        }
    )*};
}

integer_sum!(i32, i64, i128, u32, u64, u128, usize);
