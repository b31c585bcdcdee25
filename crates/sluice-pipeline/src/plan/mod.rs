//! Checking a pipeline file and compiling it: the streams, their schemas,
//! and the SQL of every transform, with errors that point into the file.

use crate::config::diag::{at, Diagnostic, Failure, Span};
use crate::config::TransformSpec;
use crate::config::{self, duration, Expressions, PipelineSpec, SinkSpec, SourceSpec};
use crate::connectors::{self, CompiledSource, SinkConnector, SourceConnector};
use crate::error::Error;
use crate::format::{self, EventTime};
use crate::sql::{AggregateExpr, Functions, ScalarExpr, SqlContext};
use crate::window::{WindowKind, WindowPlan};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::SortField;
use indexmap::IndexMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

mod changelog;
mod execution;
mod join;
mod lookup;
mod sink;
mod source;
mod transform;

use execution::execution;
use sink::sink;
use source::source;
use transform::transform;

/// Whether rows of `schema` are a changelog: they carry `op` (insert,
/// update, delete) and `revision`, as a window with an allowed lateness
/// and a running aggregate write them (docs/concepts.md).
pub fn is_changelog(schema: &Schema) -> bool {
    let has = |name: &str, types: &[DataType]| {
        schema
            .field_with_name(name)
            .is_ok_and(|f| types.contains(f.data_type()))
    };
    has("op", &[DataType::Utf8])
        && has(
            "revision",
            &[DataType::UInt32, DataType::UInt64, DataType::Int64],
        )
}

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

#[cfg(feature = "nats")]
pub use crate::connectors::nats::NatsSourcePlan;

/// The compiled source.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Where rows come from: the connector, with its settings.
    pub connector: Arc<dyn SourceConnector>,
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
    /// A filter of a changelog: a row that fails the predicate deletes
    /// what its key's earlier rows set (its `op` becomes `delete`), unless
    /// it is an insert (there is nothing to delete).
    ChangelogFilter {
        /// The predicate.
        predicate: ScalarExpr,
        /// The `op` column.
        op: usize,
    },
    /// New columns.
    Select(Vec<ScalarExpr>),
    /// Keyed windows.
    Window(Arc<WindowPlan>),
    /// Pairs of rows of two streams with equal keys, close in time.
    Join(Arc<crate::join::JoinPlan>),
    /// Pairs of a stream's rows with the rows of a table read at start.
    Lookup(Arc<crate::lookup::LookupPlan>),
    /// A running aggregate of a changelog, taking updated values back out.
    Retract(Arc<crate::changelog::RetractPlan>),
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

impl TransformPlan {
    /// The streams it reads: `from`, and a join's right input.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        let right = match &self.operation {
            Operation::Join(join) => Some(join.right.as_str()),
            _ => None,
        };
        std::iter::once(self.from.as_str()).chain(right)
    }
}

/// One sink.
#[derive(Debug)]
pub struct SinkPlan {
    /// The stream it writes.
    pub from: String,
    /// Where.
    pub target: Box<dyn SinkConnector>,
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
    /// The schema of stream `stream` (the source's, or a transform's).
    pub fn stream_schema(&self, stream: &str) -> SchemaRef {
        self.transforms
            .iter()
            .find(|t| t.name == stream)
            .map_or_else(|| self.source.schema.clone(), |t| t.schema.clone())
    }

