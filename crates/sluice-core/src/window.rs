//! Window bookkeeping shared by the typed windows and the pipelines':
//! which event-time windows an event belongs to ([`TimeWindows`],
//! [`SessionWindows`]), when a window closes for good and why an event is
//! late ([`Lateness`], [`Late`]), the sessions of a key that merge
//! ([`SessionSet`]), and what a window's row changes ([`Change`]).
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

    /// Whether an event is in one window only (size and slide equal).
    pub fn is_tumbling(&self) -> bool {
        self.size == self.slide
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

/// How long after its end a window still takes events, and the judgement of
/// an event that comes after that: one rule for every window kind, in the
/// typed API and in pipeline files.
///
/// A window `[start, end)` takes events while `end + allowed > watermark`;
/// from then on it is closed for good, its state can be dropped, and an
/// event for it is late.
///
/// ```
/// use sluice_core::window::Lateness;
///
/// let lateness = Lateness::allowing(5_000);
/// assert_eq!(lateness.judge((0, 10_000), 14_999), None);
/// let late = lateness.judge((0, 10_000), 15_000).unwrap();
/// assert_eq!(
///     late.to_string(),
///     "window [0, 10000) closed: the watermark 15000 passed its end plus the allowed \
///      lateness of 5000 ms"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    allowed: i64,
}

impl Lateness {
    /// Windows that take events until `allowed_ms` after their end (none
    /// after it when zero or less).
    pub fn allowing(allowed_ms: i64) -> Self {
        Self {
            allowed: allowed_ms.max(0),
        }
    }

    /// The allowed lateness in ms.
    pub fn allowed(&self) -> i64 {
        self.allowed
    }

    /// When a window that ends at `end` closes for good.
    pub fn closes_at(&self, end: Timestamp) -> Timestamp {
        end.saturating_add(self.allowed)
    }

    /// Whether a window that ends at `end` is closed for good at
    /// `watermark`.
    pub fn is_closed(&self, end: Timestamp, watermark: Timestamp) -> bool {
        self.closes_at(end) <= watermark
    }

    /// Judges an event for `window` at `watermark`: `None` while the window
    /// takes it, or why it is late.
    pub fn judge(&self, window: (Timestamp, Timestamp), watermark: Timestamp) -> Option<Late> {
        self.is_closed(window.1, watermark).then_some(Late {
            window,
            watermark,
            allowed: self.allowed,
            session: false,
        })
    }

    /// Judges an event at `time` for its own session `[time, time + gap)`:
    /// a session's lateness is judged on the session the event opens.
    pub fn judge_session(
        &self,
        window: (Timestamp, Timestamp),
        watermark: Timestamp,
    ) -> Option<Late> {
        self.judge(window, watermark).map(|late| Late {
            session: true,
            ..late
        })
    }
}

/// Why an event is late: the window it falls in closed for good. Its
/// `Display` is the reason a `late` record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Late {
    /// The window the event missed, `[start, end)`.
    pub window: (Timestamp, Timestamp),
    /// The watermark that had passed its end plus the allowed lateness.
    pub watermark: Timestamp,
    /// The allowed lateness, in ms.
    pub allowed: i64,
    /// The window is the session the event would have opened.
    pub session: bool,
}

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (start, end) = self.window;
        let what = if self.session {
            "session window"
        } else {
            "window"
        };
        write!(
            f,
            "{what} [{start}, {end}) closed: the watermark {} passed its end plus the allowed \
             lateness of {} ms",
            self.watermark, self.allowed
        )
    }
}

/// What a window's row does to the result of its window, `(key, start,
/// end)`: the one late-update semantics of the typed windows and the
/// pipelines' (docs/concepts.md). A window's first row inserts its result
/// (revision 0); a late event within the allowed lateness updates it (the
/// complete result again, revision + 1); a session that a late event merged
/// into another is deleted (revision + 1), and the merged session, under
/// its own bounds, is inserted or updated.
///
/// ```
/// use sluice_core::window::Change;
///
/// assert_eq!(Change::of(0, false), Change::Insert);
/// assert_eq!(Change::of(2, false), Change::Update);
/// assert_eq!(Change::of(1, true).as_str(), "delete");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The window's first result.
    Insert,
    /// A later result of the same window: it replaces the one before.
    Update,
    /// The window no longer exists (a session merged into another).
    Delete,
}

impl Change {
    /// The change made by a row with `revision`, or by the row that
    /// retracts a merged session.
    pub fn of(revision: u32, retract: bool) -> Self {
        match (retract, revision) {
            (true, _) => Self::Delete,
            (false, 0) => Self::Insert,
            (false, _) => Self::Update,
        }
    }

    /// Its name in an `op` column: `insert`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One session of a [`SessionSet`]: its bounds and what the caller keeps
/// with it (an aggregate, whether it fired, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Session<P> {
    /// The first event's time.
    pub start: Timestamp,
    /// The last event's time plus the gap.
    pub end: Timestamp,
    /// What the caller keeps with it.
    pub payload: P,
}

