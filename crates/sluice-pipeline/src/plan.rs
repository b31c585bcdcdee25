//! Checking a pipeline file and compiling it: the streams, their schemas,
//! and the SQL of every transform, with errors that point into the file.

use crate::config::diag::{Diagnostic, Span};
use crate::config::{self, Expressions, PipelineSpec, SinkSpec, SourceSpec, TransformSpec};
use crate::error::Error;
use crate::format::{self, EventTime, Format};
use crate::sink::Target;
use crate::source::{GeneratorSource, ParquetSource};
use crate::sql::{AggregateExpr, ScalarExpr, SqlContext};
use crate::window::{WindowKind, WindowPlan};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::SortField;
use indexmap::IndexMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// Names no transform may take: the source's stream and the reserved ones.
pub const RESERVED: [&str; 3] = ["source", "late", "dead_letter"];

/// How the dataflow runs.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Each event flows on its own (`event`) or in chunks (`micro-batch`).
    pub event_mode: bool,
    /// In adaptive mode: the latency its chunk sizes keep under.
    pub target_latency: Option<Duration>,
    /// Rows per chunk in micro-batch mode.
    pub batch_size: usize,
    /// The longest a partial chunk waits (unbounded inputs).
    pub batch_interval: Duration,
    /// Workers for keyed work.
    pub workers: usize,
}

impl Execution {
    /// Rows per chunk: one in event mode.
    pub fn chunk_rows(&self) -> usize {
        // Adaptive mode starts event by event and grows chunks as it learns.
        if self.event_mode || self.target_latency.is_some() {
            1
        } else {
            self.batch_size
        }
    }
}

/// Where the source's rows come from.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A file.
    File {
        /// Resolved against the pipeline file's folder.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// Standard input.
    Stdin {
        /// JSON lines or CSV.
        format: Format,
    },
    /// The Nexmark benchmark's events.
    Nexmark {
        /// How many.
        events: u64,
    },
    /// The shared W0/W1 benchmark stream: `key`, `value`, `ts` (see
    /// `FormulaEvent`).
    Formula {
        /// How many.
        events: u64,
    },
    /// A partitioned JetStream stream (a distributed run).
    Nats(NatsSourcePlan),
    /// Synthetic sensor readings.
    Generator {
        /// How many.
        events: u64,
        /// Distinct sensors.
        keys: u64,
        /// Seed.
        seed: u64,
        /// Event-time step.
        interval_ms: u64,
    },
}

/// A NATS JetStream source: a stream partitioned by key, read by every
/// process that runs the pipeline, each owning some partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSourcePlan {
    /// The servers (comma-separated).
    pub url: String,
    /// The stream, its subject and partitions.
    pub stream: sluice_nats::PartitionedStream,
    /// Delivered and not yet acknowledged messages, per partition: the
    /// bound on what is in flight between checkpoints.
    pub max_ack_pending: i64,
    /// End each partition once it has read what the stream held when it
    /// first started (otherwise read forever).
    pub end_when_caught_up: bool,
    /// How long a lease or member lives unrenewed.
    pub lease_ttl: Duration,
    /// Event times from the message's timestamp (no `event_time` field):
    /// the source adds it to each record as `nats_time`.
    pub message_time: bool,
}

/// The field that holds a NATS message's timestamp when the source has no
/// `event_time`.
pub const NATS_TIME: &str = "nats_time";

/// The compiled source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Where rows come from.
    pub kind: SourceKind,
    /// The rows' schema.
    pub schema: SchemaRef,
    /// The event-time column.
    pub time: EventTime,
    /// Watermark lag.
    pub max_out_of_orderness: Duration,
    /// Idle timeout of the watermark.
    pub idle_timeout: Option<Duration>,
    /// At most this many records per second, if set.
    pub rate: Option<f64>,
}

/// What a transform does.
pub enum Operation {
    /// Keeps rows where the predicate holds.
    Filter(ScalarExpr),
    /// New columns.
    Select(Vec<ScalarExpr>),
    /// Keyed windows.
    Window(Arc<WindowPlan>),
    /// Where `when` holds, emits `emit` (or the row).
    Rule {
        /// The trigger.
        when: ScalarExpr,
        /// The action's columns.
        emit: Option<Vec<ScalarExpr>>,
    },
}

