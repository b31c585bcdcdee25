//! The watermark of an operator with several inputs: the minimum over those not idle or ended.

use sluice_core::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// The event-time progress of an operator with several inputs.
///
/// Its watermark is the minimum over the inputs' watermarks, ignoring idle
/// inputs; an input that ended counts as the end of time. It never moves
/// back: an idle input that resumes with an older watermark does not lower
/// it (its events may then be late, as in Flink).
///
/// ```
/// use sluice_runtime::InputProgress;
///
/// let mut p = InputProgress::new(2);
/// assert_eq!(p.watermark(0, 100), None); // input 1 still at the start
/// assert_eq!(p.watermark(1, 50), Some(50));
/// assert_eq!(p.idle(1), Some(100)); // input 1 idle: input 0 alone counts
/// assert_eq!(p.end(0), None); // input 1 is idle and input 0 ended: no input to follow
/// assert_eq!(p.end(1), Some(i64::MAX)); // all ended: the end of time
/// ```
#[derive(Debug, Clone)]
pub struct InputProgress {
    watermarks: Vec<Timestamp>,
    idle: Vec<bool>,
    ended: Vec<bool>,
    current: Timestamp,
}

impl InputProgress {
    /// Progress over `inputs` inputs, all at the start of time.
    pub fn new(inputs: usize) -> Self {
        Self {
            watermarks: vec![MIN_TIMESTAMP; inputs],
            idle: vec![false; inputs],
            ended: vec![false; inputs],
            current: MIN_TIMESTAMP,
        }
    }

    /// The combined watermark now.
    pub fn current(&self) -> Timestamp {
        self.current
    }

    /// True when input `from` has ended.
    pub fn has_ended(&self, from: usize) -> bool {
        self.ended[from]
    }

    /// True when every input has ended.
    pub fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }

    /// True when every input that has not ended is idle (and one has not).
    pub fn all_idle(&self) -> bool {
        !self.all_ended() && self.idle.iter().zip(&self.ended).all(|(i, e)| *i || *e)
    }

    /// Input `from` sent events: it is active again.
    pub fn active(&mut self, from: usize) -> Option<Timestamp> {
        if std::mem::take(&mut self.idle[from]) {
            return self.recompute();
        }
        None
    }

    /// Input `from` reached `watermark`; returns the new combined watermark
    /// if it advanced.
    pub fn watermark(&mut self, from: usize, watermark: Timestamp) -> Option<Timestamp> {
        self.idle[from] = false;
        let w = &mut self.watermarks[from];
        *w = (*w).max(watermark);
        self.recompute()
    }

    /// Input `from` is idle.
    pub fn idle(&mut self, from: usize) -> Option<Timestamp> {
        self.idle[from] = true;
        self.recompute()
    }

    /// Input `from` ended. When every input has, the watermark is the end
    /// of time.
    pub fn end(&mut self, from: usize) -> Option<Timestamp> {
        self.ended[from] = true;
        self.watermarks[from] = MAX_TIMESTAMP;
        self.recompute()
    }

    fn recompute(&mut self) -> Option<Timestamp> {
        let min = if self.all_ended() {
            MAX_TIMESTAMP
        } else {
            self.watermarks
                .iter()
                .zip(self.idle.iter().zip(&self.ended))
                .filter(|(_, (idle, ended))| !**idle && !**ended)
                .map(|(w, _)| *w)
                .min()?
        };
        if min > self.current {
            self.current = min;
            Some(min)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_minimum_of_active_inputs_and_never_moves_back() {
        let mut p = InputProgress::new(3);
        assert_eq!(p.watermark(0, 10), None);
        assert_eq!(p.watermark(1, 20), None);
        assert_eq!(p.watermark(2, 5), Some(5));
        assert_eq!(p.idle(2), Some(10));
        // input 2 resumes behind: the watermark stays
        assert_eq!(p.watermark(2, 6), None);
        assert_eq!(p.current(), 10);
        assert_eq!(p.end(0), None);
        assert_eq!(p.watermark(2, 30), Some(20));
        assert_eq!(p.end(1), Some(30));
        assert_eq!(p.end(2), Some(MAX_TIMESTAMP));
        assert!(p.all_ended());
    }
}
