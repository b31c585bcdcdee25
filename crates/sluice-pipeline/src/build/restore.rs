//! Before the dataflow is built: the run's checkpoint store opened, the
//! guarantee checked against the source and sinks, and the last checkpoint
//! loaded.

use super::RunOptions;
use crate::checkpoint;
use crate::checkpoint::{
    CheckpointStore, Checkpointing, Guarantee, Snapshot, StateLocation, Store,
};
use crate::connectors::Resume;
use crate::error::{Error, Result};
use crate::plan::Operation;
use crate::plan::Plan;
use crate::side_outputs::Reserved;
use std::sync::Arc;

/// The checkpoints of a run about to start.
pub(crate) enum Restored {
    /// The state says the pipeline completed at checkpoint `0`.
    AlreadyCompleted(u64),
    /// The run goes ahead: its coordinator, and the checkpoint it resumes
    /// from (none without a state).
    Ready {
        checkpointing: Option<Arc<Checkpointing>>,
        snapshot: Option<Snapshot>,
    },
}

/// Opens the state of `options.checkpoints`, if any, and loads its last
/// checkpoint; the dead letters of `reserved` are then held until barriers.
pub(crate) fn open(
    plan: &Plan,
    options: &RunOptions,
    reserved: &Arc<Reserved>,
) -> Result<Restored> {
    let Some(config) = &options.checkpoints else {
        return Ok(Restored::Ready {
            checkpointing: None,
            snapshot: None,
        });
    };
    check_guarantee(plan, config.guarantee)?;
    let store: Arc<dyn CheckpointStore> = match &config.location {
        StateLocation::Dir(dir) => Arc::new(Store::open(dir, &fingerprint(plan), config.fresh)?),
        StateLocation::External(store) => store.clone(),
    };
    let mut snapshot = store.load()?;
    if let StateLocation::Dir(dir) = &config.location {
        if crate::fault::on(crate::fault::Fault::SkipRestore, dir) {
            snapshot = None;
        }
    }
    if let Some(done) = snapshot.as_ref().filter(|s| s.completed) {
        return Ok(Restored::AlreadyCompleted(done.id));
    }
    reserved.hold_until_barriers();
    let mut checkpointing = Checkpointing::new(
        store,
        config.interval,
        reserved.clone(),
        snapshot.as_ref().map(|s| s.id),
        options.stop.clone(),
    )
    .logging(config.log.clone());
    if snapshot.is_none() && plan.sinks.iter().any(|s| s.target.checkpoint_at_start()) {
        checkpointing = checkpointing.first_at_once();
    }
    Ok(Restored::Ready {
        checkpointing: Some(Arc::new(checkpointing)),
        snapshot,
    })
}

/// Checks that `plan` can keep `guarantee` with checkpoints.
fn check_guarantee(plan: &Plan, guarantee: Guarantee) -> Result<()> {
    if let Some(refusal) = plan.source.connector.refuses(guarantee) {
        return Err(refusal);
    }
    for sink in &plan.sinks {
        if let Some(reason) = sink.target.refuses(guarantee) {
            return Err(reason.context(format_args!("sink of `{}`", sink.from)));
        }
    }
    Ok(())
}

/// Where output `key` resumes in `restored` (its length and state), if the
/// run resumes.
pub(crate) fn committed_resume(restored: Option<&Snapshot>, key: &str) -> Result<Option<Resume>> {
    let Some(snapshot) = restored else {
        return Ok(None);
    };
    let bytes = snapshot.get(key).ok_or_else(|| {
        Error::damaged(format!(
            "the checkpoint has no length for `{key}`: the state is damaged"
        ))
    })?;
    let length: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::damaged(format!("the checkpointed length of `{key}` is damaged")))?;
    Ok(Some(Resume {
        length: u64::from_le_bytes(length),
        state: bytes[8..].to_vec(),
    }))
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
    let source = plan.source.connector.identity();
    // Chunks decide where the watermark moves, so they are part of it too.
    // Adaptive chunks follow timing: a resumed run keeps the mode and the
    // target, not the cuts (see docs/exactly-once.md).
    text.push_str(&format!(
        "workers {}, chunk rows {}, target latency {:?}, source {}, idle timeout {:?}\n",
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
