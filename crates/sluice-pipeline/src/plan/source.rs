//! Checking a source table and compiling it: its connector's settings, the
//! input's schema (given, inferred from a sample, or the connector's), event
//! time and watermark.

use super::*;

/// How many bytes of an input to read to infer its schema.
const SAMPLE_BYTES: u64 = 1 << 20;

fn sample(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| {
        Failure::Runtime(Error::input(format!("cannot read {}", path.display())).caused_by(e))
    })?;
    let mut bytes = Vec::new();
    file.take(SAMPLE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Failure::Runtime(Error::input(format!("cannot read {}", path.display())).caused_by(e))
        })?;
    // Only whole lines.
    if bytes.len() as u64 == SAMPLE_BYTES {
        if let Some(nl) = memchr::memrchr(b'\n', &bytes) {
            bytes.truncate(nl + 1);
        }
    }
    Ok(bytes)
}

/// What a source's table says, shared by the checks of every type.
struct Table<'a> {
    /// Each key the table may hold, with where it was given.
    given: Vec<(&'a str, Option<Span>)>,
    /// The schema the table gives, if it gives one.
    explicit: Option<Vec<(String, DataType)>>,
}

/// The keys every source type takes.
const COMMON: [&str; 4] = ["event_time", "max_out_of_orderness", "idle_timeout", "rate"];

pub(super) fn source(s: &SourceSpec, span: Span, base: &Path) -> Result<SourcePlan, Failure> {
    let given = vec![
        ("path", span_of(&s.path)),
        ("format", span_of(&s.format)),
        ("event_time", span_of(&s.event_time)),
        ("max_out_of_orderness", span_of(&s.max_out_of_orderness)),
        ("idle_timeout", span_of(&s.idle_timeout)),
        ("rate", span_of(&s.rate)),
        ("schema", span_of(&s.schema)),
        ("events", span_of(&s.events)),
        ("keys", span_of(&s.keys)),
        ("seed", span_of(&s.seed)),
        ("interval_ms", span_of(&s.interval_ms)),
        ("url", span_of(&s.url)),
        ("stream", span_of(&s.stream)),
        ("subject", span_of(&s.subject)),
        ("partitions", span_of(&s.partitions)),
        ("replicas", span_of(&s.replicas)),
        ("max_ack_pending", span_of(&s.max_ack_pending)),
        ("end", span_of(&s.end)),
        ("lease_ttl", span_of(&s.lease_ttl)),
    ];
    let t = Table {
        given,
        explicit: explicit_schema(s)?,
    };
    let (kind, schema) = match s.kind.get_ref().as_str() {
        "file" => file_source(s, &t, base)?,
        "stdin" => stdin_source(s, &t, &span)?,
        "generator" => generator_source(s, &t)?,
        "formula" => formula_source(s, &t)?,
        "nexmark" => nexmark_source(s, &t)?,
        "nats" => nats_source(s, &t)?,
        other => {
            return Err(at(
                s.kind.span(),
                format!(
                    "source type \"{other}\" is not known; use \"file\", \"stdin\", \
                     \"generator\", \"nexmark\", \"formula\" or \"nats\""
                ),
            ))
        }
    };
    if let SourceKind::Nats(n) = &kind {
        if n.message_time {
            return finish_source(kind, schema, NATS_TIME, None, s);
        }
    }
    let time_field = match (&s.event_time, &kind) {
        (Some(f), _) => f,
        (
            None,
            SourceKind::Generator { .. } | SourceKind::Nexmark { .. } | SourceKind::Formula { .. },
        ) => {
            return finish_source(kind, schema, "ts", None, s);
        }
        (None, _) => {
            return Err(at(
                s.kind.span(),
                format!(
                    "the source needs `event_time`, the field that holds each record's time; \
                     fields: {}",
                    format::field_names(&schema)
                ),
            ))
        }
    };
    finish_source(
        kind,
        schema,
        time_field.get_ref(),
        Some(time_field.span()),
        s,
    )
}

