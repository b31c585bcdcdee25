//! Cutting an input into micro-batches, as pure functions over lengths and
//! times. The runtime's flush policies apply the same rules to a stream.
//!
//! - [`size_ranges`]: `n` events per batch, the last one possibly shorter;
//! - [`balanced_ranges`]: `k` batches whose sizes differ by at most one, the
//!   longer ones first, exactly as `numpy.array_split(data, k)`;
//! - [`event_time_ranges`]: a new batch whenever an event falls in another
//!   event-time interval `[m * d, (m + 1) * d)` than the previous one.
//!
//! ```
//! use sluice_core::cut::{balanced_ranges, size_ranges};
//!
//! let by_size: Vec<_> = size_ranges(10, 4)?.collect();
//! assert_eq!(by_size, vec![0..4, 4..8, 8..10]);
//! let balanced: Vec<_> = balanced_ranges(10, 4)?.collect();
//! assert_eq!(balanced, vec![0..3, 3..6, 6..8, 8..10]);
//! # Ok::<(), sluice_core::Error>(())
//! ```

use crate::{Error, Result, Timestamp};
use std::ops::Range;

/// Ranges of `n` consecutive indices covering `0..len`; the last may be shorter.
pub fn size_ranges(len: usize, n: usize) -> Result<impl Iterator<Item = Range<usize>>> {
    if n == 0 {
        return Err(Error::ZeroBatchSize);
    }
    Ok((0..len)
        .step_by(n)
        .map(move |start| start..(start + n).min(len)))
}

/// `k` ranges covering `0..len` whose lengths differ by at most one, the
/// longer first. As `numpy.array_split`, when `k > len` the last ranges are
/// empty.
pub fn balanced_ranges(len: usize, k: usize) -> Result<impl Iterator<Item = Range<usize>>> {
    let sizes = BalancedSizes::new(len as u64, k as u64)?;
    let mut start = 0usize;
    Ok(sizes.map(move |size| {
        let range = start..start + size as usize;
        start = range.end;
        range
    }))
}

/// The sizes of `k` balanced batches of `len` events, in order.
///
/// ```
/// use sluice_core::cut::BalancedSizes;
///
/// let sizes: Vec<u64> = BalancedSizes::new(100_000, 1000)?.collect();
/// assert_eq!(sizes.len(), 1000);
/// assert!(sizes.iter().all(|&s| s == 100));
/// let sizes: Vec<u64> = BalancedSizes::new(7, 3)?.collect();
/// assert_eq!(sizes, vec![3, 2, 2]);
/// # Ok::<(), sluice_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BalancedSizes {
    base: u64,
    longer: u64,
    remaining: u64,
    index: u64,
}

impl BalancedSizes {
    /// Sizes of `k` balanced batches of `len` events.
    pub fn new(len: u64, k: u64) -> Result<Self> {
        if k == 0 {
            return Err(Error::ZeroBatchCount);
        }
        Ok(Self {
            base: len / k,
            longer: len % k,
            remaining: k,
            index: 0,
        })
    }
}

impl Iterator for BalancedSizes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let size = self.base + u64::from(self.index < self.longer);
        self.index += 1;
        Some(size)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// The event-time interval an event belongs to: `m` for `[m * d, (m + 1) * d)`.
///
/// Rounds towards negative infinity, so times before the epoch fall in the
/// right interval too.
#[inline]
pub fn interval_index(time: Timestamp, interval_ms: i64) -> i64 {
    time.div_euclid(interval_ms)
}

/// Ranges of consecutive events in the same event-time interval of
/// `interval_ms` milliseconds. Out-of-order times start a new range whenever
/// the interval changes, so every range holds events of one interval only.
///
/// ```
/// use sluice_core::cut::event_time_ranges;
///
/// let times = [0, 400, 999, 1000, 1500, 2100];
/// let ranges = event_time_ranges(&times, 1000)?;
/// assert_eq!(ranges, vec![0..3, 3..5, 5..6]);
/// # Ok::<(), sluice_core::Error>(())
/// ```
pub fn event_time_ranges(times: &[Timestamp], interval_ms: i64) -> Result<Vec<Range<usize>>> {
    if interval_ms <= 0 {
        return Err(Error::ZeroInterval {
            what: "event-time interval",
        });
    }
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 1..times.len() {
        if interval_index(times[i], interval_ms) != interval_index(times[i - 1], interval_ms) {
            ranges.push(start..i);
            start = i;
        }
    }
    if start < times.len() {
        ranges.push(start..times.len());
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_matches_numpy_array_split() {
        // numpy.array_split(range(10), 3) -> sizes [4, 3, 3]
        let sizes: Vec<usize> = balanced_ranges(10, 3).unwrap().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        // more batches than elements -> trailing empty batches
        let sizes: Vec<usize> = balanced_ranges(2, 4).unwrap().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![1, 1, 0, 0]);
    }

    #[test]
    fn zero_arguments_are_errors() {
        assert_eq!(size_ranges(5, 0).err(), Some(Error::ZeroBatchSize));
        assert_eq!(balanced_ranges(5, 0).err(), Some(Error::ZeroBatchCount));
        assert!(event_time_ranges(&[1], 0).is_err());
    }

    #[test]
    fn negative_times_fall_in_their_interval() {
        assert_eq!(interval_index(-1, 1000), -1);
        assert_eq!(interval_index(-1000, 1000), -1);
        assert_eq!(interval_index(999, 1000), 0);
    }
}
