//! Running a compiled pipeline on Sluice's runtime: one source stage, the
//! transforms fused onto it or behind a key exchange, and the sinks.

use crate::decode::TextDecoder;
use crate::plan::{Operation, Plan, SourceKind};
use crate::reserved::Reserved;
use crate::rows::Rows;
use crate::sink::RowSink;
use crate::source::{Bytes, GeneratorSource, ParquetSource, SourceCounters, TextSource};
use crate::transform::{CountOp, FilterOp, ProjectOp, Routed, SplitByKey};
use crate::window::WindowOp;
use arrow::row::RowConverter;
use serde::Serialize;
use sluice::watermark::WatermarkStrategy;
use sluice::{FlushPolicy, Pipeline, Stream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a run did: the line `sluice run` prints at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The pipeline's name.
    pub pipeline: String,
    /// Records read from the source.
    pub read: u64,
    /// Records read that were neither late nor dead letters.
    pub processed: u64,
    /// Events beyond a window's allowed lateness.
    pub late: u64,
    /// Records that could not be decoded or evaluated.
    pub dead_letter: u64,
    /// Rows written, per sink (`stream -> target`).
    pub emitted: indexmap::IndexMap<String, u64>,
    /// Wall time of the run.
    pub seconds: f64,
}

/// Shared state a run exposes while it goes (for the progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// The source's counters.
    pub source: Arc<SourceCounters>,
    /// The input's size in bytes, when known.
    pub total_bytes: Option<u64>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

/// Prepares a run: what the progress bar watches, before [`run`].
pub fn progress(plan: &Plan) -> Progress {
    let total_bytes = match &plan.source.kind {
        SourceKind::File { path, .. } => std::fs::metadata(path).ok().map(|m| m.len()),
        _ => None,
    };
    Progress {
        source: Arc::new(SourceCounters::default()),
        total_bytes,
    }
}

