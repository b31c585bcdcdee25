//! The open sessions of every key, and when each key is due.
//!
//! A key's entry is kept in a slab and its id reused once its last session
//! is gone, with its key bytes' buffer and its session list: a key that
//! comes back costs no allocation but its index entry.

use super::{Fast, Open};
use sluice_core::window::SessionSet;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// No entry.
const NONE: u32 = u32::MAX;

/// One key's sessions.
pub(super) struct Entry {
    /// The key, in Arrow's row format (empty while the entry is free).
    pub key: Vec<u8>,
    pub sessions: SessionSet<Open>,
    /// The hash of its key, and the next entry of the same hash.
    hash: u64,
    next: u32,
}

#[derive(Default)]
pub(super) struct Keyed {
    hasher: Fast,
    /// The first entry of each key hash (the others follow `next`): the
    /// key is hashed once per lookup, and not copied into the index.
    index: HashMap<u64, u32, BuildHasherDefault<Hashed>>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Entries by the watermark that concerns one of their sessions: its
    /// end (it fires) and, once fired, its end plus the allowed lateness
    /// (it is dropped). A watermark visits only the keys due by it, not
    /// every key. Entries may be stale (a session that grew has a later
    /// one too; an entry freed, or given to another key); a visit that
    /// finds nothing due does nothing.
    due: Due,
    /// Test-only: keys of one length share a hash (to test the chains).
    #[cfg(test)]
    collide: bool,
}

/// Entries by when they are due: those that come in order (events in
/// order of time, the usual case) in queues, the others in a heap. A
/// batch's entries are sorted before they are filed (its rows are visited
/// key by key). Two queues: sessions' ends and their ends plus the allowed
/// lateness each come in order, but not together.
#[derive(Default)]
struct Due {
    incoming: Vec<(i64, u32)>,
    ordered: [VecDeque<(i64, u32)>; 2],
    rest: BinaryHeap<Reverse<(i64, u32)>>,
}

impl Due {
    fn push(&mut self, at: i64, id: u32) {
        self.incoming.push((at, id));
    }

    /// Files the incoming entries: each at the back of the queue whose
    /// back is the latest not after it, or in the heap.
    fn file(&mut self) {
        self.incoming.sort_unstable();
        for (at, id) in self.incoming.drain(..) {
            let back = |q: &VecDeque<(i64, u32)>| q.back().map_or(i64::MIN, |b| b.0);
            let fits = self
                .ordered
                .iter_mut()
                .filter(|q| back(q) <= at)
                .max_by_key(|q| back(q));
            match fits {
                Some(queue) => queue.push_back((at, id)),
                None => self.rest.push(Reverse((at, id))),
            }
        }
    }

