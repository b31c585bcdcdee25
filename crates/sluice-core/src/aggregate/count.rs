//! `Count`: the number of values, of any type.

use super::Aggregate;

/// The number of values, of any type.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Count};
///
/// let acc = Count.fold(&["a", "b", "c"]);
/// assert_eq!(Aggregate::<&str>::finish(&Count, &acc), 3);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<T: ?Sized> Aggregate<T> for Count {
    type Acc = u64;
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }
    #[inline]
    fn update(&self, acc: &mut u64, _value: &T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: &u64) {
        *acc += *other;
    }
    fn finish(&self, acc: &u64) -> u64 {
        *acc
    }
}
