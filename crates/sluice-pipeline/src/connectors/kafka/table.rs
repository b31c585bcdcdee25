//! Checking and compiling the tables of kafka sources and sinks.

use super::{
    KafkaSourceConnector, KafkaSourcePlan, KafkaTarget, Payload, Start, KAFKA_TIME,
    SEQUENCE_HEADER, WRITER_HEADER,
};
use crate::config::diag::{at, Failure, Span};
use crate::config::duration;
use crate::connectors::{
    names, CompiledSource, Coordination, SinkConnector, SinkTable, SourceTable,
};
use crate::format;
use arrow::datatypes::DataType;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// Topics read by offset, and the schema of their records (given: a topic
/// is not read ahead to infer one).
///
/// ```toml
/// [source]
/// type = "kafka"
/// brokers = "127.0.0.1:9092"
/// topic = "readings"
/// schema = { sensor = "string", temperature = "float", ts = "int" }
/// event_time = "ts"
/// ```
pub(super) fn source(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let brokers = brokers(t.need("brokers", "127.0.0.1:9092")?)?;
    let topics = names(&t.spec.settings, "topic")?
        .ok_or_else(|| {
            at(
                t.span(),
                "a kafka source needs `topic`: topic = \"readings\" (or a list: topic = [\"a\", \"b\"])",
            )
        })?
        .into_inner();
    if let Some(again) = topics
        .iter()
        .enumerate()
        .find(|(i, topic)| topics[..*i].contains(topic))
    {
        return Err(at(
            t.span(),
            format!("topic `{}` is listed twice: list each topic once", again.1),
        ));
    }
    let payload = match &t.spec.format {
        None => Payload::Json,
        Some(f) => match f.get_ref().as_str() {
            "jsonl" | "json" => Payload::Json,
            "csv" => Payload::Csv,
            "raw" => Payload::Raw,
            "avro" => Payload::Avro { confluent: false },
            "avro-confluent" => Payload::Avro { confluent: true },
            other => {
                return Err(at(
                    f.span(),
                    format!(
                        "format \"{other}\" is not one a kafka source reads; use \"jsonl\" (a \
                         JSON object per record), \"csv\" (a CSV line per record, no header), \
                         \"raw\" (text: rows of `key` and `value`), \"avro\" (an Avro datum of \
                         `avro_schema`) or \"avro-confluent\" (the same after Confluent's 5-byte \
                         framing)"
                    ),
                ))
            }
        },
    };
    let mut avro_schema = None;
    let mut fields = match payload {
        Payload::Raw => {
            if let Some(schema) = &t.spec.schema {
                return Err(at(
                    schema.span(),
                    "format \"raw\" gives rows of `key` and `value` (text): remove `schema`, \
                     or read JSON or CSV records with format = \"jsonl\" or \"csv\"",
                ));
            }
            vec![
                ("key".to_string(), DataType::Utf8),
                ("value".to_string(), DataType::Utf8),
            ]
        }
        Payload::Avro { .. } => {
            let (schema, fields) = avro(t)?;
            avro_schema = Some(schema);
            fields
        }
        _ => t.required_schema("a topic")?,
    };
    if let (Payload::Json | Payload::Csv | Payload::Raw, Some(given)) =
        (payload, t.get::<String>("avro_schema")?)
    {
        return Err(at(
            given.span(),
            "avro_schema is the schema of Avro records: give format = \"avro\" (or \
             \"avro-confluent\"), or remove it",
        ));
    }
    let start = match t.get::<String>("start")? {
        None => Start::Earliest,
        Some(s) => start(&s)?,
    };
    let end_when_caught_up = t.ends_when_caught_up("the topics")?;
    let record_time = t.spec.event_time.is_none();
    if record_time {
        if fields.iter().any(|(name, _)| name == KAFKA_TIME) {
            return Err(at(
                t.span(),
                format!(
                    "the schema has a field `{KAFKA_TIME}`, the name the record's timestamp \
                     takes without `event_time`: rename the field, or give `event_time` \
                     the field that holds each record's time"
                ),
            ));
        }
        fields.push((KAFKA_TIME.to_string(), DataType::Int64));
    }
    // By default a group per pipeline: two pipelines reading one topic
    // do not mix their offsets in one group.
    let group = t.get::<String>("group")?.map_or_else(
        || match t.pipeline {
            "" => format!("sluice-{}", topics.join("-")),
            name => format!("sluice-{name}"),
        },
        Spanned::into_inner,
    );
    Ok(CompiledSource {
        connector: Arc::new(KafkaSourceConnector(
            KafkaSourcePlan {
                brokers,
                topics,
                payload,
                start,
                end_when_caught_up,
                group,
                properties: properties(t.get::<toml::Table>("properties")?, &[])?,
                record_time,
                avro_schema,
                coordination: coordination(t)?,
            },
            t.readers()?,
        )),
        schema: format::explicit_schema(&fields),
    })
}

