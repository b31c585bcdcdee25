//! A seeded source of pseudo-random values uniform in `[0, 1)`, the same on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_core::Batch;
use sluice_runtime::{BoxError, Source, SourceStatus};

/// `count` pseudo-random values uniform in `[0, 1)` from a fixed seed.
///
/// The generator is ChaCha8, whose output is specified and stable across
/// platforms and versions, so a seed names the same data everywhere. Event
/// time `i` (ms) is given to the `i`-th value.
///
/// ```
/// use sluice_connectors::UniformSource;
/// use sluice_runtime::{Batch, Source};
///
/// let mut a = Batch::new();
/// let mut b = Batch::new();
/// UniformSource::new(42, 5).poll(&mut a, 10)?;
/// UniformSource::new(42, 5).poll(&mut b, 10)?;
/// assert_eq!(a, b);
/// assert!(a.items().iter().all(|x| (0.0..1.0).contains(x)));
/// # Ok::<(), sluice_runtime::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UniformSource {
    rng: ChaCha8Rng,
    next: u64,
    count: u64,
}

impl UniformSource {
    /// `count` values from `seed`.
    pub fn new(seed: u64, count: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next: 0,
            count,
        }
    }

    /// All the values at once, for checking results against.
    pub fn values(seed: u64, count: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count).map(|_| rng.random::<f64>()).collect()
    }
}

impl Source<f64> for UniformSource {
    fn poll(&mut self, out: &mut Batch<f64>, max: usize) -> Result<SourceStatus, BoxError> {
        let end = self.count.min(self.next.saturating_add(max as u64));
        for i in self.next..end {
            out.push(
                self.rng.random::<f64>(),
                i64::try_from(i).unwrap_or(i64::MAX),
            );
        }
        self.next = end;
        Ok(if self.next == self.count {
            SourceStatus::Exhausted
        } else {
            SourceStatus::Ready
        })
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.count - self.next)
    }
}
