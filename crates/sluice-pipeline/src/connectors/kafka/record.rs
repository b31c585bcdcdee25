//! One Kafka record as a line of the partition's text, for its decoder:
//! a JSON object (as it is, or from an Avro datum, or from raw text as
//! `key` and `value`) or a CSV line, with the record's timestamp when the
//! source has no `event_time`; records that cannot become one are dead
//! letters at their topic, partition and offset.

use super::Payload;
use crate::format::{DeadLetter, TextDecoder};
use rdkafka::message::Message;
use std::io::Write;
use std::ops::Range;

/// One partition being read.
pub(super) struct Part {
    /// Its topic, as an index into the topics read (and the consumers).
    pub(super) topic: usize,
    pub(super) partition: i32,
    pub(super) next: i64,
    pub(super) end: Option<i64>,
    /// The latest event time it has given: the watermark waits for the
    /// slowest partition that still has records.
    pub(super) max_time: i64,
    /// It has read all the broker holds (no record since it said so).
    pub(super) at_end: bool,
    pub(super) decoder: TextDecoder,
    /// Records read and not yet decoded, one per line.
    pub(super) region: Vec<u8>,
    pub(super) lines: Vec<(u64, Range<usize>)>,
    /// Records that could not become a line (no value, not text).
    pub(super) dead: Vec<DeadLetter>,
}

impl Part {
    pub(super) fn finished(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }
}

/// How records become lines.
pub(super) struct Reading {
    pub(super) payload: Payload,
    /// Each line gets the record's timestamp as `kafka_time`.
    pub(super) record_time: bool,
    /// The records' schema, with Avro.
    pub(super) avro: Option<apache_avro::Schema>,
}

/// Takes `message` into its partition's lines; false if it was not
/// taken (a repeat, or past the partition's end).
pub(super) fn take(part: &mut Part, message: &impl Message, how: &Reading) -> bool {
    let Reading {
        payload,
        record_time,
        ..
    } = *how;
    let offset = message.offset();
    if offset < part.next || part.end.is_some_and(|end| offset >= end) {
        return false;
    }
    part.next = offset + 1;
    part.at_end = false;
    // Read only where the line carries it.
    let stamp = || message.timestamp().to_millis().unwrap_or(0);
    let start = part.region.len();
    let value = message.payload();
    let dead = |reason: &str| DeadLetter {
        origin: format!("kafka:{}/{}", message.topic(), message.partition()),
        line: offset as u64,
        reason: reason.to_string(),
        record: value
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default(),
    };
    match (payload, value) {
        (Payload::Raw, _) => {
            let key = message.key().map(std::str::from_utf8).transpose();
            let text = value.map(std::str::from_utf8).transpose();
            let (Ok(key), Ok(value)) = (key, text) else {
                part.dead
                    .push(dead("the record's key or value is not UTF-8 text"));
                return true;
            };
            let record = serde_json::json!({ "key": key, "value": value });
            let _ = serde_json::to_writer(&mut part.region, &record);
            if record_time {
                // `{...}` -> `{...,"kafka_time":N}`
                part.region.pop();
                let _ = write!(part.region, ",\"{}\":{}}}", super::KAFKA_TIME, stamp());
            }
        }
        (_, None) => {
            part.dead.push(dead(
                "the record has no value (a tombstone): there is no row to read",
            ));
            return true;
        }
        (Payload::Json, Some(value)) => {
            let body = value.trim_ascii_start();
            match (record_time, body.first()) {
                (true, Some(b'{')) => {
                    let _ = write!(part.region, "{{\"{}\":{},", super::KAFKA_TIME, stamp());
                    let rest = &body[1..];
                    if rest.trim_ascii_start().first() == Some(&b'}') {
                        part.region.pop();
                    }
                    part.region.extend_from_slice(rest);
                }
                _ => part.region.extend_from_slice(value),
            }
        }
        (Payload::Avro { confluent }, Some(value)) => {
            let row = match &how.avro {
                Some(schema) => avro_row(schema, value, confluent),
                None => Err(Rejected::NoSchema),
            };
            let mut row = match row {
                Ok(row) => row,
                Err(why) => {
                    part.dead.push(dead(&why.to_string()));
                    return true;
                }
            };
            if record_time {
                row.insert(super::KAFKA_TIME.to_string(), stamp().into());
            }
            let _ = serde_json::to_writer(&mut part.region, &row);
        }
        (Payload::Csv, Some(value)) => {
            let line = value.trim_ascii_end();
            part.region.extend_from_slice(line);
            if record_time {
                let _ = write!(part.region, ",{}", stamp());
            }
        }
    }
    // A value's newlines are whitespace (JSON) or would cut a record
    // (CSV): lines end records.
    for byte in &mut part.region[start..] {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
    part.lines.push((offset as u64, start..part.region.len()));
    part.region.push(b'\n');
    true
}

/// Why a value is not a row of the source's Avro schema.
#[derive(Debug)]
enum Rejected {
    NoSchema,
    NoFraming,
    NotDatum(apache_avro::Error),
    LeftOver(usize),
    NotRecord,
    NotFinite { field: String, value: f64 },
    NotRowType { field: String, value: String },
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::NoSchema => f.write_str("the source has no Avro schema"),
            Rejected::NoFraming => f.write_str(
                "the value does not start with Confluent's framing (a zero byte and a 4-byte \
                 schema id)",
            ),
            Rejected::NotDatum(e) => {
                write!(f, "not an Avro datum of the source's avro_schema: {e}")
            }
            Rejected::LeftOver(n) => write!(
                f,
                "not an Avro datum of the source's avro_schema: {n} bytes are left over after one"
            ),
            Rejected::NotRecord => f.write_str("the Avro datum is not a record"),
            Rejected::NotFinite { field, value } => {
                write!(f, "field `{field}` is {value}, which a row cannot hold yet")
            }
            Rejected::NotRowType { field, value } => {
                write!(f, "field `{field}` holds {value}, not a row's type")
            }
        }
    }
}

