//! `Variance` and `StdDev`, and their state: count, mean and sum of squared deviations.

use super::Aggregate;

/// Count, mean and sum of squared deviations: the state of [`Variance`] and
/// [`StdDev`].
///
/// Values are folded in with Welford's update and states are merged with
/// Chan et al.'s pairwise formula, both numerically stable: no
/// `sum(x^2) - sum(x)^2` cancellation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// How many values.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// The sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Welford's update with one value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Chan's merge with another state.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n_a = self.count as f64;
        let n_b = other.count as f64;
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * (n_b / n);
        self.m2 += other.m2 + delta * delta * (n_a * n_b / n);
        self.count += other.count;
    }

    /// The variance with `ddof` delta degrees of freedom (0: population,
    /// 1: sample); `None` when there are not more than `ddof` values.
    pub fn variance(&self, ddof: u64) -> Option<f64> {
        (self.count > ddof).then(|| (self.m2 / (self.count - ddof) as f64).max(0.0))
    }
}

/// The variance of the values: of a sample (divided by n - 1, SQL's
/// `var_samp`, `None` for fewer than two values) or of a population (divided
/// by n, `None` for no values).
///
/// ```
/// use sluice_core::aggregate::{Aggregate, Variance};
///
/// let data = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
/// assert_eq!(Variance::Population.finish(&Variance::Population.fold(&data)), Some(4.0));
/// let s = Variance::Sample.finish(&Variance::Sample.fold(&data)).unwrap();
/// assert!((s - 32.0 / 7.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Variance {
    /// Divided by n - 1.
    #[default]
    Sample,
    /// Divided by n.
    Population,
}

impl Variance {
    fn ddof(self) -> u64 {
        match self {
            Variance::Sample => 1,
            Variance::Population => 0,
        }
    }
}

/// The standard deviation: the square root of [`Variance`], of a sample or of
/// a population.
///
/// ```
/// use sluice_core::aggregate::{Aggregate, StdDev};
///
/// let data = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
/// assert_eq!(StdDev::Population.finish(&StdDev::Population.fold(&data)), Some(2.0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StdDev {
    /// Divided by n - 1.
    #[default]
    Sample,
    /// Divided by n.
    Population,
}

impl Aggregate<f64> for Variance {
    type Acc = Moments;
    type Output = Option<f64>;

    fn init(&self) -> Moments {
        Moments::default()
    }
    #[inline]
    fn update(&self, acc: &mut Moments, value: &f64) {
        acc.add(*value);
    }
    fn merge(&self, acc: &mut Moments, other: &Moments) {
        acc.merge(other);
    }
    fn finish(&self, acc: &Moments) -> Option<f64> {
        acc.variance(self.ddof())
    }
}

impl Aggregate<f64> for StdDev {
    type Acc = Moments;
    type Output = Option<f64>;

    fn init(&self) -> Moments {
        Moments::default()
    }
    #[inline]
    fn update(&self, acc: &mut Moments, value: &f64) {
        acc.add(*value);
    }
    fn merge(&self, acc: &mut Moments, other: &Moments) {
        acc.merge(other);
    }
    fn finish(&self, acc: &Moments) -> Option<f64> {
        let kind = match self {
            StdDev::Sample => Variance::Sample,
            StdDev::Population => Variance::Population,
        };
        acc.variance(kind.ddof()).map(f64::sqrt)
    }
}
