//! From a plan to a dataflow on Sluice's runtime, one method per step:
//! [`DataflowBuilder`] opens the sinks (an unwritable path fails before
//! anything is read), adds the source, the transforms and windows (each
//! counted, each restored from the checkpoint it resumes from), and
//! attaches the sinks to their streams.

mod join;
mod options;
pub(crate) mod restore;
pub(crate) mod sink;
mod window;

pub use options::{progress, Progress, RunOptions};

use crate::accounting::{Accounting, Kind};
use crate::build::sink::RowSink;
use crate::checkpoint::{Checkpointing, Snapshot};
use crate::connectors::replay::{Checkpointed, ReplayableSource, SourceCounters};
use crate::connectors::{Opening, Reader, SinkConnector};
use crate::error::{Error, Result};
use crate::operators::{CountOp, Counted, FilterOp, ProjectOp};
use crate::plan::{Operation, Plan, TransformPlan};
use crate::rows::Rows;
use crate::side_outputs::Reserved;
use crate::telemetry::Telemetry;
use restore::committed_resume;
use sluice::watermark::WatermarkStrategy;
use sluice::{Pipeline, Stream};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A reader of the source, opened and checkpointed.
type OpenReader = Checkpointed<Box<dyn ReplayableSource>>;

/// A sink's label, the stream it reads, and the rows it wrote.
pub(crate) type SinkCount = (String, String, Arc<AtomicU64>);

/// Builds the dataflow of a plan, step by step.
pub(crate) struct DataflowBuilder<'a> {
    plan: &'a Plan,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    options: &'a RunOptions,
    pipeline: Pipeline,
    reserved: Arc<Reserved>,
    accounting: Arc<Accounting>,
    counters: Arc<SourceCounters>,
    checkpointing: Option<Arc<Checkpointing>>,
    restored: Option<Snapshot>,
    watch: Option<Arc<dyn Telemetry>>,
    emitted: Vec<SinkCount>,
    sinks: HashMap<String, Vec<RowSink>>,
    /// The branches of each stream not yet taken by a reader.
    streams: HashMap<String, Vec<Stream<Rows>>>,
    /// Records read before the checkpoint the run resumes from.
    skipped: u64,
}

/// A dataflow ready to run, and what its run reports from.
pub(crate) struct Dataflow {
    pub(crate) pipeline: Pipeline,
    pub(crate) reserved: Arc<Reserved>,
    pub(crate) accounting: Arc<Accounting>,
    pub(crate) counters: Arc<SourceCounters>,
    pub(crate) checkpointing: Option<Arc<Checkpointing>>,
    pub(crate) emitted: Vec<SinkCount>,
    pub(crate) skipped: u64,
}

impl<'a> DataflowBuilder<'a> {
    /// A builder for `plan`, counting its source into `counters`, with the
    /// checkpoints the run restored (see [`restore::open`]).
    pub(crate) fn new(
        plan: &'a Plan,
        options: &'a RunOptions,
        counters: Arc<SourceCounters>,
        reserved: Arc<Reserved>,
        checkpointing: Option<Arc<Checkpointing>>,
        restored: Option<Snapshot>,
    ) -> Self {
        let transforms: Vec<_> = plan
            .transforms
            .iter()
            .map(|t| {
                let kind = match t.operation {
                    Operation::Window(_)
                    | Operation::Join(_)
                    | Operation::Lookup(_)
                    | Operation::Retract(_) => Kind::Window,
                    _ => Kind::Row,
                };
                (t.name.clone(), kind, t.inputs().map(String::from).collect())
            })
            .collect();
        let accounting = Arc::new(Accounting::new(plan.subscribers("source"), &transforms));
        Self {
            plan,
            options,
            pipeline: Pipeline::new().with_workers(plan.execution.workers),
            reserved,
            accounting,
            counters,
            checkpointing,
            restored,
            watch: options.watch.clone(),
            emitted: Vec::new(),
            sinks: HashMap::new(),
            streams: HashMap::new(),
            skipped: 0,
        }
    }

