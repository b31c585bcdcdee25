//! The open sessions of every key, and when each key is due.
//!
//! A key's entry is kept in a slab and its id reused once its last session
//! is gone, with its key bytes' buffer and its session list: a key that
//! comes back costs no allocation but its index entry.

use super::{Fast, Open};
use sluice_core::window::SessionSet;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// One key's sessions.
pub(super) struct Entry {
    /// The key, in Arrow's row format (empty while the entry is free).
    pub key: Vec<u8>,
    pub sessions: SessionSet<Open>,
}

#[derive(Default)]
pub(super) struct Keyed {
    /// Key bytes to entry.
    index: HashMap<Box<[u8]>, u32, Fast>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Entries by the watermark that concerns one of their sessions: its
    /// end (it fires) and, once fired, its end plus the allowed lateness
    /// (it is dropped). A watermark visits only the keys due by it, not
    /// every key. Entries may be stale (a session that grew has a later
    /// one too; an entry freed, or given to another key); a visit that
    /// finds nothing due does nothing.
    due: BinaryHeap<Reverse<(i64, u32)>>,
}

impl Keyed {
    /// The entry of `key`, added if new.
    pub(super) fn id(&mut self, key: &[u8]) -> u32 {
        if let Some(&id) = self.index.get(key) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(Entry {
                    key: Vec::new(),
                    sessions: SessionSet::default(),
                });
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[id as usize];
        entry.key.extend_from_slice(key);
        self.index.insert(key.into(), id);
        id
    }

    pub(super) fn entry(&mut self, id: u32) -> &mut Entry {
        &mut self.entries[id as usize]
    }

    /// Frees entry `id`, whose last session is gone.
    pub(super) fn remove(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        self.index.remove(entry.key.as_slice());
        entry.key.clear();
        entry.sessions.retain(|_| false);
        self.free.push(id);
    }

    /// Entry `id` is due at watermark `at`.
    pub(super) fn due_at(&mut self, at: i64, id: u32) {
        self.due.push(Reverse((at, id)));
    }

    /// The entries due by watermark `upto` (every entry, from `i64::MAX`),
    /// in the order of their keys.
    pub(super) fn due_by(&mut self, upto: i64) -> Vec<u32> {
        let mut ids: Vec<u32> = if upto == i64::MAX {
            self.due.clear();
            self.index.values().copied().collect()
        } else {
            let mut ids = Vec::new();
            while let Some(&Reverse((at, id))) = self.due.peek() {
                if at > upto {
                    break;
                }
                self.due.pop();
                ids.push(id);
            }
            ids
        };
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| !self.entries[id as usize].sessions.is_empty());
        self.in_key_order(&mut ids);
        ids
    }

    /// Every entry with sessions, in the order of their keys.
    pub(super) fn all(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.index.values().copied().collect();
        self.in_key_order(&mut ids);
        ids
    }

    fn in_key_order(&self, ids: &mut [u32]) {
        ids.sort_unstable_by(|&a, &b| {
            self.entries[a as usize]
                .key
                .cmp(&self.entries[b as usize].key)
        });
    }
}
