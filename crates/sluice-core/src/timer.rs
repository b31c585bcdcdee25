//! Keyed timers: "call me back for this key at this time".
//!
//! Keyed operators (session windows, custom triggers) register timers in
//! event time (fired when the watermark reaches them) or in processing time
//! (fired when the clock does). A timer is set at most once per key and time.
//!
//! ```
//! use sluice_core::timer::Timers;
//!
//! let mut timers = Timers::default();
//! timers.register("a", 100);
//! timers.register("b", 50);
//! timers.register("a", 100); // set once
//! let mut fired = Vec::new();
//! timers.advance_to(100, |key, time| fired.push((key, time)));
//! assert_eq!(fired, vec![("b", 50), ("a", 100)]);
//! assert!(timers.is_empty());
//! ```

use crate::Timestamp;
use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// Timers of one time domain, for keys of type `K`.
#[derive(Debug, Clone)]
pub struct Timers<K> {
    by_time: BTreeMap<Timestamp, Vec<K>>,
    set: HashSet<(K, Timestamp)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeMap::new(),
            set: HashSet::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Timers<K> {
    /// Sets a timer for `key` at `time`, unless one is set already.
    pub fn register(&mut self, key: K, time: Timestamp) {
        if self.set.insert((key.clone(), time)) {
            self.by_time.entry(time).or_default().push(key);
        }
    }

    /// Removes the timer for `key` at `time`, if set.
    pub fn delete(&mut self, key: &K, time: Timestamp) {
        if self.set.remove(&(key.clone(), time)) {
            if let Some(keys) = self.by_time.get_mut(&time) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.by_time.remove(&time);
                }
            }
        }
    }

    /// Fires, in time order, every timer at or before `time`, and removes it.
    /// A callback may not register timers on this same set; collect and
    /// register afterwards.
    pub fn advance_to(&mut self, time: Timestamp, mut fire: impl FnMut(K, Timestamp)) {
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() > time {
                break;
            }
            let (at, keys) = entry.remove_entry();
            for key in keys {
                self.set.remove(&(key.clone(), at));
                fire(key, at);
            }
        }
    }

    /// The earliest timer, if any.
    pub fn next(&self) -> Option<Timestamp> {
        self.by_time.keys().next().copied()
    }

    /// True when no timer is set.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// How many timers are set.
    pub fn len(&self) -> usize {
        self.set.len()
    }
}