    /// How many transforms and sinks read `stream`.
    pub fn subscribers(&self, stream: &str) -> usize {
        self.transforms
            .iter()
            .map(|t| t.inputs().filter(|i| *i == stream).count())
            .sum::<usize>()
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
        let source = self.source.connector.describe();
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
            let inputs: Vec<&str> = t.inputs().collect();
            let _ = writeln!(
                out,
                "  {} <- {}: {} {}",
                t.name,
                inputs.join(", "),
                t.kind,
                t.describe
            );
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
    load_with(path, overrides, workers, &Functions::default())
}

/// [`load`], with functions written in Rust that the file's SQL may call.
pub fn load_with(
    path: &Path,
    overrides: &[String],
    workers: Option<usize>,
    functions: &Functions,
) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", path.display())))?;
    let mut text = text;
    if is_sql(path) && !overrides.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: overrides (--set) apply to TOML pipeline files; in a SQL pipeline, edit the \
             file or its SET statements",
            path.display()
        )));
    }
    for assignment in overrides {
        text = config::apply_override(&text, assignment).map_err(|e| e.context(path.display()))?;
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    load_str_with(&text, path, &base, workers, functions)
}

/// Checks and compiles a pipeline file's `text`; `path` names it in
/// errors and relative paths resolve against `base`.
pub fn load_str(
    text: &str,
    path: &Path,
    base: &Path,
    workers: Option<usize>,
) -> Result<Plan, Error> {
    load_str_with(text, path, base, workers, &Functions::default())
}

/// [`load_str`], with functions written in Rust that the file's SQL may
/// call.
pub fn load_str_with(
    text: &str,
    path: &Path,
    base: &Path,
    workers: Option<usize>,
    functions: &Functions,
) -> Result<Plan, Error> {
    let invalid = |d: Diagnostic| Error::Invalid(d.render(path, text));
    let spec = if is_sql(path) {
        let stem = path
            .file_stem()
            .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy());
        crate::sql::parse_pipeline(text, &stem).map_err(invalid)?
    } else {
        let mut spec = config::parse(text).map_err(invalid)?;
        crate::sql::expand_queries(&mut spec, text).map_err(invalid)?;
        spec
    };
    match compile(&spec, base, workers, functions) {
        Ok(plan) => Ok(plan),
        Err(Failure::Invalid(d)) => Err(invalid(d)),
        Err(Failure::Runtime(e)) => Err(e),
    }
}

/// A pipeline written in SQL (`.sql`), not TOML.
fn is_sql(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
}

/// The longest a batch may be, in rows: longer ones would allocate
/// gigabytes per batch.
const MOST_ROWS: i64 = 1 << 22;

/// The most workers a file may ask for (each is a thread).
const MOST_WORKERS: i64 = 1024;

/// The most windows a sliding window may put each event in (size / slide).
const MOST_PANES: i64 = 10_000;

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

fn compile(
    spec: &PipelineSpec,
    base: &Path,
    workers: Option<usize>,
    functions: &Functions,
) -> Result<Plan, Failure> {
    // The keys of every source and sink table first, as reading the file
    // checks the others' (a misspelt key before anything else).
    connectors::check_source(spec.source.get_ref())?;
    for s in &spec.sinks {
        connectors::check_sink(s.get_ref())?;
    }
    let execution = execution(spec, workers)?;
    let source = source(spec.source.get_ref(), base, spec.name.get_ref())?;
    let mut schemas: IndexMap<String, SchemaRef> = IndexMap::new();
    schemas.insert("source".into(), source.schema.clone());
    let mut transforms = Vec::new();
    let mut previous = "source".to_string();
    for t in &spec.transforms {
        let plan = transform(t.get_ref(), &previous, &schemas, functions, base)?;
        previous = plan.name.clone();
        schemas.insert(plan.name.clone(), plan.schema.clone());
        transforms.push(plan);
    }
    let mut sinks: Vec<SinkPlan> = Vec::new();
    for s in &spec.sinks {
        let plan = sink(s.get_ref(), &schemas, base)?;
        if let Some(what) = plan.target.exclusive() {
            if sinks
                .iter()
                .any(|o| o.target.exclusive().as_ref() == Some(&what))
            {
                return Err(at(
                    s.span(),
                    format!(
                        "another sink writes {what} too: two writers of one target overwrite \
                         each other or take each other's records for their own after a crash. \
                         Give each its own (a kafka sink's `id`, a file's `path`)"
                    ),
                ));
            }
        }
        sinks.push(plan);
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
