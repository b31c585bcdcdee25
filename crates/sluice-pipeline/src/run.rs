//! Running a compiled pipeline on Sluice's runtime: one source stage, the
//! transforms fused onto it or behind a key exchange, and the sinks.

use crate::accounting::{Accounting, Kind};
use crate::checkpoint::{
    self, CheckpointConfig, CheckpointStore, Checkpointing, Guarantee, Snapshot, StateLocation,
    Store,
};
use crate::connectors::file::{Bytes, ParquetSource, TextSource};
use crate::connectors::generator::GeneratorSource;
use crate::connectors::replay::{Checkpointed, ReplayableSource, SourceCounters};
use crate::connectors::sink::{RowSink, Target};
use crate::error::{Error, Fix, Result};
use crate::format::TextDecoder;
use crate::operators::{CountOp, FilterOp, ProjectOp, Routed, SplitByKey};
use crate::plan::{Operation, Plan, SourceKind};
use crate::rows::Rows;
use crate::side_outputs::Reserved;
use crate::window::WindowOp;
use arrow::row::RowConverter;
use serde::Serialize;
use sluice::watermark::WatermarkStrategy;
use sluice::{FlushPolicy, Pipeline, Stream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a run did: the line `sluice run` prints at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The pipeline's name.
    pub pipeline: String,
    /// Records read from the source.
    pub read: u64,
    /// Input records that reached at least one transform or sink that did
    /// not refuse them.
    pub processed: u64,
    /// Input records every reader refused as too late (none as a dead
    /// letter).
    pub late: u64,
    /// Input records the decoder refused, or every reader refused with a
    /// dead letter among the refusals.
    pub dead_letter: u64,
    /// The input's records: read, decoded, refused by the decoder.
    pub input: crate::accounting::InputReport,
    /// Each transform's rows: in, out, filtered, aggregated (windows),
    /// late, dead letters.
    pub transforms: indexmap::IndexMap<String, crate::accounting::TransformReport>,
    /// Rows written, per sink (`stream -> target`).
    pub emitted: indexmap::IndexMap<String, u64>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Checkpoints, when the run has a state directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointReport>,
}

/// What a run with a state directory did with its checkpoints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointReport {
    /// The checkpoint it resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// Records read before that checkpoint, which this run did not read
    /// again (`read` counts this run's).
    pub skipped: u64,
    /// Checkpoints this run committed.
    pub committed: u64,
    /// The last one committed.
    pub last: Option<u64>,
    /// The state it wrote, in bytes (source position, windows, lengths).
    pub last_bytes: Option<u64>,
    /// From its barrier's injection to its commit, in milliseconds.
    pub last_ms: Option<f64>,
    /// It stopped on a signal after a last checkpoint.
    pub stopped: bool,
    /// The state showed the pipeline already completed: nothing ran.
    pub already_completed: bool,
}

impl CheckpointReport {
    /// What this run committed.
    fn fill(&mut self, checkpointing: &Checkpointing) {
        self.committed = checkpointing.count();
        let last = checkpointing.last();
        self.last = last.map(|l| l.id);
        self.last_bytes = last.map(|l| l.bytes);
        self.last_ms = last.map(|l| l.duration.as_secs_f64() * 1e3);
    }
}

/// How to run: checkpoints, and a way to ask for a graceful stop.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints into a state directory; none without it.
    pub checkpoints: Option<CheckpointConfig>,
    /// Set (by a signal handler) to stop after a last checkpoint.
    pub stop: Arc<AtomicBool>,
    /// The dashboard's figures, when it is on.
    pub watch: Option<Arc<crate::dashboard::Watch>>,
    /// The partition this run reads, in a distributed run (a nats source).
    pub partition: Option<PartitionContext>,
}

/// What the run of one partition of a nats source needs besides the plan.
#[derive(Clone)]
pub struct PartitionContext {
    /// The partition.
    pub partition: u32,
    /// The durable consumer that reads it.
    pub durable: String,
    /// Its log of partial cuts, claimed for this run.
    pub log: Arc<std::sync::Mutex<Option<crate::connectors::nats::CutLog>>>,
}

impl std::fmt::Debug for PartitionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionContext")
            .field("partition", &self.partition)
            .field("durable", &self.durable)
            .finish()
    }
}

