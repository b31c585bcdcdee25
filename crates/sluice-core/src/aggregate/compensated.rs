//! A floating-point sum with Neumaier's compensation, the state of `Sum` and `Mean` over `f64`.

/// A floating-point sum with Neumaier's compensation.
///
/// Keeps the rounding error of every addition in a second term, so the sum of
/// millions of values is as accurate as if it were computed in double the
/// precision. Merging two sums adds their main terms with compensation and
/// their error terms directly, so the merged result does not depend on the cut.
///
/// ```
/// use sluice_core::aggregate::CompensatedSum;
///
/// let mut s = CompensatedSum::default();
/// for x in [1e16, 1.0, -1e16] {
///     s.add(x);
/// }
/// assert_eq!(s.value(), 1.0); // a plain f64 sum gives 0.0
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// Adds one value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// Adds another compensated sum.
    #[inline]
    pub fn merge(&mut self, other: &CompensatedSum) {
        self.add(other.sum);
        self.compensation += other.compensation;
    }

    /// The sum.
    #[inline]
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}