/// The sessions of one key, kept disjoint: a session added merges with
/// every session it overlaps, and the caller folds each absorbed one into
/// it. The typed session windows and the pipeline's use it.
///
/// ```
/// use sluice_core::window::{Session, SessionSet};
///
/// let mut sessions = SessionSet::default();
/// let count = |s: &mut Session<u32>, absorbed: Session<u32>| {
///     s.payload += absorbed.payload;
///     Ok::<(), ()>(())
/// };
/// sessions.insert(Session { start: 0, end: 10, payload: 1 }, count)?;
/// sessions.insert(Session { start: 20, end: 30, payload: 1 }, count)?;
/// // An event at 8 with a gap of 15 bridges both.
/// let merged = sessions.insert(Session { start: 8, end: 23, payload: 1 }, count)?;
/// assert_eq!((merged.start, merged.end, merged.payload), (0, 30, 3));
/// assert_eq!(sessions.len(), 1);
/// # Ok::<(), ()>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSet<P> {
    sessions: Vec<Session<P>>,
}

impl<P> Default for SessionSet<P> {
    fn default() -> Self {
        Self {
            sessions: Vec::new(),
        }
    }
}

impl<P> SessionSet<P> {
    /// Adds `session`, merged with every session it overlaps: each of those
    /// leaves the set, widens `session`'s bounds, and is handed to `absorb`
    /// with the merged session so far, in the order of their starts.
    /// Returns the merged session, in the set. The sessions are kept in
    /// order of their starts (disjoint, so of their ends too): those that
    /// overlap `session` are one run of them, and the order in which they
    /// are absorbed depends on nothing but their bounds (an aggregate that
    /// keeps the order of its values merges the same way in a run resumed
    /// from a checkpoint).
    pub fn insert<E>(
        &mut self,
        mut session: Session<P>,
        mut absorb: impl FnMut(&mut Session<P>, Session<P>) -> Result<(), E>,
    ) -> Result<&mut Session<P>, E> {
        let first = self.sessions.partition_point(|s| s.end <= session.start);
        let run = self.sessions[first..].partition_point(|s| s.start < session.end);
        for s in self.sessions.drain(first..first + run) {
            session.start = session.start.min(s.start);
            session.end = session.end.max(s.end);
            absorb(&mut session, s)?;
        }
        self.sessions.insert(first, session);
        Ok(&mut self.sessions[first])
    }

    /// Adds `session` as it is, without merging (restoring a checkpoint of
    /// sessions that were disjoint), in the order of starts.
    pub fn push(&mut self, session: Session<P>) {
        let at = self.sessions.partition_point(|s| s.start <= session.start);
        self.sessions.insert(at, session);
    }

    /// Keeps the sessions for which `keep` holds.
    pub fn retain(&mut self, keep: impl FnMut(&Session<P>) -> bool) {
        self.sessions.retain(keep);
    }

    /// The sessions, in order of their starts.
    pub fn iter(&self) -> std::slice::Iter<'_, Session<P>> {
        self.sessions.iter()
    }

    /// The sessions, in order of their starts, to change what the caller
    /// keeps (their payloads: bounds changed here would break the order).
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Session<P>> {
        self.sessions.iter_mut()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
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

    #[test]
    fn lateness_closes_a_window_at_its_end_plus_the_allowance() {
        let lateness = Lateness::allowing(100);
        assert_eq!(lateness.closes_at(1000), 1100);
        assert!(!lateness.is_closed(1000, 1099));
        assert!(lateness.is_closed(1000, 1100));
        assert_eq!(lateness.judge((0, 1000), 1099), None);
        let late = lateness.judge_session((900, 1000), 1100).unwrap();
        assert_eq!(
            late.to_string(),
            "session window [900, 1000) closed: the watermark 1100 passed its end plus the \
             allowed lateness of 100 ms"
        );
        // No allowance: closed once the watermark reaches the end; negative
        // allowances count as none; the end of time does not wrap.
        assert!(Lateness::default().is_closed(1000, 1000));
        assert_eq!(Lateness::allowing(-5).allowed(), 0);
        assert_eq!(Lateness::allowing(10).closes_at(i64::MAX), i64::MAX);
    }

    #[test]
    fn sessions_merge_with_every_overlap_and_stay_disjoint() {
        // Against a reference: the sessions of a set of events are the
        // connected runs of their [t, t + gap) intervals.
        let gap = 10;
        let times = [50, 3, 31, 12, 70, 44, 20, 61, 90, 0, 100, 85];
        let mut set = SessionSet::default();
        for &t in &times {
            let count = |s: &mut Session<Vec<i64>>, absorbed: Session<Vec<i64>>| {
                s.payload.extend(absorbed.payload);
                Ok::<(), ()>(())
            };
            let session = Session {
                start: t,
                end: t + gap,
                payload: vec![t],
            };
            set.insert(session, count).unwrap();
        }
        let mut got: Vec<(i64, i64, usize)> = set
            .iter()
            .map(|s| (s.start, s.end, s.payload.len()))
            .collect();
        got.sort_unstable();
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        let mut expected: Vec<(i64, i64, usize)> = Vec::new();
        for t in sorted {
            match expected.last_mut() {
                Some(last) if t < last.1 => {
                    last.1 = last.1.max(t + gap);
                    last.2 += 1;
                }
                _ => expected.push((t, t + gap, 1)),
            }
        }
        assert_eq!(got, expected);
    }
}
