//! What a kafka sink holds back while the producer has a request in
//! flight (`KafkaWriter::pump` in `sink.rs` says why): records numbered
//! and not yet handed over, their keys and values in one buffer.

use std::ops::Range;

/// At most this many records or bytes are held back before a write waits
/// for the broker (backpressure).
const HOLD_RECORDS: usize = 100_000;
const HOLD_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(super) struct Held {
    bytes: Vec<u8>,
    records: Vec<HeldRecord>,
    /// How many of `records` have been handed over.
    sent: usize,
}

struct HeldRecord {
    key: Option<Range<usize>>,
    value: Range<usize>,
    seq: u64,
}

/// A held record: its key, value and number.
pub(super) struct Next<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub seq: u64,
}

impl Held {
    /// Whether every held record has been handed over.
    pub fn is_empty(&self) -> bool {
        self.sent == self.records.len()
    }

    /// Forgets what was handed over (when nothing is left).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        self.sent = 0;
    }

    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], seq: u64) {
        let key = key.map(|key| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(key);
            start..self.bytes.len()
        });
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.records.push(HeldRecord {
            key,
            value: start..self.bytes.len(),
            seq,
        });
    }

    /// The next record to hand over, if any.
    pub fn next(&self) -> Option<Next<'_>> {
        let record = self.records.get(self.sent)?;
        Some(Next {
            key: record.key.clone().map(|k| &self.bytes[k]),
            value: &self.bytes[record.value.clone()],
            seq: record.seq,
        })
    }

    /// The next record was handed over.
    pub fn advance(&mut self) {
        self.sent += 1;
    }

    /// Whether the writer should wait for the broker before holding more.
    pub fn full(&self) -> bool {
        let first = self.records.get(self.sent).map_or(self.bytes.len(), |r| {
            r.key.as_ref().map_or(r.value.start, |k| k.start)
        });
        self.records.len() - self.sent >= HOLD_RECORDS || self.bytes.len() - first >= HOLD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_with_their_keys_and_numbers() {
        let mut held = Held::default();
        held.push(Some(b"k1"), b"v1", 7);
        held.push(None, b"v2", 8);
        let first = held.next().unwrap();
        assert_eq!(
            (first.key, first.value, first.seq),
            (Some(&b"k1"[..]), &b"v1"[..], 7)
        );
        held.advance();
        let second = held.next().unwrap();
        assert_eq!(
            (second.key, second.value, second.seq),
            (None, &b"v2"[..], 8)
        );
        held.advance();
        assert!(held.is_empty() && held.next().is_none());
        held.clear();
        assert!(held.is_empty() && !held.full());
    }

    #[test]
    fn a_hold_is_full_by_what_is_not_handed_over() {
        let mut held = Held::default();
        for seq in 0..HOLD_RECORDS as u64 {
            held.push(None, b"x", seq);
        }
        assert!(held.full());
        held.advance();
        assert!(!held.full());
    }
}
