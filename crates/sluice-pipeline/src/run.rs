//! Running a compiled pipeline on Sluice's runtime: one source stage, the
//! transforms fused onto it or behind a key exchange, and the sinks.

use crate::accounting::Accounting;
use crate::build::restore::{self, Restored};
pub use crate::build::{progress, Progress, RunOptions};
use crate::build::{Dataflow, DataflowBuilder, SinkCount};
use crate::checkpoint::{Checkpointing, StateLocation};
use crate::connectors::replay::SourceCounters;
#[cfg(feature = "nats")]
pub use crate::connectors::PartitionContext;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::side_outputs::Reserved;
use serde::Serialize;
use std::sync::atomic::Ordering;
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

/// Runs `plan` with `options`: with a state directory, resumes from its
/// last checkpoint and takes checkpoints as it goes.
pub fn run_with(plan: Plan, progress: &Progress, options: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let reserved = Arc::new(Reserved::new());
    let (checkpointing, restored) = match restore::open(&plan, options, &reserved)? {
        Restored::AlreadyCompleted(id) => {
            let report = CheckpointReport {
                last: Some(id),
                already_completed: true,
                ..CheckpointReport::default()
            };
            let counters = &progress.source;
            let summary = summary(&plan, counters, &[], None, started, Some(report));
            return Ok(RunOutcome::AlreadyCompleted(summary));
        }
        Restored::Ready {
            checkpointing,
            snapshot,
        } => (checkpointing, snapshot),
    };
    let mut build = DataflowBuilder::new(
        &plan,
        options,
        progress.source.clone(),
        reserved,
        checkpointing,
        restored,
    );
    build.watch(progress);
    build.open_sinks()?;
    build.add_source()?;
    for t in &plan.transforms {
        build.add_transform(t)?;
    }
    build.attach_sinks()?;
    run_dataflow(&plan, options, build.finish(), started)
}

/// Runs a built dataflow to its end or to a graceful stop, checks its
/// counts, and commits it as completed.
fn run_dataflow(
    plan: &Plan,
    options: &RunOptions,
    dataflow: Dataflow,
    started: Instant,
) -> Result<RunOutcome> {
    let Dataflow {
        pipeline,
        reserved,
        accounting,
        counters,
        checkpointing,
        emitted,
        skipped,
    } = dataflow;
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
            let summary = summary(
                plan,
                &counters,
                &emitted,
                Some(&accounting),
                started,
                Some(report.clone()),
            );
            return Ok(RunOutcome::Stopped(summary));
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
    report_unread(plan, &reserved);
    Ok(RunOutcome::Completed(summary(
        plan,
        &counters,
        &emitted,
        Some(&accounting),
        started,
        report,
    )))
}

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
        reserved.sinks_gave_up(),
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