/// Shared state a run exposes while it goes (for the progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// The source's counters.
    pub source: Arc<SourceCounters>,
    /// The input's size in bytes, when known.
    pub total_bytes: Option<u64>,
}

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

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// Its input is all read and its outputs are final (with a state
    /// directory, the state says so).
    Completed(Summary),
    /// A graceful stop: a last checkpoint committed and the run ended
    /// without releasing its state; the next run resumes from it.
    Stopped(Summary),
    /// The state showed the pipeline already completed: nothing ran.
    AlreadyCompleted(Summary),
}

impl RunOutcome {
    /// What the run did.
    pub fn summary(&self) -> &Summary {
        match self {
            RunOutcome::Completed(s) | RunOutcome::Stopped(s) | RunOutcome::AlreadyCompleted(s) => {
                s
            }
        }
    }

    /// What the run did, owned.
    pub fn into_summary(self) -> Summary {
        match self {
            RunOutcome::Completed(s) | RunOutcome::Stopped(s) | RunOutcome::AlreadyCompleted(s) => {
                s
            }
        }
    }
}

/// Runs `plan` to the end of its input (no checkpoints: it can only
/// complete or fail).
pub fn run(plan: Plan, progress: &Progress) -> Result<Summary> {
    run_with(plan, progress, &RunOptions::default()).map(RunOutcome::into_summary)
}

/// What identifies a pipeline's state: its source (with all its settings),
/// streams, transforms (with their aggregates), sinks, workers and chunk
/// size; not the checkpoint interval.
pub fn fingerprint(plan: &Plan) -> String {
    let mut text: String = plan
        .describe()
        .lines()
        .filter(|line| !line.starts_with("execution:"))
        .map(|line| format!("{line}\n"))
        .collect();
    // The servers a process connects to are not part of the pipeline's
    // identity (processes of one group may list them differently).
    // Nor are the settings that do not change results (TTL, flow control,
    // replicas): they can be tuned between runs.
    let source = match &plan.source.kind {
        SourceKind::Nats(nats) => SourceKind::Nats(crate::plan::NatsSourcePlan {
            url: String::new(),
            lease_ttl: std::time::Duration::ZERO,
            max_ack_pending: 0,
            stream: sluice_nats::PartitionedStream {
                replicas: 0,
                ..nats.stream.clone()
            },
            ..nats.clone()
        }),
        other => other.clone(),
    };
    // Chunks decide where the watermark moves, so they are part of it too.
    // Adaptive chunks follow timing: a resumed run keeps the mode and the
    // target, not the cuts (see docs/exactly-once.md).
    text.push_str(&format!(
        "workers {}, chunk rows {}, target latency {:?}, source {:?}, idle timeout {:?}\n",
        plan.execution.workers,
        plan.execution.chunk_rows(),
        plan.execution.target_latency,
        source,
        plan.source.idle_timeout
    ));
    for t in &plan.transforms {
        if let Operation::Window(w) = &t.operation {
            for (name, aggregate) in &w.aggregates {
                text.push_str(&format!("{} {name} = {}\n", t.name, aggregate.sql));
            }
        }
    }
    checkpoint::fingerprint(&text)
}

/// Checks that `plan` can keep `guarantee` with checkpoints.
fn check_guarantee(plan: &Plan, guarantee: Guarantee) -> Result<()> {
    if matches!(plan.source.kind, SourceKind::Stdin { .. }) && guarantee != Guarantee::AtMostOnce {
        return Err(Error::refused(
            "stdin cannot be read again after a crash, so a run from stdin cannot be \
             exactly-once (or at-least-once): what was read since the last checkpoint is \
             lost. Read from a file, or accept that loss",
        )
        .with_fix(Fix::AcceptLoss));
    }
    for sink in &plan.sinks {
        if let Some(reason) = sink.target.refuses(guarantee) {
            return Err(reason.context(format_args!("sink of `{}`", sink.from)));
        }
    }
    Ok(())
}

/// The length of output `key` in `restored`, if the run resumes.
fn committed_length(restored: Option<&Snapshot>, key: &str) -> Result<Option<u64>> {
    let Some(snapshot) = restored else {
        return Ok(None);
    };
    let bytes = snapshot.get(key).ok_or_else(|| {
        Error::damaged(format!(
            "the checkpoint has no length for `{key}`: the state is damaged"
        ))
    })?;
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::damaged(format!("the checkpointed length of `{key}` is damaged")))?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

/// Tells the durability trace which file holds output `key`.
fn opened(key: &str, target: &Target) {
    if let Target::File { path, .. } = target {
        crate::fault::record(|| crate::fault::Event::Opened {
            key: key.to_string(),
            path: path.clone(),
        });
    }
}