    /// Tells the dashboard's watch, if any, what to observe.
    pub(crate) fn watch(&mut self, progress: &Progress) {
        if let Some(watch) = &self.watch {
            self.reserved.set_watch(watch.clone());
            watch.set_source(progress.source.clone(), progress.total_bytes);
            if let Some(c) = &self.checkpointing {
                watch.set_checkpointing(c.clone());
            }
        }
    }

    /// Opens every sink, resuming each at its checkpointed length: an
    /// unwritable path fails before anything is read.
    pub(crate) fn open_sinks(&mut self) -> Result<()> {
        let mut reserved_writers: HashMap<&str, usize> = HashMap::new();
        for (i, sink) in self.plan.sinks.iter().enumerate() {
            let count = Arc::new(AtomicU64::new(0));
            self.emitted
                .push((sink.label.clone(), sink.from.clone(), count.clone()));
            if let Some(stream) = self.reserved.get(&sink.from) {
                let n = reserved_writers.entry(stream.name()).or_default();
                let key = format!("reserved/{}/{n}", stream.name());
                *n += 1;
                opened(&key, sink.target.as_ref());
                let resume = committed_resume(self.restored.as_ref(), &key)?;
                stream.subscribe(
                    sink.target
                        .open_resuming(stream.schema(), resume.as_ref(), None)?,
                    count,
                );
                continue;
            }
            let key = format!("sink/{i}");
            opened(&key, sink.target.as_ref());
            let resume = committed_resume(self.restored.as_ref(), &key)?;
            let writer = sink.target.open_resuming(
                self.plan.stream_schema(&sink.from),
                resume.as_ref(),
                Some(&self.reserved),
            )?;
            let mut sink_op = RowSink::new(writer, count);
            if sink.from == "source" {
                sink_op = sink_op.judging(self.accounting.clone());
            }
            if let Some(watch) = &self.watch {
                sink_op = sink_op.with_watch(watch.clone());
            }
            if let Some(c) = &self.checkpointing {
                sink_op = sink_op.with_checkpoints(c.clone(), key);
            }
            self.sinks
                .entry(sink.from.clone())
                .or_default()
                .push(sink_op);
        }
        Ok(())
    }

    /// Adds the source: opened by its connector (once per reader when it
    /// reads in parallel), paced and steered when the plan says so,
    /// checkpointed, resumed at its checkpointed position with the
    /// watermark where it was.
    pub(crate) fn add_source(&mut self) -> Result<()> {
        let readers = self.readers()?;
        if let Some(c) = &self.checkpointing {
            c.set_readers(readers);
        }
        let mut sources = Vec::with_capacity(readers);
        let mut resumed = Vec::with_capacity(readers);
        for index in 0..readers {
            let (source, resume_from) = self.open_reader(Reader { index, readers })?;
            sources.push(Some(source));
            resumed.push(resume_from);
        }
        let mut strategy = WatermarkStrategy::bounded(self.plan.source.max_out_of_orderness);
        if let Some(idle) = self.plan.source.idle_timeout {
            strategy = strategy.with_idle_timeout(idle);
        }
        let source = if readers == 1 {
            let source = sources.pop().flatten();
            self.pipeline
                .source(source.ok_or_else(|| Error::Bug("no reader".into()))?)
        } else {
            self.pipeline.partitioned_source(readers, |i| {
                sources[i]
                    .take()
                    .unwrap_or_else(|| unreachable!("reader {i} taken twice"))
            })
        };
        let stream = source
            .with_watermarks_each(move |i| match resumed.get(i).copied().flatten() {
                Some(max_seen) => strategy.resuming_from(max_seen),
                None => strategy,
            })
            .events;
        self.add_stream("source", stream);
        Ok(())
    }