/// One compiled transform.
pub struct TransformPlan {
    /// Its output stream's name.
    pub name: String,
    /// Its input stream.
    pub from: String,
    /// `filter`, `select`, `window` or `rule`.
    pub kind: String,
    /// What it does.
    pub operation: Operation,
    /// Its output schema.
    pub schema: SchemaRef,
    /// A one-line description for `validate`.
    pub describe: String,
}

/// One sink.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    /// The stream it writes.
    pub from: String,
    /// Where.
    pub target: Target,
    /// `stream -> path` as the file writes it, for the summary.
    pub label: String,
}

/// A checked and compiled pipeline.
pub struct Plan {
    /// The pipeline's name.
    pub name: String,
    /// The source.
    pub source: SourcePlan,
    /// How it runs.
    pub execution: Execution,
    /// The transforms, in order (every input comes earlier).
    pub transforms: Vec<TransformPlan>,
    /// The sinks.
    pub sinks: Vec<SinkPlan>,
    /// Warnings (streams nobody reads, say).
    pub warnings: Vec<String>,
}

impl Plan {
    /// How many transforms and sinks read `stream`.
    pub fn subscribers(&self, stream: &str) -> usize {
        self.transforms.iter().filter(|t| t.from == stream).count()
            + self.sinks.iter().filter(|s| s.from == stream).count()
    }

    /// The dataflow, for `sluice validate`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "pipeline {}", self.name);
        let mode = if self.execution.event_mode {
            "event (each event on its own)".to_string()
        } else if let Some(target) = self.execution.target_latency {
            format!("adaptive (chunks sized to stay under {target:?})")
        } else {
            format!(
                "micro-batch ({} rows or {:?})",
                self.execution.batch_size, self.execution.batch_interval
            )
        };
        let _ = writeln!(
            out,
            "execution: {mode}, {} worker(s)",
            self.execution.workers
        );
        let source = match &self.source.kind {
            SourceKind::File { path, format } => {
                format!("file {} ({})", path.display(), format.name())
            }
            SourceKind::Stdin { format } => format!("stdin ({})", format.name()),
            SourceKind::Generator { events, keys, .. } => {
                format!("generator ({events} events, {keys} keys)")
            }
            SourceKind::Nexmark { events } => format!("nexmark ({events} events)"),
            SourceKind::Formula { events } => format!("formula ({events} events)"),
            SourceKind::Nats(n) => format!(
                "nats stream {} ({} partitions of {})",
                n.stream.name, n.stream.partitions, n.stream.subject
            ),
        };
        let _ = writeln!(out, "\nsources:");
        let _ = writeln!(
            out,
            "  {source}, event time `{}`, watermark lag {:?}",
            self.source.time.field, self.source.max_out_of_orderness
        );
        let _ = writeln!(out, "\nstreams:");
        let _ = writeln!(out, "  source       {}", schema_line(&self.source.schema));
        for t in &self.transforms {
            let _ = writeln!(out, "  {:<12} {}", t.name, schema_line(&t.schema));
        }
        let _ = writeln!(
            out,
            "  late         (reserved) events beyond a window's allowed lateness, with the reason"
        );
        let _ = writeln!(
            out,
            "  dead_letter  (reserved) records that could not be decoded or evaluated"
        );
        let _ = writeln!(out, "\ntransforms:");
        for t in &self.transforms {
            let _ = writeln!(out, "  {} <- {}: {} {}", t.name, t.from, t.kind, t.describe);
        }
        let _ = writeln!(out, "\nsinks:");
        for s in &self.sinks {
            let _ = writeln!(out, "  {} -> {}", s.from, s.target.describe());
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\nwarning: {w}");
        }
        out
    }
}

fn schema_line(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float64 => "float64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Boolean => "boolean".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// Reads, checks and compiles the pipeline file at `path`, after the
/// `--set` overrides; `workers` overrides `execution.workers`.
pub fn load(path: &Path, overrides: &[String], workers: Option<usize>) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", path.display())))?;
    let mut text = text;
    for assignment in overrides {
        text = config::apply_override(&text, assignment).map_err(|e| e.context(path.display()))?;
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    load_str(&text, path, &base, workers)
}

/// Checks and compiles a pipeline file's `text`; `path` names it in
/// errors and relative paths resolve against `base`.
pub fn load_str(
    text: &str,
    path: &Path,
    base: &Path,
    workers: Option<usize>,
) -> Result<Plan, Error> {
    let invalid = |d: Diagnostic| Error::Invalid(d.render(path, text));
    let spec = config::parse(text).map_err(invalid)?;
    match compile(&spec, base, workers) {
        Ok(plan) => Ok(plan),
        Err(Failure::Invalid(d)) => Err(invalid(d)),
        Err(Failure::Runtime(e)) => Err(e),
    }
}

enum Failure {
    Invalid(Diagnostic),
    /// Something outside the file failed (an input that cannot be read).
    Runtime(Error),
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Invalid(d)
    }
}

