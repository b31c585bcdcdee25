//! Checking and compiling the tables of nats sources and sinks: servers,
//! stream, partitions, flow control, leases, and subjects that may name a
//! field.

use super::{Nats, NatsSourcePlan, NatsTarget, NATS_TIME};
use crate::config::diag::{at, Failure};
use crate::config::duration;
use crate::connectors::{CompiledSource, SinkConnector, SinkTable, SourceTable};
use crate::format::{self, Format};
use arrow::datatypes::DataType;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// A partitioned JetStream stream, and the schema of its JSON payloads
/// (given, as for stdin: a stream can't be read ahead).
pub(super) fn source(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let url = t.need("url", "nats://127.0.0.1:4222")?.into_inner();
    let name = t.need("stream", "readings")?.into_inner();
    let subject = t.need("subject", "readings.*")?;
    if let Some(f) = &t.spec.format {
        if Format::from_name(f.get_ref()) != Some(Format::Jsonl) {
            return Err(at(
                f.span(),
                "a nats source reads JSON payloads: format = \"jsonl\" or no format",
            ));
        }
    }
    let stream = sluice_nats::PartitionedStream {
        name,
        subject: subject.get_ref().clone(),
        partitions: t.get::<u32>("partitions")?.map_or(1, |p| *p.get_ref()),
        replicas: replicas(t.get::<u32>("replicas")?)?,
    };
    if let Err(e) = stream.validate() {
        return Err(at(subject.span(), e.to_string()));
    }
    let max_ack_pending = match t.get::<i64>("max_ack_pending")? {
        Some(m) if *m.get_ref() < 1 => {
            return Err(at(m.span(), "max_ack_pending must be at least 1"));
        }
        Some(m) => *m.get_ref(),
        None => 100_000,
    };
    let end_when_caught_up = t.ends_when_caught_up("the stream")?;
    let lease_ttl = match t.get::<String>("lease_ttl")? {
        Some(d) if duration(&d, "lease_ttl")? < Duration::from_millis(500) => {
            return Err(at(d.span(), "lease_ttl must be at least 500ms"));
        }
        Some(d) => duration(&d, "lease_ttl")?,
        None => Duration::from_secs(10),
    };
    let mut fields = t.required_schema("a stream")?;
    let message_time = t.spec.event_time.is_none();
    if message_time {
        fields.push((NATS_TIME.to_string(), DataType::Int64));
    }
    Ok(CompiledSource {
        connector: Arc::new(Nats(NatsSourcePlan {
            url,
            stream,
            max_ack_pending,
            end_when_caught_up,
            lease_ttl,
            message_time,
        })),
        schema: format::explicit_schema(&fields),
    })
}

/// A subject to publish JSON records to, one whole token of which may be a
/// field's value (`alerts.{sensor}`).
pub(super) fn sink(t: &SinkTable<'_>) -> Result<Box<dyn SinkConnector>, Failure> {
    let subject = t.need("subject", "alerts")?;
    let (text, span) = (subject.get_ref(), subject.span());
    if text.contains(['*', '>', ' ']) || text.is_empty() {
        return Err(at(
            span,
            "a sink's subject is one subject, without wildcards or spaces (a field's value \
             goes in with `{field}`)",
        ));
    }
    let braces = text.matches(['{', '}']).count();
    let field = super::sink::subject_field(text);
    if braces != field.map_or(0, |_| 2) {
        return Err(at(
            span,
            format!(
                "subject \"{text}\": a field's value goes in as one whole token, once: \
                 \"alerts.{{sensor}}\""
            ),
        ));
    }
    // `late` and `dead_letter` (no schema here) are checked when written.
    if let (Some(field), Some(schema)) = (field, t.schema) {
        if schema.field_with_name(field).is_err() {
            return Err(at(
                span,
                format!(
                    "subject \"{text}\": stream `{}` has no field `{field}`; fields: {}",
                    t.spec.from.get_ref(),
                    format::field_names(schema)
                ),
            ));
        }
    }
    Ok(Box::new(NatsTarget {
        url: t.need("url", "nats://127.0.0.1:4222")?.into_inner(),
        subject: subject.into_inner(),
        stream: t.get::<String>("stream")?.map(Spanned::into_inner),
        replicas: replicas(t.get::<u32>("replicas")?)?,
        id_prefix: String::new(),
    }))
}

/// Copies of each message, bucket and checkpoint in a cluster: 1 to 5.
fn replicas(value: Option<Spanned<u32>>) -> Result<usize, Failure> {
    match value {
        None => Ok(1),
        Some(r) if (1..=5).contains(r.get_ref()) => Ok(*r.get_ref() as usize),
        Some(r) => Err(at(
            r.span(),
            format!(
                "replicas = {} is not possible: a NATS stream keeps 1 to 5 copies",
                r.get_ref()
            ),
        )),
    }
}