/// Runs `plan` with `options`: with a state directory, resumes from its
/// last checkpoint and takes checkpoints as it goes.
pub fn run_with(plan: Plan, progress: &Progress, options: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let reserved = Arc::new(Reserved::new());
    let exec = plan.execution.clone();
    let chunk_rows = exec.chunk_rows();
    let pipeline = Pipeline::new().with_workers(exec.workers);
    let counters = progress.source.clone();
    let accounting = Arc::new(Accounting::new(
        plan.subscribers("source"),
        &plan
            .transforms
            .iter()
            .map(|t| {
                let kind = match t.operation {
                    Operation::Window(_) => Kind::Window,
                    _ => Kind::Row,
                };
                (t.name.clone(), kind, t.from.clone())
            })
            .collect::<Vec<_>>(),
    ));

    let mut restored: Option<Snapshot> = None;
    let checkpointing = match &options.checkpoints {
        None => None,
        Some(config) => {
            check_guarantee(&plan, config.guarantee)?;
            let store: Arc<dyn CheckpointStore> = match &config.location {
                StateLocation::Dir(dir) => {
                    Arc::new(Store::open(dir, &fingerprint(&plan), config.fresh)?)
                }
                StateLocation::External(store) => store.clone(),
            };
            restored = store.load()?;
            if let StateLocation::Dir(dir) = &config.location {
                if crate::fault::on(crate::fault::Fault::SkipRestore, dir) {
                    restored = None;
                }
            }
            if let Some(snapshot) = restored.as_ref().filter(|s| s.completed) {
                let report = CheckpointReport {
                    last: Some(snapshot.id),
                    already_completed: true,
                    ..CheckpointReport::default()
                };
                return Ok(RunOutcome::AlreadyCompleted(summary(
                    &plan,
                    &counters,
                    &[],
                    None,
                    started,
                    Some(report),
                )));
            }
            reserved.hold_until_barriers();
            Some(Arc::new(
                Checkpointing::new(
                    store,
                    config.interval,
                    reserved.clone(),
                    restored.as_ref().map(|s| s.id),
                    options.stop.clone(),
                )
                .logging(config.log.clone()),
            ))
        }
    };

    let watch = options.watch.clone();
    if let Some(watch) = &watch {
        reserved.set_watch(watch.clone());
        watch.set_source(progress);
        if let Some(c) = &checkpointing {
            watch.set_checkpointing(c.clone());
        }
    }

    // Open every sink first: an unwritable path fails before reading.
    let mut emitted: Vec<SinkCount> = Vec::new();
    let mut sink_writers: HashMap<String, Vec<RowSink>> = HashMap::new();
    let mut reserved_writers: HashMap<&str, usize> = HashMap::new();
    for (i, sink) in plan.sinks.iter().enumerate() {
        let count = Arc::new(AtomicU64::new(0));
        emitted.push((sink.label.clone(), sink.from.clone(), count.clone()));
        match reserved.get(&sink.from) {
            Some(stream) => {
                let n = reserved_writers.entry(stream.name()).or_default();
                let key = format!("reserved/{}/{n}", stream.name());
                *n += 1;
                opened(&key, &sink.target);
                let length = committed_length(restored.as_ref(), &key)?;
                let writer = sink.target.open_at(stream.schema(), length)?;
                stream.subscribe(writer, count)
            }
            None => {
                let key = format!("sink/{i}");
                opened(&key, &sink.target);
                let length = committed_length(restored.as_ref(), &key)?;
                let writer = sink
                    .target
                    .open_at(stream_schema(&plan, &sink.from), length)?;
                let mut sink_op = RowSink::new(writer, count);
                if sink.from == "source" {
                    sink_op = sink_op.judging(accounting.clone());
                }
                if let Some(watch) = &watch {
                    sink_op = sink_op.with_watch(watch.clone());
                }
                if let Some(c) = &checkpointing {
                    sink_op = sink_op.with_checkpoints(c.clone(), key);
                }
                sink_writers
                    .entry(sink.from.clone())
                    .or_default()
                    .push(sink_op)
            }
        }
    }

    // With a checkpoint, the source resumes at its position, and the
    // watermark where it was.
    let position = restored
        .as_ref()
        .map(|s| s.get("source").unwrap_or_default());
    let mut resume_from = None;
    let mut skipped = 0;
    let target_latency = exec.target_latency;
    let rate = plan.source.rate;
    let mut add_source = |source: Box<dyn ReplayableSource>| -> Result<Stream<Rows>> {
        let source: Box<dyn ReplayableSource> = match rate {
            Some(rate) => Box::new(crate::connectors::paced::Paced::new(
                source, rate, chunk_rows,
            )),
            None => source,
        };
        let source: Box<dyn ReplayableSource> = match target_latency {
            Some(target) => Box::new(crate::adaptive::AdaptiveChunks::new(source, target)),
            None => source,
        };
        let mut source =
            Checkpointed::new(source, checkpointing.clone()).counting(counters.clone());
        if let Some(position) = position {
            resume_from = source.restore(position)?;
            skipped = source.read_before();
        }
        Ok(pipeline.source(source))
    };
    let source: Stream<Rows> = match &plan.source.kind {
        SourceKind::File { path, format } if *format == crate::format::Format::Parquet => {
            add_source(Box::new(ParquetSource::open(
                path,
                // Adaptive chunks are slices of batches of the
                // largest size the controller picks.
                if target_latency.is_some() {
                    sluice::MAX_ADAPTIVE_BATCH
                } else {
                    chunk_rows
                },
                chunk_rows,
                plan.source.time.clone(),
                reserved.clone(),
                counters.clone(),
            )?))?
        }
        SourceKind::File { path, format } => {
            let file = std::fs::File::open(path).map_err(|e| {
                Error::input(format!("cannot read {}", path.display())).caused_by(e)
            })?;
            add_source(Box::new(text_source(
                &plan,
                Bytes::File(file),
                path.display().to_string(),
                *format,
                &reserved,
                &counters,
            )))?
        }
        SourceKind::Stdin { format } => add_source(Box::new(text_source(
            &plan,
            Bytes::stdin(),
            "stdin".into(),
            *format,
            &reserved,
            &counters,
        )))?,
        SourceKind::Nats(nats) => {
            let context = options.partition.as_ref().ok_or_else(|| {
                Error::refused(
                    "a nats source is read by a distributed run, partition by partition: \
                         `sluice run` starts one (sluice_pipeline::distributed::run)",
                )
            })?;
            if target_latency.is_some() {
                return Err(Error::refused(
                    "a nats source runs in event or micro-batch mode: adaptive chunk sizes \
                         follow timing, so a replay could not cut the same chunks",
                ));
            }
            let log = context
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| Error::nats("the partition's cut log is already in use"))?;
            let decoder = TextDecoder::new(
                crate::format::Format::Jsonl,
                plan.source.schema.clone(),
                plan.source.time.clone(),
                format!("nats:{}/partition {}", nats.stream.name, context.partition),
            );
            add_source(Box::new(crate::connectors::nats::NatsSource::new(
                nats.clone(),
                context.partition,
                context.durable.clone(),
                log,
                decoder,
                chunk_rows,
                exec.batch_interval,
                reserved.clone(),
                counters.clone(),
            )?))?
        }
        SourceKind::Formula { events } => add_source(Box::new(
            crate::connectors::generator::FormulaRows::new(*events, chunk_rows, counters.clone()),
        ))?,
        SourceKind::Nexmark { events } => add_source(Box::new(
            crate::connectors::generator::NexmarkRows::new(*events, chunk_rows, counters.clone()),
        ))?,
        SourceKind::Generator {
            events,
            keys,
            seed,
            interval_ms,
        } => add_source(Box::new(GeneratorSource::new(
            *events,
            *keys,
            *seed,
            *interval_ms,
            chunk_rows,
            counters.clone(),
        )))?,
    };
    let mut strategy = WatermarkStrategy::bounded(plan.source.max_out_of_orderness);
    if let Some(idle) = plan.source.idle_timeout {
        strategy = strategy.with_idle_timeout(idle);
    }
    if let Some(max_seen) = resume_from {
        strategy = strategy.resuming_from(max_seen);
    }
    let source = source.with_watermarks(strategy).events;

    let mut streams: HashMap<String, Vec<Stream<Rows>>> = HashMap::new();
    let add_stream = |streams: &mut HashMap<String, Vec<Stream<Rows>>>,
                      name: &str,
                      stream: Stream<Rows>,
                      plan: &Plan| {
        let counts = watch.as_ref().map(|w| w.stream(name));
        if let Some(counts) = &counts {
            counts.set_instances(stream.parallelism());
        }
        let stream = stream.operator({
            let name = name.to_string();
            // The source's chunks are marked with their read time.
            let stamp = name == "source";
            let rows = accounting.stream(&name);
            move |down, _| {
                let count = CountOp::new(name.clone(), down).counting(rows.clone());
                Box::new(match &counts {
                    Some(counts) => count.with_watch(counts.clone(), stamp),
                    None => count,
                })
            }
        });
        let readers = plan.subscribers(name);
        let branches = if readers == 0 {
            // A participant of checkpoints like any sink, so that the
            // dead letters held on its path are out before a commit.
            let mut discard = RowSink::discard();
            if name == "source" {
                // Nothing reads the input (only its dead letters are
                // kept): its records are processed, by being discarded.
                discard = discard.judging(accounting.clone());
            }
            if let Some(c) = &checkpointing {
                discard = discard.with_checkpoints(c.clone(), format!("unread/{name}"));
            }
            stream.sink(discard);
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
            .ok_or_else(|| Error::Bug(format!("stream `{}` has no branch left", t.from)))?;
        let name = t.name.clone();
        let counted = crate::operators::Counted {
            counts: accounting.transform(&t.name).unwrap_or_default(),
            judge: (t.from == "source").then(|| accounting.clone()),
        };
        let out: Stream<Rows> = match &t.operation {
            Operation::Filter(predicate) => {
                let (predicate, reserved) = (predicate.clone(), reserved.clone());
                input.operator(move |down, _| {
                    Box::new(
                        FilterOp::new(name.clone(), predicate.clone(), reserved.clone(), down)
                            .counted(counted.clone()),
                    )
                })
            }
            Operation::Select(columns) => {
                let (columns, schema, reserved) =
                    (columns.clone(), t.schema.clone(), reserved.clone());
                input.operator(move |down, _| {
                    Box::new(
                        ProjectOp::new(
                            name.clone(),
                            None,
                            Some(columns.clone()),
                            schema.clone(),
                            reserved.clone(),
                            down,
                        )
                        .counted(counted.clone()),
                    )
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
                    Box::new(
                        ProjectOp::new(
                            name.clone(),
                            Some(when.clone()),
                            emit.clone(),
                            schema.clone(),
                            reserved.clone(),
                            down,
                        )
                        .counted(counted.clone()),
                    )
                })
            }
            Operation::Window(window) => {
                // Without a key there is one group per window: no exchange.
                let keyed_exchange = exec.workers > 1 && !window.keys.is_empty();
                let keyed = if keyed_exchange {
                    let keys = window.keys.clone();
                    let fields = window.key_fields.clone();
                    let workers = exec.workers;
                    let policy = if exec.event_mode {
                        FlushPolicy::EachEvent
                    } else {
                        FlushPolicy::Forward
                    };
                    RowConverter::new(fields.clone()).map_err(crate::sql::clean)?;
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
                // Check once that the operator can be built, and that its
                // checkpointed states load.
                // One instance per instance of its input: the workers behind
                // a key exchange, or after an earlier one.
                let instances = keyed.parallelism();
                let mut states = Vec::new();
                let prefix = format!("window/{name}/");
                let saved = restored.as_ref().map_or(0, |s| {
                    s.entries.keys().filter(|k| k.starts_with(&prefix)).count()
                });
                if restored.is_some() && saved != instances {
                    return Err(Error::damaged(format!(
                        "{name}: the checkpoint has the state of {saved} instance(s), the \
                         pipeline runs {instances}: the state is damaged"
                    )));
                }
                for instance in 0..instances {
                    let mut check =
                        WindowOp::new(window.clone(), reserved.clone(), Box::new(Discard))
                            .map_err(|e| e.context(&name))?;
                    let key = format!("window/{name}/{instance}");
                    let state = restored
                        .as_ref()
                        .and_then(|s| s.get(&key))
                        .map(<[u8]>::to_vec);
                    if let Some(state) = &state {
                        check.restore(state).map_err(|e| {
                            Error::damaged(format!(
                                "{name}: the checkpointed state cannot be loaded: {e}"
                            ))
                        })?;
                    } else if restored.is_some() {
                        return Err(Error::damaged(format!(
                            "{name}: the checkpoint has no state for `{key}`: the state is \
                             damaged"
                        )));
                    }
                    states.push(state);
                }
                let (window, reserved, checkpointing) =
                    (window.clone(), reserved.clone(), checkpointing.clone());
                let name = name.clone();
                keyed.operator(move |down, instance| {
                    let op = WindowOp::new(window.clone(), reserved.clone(), down).and_then(|op| {
                        let op = op.counted(counted.clone());
                        let mut op = match &checkpointing {
                            Some(c) => {
                                op.with_checkpoints(c.clone(), format!("window/{name}/{instance}"))
                            }
                            None => op,
                        };
                        if let Some(Some(state)) = states.get(instance) {
                            op.restore(state)?;
                        }
                        Ok(op)
                    });
                    match op {
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
                .ok_or_else(|| Error::Bug(format!("stream `{stream}` has no branch left")))?;
            branch.sink(sink);
        }
    }

    let mut report = checkpointing.as_ref().map(|c| CheckpointReport {
        resumed_from: c.restored(),
        skipped,
        ..CheckpointReport::default()
    });
    if let (Some(c), Some(config)) = (&checkpointing, &options.checkpoints) {
        if let (StateLocation::Dir(_), Some(prefix)) = (&config.location, &config.log) {
            // The state is open and restored: what a resumed run skips.
            match c.restored() {
                Some(id) => eprintln!(
                    "{prefix}resuming from checkpoint {id}: {skipped} records were read \
                     before it and are not read again"
                ),
                None => eprintln!("{prefix}no checkpoint yet: starting from the beginning"),
            }
        }
    }
    let result = pipeline.run();
    let stop_marker =
        matches!(&result, Err(e) if crate::error::ours(e).and_then(Error::stopped).is_some());
    if let (Some(c), Some(report), true) = (&checkpointing, &mut report, stop_marker) {
        if c.stopped().is_some() {
            // A graceful stop: the source ended the run once its last
            // checkpoint had committed; the windows keep their state for
            // the next run instead of firing.
            report.stopped = true;
            report.fill(c);
            check_accounting(&accounting, &counters, &reserved, &emitted)?;
            return Ok(RunOutcome::Stopped(summary(
                &plan,
                &counters,
                &emitted,
                Some(&accounting),
                started,
                Some(report.clone()),
            )));
        }
    }
    let late_result = reserved.late.finish();
    let dead_result = reserved.dead_letter.finish();
    result?;
    late_result?;
    dead_result?;
    // Before the run is committed as completed: a run whose counts do not
    // add up is a bug to report, not a result to keep.
    check_accounting(&accounting, &counters, &reserved, &emitted)?;
    if let (Some(c), Some(report)) = (&checkpointing, &mut report) {
        c.complete()?;
        report.fill(c);
    }
    report_unread(&plan, &reserved);
    Ok(RunOutcome::Completed(summary(
        &plan,
        &counters,
        &emitted,
        Some(&accounting),
        started,
        report,
    )))
}

/// A sink's label, the stream it reads, and the rows it wrote.
type SinkCount = (String, String, Arc<AtomicU64>);

/// Checks that the run's counts add up (see [`Accounting::check`]).
fn check_accounting(
    accounting: &Accounting,
    counters: &SourceCounters,
    reserved: &Reserved,
    sinks: &[SinkCount],
) -> Result<()> {
    let sinks: Vec<(String, String, u64)> = sinks
        .iter()
        .map(|(label, from, n)| (label.clone(), from.clone(), n.load(Ordering::Relaxed)))
        .collect();
    let wrong = accounting.check(
        counters,
        &sinks,
        (reserved.late.count(), reserved.dead_letter.count()),
    );
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Error::Accounting(wrong))
}

fn summary(
    plan: &Plan,
    counters: &SourceCounters,
    sinks: &[SinkCount],
    accounting: Option<&Accounting>,
    started: Instant,
    checkpoints: Option<CheckpointReport>,
) -> Summary {
    let read = counters.read.load(Ordering::Relaxed);
    let (processed, late, dead_letter) = accounting.map_or((0, 0, 0), |a| a.outcomes(counters));
    let mut emitted = indexmap::IndexMap::new();
    for (label, _, n) in sinks {
        *emitted.entry(label.clone()).or_insert(0) += n.load(Ordering::Relaxed);
    }
    let counts = accounting.map(|a| a.report(counters)).unwrap_or_default();
    Summary {
        pipeline: plan.name.clone(),
        read,
        processed,
        late,
        dead_letter,
        input: counts.input,
        transforms: counts.transforms,
        emitted,
        seconds: started.elapsed().as_secs_f64(),
        checkpoints,
    }
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
    format: crate::format::Format,
    reserved: &Arc<Reserved>,
    counters: &Arc<SourceCounters>,
) -> TextSource {
    let decoder = TextDecoder::new(
        format,
        plan.source.schema.clone(),
        plan.source.time.clone(),
        "source".into(),
    );
    let header = usize::from(format == crate::format::Format::Csv);
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
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        None
    }
}
