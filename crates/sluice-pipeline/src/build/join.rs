//! A join of a pipeline in the dataflow: each side split by the hash of
//! its keys, both sent over one exchange to the workers, one join per
//! worker, each restored from the checkpoint the run resumes from.

use super::DataflowBuilder;
use crate::error::{Error, Result};
use crate::join::{JoinOp, JoinPlan, Sided, SplitSide};
use crate::operators::Counted;
use crate::rows::Rows;
use sluice::Stream;
use std::sync::Arc;

impl DataflowBuilder<'_> {
    /// Adds join `name` of `left` and `right`; returns the stream of pairs.
    pub(super) fn add_join(
        &mut self,
        name: &str,
        left: Stream<Rows>,
        right: Stream<Rows>,
        join: &Arc<JoinPlan>,
        counted: Counted,
    ) -> Result<Stream<Rows>> {
        let exec = &self.plan.execution;
        let policy = self.exchange_policy();
        let workers = exec.workers;
        // Checked once here, so that the operators below can be built.
        JoinOp::new(join.clone(), self.reserved.clone(), Box::new(Discard))
            .map_err(|e| Error::Bug(format!("{name}: {e}")))?;
        let side = |stream: Stream<Rows>, right: bool| {
            let join = join.clone();
            stream.operator(move |down, _| {
                match SplitSide::new(join.clone(), right, workers, down) {
                    Ok(split) => Box::new(split),
                    Err(e) => unreachable!("checked above: {e}"),
                }
            })
        };
        let both = side(left, false).exchange_with(side(right, true), |s: &Sided| s.worker, policy);
        let states = self.join_states(name, join, both.parallelism())?;
        let (join, reserved, checkpointing) = (
            join.clone(),
            self.reserved.clone(),
            self.checkpointing.clone(),
        );
        let name = name.to_string();
        Ok(both.operator(move |down, instance| {
            let op = match JoinOp::new(join.clone(), reserved.clone(), down) {
                Ok(op) => op.counted(counted.clone()),
                Err(e) => unreachable!("checked above: {e}"),
            };
            let mut op = match &checkpointing {
                Some(c) => op.with_checkpoints(c.clone(), format!("join/{name}/{instance}")),
                None => op,
            };
            if let Some(Some(state)) = states.get(instance) {
                if let Err(e) = op.restore(state) {
                    unreachable!("checked by join_states: {e}");
                }
            }
            Box::new(op)
        }))
    }

    /// The checkpointed state of each of the join's `instances`, each
    /// checked to load.
    fn join_states(
        &self,
        name: &str,
        join: &Arc<JoinPlan>,
        instances: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(restored) = self.restored.as_ref() else {
            return Ok(vec![None; instances]);
        };
        let prefix = format!("join/{name}/");
        let saved = restored
            .entries
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count();
        if saved != instances {
            return Err(Error::damaged(format!(
                "{name}: the checkpoint has the state of {saved} instance(s), the pipeline \
                 runs {instances}: the state is damaged"
            )));
        }
        let mut states = Vec::with_capacity(instances);
        for instance in 0..instances {
            let key = format!("{prefix}{instance}");
            let Some(state) = restored.get(&key) else {
                return Err(Error::damaged(format!(
                    "{name}: the checkpoint has no state for `{key}`: the state is damaged"
                )));
            };
            let mut check = JoinOp::new(join.clone(), self.reserved.clone(), Box::new(Discard))
                .map_err(|e| Error::Bug(format!("{name}: {e}")))?;
            check.restore(state).map_err(|e| {
                Error::damaged(format!(
                    "{name}: the checkpointed state cannot be loaded: {e}"
                ))
            })?;
            states.push(Some(state.to_vec()));
        }
        Ok(states)
    }
}

/// An operator that drops everything (to check a join can be built).
pub(super) struct Discard;

impl sluice::Operator<Rows> for Discard {
    fn on_batch(&mut self, _batch: &mut sluice::Batch<Rows>) -> sluice::OperatorResult {
        Ok(())
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        None
    }
}
