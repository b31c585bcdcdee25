//! Window assigners: which event-time windows an event belongs to.
//!
//! Windows are half-open, `[start, end)` in milliseconds. A tumbling window
//! of size `s` holds the events with `start <= t < start + s`, starts at
//! multiples of `s` (from the epoch); a sliding window of size `s` and slide
//! `d` starts at multiples of `d`, so each event is in `s / d` windows
//! (rounded up); a session window of gap `g` starts as `[t, t + g)` and
//! merges with every session it overlaps.
//!
//! ```
//! use sluice_core::window::TimeWindows;
//!
//! let tumbling = TimeWindows::tumbling(1000)?;
//! assert_eq!(tumbling.assign(1500).collect::<Vec<_>>(), vec![(1000, 2000)]);
//! let sliding = TimeWindows::sliding(1000, 500)?;
//! assert_eq!(sliding.assign(1500).collect::<Vec<_>>(), vec![(1500, 2500), (1000, 2000)]);
//! # Ok::<(), sluice_core::Error>(())
//! ```

use crate::{Error, Result, Timestamp};

/// Fixed-size windows: tumbling (slide = size) or sliding (hopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    slide: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size_ms` milliseconds.
    pub fn tumbling(size_ms: i64) -> Result<Self> {
        Self::sliding(size_ms, size_ms)
    }

    /// Windows of `size_ms` starting every `slide_ms` milliseconds.
    pub fn sliding(size_ms: i64, slide_ms: i64) -> Result<Self> {
        if size_ms <= 0 {
            return Err(Error::ZeroInterval {
                what: "window size",
            });
        }
        if slide_ms <= 0 {
            return Err(Error::ZeroInterval {
                what: "window slide",
            });
        }
        Ok(Self {
            size: size_ms,
            slide: slide_ms,
        })
    }

    /// The window size in ms.
    pub fn size(&self) -> i64 {
        self.size
    }

    /// The slide in ms (the size, for tumbling windows).
    pub fn slide(&self) -> i64 {
        self.slide
    }

    /// The windows `[start, end)` that hold an event at `time`, latest first.
    pub fn assign(&self, time: Timestamp) -> impl Iterator<Item = (Timestamp, Timestamp)> {
        let last_start = time.saturating_sub(time.rem_euclid(self.slide));
        let (size, slide) = (self.size, self.slide);
        // Checked arithmetic: event times at the ends of the i64 range must
        // not wrap around (they get the windows that fit).
        (0..)
            .map_while(move |i: i64| i.checked_mul(slide).and_then(|d| last_start.checked_sub(d)))
            // start + size > time, in 128 bits so that it cannot wrap.
            .take_while(move |start| i128::from(*start) + i128::from(size) > i128::from(time))
            .map(move |start| (start, start.saturating_add(size)))
    }

    /// The end of the last window that holds an event at `time`.
    pub fn last_end(&self, time: Timestamp) -> Timestamp {
        let last_start = time.saturating_sub(time.rem_euclid(self.slide));
        last_start.saturating_add(self.size)
    }
}

/// Session windows: activity separated by gaps of at least `gap` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap_ms` milliseconds without events.
    pub fn with_gap(gap_ms: i64) -> Result<Self> {
        if gap_ms <= 0 {
            return Err(Error::ZeroInterval {
                what: "session gap",
            });
        }
        Ok(Self { gap: gap_ms })
    }

    /// The gap in ms.
    pub fn gap(&self) -> i64 {
        self.gap
    }

    /// The session an event at `time` opens on its own: `[time, time + gap)`.
    pub fn assign(&self, time: Timestamp) -> (Timestamp, Timestamp) {
        (time, time.saturating_add(self.gap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_times_and_slides_that_do_not_divide_the_size() {
        let w = TimeWindows::tumbling(1000).unwrap();
        assert_eq!(w.assign(-1).collect::<Vec<_>>(), vec![(-1000, 0)]);
        let w = TimeWindows::sliding(1000, 300).unwrap();
        // starts at multiples of 300 in (t - 1000, t]
        assert_eq!(
            w.assign(1000).collect::<Vec<_>>(),
            vec![(900, 1900), (600, 1600), (300, 1300)]
        );
        assert_eq!(w.last_end(1000), 1900);
    }

    #[test]
    fn sizes_must_be_positive() {
        assert!(TimeWindows::tumbling(0).is_err());
        assert!(TimeWindows::sliding(10, 0).is_err());
        assert!(SessionWindows::with_gap(-5).is_err());
    }
}