/// The schema a source's table gives (`schema = { field = "type", ... }`).
fn explicit_schema(s: &SourceSpec) -> Result<Option<Vec<(String, DataType)>>, Failure> {
    Ok(match &s.schema {
        None => None,
        Some(fields) => {
            let mut out = Vec::new();
            for (name, t) in fields.get_ref() {
                let dt = format::parse_type(t.get_ref()).ok_or_else(|| {
                    at(
                        t.span(),
                        format!(
                            "type \"{}\" of field `{name}` is not known; use one of: {}",
                            t.get_ref(),
                            format::TYPE_NAMES
                        ),
                    )
                })?;
                out.push((name.clone(), dt));
            }
            Some(out)
        }
    })
}

/// The format a text source's table says, or `default`.
fn text_format(s: &SourceSpec, default: Option<Format>) -> Result<Format, Failure> {
    match &s.format {
        Some(f) => match Format::from_name(f.get_ref()) {
            Some(format) => Ok(format),
            None => Err(at(
                f.span(),
                format!(
                    "format \"{}\" is not known; use \"jsonl\", \"csv\" or \"parquet\"",
                    f.get_ref()
                ),
            )),
        },
        None => default.ok_or_else(|| {
            at(
                s.kind.span(),
                "say the input's format: format = \"jsonl\", \"csv\" or \"parquet\"",
            )
        }),
    }
}

/// A file: its path (against the pipeline file's folder), format and schema.
fn file_source(
    s: &SourceSpec,
    t: &Table<'_>,
    base: &Path,
) -> Result<(SourceKind, SchemaRef), Failure> {
    only(
        &s.kind,
        &t.given,
        &[&["path", "format", "schema"][..], &COMMON[..]].concat(),
    )?;
    let path_value = s
        .path
        .as_ref()
        .ok_or_else(|| at(s.kind.span(), "a file source needs `path`, the input file"))?;
    let path = base.join(path_value.get_ref());
    let format = text_format(s, Format::from_path(&path))?;
    if !path.exists() {
        return Err(Failure::Runtime(Error::input(format!(
            "cannot read {}: no such file (from `path` of the source)",
            path.display()
        ))));
    }
    let time_field = s.event_time.as_ref().map(|f| f.get_ref().as_str());
    let schema = input_schema(
        format,
        Some(&path),
        t.explicit.as_deref(),
        time_field,
        path_value.span(),
    )?;
    Ok((SourceKind::File { path, format }, schema))
}

/// Standard input: JSON lines or CSV, with a given schema (stdin cannot be read ahead).
fn stdin_source(
    s: &SourceSpec,
    t: &Table<'_>,
    span: &Span,
) -> Result<(SourceKind, SchemaRef), Failure> {
    only(
        &s.kind,
        &t.given,
        &[&["format", "schema"][..], &COMMON[..]].concat(),
    )?;
    let format = text_format(s, None)?;
    if format == Format::Parquet {
        return Err(at(
            span_of(&s.format).unwrap_or(span.clone()),
            "stdin takes \"jsonl\" or \"csv\"; read Parquet from a file",
        ));
    }
    let fields = t.explicit.as_deref().ok_or_else(|| {
        at(
            s.kind.span(),
            "a stdin source needs `schema = { field = \"type\", ... }`: stdin can't be \
             read ahead to infer one",
        )
    })?;
    Ok((
        SourceKind::Stdin { format },
        format::explicit_schema(fields),
    ))
}

/// Synthetic sensor readings.
fn generator_source(s: &SourceSpec, t: &Table<'_>) -> Result<(SourceKind, SchemaRef), Failure> {
    only(
        &s.kind,
        &t.given,
        &[&["events", "keys", "seed", "interval_ms"][..], &COMMON[..]].concat(),
    )?;
    let events = s.events.as_ref().map_or(1_000_000, |v| *v.get_ref());
    let keys = s.keys.as_ref().map_or(100, |v| *v.get_ref());
    if keys == 0 {
        let span = span_of(&s.keys).unwrap_or(s.kind.span());
        return Err(at(span, "keys must be at least 1"));
    }
    let interval_ms = s.interval_ms.as_ref().map_or(1, |v| *v.get_ref());
    if events
        .checked_mul(interval_ms)
        .is_none_or(|last| last > i64::MAX as u64)
    {
        let span = span_of(&s.interval_ms).unwrap_or(s.kind.span());
        return Err(at(
            span,
            format!(
                "{events} events {interval_ms}ms apart go past the last event time \
                 (year 292 million); make interval_ms or events smaller"
            ),
        ));
    }
    Ok((
        SourceKind::Generator {
            events,
            keys,
            seed: s.seed.as_ref().map_or(7, |v| *v.get_ref()),
            interval_ms,
        },
        GeneratorSource::schema(),
    ))
}

