//! `Min` and `Max`: the smallest and largest value, skipping those not comparable with themselves.

use super::Aggregate;
use std::fmt::Debug;

/// The smallest value, `None` for no values. Values not comparable with
/// themselves (floating-point NaN) are skipped.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Min};
///
/// assert_eq!(Min.finish(&Min.fold(&[3.0, f64::NAN, 1.5])), Some(1.5));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Min;

/// The largest value, `None` for no values. Values not comparable with
/// themselves (floating-point NaN) are skipped.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Max};
///
/// assert_eq!(Max.finish(&Max.fold(&[3_i64, 9, 1])), Some(9));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Max;

#[inline]
fn keep_if<T: PartialOrd + Copy>(acc: &mut Option<T>, value: T, better: fn(&T, &T) -> bool) {
    if value.partial_cmp(&value).is_none() {
        return;
    }
    match acc {
        Some(current) if !better(&value, current) => {}
        _ => *acc = Some(value),
    }
}

macro_rules! extremum {
    ($name:ident, $better:expr) => {
        impl<T> Aggregate<T> for $name
        where
            T: PartialOrd + Copy + Debug + Send + Sync + 'static,
        {
            type Acc = Option<T>;
            type Output = Option<T>;

            fn init(&self) -> Option<T> {
                None
            }
            #[inline]
            fn update(&self, acc: &mut Option<T>, value: &T) {
                keep_if(acc, *value, $better);
            }
            fn merge(&self, acc: &mut Option<T>, other: &Option<T>) {
                if let Some(value) = other {
                    keep_if(acc, *value, $better);
                }
            }
            fn finish(&self, acc: &Option<T>) -> Option<T> {
                *acc
            }
        }
    };
}

extremum!(Min, |a, b| a < b);
extremum!(Max, |a, b| a > b);