fn at(span: Span, message: impl std::fmt::Display) -> Failure {
    Failure::Invalid(Diagnostic::at(span, message.to_string()))
}

/// The longest duration a pipeline file may give: longer ones are typing
/// mistakes, and their arithmetic would overflow.
const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The longest a batch may be, in rows: longer ones would allocate
/// gigabytes per batch.
const MOST_ROWS: i64 = 1 << 22;

/// The most workers a file may ask for (each is a thread).
const MOST_WORKERS: i64 = 1024;

/// The most windows a sliding window may put each event in (size / slide).
const MOST_PANES: i64 = 10_000;

fn duration(value: &Spanned<String>, what: &str) -> Result<Duration, Failure> {
    let d = humantime::parse_duration(value.get_ref().trim()).map_err(|e| {
        at(
            value.span(),
            format!(
                "{what} `{}` is not a duration ({e}); write it like \"500ms\", \"2s\" or \"1m\"",
                value.get_ref()
            ),
        )
    })?;
    if d > LONGEST {
        return Err(at(
            value.span(),
            format!(
                "{what} `{}` is longer than ten years, the longest a pipeline file takes; \
                 write a shorter duration",
                value.get_ref()
            ),
        ));
    }
    Ok(d)
}

/// A duration on the event-time axis, which counts milliseconds: whole
/// milliseconds of at least `least` (a window of 500µs would round to
/// nothing).
fn event_millis(value: &Spanned<String>, what: &str, least: i64) -> Result<i64, Failure> {
    let d = duration(value, what)?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(at(
            value.span(),
            format!(
                "{what} `{}` is not a whole number of milliseconds: event times count \
                 milliseconds, so write it like \"1ms\", \"250ms\" or \"2s\"",
                value.get_ref()
            ),
        ));
    }
    let ms = millis(d);
    if ms < least {
        let message = if least == 1 {
            format!("{what} must be longer than zero")
        } else {
            format!("{what} must be at least {least}ms")
        };
        return Err(at(value.span(), message));
    }
    Ok(ms)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The copies a NATS stream keeps in a cluster: 1 to 5, as NATS allows.