/// The shared W0/W1 benchmark stream.
fn formula_source(s: &SourceSpec, t: &Table<'_>) -> Result<(SourceKind, SchemaRef), Failure> {
    only(&s.kind, &t.given, &[&["events"][..], &COMMON[..]].concat())?;
    Ok((
        SourceKind::Formula {
            events: s.events.as_ref().map_or(10_000_000, |v| *v.get_ref()),
        },
        crate::connectors::generator::FormulaRows::schema(),
    ))
}

/// The Nexmark benchmark's events.
fn nexmark_source(s: &SourceSpec, t: &Table<'_>) -> Result<(SourceKind, SchemaRef), Failure> {
    only(&s.kind, &t.given, &[&["events"][..], &COMMON[..]].concat())?;
    Ok((
        SourceKind::Nexmark {
            events: s.events.as_ref().map_or(1_000_000, |v| *v.get_ref()),
        },
        crate::connectors::generator::NexmarkRows::schema(),
    ))
}

/// A partitioned JetStream stream.
fn nats_source(s: &SourceSpec, t: &Table<'_>) -> Result<(SourceKind, SchemaRef), Failure> {
    only(
        &s.kind,
        &t.given,
        &[
            &[
                "format",
                "schema",
                "url",
                "stream",
                "subject",
                "partitions",
                "replicas",
                "max_ack_pending",
                "end",
                "lease_ttl",
            ][..],
            &COMMON[..],
        ]
        .concat(),
    )?;
    nats_settings(s, t.explicit.as_deref())
}

/// The `nats` source: its stream, partitions and settings, and the schema
/// of its JSON payloads (given, as for stdin: a stream can't be read ahead).
fn nats_settings(
    s: &SourceSpec,
    explicit: Option<&[(String, DataType)]>,
) -> Result<(SourceKind, SchemaRef), Failure> {
    let need = |value: &Option<Spanned<String>>, key: &str, example: &str| {
        value.as_ref().map(|v| v.get_ref().clone()).ok_or_else(|| {
            at(
                s.kind.span(),
                format!("a nats source needs `{key}`: {key} = \"{example}\""),
            )
        })
    };
    let url = need(&s.url, "url", "nats://127.0.0.1:4222")?;
    let stream = need(&s.stream, "stream", "readings")?;
    let subject = need(&s.subject, "subject", "readings.*")?;
    if let Some(f) = &s.format {
        if Format::from_name(f.get_ref()) != Some(Format::Jsonl) {
            return Err(at(
                f.span(),
                "a nats source reads JSON payloads: format = \"jsonl\" or no format",
            ));
        }
    }
    let partitions = s.partitions.as_ref().map_or(1, |p| *p.get_ref());
    let stream = sluice_nats::PartitionedStream {
        name: stream,
        subject,
        partitions,
        replicas: replicas(s.replicas.as_ref())?,
    };
    if let Err(e) = stream.validate() {
        let span = span_of(&s.subject).unwrap_or(s.kind.span());
        return Err(at(span, e.to_string()));
    }
    let max_ack_pending = match &s.max_ack_pending {
        Some(m) if *m.get_ref() < 1 => {
            return Err(at(m.span(), "max_ack_pending must be at least 1"));
        }
        Some(m) => *m.get_ref(),
        None => 100_000,
    };
    let end_when_caught_up = match s.end.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
        None | Some(("never", _)) => false,
        Some(("caught-up", _)) => true,
        Some((other, span)) => {
            return Err(at(
                span,
                format!(
                    "end = \"{other}\" is not known; use \"never\" (read forever) or \
                     \"caught-up\" (end once what the stream held at the start is read)"
                ),
            ))
        }
    };
    let lease_ttl = match &s.lease_ttl {
        Some(d) => duration(d, "lease_ttl")?,
        None => Duration::from_secs(10),
    };
    if lease_ttl < Duration::from_millis(500) {
        let span = span_of(&s.lease_ttl).unwrap_or(s.kind.span());
        return Err(at(span, "lease_ttl must be at least 500ms"));
    }
    let fields = explicit.ok_or_else(|| {
        at(
            s.kind.span(),
            "a nats source needs `schema = { field = \"type\", ... }`: a stream can't be read \
             ahead to infer one",
        )
    })?;
    let message_time = s.event_time.is_none();
    let mut fields = fields.to_vec();
    if message_time {
        fields.push((NATS_TIME.to_string(), DataType::Int64));
    }
    Ok((
        SourceKind::Nats(NatsSourcePlan {
            url,
            stream,
            max_ack_pending,
            end_when_caught_up,
            lease_ttl,
            message_time,
        }),
        format::explicit_schema(&fields),
    ))
}