/// Runs `plan` to the end of its input.
pub fn run(plan: Plan, progress: &Progress) -> Result<Summary, RunError> {
    let started = Instant::now();
    let reserved = Arc::new(Reserved::new());
    let exec = plan.execution.clone();
    let chunk_rows = exec.chunk_rows();
    let pipeline = Pipeline::new().with_workers(exec.workers);
    let counters = progress.source.clone();

    // Open every sink first: an unwritable path fails before reading.
    let mut emitted: indexmap::IndexMap<String, Arc<AtomicU64>> = indexmap::IndexMap::new();
    let mut sink_writers: HashMap<String, Vec<RowSink>> = HashMap::new();
    for sink in &plan.sinks {
        let label = sink.label.clone();
        let count = emitted
            .entry(label)
            .or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone();
        let schema = match reserved.get(&sink.from) {
            Some(stream) => stream.schema(),
            None => stream_schema(&plan, &sink.from),
        };
        let writer = sink.target.open(schema).map_err(RunError)?;
        match reserved.get(&sink.from) {
            Some(stream) => stream.subscribe(writer, count),
            None => sink_writers
                .entry(sink.from.clone())
                .or_default()
                .push(RowSink::new(writer, count)),
        }
    }

    let source: Stream<Rows> = match &plan.source.kind {
        SourceKind::File { path, format } if *format == crate::decode::Format::Parquet => {
            let source = ParquetSource::open(
                path,
                chunk_rows,
                plan.source.time.clone(),
                reserved.clone(),
                counters.clone(),
            )
            .map_err(RunError)?;
            pipeline.source(source)
        }
        SourceKind::File { path, format } => {
            let file = std::fs::File::open(path)
                .map_err(|e| RunError(format!("cannot read {}: {e}", path.display())))?;
            pipeline.source(text_source(
                &plan,
                Bytes::File(file),
                path.display().to_string(),
                *format,
                &reserved,
                &counters,
            ))
        }
        SourceKind::Stdin { format } => pipeline.source(text_source(
            &plan,
            Bytes::stdin(),
            "stdin".into(),
            *format,
            &reserved,
            &counters,
        )),
        SourceKind::Nexmark { events } => pipeline.source(crate::source::NexmarkRows::new(
            *events,
            chunk_rows,
            counters.clone(),
        )),
        SourceKind::Generator {
            events,
            keys,
            seed,
            interval_ms,
        } => pipeline.source(GeneratorSource::new(
            *events,
            *keys,
            *seed,
            *interval_ms,
            chunk_rows,
            counters.clone(),
        )),
    };
    let mut strategy = WatermarkStrategy::bounded(plan.source.max_out_of_orderness);
    if let Some(idle) = plan.source.idle_timeout {
        strategy = strategy.with_idle_timeout(idle);
    }
    let source = source.with_watermarks(strategy).events;

    let mut streams: HashMap<String, Vec<Stream<Rows>>> = HashMap::new();
    let add_stream = |streams: &mut HashMap<String, Vec<Stream<Rows>>>,
                      name: &str,
                      stream: Stream<Rows>,
                      plan: &Plan| {
        let stream = stream.operator({
            let name = name.to_string();
            move |down, _| Box::new(CountOp::new(name.clone(), down))
        });
        let readers = plan.subscribers(name);
        let branches = if readers == 0 {
            stream.for_each(|_| {});
            Vec::new()
        } else if readers == 1 {
            vec![stream]
        } else {
            stream.fan_out(readers)
        };
        streams.insert(name.to_string(), branches);
    };
    add_stream(&mut streams, "source", source, &plan);

    for t in &plan.transforms {
        let input = streams
            .get_mut(&t.from)
            .and_then(Vec::pop)
            .ok_or_else(|| RunError(format!("stream `{}` has no branch left", t.from)))?;
        let name = t.name.clone();
        let out: Stream<Rows> = match &t.operation {
            Operation::Filter(predicate) => {
                let (predicate, reserved) = (predicate.clone(), reserved.clone());
                input.operator(move |down, _| {
                    Box::new(FilterOp::new(
                        name.clone(),
                        predicate.clone(),
                        reserved.clone(),
                        down,
                    ))
                })
            }
            Operation::Select(columns) => {
                let (columns, schema, reserved) =
                    (columns.clone(), t.schema.clone(), reserved.clone());
                input.operator(move |down, _| {
                    Box::new(ProjectOp::new(
                        name.clone(),
                        None,
                        Some(columns.clone()),
                        schema.clone(),
                        reserved.clone(),
                        down,
                    ))
                })
            }
            Operation::Rule { when, emit } => {
                let (when, emit, schema, reserved) = (
                    when.clone(),
                    emit.clone(),
                    t.schema.clone(),
                    reserved.clone(),
                );
                input.operator(move |down, _| {
                    Box::new(ProjectOp::new(
                        name.clone(),
                        Some(when.clone()),
                        emit.clone(),
                        schema.clone(),
                        reserved.clone(),
                        down,
                    ))
                })
            }
            Operation::Window(window) => {
                // Without a key there is one group per window: no exchange.
                let keyed = if exec.workers > 1 && !window.keys.is_empty() {
                    let keys = window.keys.clone();
                    let fields = window.key_fields.clone();
                    let workers = exec.workers;
                    let policy = if exec.event_mode {
                        FlushPolicy::EachEvent
                    } else {
                        FlushPolicy::Forward
                    };
                    RowConverter::new(fields.clone()).map_err(|e| RunError(e.to_string()))?;
                    input
                        .operator(move |down, _| {
                            let converter = RowConverter::new(fields.clone())
                                .unwrap_or_else(|e| unreachable!("checked above: {e}"));
                            Box::new(SplitByKey::new(keys.clone(), converter, workers, down))
                        })
                        .exchange_by(|r: &Routed| r.worker, policy)
                        .map(|r: Routed| r.rows)
                } else {
                    input
                };
                // Check once that the operator can be built.
                let check = WindowOp::new(window.clone(), reserved.clone(), Box::new(Discard));
                if let Err(e) = check {
                    return Err(RunError(format!("{name}: {e}")));
                }
                let (window, reserved) = (window.clone(), reserved.clone());
                keyed.operator(move |down, _| {
                    match WindowOp::new(window.clone(), reserved.clone(), down) {
                        Ok(op) => Box::new(op),
                        Err(e) => unreachable!("checked above: {e}"),
                    }
                })
            }
        };
        add_stream(&mut streams, &t.name, out, &plan);
    }

    for (stream, sinks) in sink_writers {
        let mut branches = streams.get_mut(&stream);
        for sink in sinks {
            let branch = branches
                .as_deref_mut()
                .and_then(Vec::pop)
                .ok_or_else(|| RunError(format!("stream `{stream}` has no branch left")))?;
            branch.sink(sink);
        }
    }

    let result = pipeline.run();
    let late_result = reserved.late.finish();
    let dead_result = reserved.dead_letter.finish();
    result.map_err(|e| RunError(e.to_string()))?;
    late_result.map_err(RunError)?;
    dead_result.map_err(RunError)?;

    let read = counters.read.load(Ordering::Relaxed);
    let late = reserved.late.count();
    let dead_letter = reserved.dead_letter.count();
    Ok(Summary {
        pipeline: plan.name.clone(),
        read,
        processed: read.saturating_sub(late + dead_letter),
        late,
        dead_letter,
        emitted: emitted
            .into_iter()
            .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
    .inspect(|_| report_unread(&plan, &reserved))
}

/// Says on stderr what went to a reserved stream that no sink reads, so
/// that nothing is lost silently.
fn report_unread(plan: &Plan, reserved: &Reserved) {
    for stream in [&reserved.dead_letter, &reserved.late] {
        let read = plan.sinks.iter().any(|s| s.from == stream.name());
        if !read && stream.count() > 0 {
            eprintln!(
                "warning: {} record(s) went to `{}`, which no sink reads; add \
                 [[sink]] from = \"{}\" to keep them. First ones:",
                stream.count(),
                stream.name(),
                stream.name()
            );
            for sample in stream.samples() {
                eprintln!("  {sample}");
            }
        }
    }
}

fn stream_schema(plan: &Plan, stream: &str) -> arrow::datatypes::SchemaRef {
    plan.transforms
        .iter()
        .find(|t| t.name == stream)
        .map_or_else(|| plan.source.schema.clone(), |t| t.schema.clone())
}

fn text_source(
    plan: &Plan,
    bytes: Bytes,
    path: String,
    format: crate::decode::Format,
    reserved: &Arc<Reserved>,
    counters: &Arc<SourceCounters>,
) -> TextSource {
    let decoder = TextDecoder::new(
        format,
        plan.source.schema.clone(),
        plan.source.time.clone(),
        "source".into(),
    );
    let header = usize::from(format == crate::decode::Format::Csv);
    TextSource::new(
        bytes,
        path,
        decoder,
        header,
        plan.execution.chunk_rows(),
        plan.execution.batch_interval,
        reserved.clone(),
        counters.clone(),
    )
}

/// An operator that drops everything (to check a window can be built).
struct Discard;

impl sluice::Operator<Rows> for Discard {
    fn on_batch(&mut self, _batch: &mut sluice::Batch<Rows>) -> sluice::OperatorResult {
        Ok(())
    }
}