/// The fields of an Avro datum of `schema` (after Confluent's 5-byte
/// framing when `confluent`), as a JSON object; why not, if it is not one.
fn avro_row(
    schema: &apache_avro::Schema,
    value: &[u8],
    confluent: bool,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, Rejected> {
    use apache_avro::types::Value;
    let mut datum = value;
    if confluent {
        datum = match value {
            [0, _, _, _, _, rest @ ..] => rest,
            _ => return Err(Rejected::NoFraming),
        };
    }
    let decoded =
        apache_avro::from_avro_datum(schema, &mut datum, None).map_err(Rejected::NotDatum)?;
    if !datum.is_empty() {
        return Err(Rejected::LeftOver(datum.len()));
    }
    let Value::Record(fields) = decoded else {
        return Err(Rejected::NotRecord);
    };
    // The types the table allows (`table::avro`), each as JSON.
    fn json(name: &str, value: Value) -> std::result::Result<serde_json::Value, Rejected> {
        let float = |value: f64| {
            serde_json::Number::from_f64(value)
                .map(serde_json::Value::Number)
                .ok_or_else(|| Rejected::NotFinite {
                    field: name.to_string(),
                    value,
                })
        };
        Ok(match value {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => b.into(),
            Value::Int(i) | Value::Date(i) => i.into(),
            Value::Long(l) | Value::TimestampMillis(l) => l.into(),
            Value::Float(f) => float(f64::from(f))?,
            Value::Double(f) => float(f)?,
            Value::String(text) | Value::Enum(_, text) => text.into(),
            Value::Union(_, inner) => json(name, *inner)?,
            other => {
                return Err(Rejected::NotRowType {
                    field: name.to_string(),
                    value: format!("{other:?}"),
                })
            }
        })
    }
    fields
        .into_iter()
        .map(|(name, value)| json(&name, value).map(|v| (name, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{EventTime, Format};
    use arrow::datatypes::{DataType, Field, Schema};
    use rdkafka::message::{OwnedMessage, Timestamp};
    use std::sync::Arc;

    fn part(format: Format) -> Part {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("kafka_time", DataType::Int64, true),
        ]));
        let time = EventTime::new(&schema, "kafka_time").unwrap();
        Part {
            topic: 0,
            partition: 2,
            next: 10,
            end: Some(20),
            max_time: i64::MIN,
            at_end: false,
            decoder: TextDecoder::new(format, schema, time, "kafka:t/2".into()),
            region: Vec::new(),
            lines: Vec::new(),
            dead: Vec::new(),
        }
    }

    fn message(value: Option<&[u8]>, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            value.map(<[u8]>::to_vec),
            Some(b"k".to_vec()),
            "t".into(),
            Timestamp::CreateTime(1_000),
            2,
            offset,
            None,
        )
    }

    fn reading(payload: Payload, record_time: bool) -> Reading {
        Reading {
            payload,
            record_time,
            avro: None,
        }
    }

    fn text(part: &Part) -> String {
        String::from_utf8(part.region.clone()).unwrap()
    }

    #[test]
    fn a_record_becomes_a_line_with_its_timestamp_and_offset() {
        let mut p = part(Format::Jsonl);
        let json = message(Some(b"{\"a\":1,\n\"b\":2}"), 10);
        assert!(take(&mut p, &json, &reading(Payload::Json, true)));
        assert!(take(
            &mut p,
            &message(Some(b" { } "), 11),
            &reading(Payload::Json, true),
        ));
        assert_eq!(
            text(&p),
            "{\"kafka_time\":1000,\"a\":1, \"b\":2}\n{\"kafka_time\":1000 } \n"
        );
        assert_eq!(p.lines.iter().map(|l| l.0).collect::<Vec<_>>(), [10, 11]);
        assert_eq!(p.next, 12);

        let mut p = part(Format::Csv);
        assert!(take(
            &mut p,
            &message(Some(b"7\r\n"), 10),
            &reading(Payload::Csv, true),
        ));
        assert_eq!(text(&p), "7,1000\n");

        let mut p = part(Format::Jsonl);
        let raw = message(Some("caf\u{e9}".as_bytes()), 10);
        assert!(take(&mut p, &raw, &reading(Payload::Raw, true)));
        assert_eq!(
            text(&p),
            "{\"key\":\"k\",\"value\":\"caf\u{e9}\",\"kafka_time\":1000}\n"
        );
    }

    #[test]
    fn an_avro_datum_becomes_a_json_line_and_one_that_is_not_a_dead_letter() {
        use apache_avro::types::{Record, Value};
        let schema = apache_avro::Schema::parse_str(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "sensor", "type": "string"},
                {"name": "t", "type": ["null", "double"]},
                {"name": "ts", "type": "long"}]}"#,
        )
        .unwrap();
        let mut record = Record::new(&schema).unwrap();
        record.put("sensor", "a");
        record.put("t", Value::Union(1, Box::new(Value::Double(1.5))));
        record.put("ts", 42_i64);
        let datum = apache_avro::to_avro_datum(&schema, record).unwrap();
        let mut framed = vec![0, 0, 0, 0, 7];
        framed.extend_from_slice(&datum);
        let avro = |confluent| Reading {
            payload: Payload::Avro { confluent },
            record_time: true,
            avro: Some(schema.clone()),
        };
        let mut p = part(Format::Jsonl);
        assert!(take(&mut p, &message(Some(&datum), 10), &avro(false)));
        assert!(take(&mut p, &message(Some(&framed), 11), &avro(true)));
        assert_eq!(
            text(&p),
            "{\"kafka_time\":1000,\"sensor\":\"a\",\"t\":1.5,\"ts\":42}\n".repeat(2)
        );
        // Framed read as plain, plain read as framed, a datum cut short.
        assert!(take(&mut p, &message(Some(&framed), 12), &avro(false)));
        assert!(take(&mut p, &message(Some(&datum), 13), &avro(true)));
        assert!(take(&mut p, &message(Some(&datum[..2]), 14), &avro(false)));
        let dead: Vec<u64> = p.dead.iter().map(|d| d.line).collect();
        assert_eq!(dead, [12, 13, 14]);
        assert!(p.dead[0].reason.contains("Avro"), "{}", p.dead[0].reason);
    }

    #[test]
    fn repeats_and_records_past_the_end_are_not_taken_and_bad_ones_are_dead_letters() {
        let mut p = part(Format::Jsonl);
        assert!(!take(
            &mut p,
            &message(Some(b"{}"), 9),
            &reading(Payload::Json, false),
        ));
        assert!(!take(
            &mut p,
            &message(Some(b"{}"), 20),
            &reading(Payload::Json, false),
        ));
        assert!(p.lines.is_empty());
        assert!(take(
            &mut p,
            &message(None, 12),
            &reading(Payload::Json, false)
        ));
        assert!(take(
            &mut p,
            &message(Some(&[0xff, 0xfe]), 13),
            &reading(Payload::Raw, false),
        ));
        let dead: Vec<(String, u64)> = p.dead.iter().map(|d| (d.origin.clone(), d.line)).collect();
        assert_eq!(
            dead,
            [("kafka:t/2".to_string(), 12), ("kafka:t/2".to_string(), 13)]
        );
        assert!(
            p.dead[0].reason.contains("tombstone"),
            "{}",
            p.dead[0].reason
        );
        assert!(p.dead[1].reason.contains("UTF-8"), "{}", p.dead[1].reason);
        assert_eq!(p.next, 14);
    }
}