    /// How many readers read the source: as many as the checkpoint the run
    /// resumes from had, else as many as the connector splits its input
    /// into for the run's workers; one for a partition of a distributed
    /// run, and one for a pipeline with a count window.
    fn readers(&self) -> Result<usize> {
        #[cfg(feature = "nats")]
        if self.options.partition.is_some() {
            return Ok(1);
        }
        if let Some(snapshot) = &self.restored {
            let entries = snapshot.entries.keys();
            let readers = entries.filter(|k| k.starts_with("source/")).count();
            return Ok(readers.max(1));
        }
        // A count window takes records in the order they come: with
        // several readers, the order of one key's records would mix theirs.
        let in_order = self.plan.transforms.iter().any(|t| {
            matches!(&t.operation, Operation::Window(w)
                if matches!(w.kind, crate::window::WindowKind::Count { .. }))
        });
        let most = if in_order {
            1
        } else {
            self.plan.execution.workers.max(1)
        };
        Ok(self.plan.source.connector.readers(most)?.clamp(1, most))
    }

    /// Opens one reader of the source, checkpointed, at its checkpointed
    /// position if the run resumes; with the latest event time it had
    /// emitted.
    fn open_reader(&mut self, reader: Reader) -> Result<(OpenReader, Option<i64>)> {
        let exec = &self.plan.execution;
        let counters = if reader.readers > 1 {
            SourceCounters::reader(&self.counters)
        } else {
            self.counters.clone()
        };
        let source = self.plan.source.connector.open(&Opening {
            schema: self.plan.source.schema.clone(),
            time: self.plan.source.time.clone(),
            chunk_rows: exec.chunk_rows(),
            batch_interval: exec.batch_interval,
            adaptive: exec.target_latency.is_some(),
            reserved: &self.reserved,
            counters: &counters,
            first_checkpoint_at_once: self
                .checkpointing
                .as_ref()
                .is_some_and(|c| c.is_first_at_once()),
            #[cfg(feature = "nats")]
            partition: self.options.partition.as_ref(),
            reader,
        })?;
        let source: Box<dyn ReplayableSource> = match self.plan.source.rate {
            // The rate is the source's: each reader takes its share.
            Some(rate) => Box::new(crate::connectors::paced::Paced::new(
                source,
                rate / reader.readers as f64,
                exec.chunk_rows(),
            )),
            None => source,
        };
        let source: Box<dyn ReplayableSource> = match exec.target_latency {
            Some(target) => Box::new(crate::adaptive::AdaptiveChunks::new(source, target)),
            None => source,
        };
        let lag = self.plan.source.max_out_of_orderness.as_millis();
        let mut source = Checkpointed::new(source, self.checkpointing.clone())
            .reader(reader.index, reader.readers)
            .stamping(i64::try_from(lag).unwrap_or(i64::MAX))
            .counting(counters);
        let mut resume_from = None;
        let starts_over = reader.index > 0
            && crate::fault::on(
                crate::fault::Fault::ReaderStartsOver,
                std::path::Path::new(""),
            );
        if let Some(snapshot) = self.restored.as_ref().filter(|_| !starts_over) {
            resume_from = source.restore(snapshot.get(source.key()).unwrap_or_default())?;
            self.skipped += source.read_before();
        }
        Ok((source, resume_from))
    }

    /// Names `stream`: counts its rows (and shows them on the dashboard),
    /// and splits it into a branch per reader; a stream nobody reads is
    /// discarded, as a participant of checkpoints like any sink (so that
    /// the dead letters held on its path are out before a commit).
    fn add_stream(&mut self, name: &str, stream: Stream<Rows>) {
        let counts = self.watch.as_ref().map(|w| w.stream(name));
        if let Some(counts) = &counts {
            counts.set_instances(stream.parallelism());
        }
        let stream = stream.operator({
            let name = name.to_string();
            // The source's chunks are marked with their read time.
            let stamp = name == "source";
            let rows = self.accounting.stream(&name);
            move |down, _| {
                let count = CountOp::new(name.clone(), down).counting(rows.clone());
                Box::new(match &counts {
                    Some(counts) => count.with_watch(counts.clone(), stamp),
                    None => count,
                })
            }
        });
        let readers = self.plan.subscribers(name);
        let branches = if readers == 0 {
            let mut discard = RowSink::discard();
            if name == "source" {
                // Nothing reads the input (only its dead letters are
                // kept): its records are processed, by being discarded.
                discard = discard.judging(self.accounting.clone());
            }
            if let Some(c) = &self.checkpointing {
                discard = discard.with_checkpoints(c.clone(), format!("unread/{name}"));
            }
            stream.sink(discard);
            Vec::new()
        } else if readers == 1 {
            vec![stream]
        } else {
            stream.fan_out(readers)
        };
        self.streams.insert(name.to_string(), branches);
    }