/// A topic rows are written to.
///
/// ```toml
/// [[sink]]
/// from = "per_minute"
/// type = "kafka"
/// brokers = "127.0.0.1:9092"
/// topic = "readings-per-minute"
/// key = "sensor"
/// ```
pub(super) fn sink(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    let brokers = brokers(t.need("brokers", "127.0.0.1:9092")?)?;
    let topic = t.need("topic", "alerts")?.into_inner();
    let payload = match t.get::<String>("format")? {
        None => Payload::Json,
        Some(f) => match f.get_ref().as_str() {
            "jsonl" | "json" => Payload::Json,
            "csv" => Payload::Csv,
            other => {
                return Err(at(
                    f.span(),
                    format!(
                        "format \"{other}\" is not one a kafka sink writes; use \"jsonl\" (a \
                         JSON object per record) or \"csv\" (a CSV line per record)"
                    ),
                ))
            }
        },
    };
    let key = t.get::<String>("key")?;
    // `late` and `dead_letter` (no schema here) are checked when written.
    if let (Some(key), Some(schema)) = (&key, t.schema) {
        if schema.field_with_name(key.get_ref()).is_err() {
            return Err(at(
                key.span(),
                format!(
                    "key `{}`: stream `{}` has no such field; fields: {}",
                    key.get_ref(),
                    t.spec.from.get_ref(),
                    format::field_names(schema)
                ),
            ));
        }
    }
    let headers = t.text_table("headers", |name, _| {
        (name == WRITER_HEADER || name == SEQUENCE_HEADER).then(|| {
            format!("header `{name}` is the one Sluice numbers its records with: rename it")
        })
    })?;
    let count = |key: &str| -> Result<i32, Failure> {
        match t.get::<u32>(key)? {
            None => Ok(1),
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > 100_000 => {
                Err(at(n.span(), format!("{key} must be between 1 and 100000")))
            }
            Some(n) => Ok(i32::try_from(*n.get_ref()).unwrap_or(1)),
        }
    };
    Ok(Box::new(KafkaTarget {
        brokers,
        topic,
        payload,
        key: key.map(Spanned::into_inner),
        headers,
        id: t
            .get::<String>("id")?
            .map_or_else(|| t.spec.from.get_ref().clone(), Spanned::into_inner),
        partitions: count("partitions")?,
        replicas: count("replicas")?,
        // How long a record may take to land is what the sink's guarantee
        // rests on (deliveries awaited at checkpoints; in a distributed run,
        // within a sixth of the lease).
        properties: properties(
            t.get::<toml::Table>("properties")?,
            &["message.timeout.ms", "delivery.timeout.ms"],
        )?,
        claim: None,
    }))
}

/// The Avro schema a source's records are written with (`avro_schema`, a
/// file of JSON relative to the pipeline file), as its canonical form, and
/// the rows' fields it gives: a record of booleans, integers, floating
/// point numbers, strings and enums (each may be a union with null).
fn avro(t: &SourceTable<'_>) -> Result<(String, Vec<(String, DataType)>), Failure> {
    use apache_avro::Schema;
    if let Some(schema) = &t.spec.schema {
        return Err(at(
            schema.span(),
            "Avro records bring their fields (`avro_schema`): remove `schema`",
        ));
    }
    let given = t.need("avro_schema", "schemas/reading.avsc")?;
    let path = t.base.join(given.get_ref());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        at(
            given.span(),
            format!("cannot read the Avro schema {}: {e}", path.display()),
        )
    })?;
    let schema = Schema::parse_str(&text).map_err(|e| {
        at(
            given.span(),
            format!("{} is not an Avro schema: {e}", path.display()),
        )
    })?;
    let Schema::Record(record) = &schema else {
        return Err(at(
            given.span(),
            format!(
                "{} is not the schema of a record (\"type\": \"record\"): a row is a record's \
                 fields",
                path.display()
            ),
        ));
    };
    let mut fields = Vec::new();
    for field in &record.fields {
        let mut inner = &field.schema;
        if let Schema::Union(union) = inner {
            let variants: Vec<&Schema> = union
                .variants()
                .iter()
                .filter(|v| !matches!(v, Schema::Null))
                .collect();
            if let [one] = variants.as_slice() {
                inner = one;
            }
        }
        let data_type = match inner {
            Schema::Boolean => DataType::Boolean,
            Schema::Int | Schema::Long | Schema::TimestampMillis | Schema::Date => DataType::Int64,
            Schema::Float | Schema::Double => DataType::Float64,
            Schema::String | Schema::Enum(_) => DataType::Utf8,
            other => {
                return Err(at(
                    given.span(),
                    format!(
                        "field `{}` of the Avro schema is of a type rows do not hold ({:?}): \
                         fields are booleans, ints, longs (timestamp-millis, date), floats, \
                         doubles, strings or enums (or a union of one with null)",
                        field.name,
                        apache_avro::schema::SchemaKind::from(other)
                    ),
                ))
            }
        };
        fields.push((field.name.clone(), data_type));
    }
    Ok((schema.canonical_form(), fields))
}