fn finish_source(
    kind: SourceKind,
    schema: SchemaRef,
    field: &str,
    span: Option<Span>,
    s: &SourceSpec,
) -> Result<SourcePlan, Failure> {
    let time = EventTime::new(&schema, field).map_err(|m| {
        Failure::Invalid(Diagnostic::new(span.or(Some(s.kind.span())), m.to_string()))
    })?;
    let max_out_of_orderness = match &s.max_out_of_orderness {
        Some(d) => Duration::from_millis(event_millis(d, "max_out_of_orderness", 0)? as u64),
        None => Duration::ZERO,
    };
    let idle_timeout = match &s.idle_timeout {
        Some(d) => {
            let timeout = duration(d, "idle_timeout")?;
            if timeout.is_zero() {
                return Err(at(d.span(), "idle_timeout must be longer than zero"));
            }
            Some(timeout)
        }
        None => None,
    };
    let rate = match &s.rate {
        Some(r) if !(r.get_ref().is_finite() && *r.get_ref() >= 0.001) => {
            return Err(at(
                r.span(),
                format!(
                    "rate = {} is not a number of records per second of at least 0.001; write e.g. \
                     rate = 1000, or remove it to read as fast as the dataflow goes",
                    r.get_ref()
                ),
            ))
        }
        Some(r) => Some(*r.get_ref()),
        None => None,
    };
    Ok(SourcePlan {
        kind,
        schema,
        time,
        max_out_of_orderness,
        idle_timeout,
        rate,
    })
}

fn input_schema(
    format: Format,
    path: Option<&Path>,
    explicit: Option<&[(String, DataType)]>,
    time_field: Option<&str>,
    span: Span,
) -> Result<SchemaRef, Failure> {
    let Some(path) = path else {
        return Err(at(span, "a schema is needed"));
    };
    match format {
        Format::Parquet => ParquetSource::schema(path).map_err(Failure::Runtime),
        Format::Jsonl => match explicit {
            Some(fields) => Ok(format::explicit_schema(fields)),
            None => format::infer_jsonl(&sample(path)?, time_field)
                .map(Arc::new)
                .map_err(|m| at(span, format!("{}: {m}", path.display()))),
        },
        Format::Csv => {
            let bytes = sample(path)?;
            let header = format::csv_header(&bytes);
            match explicit {
                // The columns follow the header; the types come from `schema`.
                Some(fields) => {
                    let mut out = Vec::new();
                    for name in &header {
                        let t = fields
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, t)| t.clone())
                            .ok_or_else(|| {
                                at(
                                    span.clone(),
                                    format!(
                                        "{}: column `{name}` of the header is not in `schema`; \
                                         add it",
                                        path.display()
                                    ),
                                )
                            })?;
                        out.push((name.clone(), t));
                    }
                    Ok(format::explicit_schema(&out))
                }
                None => format::infer_csv(&bytes, time_field)
                    .map(|schema| {
                        // Nullable, for rows with empty fields.
                        let fields: Vec<Field> = schema
                            .fields()
                            .iter()
                            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                            .collect();
                        Arc::new(Schema::new(fields))
                    })
                    .map_err(|m| at(span, format!("{}: {m}", path.display()))),
            }
        }
    }
}