    /// The entries due by `upto`, taken out.
    fn pop_until(&mut self, upto: i64) -> Vec<u32> {
        self.file();
        let mut ids = Vec::new();
        for queue in &mut self.ordered {
            while let Some(&(at, id)) = queue.front() {
                if at > upto {
                    break;
                }
                queue.pop_front();
                ids.push(id);
            }
        }
        while let Some(&Reverse((at, id))) = self.rest.peek() {
            if at > upto {
                break;
            }
            self.rest.pop();
            ids.push(id);
        }
        ids
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Hashed(u64);

impl Hasher for Hashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Keyed {
    /// The entry of `key`, added if new.
    pub(super) fn id(&mut self, key: &[u8]) -> u32 {
        let hash = self.hash(key);
        let head = self.index.get(&hash).copied().unwrap_or(NONE);
        let mut at = head;
        while at != NONE {
            let entry = &self.entries[at as usize];
            if entry.key == key {
                return at;
            }
            at = entry.next;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(Entry {
                    key: Vec::new(),
                    sessions: SessionSet::default(),
                    hash: 0,
                    next: NONE,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[id as usize];
        entry.key.extend_from_slice(key);
        entry.hash = hash;
        entry.next = head;
        self.index.insert(hash, id);
        id
    }

    fn hash(&self, key: &[u8]) -> u64 {
        #[cfg(test)]
        if self.collide {
            return key.len() as u64;
        }
        self.hasher.hash_one(key)
    }

    pub(super) fn entry(&mut self, id: u32) -> &mut Entry {
        &mut self.entries[id as usize]
    }

    /// Frees entry `id` if it has no session (again: nothing).
    pub(super) fn remove(&mut self, id: u32) {
        let entry = &self.entries[id as usize];
        if entry.key.is_empty() || !entry.sessions.is_empty() {
            return;
        }
        let (hash, next) = (entry.hash, entry.next);
        let head = self.index.get(&hash).copied().unwrap_or(NONE);
        if head == id {
            match next {
                NONE => self.index.remove(&hash),
                next => self.index.insert(hash, next),
            };
        } else {
            let mut at = head;
            while at != NONE {
                let before = &mut self.entries[at as usize];
                if before.next == id {
                    before.next = next;
                    break;
                }
                at = before.next;
            }
        }
        let entry = &mut self.entries[id as usize];
        entry.key.clear();
        entry.next = NONE;
        self.free.push(id);
    }

    /// Entry `id` is due at watermark `at`.
    pub(super) fn due_at(&mut self, at: i64, id: u32) {
        self.due.push(at, id);
    }

    /// The entries due by watermark `upto` (every entry, from `i64::MAX`),
    /// in the order of their keys.
    pub(super) fn due_by(&mut self, upto: i64) -> Vec<u32> {
        let mut ids: Vec<u32> = if upto == i64::MAX {
            self.due = Due::default();
            self.live().collect()
        } else {
            self.due.pop_until(upto)
        };
        ids.retain(|&id| !self.entries[id as usize].sessions.is_empty());
        self.in_key_order(&mut ids);
        // One key, one entry: its repeats are next to each other now.
        ids.dedup();
        ids
    }

    /// Every entry with sessions, in the order of their keys.
    pub(super) fn all(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.live().collect();
        self.in_key_order(&mut ids);
        ids
    }

    fn live(&self) -> impl Iterator<Item = u32> + '_ {
        let live = self.entries.iter().map(|e| !e.key.is_empty());
        (0..).zip(live).filter(|(_, live)| *live).map(|(id, _)| id)
    }

    fn in_key_order(&self, ids: &mut [u32]) {
        ids.sort_unstable_by(|&a, &b| {
            self.entries[a as usize]
                .key
                .cmp(&self.entries[b as usize].key)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::window::Session;

    /// Entries come out once, when the watermark reaches them, whether
    /// they came in order (ends, ends plus a lateness) or not.
    #[test]
    fn due_entries_come_out_by_the_watermark() {
        let mut due = Due::default();
        let mut waiting: Vec<(i64, u32)> = Vec::new();
        let mut random = 7u64;
        let mut id = 0;
        for batch in 0..60i64 {
            for i in 0..24i64 {
                random = random
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let at = match i % 3 {
                    0 => batch * 10 + i + 30,
                    1 => batch * 10 + i + 500,
                    _ => (random >> 40) as i64 % 1_000,
                };
                due.push(at, id);
                waiting.push((at, id));
                id += 1;
            }
            let upto = batch * 17;
            let mut got = due.pop_until(upto);
            got.sort_unstable();
            let mut want: Vec<u32> = waiting
                .iter()
                .filter(|w| w.0 <= upto)
                .map(|w| w.1)
                .collect();
            want.sort_unstable();
            waiting.retain(|w| w.0 > upto);
            assert_eq!(got, want, "batch {batch}");
        }
        let mut rest = due.pop_until(i64::MAX - 1);
        rest.sort_unstable();
        let mut want: Vec<u32> = waiting.iter().map(|w| w.1).collect();
        want.sort_unstable();
        assert_eq!(rest, want);
    }

    fn open(keyed: &mut Keyed, key: &[u8]) -> u32 {
        let id = keyed.id(key);
        let payload = Open {
            slot: 0,
            fired: false,
            emitted: 0,
            dirty: false,
        };
        keyed.entry(id).sessions.push(Session {
            start: 0,
            end: 1,
            payload,
        });
        id
    }

    fn close(keyed: &mut Keyed, id: u32) {
        keyed.entry(id).sessions.retain(|_| false);
        keyed.remove(id);
    }

    /// Keys that share a hash are told apart, and freed and found again
    /// wherever they are in their chain; every key's id is its own.
    #[test]
    fn keys_of_one_hash_keep_their_entries() {
        for hashes_collide in [true, false] {
            let mut keyed = Keyed {
                collide: hashes_collide,
                ..Keyed::default()
            };
            let keys: Vec<Vec<u8>> = (0..6u8).map(|k| vec![b'k', k]).collect();
            let ids: Vec<u32> = keys.iter().map(|k| open(&mut keyed, k)).collect();
            for (key, &id) in keys.iter().zip(&ids) {
                assert_eq!(keyed.id(key), id);
            }
            // The head of the chain (the last added), one inside, the tail.
            for gone in [5, 2, 0] {
                close(&mut keyed, ids[gone]);
                close(&mut keyed, ids[gone]); // twice: nothing more
            }
            let left = [1, 3, 4];
            for &k in &left {
                assert_eq!(keyed.id(&keys[k]), ids[k], "key {k}");
            }
            assert_eq!(keyed.all(), left.map(|k| ids[k]).to_vec());
            // Freed entries are reused by new keys, which are found too.
            let again = open(&mut keyed, b"kz");
            assert!([0, 2, 5].map(|k| ids[k]).contains(&again));
            assert_eq!(keyed.id(b"kz"), again);
            for &k in &left {
                assert_eq!(keyed.id(&keys[k]), ids[k], "key {k}");
            }
            // Due by a watermark: once each, in key order, the freed skipped.
            keyed.due_at(10, ids[4]);
            keyed.due_at(5, ids[1]);
            keyed.due_at(7, ids[4]);
            keyed.due_at(8, ids[0]);
            keyed.due_at(20, ids[3]);
            let due = keyed.due_by(10);
            // ids[0] was freed: due only if "kz" took its entry (a stale
            // visit, which finds nothing due).
            let mut want = vec![ids[1], ids[4]];
            if again == ids[0] {
                want.push(again);
            }
            want.sort_by_key(|&id| keyed.entries[id as usize].key.clone());
            assert_eq!(due, want);
            assert_eq!(keyed.due_by(15), Vec::<u32>::new());
            assert_eq!(keyed.due_by(20), vec![ids[3]]);
        }
    }
}