/// Where the processes of a distributed run meet, when the source says:
/// `coordination` (NATS servers), `lease_ttl`, `coordination_replicas`.
fn coordination(t: &SourceTable<'_>) -> Result<Option<Coordination>, Failure> {
    let url = t.get::<String>("coordination")?;
    let ttl = t.get::<String>("lease_ttl")?;
    let replicas = t.get::<u32>("coordination_replicas")?;
    let Some(url) = url else {
        if let Some(given) = ttl
            .as_ref()
            .map(Spanned::span)
            .or(replicas.map(|r| r.span()))
        {
            return Err(at(
                given,
                "lease_ttl and coordination_replicas are settings of a distributed run: give \
                 `coordination` too (the NATS servers where its processes meet, \
                 coordination = \"nats://127.0.0.1:4222\"), or remove them",
            ));
        }
        return Ok(None);
    };
    if !cfg!(feature = "nats") {
        return Err(at(
            url.span(),
            "this build of Sluice has no NATS client (feature `nats`), which distributed runs \
             meet through: build it with the feature, or remove `coordination`",
        ));
    }
    if !url
        .get_ref()
        .split(',')
        .all(|u| u.trim().starts_with("nats://"))
    {
        return Err(at(
            url.span(),
            "coordination names the NATS servers where the processes of a distributed run \
             meet: coordination = \"nats://127.0.0.1:4222\" (several separated by commas)",
        ));
    }
    let lease_ttl = match ttl {
        Some(d) if duration(&d, "lease_ttl")? < Duration::from_millis(500) => {
            return Err(at(d.span(), "lease_ttl must be at least 500ms"));
        }
        Some(d) => duration(&d, "lease_ttl")?,
        None => Duration::from_secs(10),
    };
    let replicas = match replicas {
        Some(r) if !(1..=5).contains(r.get_ref()) => {
            return Err(at(
                r.span(),
                "coordination_replicas must be between 1 and 5",
            ));
        }
        Some(r) => *r.get_ref() as usize,
        None => 1,
    };
    Ok(Some(Coordination {
        url: url.into_inner(),
        lease_ttl,
        replicas,
    }))
}

/// `host:port` servers, separated by commas.
fn brokers(given: Spanned<String>) -> Result<String, Failure> {
    let list = given.get_ref();
    let good = !list.is_empty()
        && list.split(',').all(|b| {
            let b = b.trim();
            b.rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    if !good {
        return Err(at(
            given.span(),
            format!(
                "brokers \"{list}\" is not a list of host:port: brokers = \"127.0.0.1:9092\" \
                 (several: \"a:9092,b:9092\")"
            ),
        ));
    }
    Ok(given.into_inner())
}

/// `start = "earliest" | "latest" | "committed" | an RFC 3339 time`.
fn start(given: &Spanned<String>) -> Result<Start, Failure> {
    Ok(match given.get_ref().as_str() {
        "earliest" => Start::Earliest,
        "latest" => Start::Latest,
        "committed" => Start::Committed,
        other => match chrono::DateTime::parse_from_rfc3339(other) {
            Ok(time) => Start::Time(time.timestamp_millis()),
            Err(_) => {
                return Err(at(
                    given.span(),
                    format!(
                        "start = \"{other}\" is not known; use \"earliest\", \"latest\", \
                         \"committed\" (the consumer group's offsets) or a time: start = \
                         \"2026-12-01T00:00:00Z\""
                    ),
                ))
            }
        },
    })
}

/// The client's extra settings: strings, numbers or booleans, by
/// librdkafka's names; refusing those Sluice sets itself
/// (`client::OWNED`, and `owned` for this side).
fn properties(
    table: Option<Spanned<toml::Table>>,
    owned: &[&str],
) -> Result<Vec<(String, String)>, Failure> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    let span: Span = table.span();
    let mut out = Vec::new();
    for (name, value) in table.into_inner() {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(at(
                    span,
                    format!("property `{name}`: its value is a string, a number or a boolean"),
                ))
            }
        };
        if super::client::OWNED.contains(&name.as_str()) || owned.contains(&name.as_str()) {
            return Err(at(
                span,
                format!(
                    "property `{name}` is set by Sluice (its guarantees rest on it): remove it"
                ),
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}
