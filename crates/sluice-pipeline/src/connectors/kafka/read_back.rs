//! What a resumed kafka writer reads back: its own records after its
//! checkpoint, known by the headers that name the writer and number its
//! records, so that the replay's repeats are skipped.

use super::client;
use super::sink::Record;
use super::{KafkaTarget, RETRY_FOR, SEQUENCE_HEADER, WRITER_HEADER};
use crate::error::{Error, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The records of `target`'s writer in each `(partition, start, high)`
/// range whose numbers are `wanted` (written after the checkpoint, or
/// pending at it), with their numbers.
pub(super) fn read_back(
    consumer: &BaseConsumer,
    target: &KafkaTarget,
    ranges: &[(i32, i64, i64)],
    wanted: impl Fn(u64) -> bool,
) -> Result<Vec<(Record, u64)>> {
    let topic = &target.topic;
    let what = || {
        format!(
            "kafka sink `{}`: cannot read back what it wrote to topic `{topic}` after its \
             checkpoint",
            target.id
        )
    };
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut list = TopicPartitionList::new();
    // Per partition: the next offset to read and the end.
    let mut next: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &(partition, start, high) in ranges {
        list.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| Error::output(what()).caused_by(e))?;
        next.insert(partition, (start, high));
    }
    consumer
        .assign(&list)
        .map_err(|e| Error::output(what()).caused_by(e))?;
    let mut found = Vec::new();
    let mut quiet_since = Instant::now();
    while next.values().any(|(at, high)| at < high) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                quiet_since = Instant::now();
                let Some((at, high)) = next.get_mut(&message.partition()) else {
                    continue;
                };
                if message.offset() < *at || *at >= *high {
                    continue;
                }
                *at = message.offset() + 1;
                if message.offset() >= *high {
                    continue;
                }
                if let Some(seq) = sequence(&message, &target.id).filter(|s| wanted(*s)) {
                    let record = (
                        message.key().map(<[u8]>::to_vec),
                        message.payload().unwrap_or_default().to_vec(),
                    );
                    found.push((record, seq));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                // Every record to the partition's end has come (records the
                // broker deleted, by compaction, leave holes in offsets).
                if let Some((at, high)) = next.get_mut(&partition).filter(|(a, h)| a < h) {
                    // Once the broker's end is past the range (a new
                    // leader's may lag behind it).
                    let (_, end) = client::watermarks(consumer, topic, partition)?;
                    if end >= *high {
                        *at = *high;
                    }
                }
            }
            Some(Err(error)) if quiet_since.elapsed() > RETRY_FOR => {
                return Err(Error::output(what()).caused_by(error));
            }
            None if quiet_since.elapsed() > RETRY_FOR => {
                return Err(Error::output(format!(
                    "{}: no record came for {RETRY_FOR:?}",
                    what()
                )));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The number `writer` gave `message`, if `writer` wrote it.
fn sequence(message: &impl Message, writer: &str) -> Option<u64> {
    let headers = message.headers()?;
    let mut ours = false;
    let mut seq = None;
    for header in headers.iter() {
        match header.key {
            WRITER_HEADER => ours = header.value == Some(writer.as_bytes()),
            SEQUENCE_HEADER => {
                seq = header
                    .value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }
    seq.filter(|_| ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::message::{OwnedMessage, Timestamp};

    fn message(headers: &[(&str, &str)]) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        OwnedMessage::new(
            None,
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(owned),
        )
    }

    #[test]
    fn a_record_is_the_writers_when_it_names_it_and_has_a_number() {
        let ours = message(&[("sluice-writer", "w"), ("sluice-seq", "42"), ("x", "y")]);
        assert_eq!(sequence(&ours, "w"), Some(42));
        assert_eq!(sequence(&ours, "other"), None);
        assert_eq!(sequence(&message(&[("sluice-seq", "42")]), "w"), None);
        let bad = message(&[("sluice-writer", "w"), ("sluice-seq", "x")]);
        assert_eq!(sequence(&bad, "w"), None);
        assert_eq!(sequence(&message(&[]), "w"), None);
    }
}