    /// How an exchange in front of a keyed operator batches: event by event
    /// in event mode, else as the chunks come.
    fn exchange_policy(&self) -> sluice::FlushPolicy {
        if self.plan.execution.event_mode {
            sluice::FlushPolicy::EachEvent
        } else {
            sluice::FlushPolicy::Forward
        }
    }

    /// A branch of stream `name` for one more reader.
    fn branch(&mut self, name: &str) -> Result<Stream<Rows>> {
        self.streams
            .get_mut(name)
            .and_then(Vec::pop)
            .ok_or_else(|| Error::Bug(format!("stream `{name}` has no branch left")))
    }

    /// Adds transform `t` on a branch of the stream it reads.
    pub(crate) fn add_transform(&mut self, t: &TransformPlan) -> Result<()> {
        let input = self.branch(&t.from)?;
        let counted = Counted {
            counts: self.accounting.transform(&t.name).unwrap_or_default(),
            judge: (t.from == "source").then(|| self.accounting.clone()),
        };
        let name = t.name.clone();
        let reserved = self.reserved.clone();
        let out: Stream<Rows> = match &t.operation {
            Operation::Filter(predicate) => {
                let predicate = predicate.clone();
                input.operator(move |down, _| {
                    Box::new(
                        FilterOp::new(name.clone(), predicate.clone(), reserved.clone(), down)
                            .counted(counted.clone()),
                    )
                })
            }
            Operation::ChangelogFilter { predicate, op } => {
                let (predicate, op) = (predicate.clone(), *op);
                input.operator(move |down, _| {
                    Box::new(
                        FilterOp::new(name.clone(), predicate.clone(), reserved.clone(), down)
                            .on_changelog(op)
                            .counted(counted.clone()),
                    )
                })
            }
            Operation::Select(columns) => {
                let (columns, schema) = (columns.clone(), t.schema.clone());
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
                let (when, emit, schema) = (when.clone(), emit.clone(), t.schema.clone());
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
            Operation::Window(window) => self.add_window(&name, input, window, counted)?,
            Operation::Join(join) => {
                let right = self.branch(&join.right)?;
                let counted = Counted {
                    judge: (join.left == "source" || join.right == "source")
                        .then(|| self.accounting.clone()),
                    ..counted
                };
                self.add_join(&name, input, right, join, counted)?
            }
            Operation::Retract(plan) => self.add_retract(&name, input, plan, counted)?,
            Operation::Lookup(lookup) => {
                let lookup = lookup.clone();
                crate::lookup::LookupOp::new(lookup.clone(), Box::new(crate::build::join::Discard))
                    .map_err(|e| Error::Bug(format!("{name}: {e}")))?;
                input.operator(move |down, _| {
                    match crate::lookup::LookupOp::new(lookup.clone(), down) {
                        Ok(op) => Box::new(op.counted(counted.clone())),
                        Err(e) => unreachable!("checked above: {e}"),
                    }
                })
            }
        };
        self.add_stream(&t.name, out);
        Ok(())
    }

    /// Attaches every sink to a branch of the stream it reads.
    pub(crate) fn attach_sinks(&mut self) -> Result<()> {
        for (stream, sinks) in std::mem::take(&mut self.sinks) {
            for sink in sinks {
                self.branch(&stream)?.sink(sink);
            }
        }
        Ok(())
    }

    /// The dataflow, ready to run.
    pub(crate) fn finish(self) -> Dataflow {
        Dataflow {
            pipeline: self.pipeline,
            reserved: self.reserved,
            accounting: self.accounting,
            counters: self.counters,
            checkpointing: self.checkpointing,
            emitted: self.emitted,
            skipped: self.skipped,
        }
    }
}

/// Tells the durability trace which file holds output `key`.
fn opened(key: &str, target: &dyn SinkConnector) {
    if let Some(path) = target.path() {
        crate::fault::record(|| crate::fault::Event::Opened {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
}