fn replicas(value: Option<&Spanned<u32>>) -> Result<usize, Failure> {
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

/// Says which keys of a table don't apply to its type.
fn only(
    kind: &Spanned<String>,
    given: &[(&str, Option<Span>)],
    allowed: &[&str],
) -> Result<(), Failure> {
    for (key, span) in given {
        if let Some(span) = span {
            if !allowed.contains(key) {
                return Err(at(
                    span.clone(),
                    format!(
                        "`{key}` does not apply to type \"{}\"; it takes: {}",
                        kind.get_ref(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn span_of<T>(value: &Option<Spanned<T>>) -> Option<Span> {
    value.as_ref().map(Spanned::span)
}

fn compile(spec: &PipelineSpec, base: &Path, workers: Option<usize>) -> Result<Plan, Failure> {
    let execution = execution(spec, workers)?;
    let source = source(spec.source.get_ref(), spec.source.span(), base)?;
    let mut schemas: IndexMap<String, SchemaRef> = IndexMap::new();
    schemas.insert("source".into(), source.schema.clone());
    let mut transforms = Vec::new();
    let mut previous = "source".to_string();
    for t in &spec.transforms {
        let plan = transform(t.get_ref(), &previous, &schemas)?;
        previous = plan.name.clone();
        schemas.insert(plan.name.clone(), plan.schema.clone());
        transforms.push(plan);
    }
    let mut sinks = Vec::new();
    for s in &spec.sinks {
        sinks.push(sink(s.get_ref(), &schemas, base)?);
    }
    if sinks.is_empty() {
        return Err(at(
            0..0,
            "the pipeline has no sink; add [[sink]] with `from` and `type` (stdout or file)",
        ));
    }
    let mut plan = Plan {
        name: spec.name.get_ref().clone(),
        source,
        execution,
        transforms,
        sinks,
        warnings: Vec::new(),
    };
    let unread: Vec<String> = std::iter::once("source".to_string())
        .chain(plan.transforms.iter().map(|t| t.name.clone()))
        .filter(|s| plan.subscribers(s) == 0)
        .collect();
    for stream in unread {
        plan.warnings.push(format!(
            "stream `{stream}` has no transform or sink reading it; its rows are discarded"
        ));
    }
    Ok(plan)
}

fn execution(spec: &PipelineSpec, workers: Option<usize>) -> Result<Execution, Failure> {
    let e = &spec.execution;
    let (event_mode, adaptive) = match &e.mode {
        None => (false, false),
        Some(mode) => match mode.get_ref().as_str() {
            "event" => (true, false),
            "micro-batch" | "microbatch" | "micro_batch" => (false, false),
            "adaptive" => (false, true),
            other => {
                return Err(at(
                    mode.span(),
                    format!(
                        "mode \"{other}\" is not known; use \"event\", \"micro-batch\" or \
                         \"adaptive\""
                    ),
                ))
            }
        },
    };
    let target_latency = match (&e.target_latency, adaptive) {
        (None, false) => None,
        (None, true) => Some(Duration::from_millis(5)),
        (Some(t), false) => {
            return Err(at(
                t.span(),
                "target_latency is for mode = \"adaptive\"; set the mode, or remove it",
            ))
        }
        (Some(t), true) => {
            let target = duration(t, "target_latency")?;
            let policy = sluice::FlushPolicy::Adaptive {
                target_latency: target,
            };
            policy.validate().map_err(|e| at(t.span(), e.to_string()))?;
            Some(target)
        }
    };
    let batch_size = match &e.batch_size {
        None => 4096,
        Some(n) if (1..=MOST_ROWS).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            return Err(at(
                n.span(),
                format!("batch_size must be at least 1 and at most {MOST_ROWS} rows"),
            ))
        }
    };
    let batch_interval = match &e.batch_interval {
        None => Duration::from_millis(100),
        Some(d) => duration(d, "batch_interval")?,
    };
    let workers = match (workers, &e.workers) {
        (Some(w), _) if (1..=MOST_WORKERS as usize).contains(&w) => w,
        (Some(w), _) => {
            return Err(Failure::Invalid(Diagnostic::new(
                None,
                format!("{w} workers: workers must be at least 1 and at most {MOST_WORKERS}"),
            )))
        }
        (None, None) => 1,
        (None, Some(w)) if (1..=MOST_WORKERS).contains(w.get_ref()) => *w.get_ref() as usize,
        (None, Some(w)) => {
            return Err(at(
                w.span(),
                format!("workers must be at least 1 and at most {MOST_WORKERS}"),
            ))
        }
    };
    Ok(Execution {
        event_mode,
        target_latency,
        batch_size,
        batch_interval,
        workers,
    })
}

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

fn source(s: &SourceSpec, span: Span, base: &Path) -> Result<SourcePlan, Failure> {
    let given = [
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
    let common = ["event_time", "max_out_of_orderness", "idle_timeout", "rate"];
    let explicit = match &s.schema {
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
    };
    let text_format = |default: Option<Format>| -> Result<Format, Failure> {
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
    };
    let (kind, schema) = match s.kind.get_ref().as_str() {
        "file" => {
            only(
                &s.kind,
                &given,
                &[&["path", "format", "schema"][..], &common[..]].concat(),
            )?;
            let path_value = s
                .path
                .as_ref()
                .ok_or_else(|| at(s.kind.span(), "a file source needs `path`, the input file"))?;
            let path = base.join(path_value.get_ref());
            let format = text_format(Format::from_path(&path))?;
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
                explicit.as_deref(),
                time_field,
                path_value.span(),
            )?;
            (SourceKind::File { path, format }, schema)
        }
        "stdin" => {
            only(
                &s.kind,
                &given,
                &[&["format", "schema"][..], &common[..]].concat(),
            )?;
            let format = text_format(None)?;
            if format == Format::Parquet {
                return Err(at(
                    span_of(&s.format).unwrap_or(span.clone()),
                    "stdin takes \"jsonl\" or \"csv\"; read Parquet from a file",
                ));
            }
            let fields = explicit.as_deref().ok_or_else(|| {
                at(
                    s.kind.span(),
                    "a stdin source needs `schema = { field = \"type\", ... }`: stdin can't be \
                     read ahead to infer one",
                )
            })?;
            (
                SourceKind::Stdin { format },
                format::explicit_schema(fields),
            )
        }
        "generator" => {
            only(
                &s.kind,
                &given,
                &[&["events", "keys", "seed", "interval_ms"][..], &common[..]].concat(),
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
            (
                SourceKind::Generator {
                    events,
                    keys,
                    seed: s.seed.as_ref().map_or(7, |v| *v.get_ref()),
                    interval_ms,
                },
                GeneratorSource::schema(),
            )
        }
        "formula" => {
            only(&s.kind, &given, &[&["events"][..], &common[..]].concat())?;
            (
                SourceKind::Formula {
                    events: s.events.as_ref().map_or(10_000_000, |v| *v.get_ref()),
                },
                crate::source::FormulaRows::schema(),
            )
        }
        "nexmark" => {
            only(&s.kind, &given, &[&["events"][..], &common[..]].concat())?;
            (
                SourceKind::Nexmark {
                    events: s.events.as_ref().map_or(1_000_000, |v| *v.get_ref()),
                },
                crate::source::NexmarkRows::schema(),
            )
        }
        "nats" => {
            only(
                &s.kind,
                &given,
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
                    &common[..],
                ]
                .concat(),
            )?;
            nats_source(s, explicit.as_deref())?
        }
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

/// The `nats` source: its stream, partitions and settings, and the schema
/// of its JSON payloads (given, as for stdin: a stream can't be read ahead).
fn nats_source(
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

fn compile_exprs(
    sql: &SqlContext,
    exprs: &Spanned<Expressions>,
) -> Result<(Vec<ScalarExpr>, SchemaRef), Failure> {
    if exprs.get_ref().is_empty() {
        return Err(at(
            exprs.span(),
            "name at least one column: { name = \"expression\" }",
        ));
    }
    let mut compiled = Vec::new();
    let mut fields = Vec::new();
    for (name, e) in exprs.get_ref() {
        let c = sql
            .scalar(e.get_ref())
            .map_err(|m| at(e.span(), format!("in `{name}`: {m}")))?;
        fields.push(c.field(name));
        compiled.push(c);
    }
    Ok((compiled, Arc::new(Schema::new(fields))))
}

fn transform(
    t: &TransformSpec,
    previous: &str,
    schemas: &IndexMap<String, SchemaRef>,
) -> Result<TransformPlan, Failure> {
    let name = t.name.get_ref().clone();
    if RESERVED.contains(&name.as_str()) {
        return Err(at(
            t.name.span(),
            format!("`{name}` is a reserved stream name; choose another name"),
        ));
    }
    if name.is_empty() {
        return Err(at(t.name.span(), "a transform needs a non-empty name"));
    }
    if schemas.contains_key(&name) {
        return Err(at(
            t.name.span(),
            format!("a stream named `{name}` already exists; names must be unique"),
        ));
    }
    let from = match &t.from {
        None => previous.to_string(),
        Some(f) => {
            if matches!(f.get_ref().as_str(), "late" | "dead_letter") {
                return Err(at(
                    f.span(),
                    format!(
                        "`{}` is a reserved stream that only sinks can read",
                        f.get_ref()
                    ),
                ));
            }
            if !schemas.contains_key(f.get_ref()) {
                return Err(at(
                    f.span(),
                    format!(
                        "no stream named `{}` before this transform; streams: {}",
                        f.get_ref(),
                        schemas.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            f.get_ref().clone()
        }
    };
    let input = schemas[&from].clone();
    let sql = SqlContext::new(input.clone()).map_err(|m| at(t.name.span(), m))?;
    let given = [
        ("where", span_of(&t.predicate)),
        ("columns", span_of(&t.columns)),
        ("key", span_of(&t.key)),
        ("window", span_of(&t.window)),
        ("aggregates", span_of(&t.aggregates)),
        ("allowed_lateness", span_of(&t.allowed_lateness)),
        ("when", span_of(&t.when)),
        ("emit", span_of(&t.emit)),
    ];
    let kind = t.kind.get_ref().clone();
    let missing = |key: &str, example: &str| {
        at(
            t.name.span(),
            format!("a {kind} transform needs `{key}`, like {example}"),
        )
    };
    let (operation, schema, describe) = match kind.as_str() {
        "filter" => {
            only(&t.kind, &given, &["where"])?;
            let p = t
                .predicate
                .as_ref()
                .ok_or_else(|| missing("where", "where = \"temperature > 0\""))?;
            let c = sql.scalar(p.get_ref()).map_err(|m| at(p.span(), m))?;
            if c.data_type != DataType::Boolean {
                return Err(at(
                    p.span(),
                    format!(
                        "`where` must be true or false, but `{}` is {}",
                        p.get_ref(),
                        c.data_type
                    ),
                ));
            }
            let describe = format!("where {}", p.get_ref());
            (Operation::Filter(c), input.clone(), describe)
        }
        "select" => {
            only(&t.kind, &given, &["columns"])?;
            let cols = t
                .columns
                .as_ref()
                .ok_or_else(|| missing("columns", "columns = { f = \"(temp - 32) / 1.8\" }"))?;
            let (exprs, schema) = compile_exprs(&sql, cols)?;
            let describe = cols
                .get_ref()
                .iter()
                .map(|(n, e)| format!("{n} = {}", e.get_ref()))
                .collect::<Vec<_>>()
                .join(", ");
            (Operation::Select(exprs), schema, describe)
        }
        "rule" => {
            only(&t.kind, &given, &["when", "emit"])?;
            let w = t
                .when
                .as_ref()
                .ok_or_else(|| missing("when", "when = \"max_temp > 80\""))?;
            let when = sql.scalar(w.get_ref()).map_err(|m| at(w.span(), m))?;
            if when.data_type != DataType::Boolean {
                return Err(at(
                    w.span(),
                    format!(
                        "`when` must be true or false, but `{}` is {}",
                        w.get_ref(),
                        when.data_type
                    ),
                ));
            }
            let (emit, schema) = match &t.emit {
                Some(e) => {
                    let (exprs, schema) = compile_exprs(&sql, e)?;
                    (Some(exprs), schema)
                }
                None => (None, input.clone()),
            };
            let describe = format!("when {}", w.get_ref());
            (Operation::Rule { when, emit }, schema, describe)
        }
        "window" => {
            only(
                &t.kind,
                &given,
                &["key", "window", "aggregates", "allowed_lateness"],
            )?;
            window(t, &name, &input, &sql)?
        }
        other => {
            return Err(at(
                t.kind.span(),
                format!(
                    "transform type \"{other}\" is not known; use \"filter\", \"select\", \
                     \"window\" or \"rule\""
                ),
            ))
        }
    };
    Ok(TransformPlan {
        name,
        from,
        kind,
        operation,
        schema,
        describe,
    })
}

fn window(
    t: &TransformSpec,
    name: &str,
    input: &SchemaRef,
    sql: &SqlContext,
) -> Result<(Operation, SchemaRef, String), Failure> {
    let w = t.window.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a window transform needs `window`, like window = { type = \"tumbling\", size = \"10s\" }",
        )
    })?;
    let ws = w.get_ref();
    let size_duration = |what: &str| -> Result<i64, Failure> {
        let size = ws.size.as_ref().ok_or_else(|| {
            at(
                w.span(),
                format!("a {what} window needs `size`, like size = \"10s\""),
            )
        })?;
        match size.get_ref() {
            toml::Value::String(text) => {
                event_millis(&Spanned::new(size.span(), text.clone()), "size", 1)
            }
            _ => Err(at(
                size.span(),
                "size of a time window is a duration, like \"10s\"",
            )),
        }
    };
    let wgiven = [
        ("size", span_of(&ws.size)),
        ("slide", span_of(&ws.slide)),
        ("gap", span_of(&ws.gap)),
    ];
    let kind =
        match ws.kind.get_ref().as_str() {
            "tumbling" => {
                only(&ws.kind, &wgiven, &["size"])?;
                WindowKind::Tumbling {
                    size: size_duration("tumbling")?,
                }
            }
            "sliding" => {
                only(&ws.kind, &wgiven, &["size", "slide"])?;
                let size = size_duration("sliding")?;
                let slide = ws.slide.as_ref().ok_or_else(|| {
                    at(
                        w.span(),
                        "a sliding window needs `slide`, like slide = \"5s\"",
                    )
                })?;
                let step = event_millis(slide, "slide", 0)?;
                if step <= 0 || step > size {
                    return Err(at(
                        slide.span(),
                        "slide must be longer than zero and no longer than size",
                    ));
                }
                if size / step > MOST_PANES {
                    return Err(at(
                        slide.span(),
                        format!(
                            "with size {size}ms and slide {step}ms each event falls in {} \
                             windows; at most {MOST_PANES} are supported: make slide longer",
                            size / step
                        ),
                    ));
                }
                WindowKind::Sliding { size, slide: step }
            }
            "session" => {
                only(&ws.kind, &wgiven, &["gap"])?;
                let gap = ws.gap.as_ref().ok_or_else(|| {
                    at(w.span(), "a session window needs `gap`, like gap = \"30s\"")
                })?;
                let g = event_millis(gap, "gap", 1)?;
                WindowKind::Session { gap: g }
            }
            "count" => {
                only(&ws.kind, &wgiven, &["size"])?;
                let size = ws.size.as_ref().ok_or_else(|| {
                    at(w.span(), "a count window needs `size`, a number of events")
                })?;
                match size.get_ref() {
                    toml::Value::Integer(n) if *n > 0 => WindowKind::Count { size: *n as u64 },
                    _ => {
                        return Err(at(
                            size.span(),
                            "size of a count window is a number of events, like size = 100",
                        ))
                    }
                }
            }
            other => {
                return Err(at(
                    ws.kind.span(),
                    format!(
                        "window type \"{other}\" is not known; use \"tumbling\", \"sliding\", \
                     \"session\" or \"count\""
                    ),
                ))
            }
        };
    let lateness = match &t.allowed_lateness {
        None => 0,
        Some(d) => {
            if matches!(kind, WindowKind::Count { .. }) {
                return Err(at(
                    d.span(),
                    "count windows close on a count, not on event time: remove allowed_lateness",
                ));
            }
            event_millis(d, "allowed_lateness", 0)?
        }
    };
    let key_fields: Vec<String> = t
        .key
        .as_ref()
        .map(|k| k.get_ref().fields())
        .unwrap_or_default();
    let mut keys = Vec::new();
    let mut sort_fields = Vec::new();
    let mut out_fields = Vec::new();
    for field in &key_fields {
        let (index, f) = input.column_with_name(field).ok_or_else(|| {
            at(
                span_of(&t.key).unwrap_or(t.name.span()),
                format!(
                    "key field `{field}` is not in stream; fields: {}",
                    format::field_names(input)
                ),
            )
        })?;
        keys.push(index);
        sort_fields.push(SortField::new(f.data_type().clone()));
        out_fields.push(Field::new(f.name(), f.data_type().clone(), true));
    }
    if sort_fields.is_empty() {
        sort_fields.push(SortField::new(DataType::Boolean));
    }
    out_fields.push(Field::new("window_start", DataType::Int64, false));
    out_fields.push(Field::new("window_end", DataType::Int64, false));
    let aggs = t.aggregates.as_ref().ok_or_else(|| {
        at(
            t.name.span(),
            "a window transform needs `aggregates`, like aggregates = { n = \"count(*)\" }",
        )
    })?;
    if aggs.get_ref().is_empty() {
        return Err(at(
            aggs.span(),
            "name at least one aggregate: { n = \"count(*)\" }",
        ));
    }
    let mut aggregates: Vec<(String, AggregateExpr)> = Vec::new();
    for (out, e) in aggs.get_ref() {
        if out_fields.iter().any(|f| f.name() == out) {
            return Err(at(
                e.span(),
                format!("`{out}` is already a column of the window's output; rename it"),
            ));
        }
        let a = sql
            .aggregate(e.get_ref())
            .map_err(|m| at(e.span(), format!("in `{out}`: {m}")))?;
        out_fields.push(a.field(out));
        aggregates.push((out.clone(), a));
    }
    let output = Arc::new(Schema::new(out_fields));
    let describe = format!(
        "{:?} by [{}], {} aggregate(s), allowed lateness {lateness} ms",
        kind,
        key_fields.join(", "),
        aggregates.len()
    );
    let plan = WindowPlan {
        name: name.to_string(),
        kind,
        keys,
        key_fields: sort_fields,
        aggregates,
        lateness,
        output: output.clone(),
    };
    Ok((Operation::Window(Arc::new(plan)), output, describe))
}

fn sink(
    s: &SinkSpec,
    schemas: &IndexMap<String, SchemaRef>,
    base: &Path,
) -> Result<SinkPlan, Failure> {
    let from = s.from.get_ref();
    if !schemas.contains_key(from) && !matches!(from.as_str(), "late" | "dead_letter") {
        return Err(at(
            s.from.span(),
            format!(
                "no stream named `{from}`; streams: {}, late, dead_letter",
                schemas.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let format = match &s.format {
        None => None,
        Some(f) => Some(Format::from_name(f.get_ref()).ok_or_else(|| {
            at(
                f.span(),
                format!(
                    "format \"{}\" is not known; use \"jsonl\", \"csv\" or \"parquet\"",
                    f.get_ref()
                ),
            )
        })?),
    };
    let kind = s.kind.get_ref().as_str();
    if kind != "nats" {
        for (key, span) in [
            ("url", span_of(&s.url)),
            ("subject", span_of(&s.subject)),
            ("stream", span_of(&s.stream)),
            ("replicas", span_of(&s.replicas)),
        ] {
            if let Some(span) = span {
                return Err(at(
                    span,
                    format!("`{key}` applies to nats sinks only; remove it"),
                ));
            }
        }
    }
    let target = match kind {
        "nats" => {
            for (key, span) in [("path", span_of(&s.path)), ("format", span_of(&s.format))] {
                if let Some(span) = span {
                    return Err(at(
                        span,
                        format!("a nats sink publishes JSON records; `{key}` does not apply"),
                    ));
                }
            }
            let need = |value: &Option<Spanned<String>>, key: &str, example: &str| {
                value.as_ref().map(|v| v.get_ref().clone()).ok_or_else(|| {
                    at(
                        s.kind.span(),
                        format!("a nats sink needs `{key}`: {key} = \"{example}\""),
                    )
                })
            };
            let subject = need(&s.subject, "subject", "alerts")?;
            if subject.contains(['*', '>', ' ']) || subject.is_empty() {
                return Err(at(
                    span_of(&s.subject).unwrap_or(s.kind.span()),
                    "a sink's subject is one subject, without wildcards or spaces (a field's \
                     value goes in with `{field}`)",
                ));
            }
            let braces = subject.matches(['{', '}']).count();
            let field = crate::sink::subject_field(&subject);
            if braces != field.map_or(0, |_| 2) {
                return Err(at(
                    span_of(&s.subject).unwrap_or(s.kind.span()),
                    format!(
                        "subject \"{subject}\": a field's value goes in as one whole token, \
                         once: \"alerts.{{sensor}}\""
                    ),
                ));
            }
            if let Some(field) = field {
                let fields = schemas.get(from).map(|schema| format::field_names(schema));
                let known = match schemas.get(from) {
                    Some(schema) => schema.field_with_name(field).is_ok(),
                    None => true, // late, dead_letter: checked when written
                };
                if !known {
                    return Err(at(
                        span_of(&s.subject).unwrap_or(s.kind.span()),
                        format!(
                            "subject \"{subject}\": stream `{from}` has no field `{field}`; \
                             fields: {}",
                            fields.unwrap_or_default()
                        ),
                    ));
                }
            }
            Target::Nats(crate::sink::NatsTarget {
                url: need(&s.url, "url", "nats://127.0.0.1:4222")?,
                subject,
                stream: s.stream.as_ref().map(|v| v.get_ref().clone()),
                replicas: replicas(s.replicas.as_ref())?,
                id_prefix: String::new(),
            })
        }
        "stdout" => {
            if let Some(p) = &s.path {
                return Err(at(p.span(), "a stdout sink takes no `path`; remove it"));
            }
            if let (Some(f), Some(format)) = (&s.format, format) {
                if format != Format::Jsonl {
                    return Err(at(f.span(), "stdout writes JSON lines; remove `format`"));
                }
            }
            Target::Stdout
        }
        "file" => {
            let p = s
                .path
                .as_ref()
                .ok_or_else(|| at(s.kind.span(), "a file sink needs `path`, the output file"))?;
            let path = base.join(p.get_ref());
            let format = format.or_else(|| Format::from_path(&path)).ok_or_else(|| {
                at(
                    p.span(),
                    "can't tell the format from the extension; name the file .jsonl, .csv or \
                     .parquet, or add format = \"jsonl\"",
                )
            })?;
            Target::File { path, format }
        }
        other => {
            return Err(at(
                s.kind.span(),
                format!("sink type \"{other}\" is not known; use \"stdout\", \"file\" or \"nats\""),
            ))
        }
    };
    let label = match &target {
        Target::Nats(n) => format!("{from} -> nats:{}", n.subject),
        _ => format!(
            "{from} -> {}",
            s.path.as_ref().map_or("stdout", |p| p.get_ref().as_str())
        ),
    };
    Ok(SinkPlan {
        from: from.clone(),
        target,
        label,
    })
}
