//! A window of a pipeline file in the dataflow: behind a key exchange when
//! it has keys and several workers, one operator per instance of its input,
//! each restored from the checkpoint the run resumes from.

use super::DataflowBuilder;
use crate::changelog::{RetractOp, RetractPlan};
use crate::error::{Error, Result};
use crate::operators::{Counted, Routed, SplitByKey};
use crate::rows::Rows;
use crate::window::{WindowOp, WindowPlan};
use arrow::row::RowConverter;
use sluice::Stream;
use std::sync::Arc;

impl DataflowBuilder<'_> {
    /// Adds window `name` on `input`; returns the stream of its results.
    pub(super) fn add_window(
        &mut self,
        name: &str,
        input: Stream<Rows>,
        window: &Arc<WindowPlan>,
        counted: Counted,
    ) -> Result<Stream<Rows>> {
        let exec = &self.plan.execution;
        let policy = self.exchange_policy();
        // Without a key there is one group per window: no exchange while
        // the input is one instance; behind an earlier exchange, every
        // instance sends its rows to the first, which holds the group.
        let keyed = if window.keys.is_empty() && input.parallelism() > 1 {
            input.exchange_by(|_: &Rows| 0, policy)
        } else if exec.workers > 1 && !window.keys.is_empty() {
            let keys = window.keys.clone();
            let fields = window.key_fields.clone();
            let workers = exec.workers;
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
        // One instance per instance of its input: the workers behind a key
        // exchange, or after an earlier one.
        let states = self.window_states(name, window, keyed.parallelism())?;
        let (window, reserved, checkpointing) = (
            window.clone(),
            self.reserved.clone(),
            self.checkpointing.clone(),
        );
        let name = name.to_string();
        Ok(keyed.operator(move |down, instance| {
            let op = WindowOp::new(window.clone(), reserved.clone(), down).and_then(|op| {
                let op = op.counted(counted.clone());
                let mut op = match &checkpointing {
                    Some(c) => op.with_checkpoints(c.clone(), format!("window/{name}/{instance}")),
                    None => op,
                };
                if let Some(Some(state)) = states.get(instance) {
                    op.restore(state)?;
                }
                Ok(op)
            });
            match op {
                Ok(op) => Box::new(op),
                Err(e) => unreachable!("checked by window_states: {e}"),
            }
        }))
    }

    /// Adds the aggregate of a changelog `name` on `input`, on one
    /// instance (an update may move a row from one group to another, so
    /// every group is on one worker).
    pub(super) fn add_retract(
        &mut self,
        name: &str,
        input: Stream<Rows>,
        plan: &Arc<RetractPlan>,
        counted: Counted,
    ) -> Result<Stream<Rows>> {
        let policy = self.exchange_policy();
        let input = if input.parallelism() > 1 {
            input.exchange_by(|_: &Rows| 0, policy)
        } else {
            input
        };
        let key = format!("aggregate/{name}/0");
        let state = self
            .restored
            .as_ref()
            .map(|s| s.get(&key).map(<[u8]>::to_vec));
        let mut check = RetractOp::new(plan.clone(), Box::new(Discard))
            .map_err(|e| Error::Bug(format!("{name}: {e}")))?;
        match &state {
            Some(Some(state)) => check.restore(state).map_err(|e| {
                Error::damaged(format!(
                    "{name}: the checkpointed state cannot be loaded: {e}"
                ))
            })?,
            Some(None) => {
                return Err(Error::damaged(format!(
                    "{name}: the checkpoint has no state for `{key}`: the state is damaged"
                )))
            }
            None => {}
        }
        let (plan, checkpointing) = (plan.clone(), self.checkpointing.clone());
        // Every row goes to the first instance; the others stay empty, take
        // no part in checkpoints and hold no state.
        Ok(input.operator(move |down, instance| {
            let op = match RetractOp::new(plan.clone(), down) {
                Ok(op) => op.counted(counted.clone()),
                Err(e) => unreachable!("checked above: {e}"),
            };
            if instance > 0 {
                return Box::new(op);
            }
            let mut op = match &checkpointing {
                Some(c) => op.with_checkpoints(c.clone(), format!("aggregate/{}/0", plan.name)),
                None => op,
            };
            if let Some(Some(state)) = &state {
                if let Err(e) = op.restore(state) {
                    unreachable!("checked above: {e}");
                }
            }
            Box::new(op)
        }))
    }

    /// The checkpointed state of each of the window's `instances`, checked
    /// once here: the operator can be built, and each state loads.
    fn window_states(
        &self,
        name: &str,
        window: &Arc<WindowPlan>,
        instances: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let restored = self.restored.as_ref();
        let prefix = format!("window/{name}/");
        let saved = restored.map_or(0, |s| {
            s.entries.keys().filter(|k| k.starts_with(&prefix)).count()
        });
        if restored.is_some() && saved != instances {
            return Err(Error::damaged(format!(
                "{name}: the checkpoint has the state of {saved} instance(s), the pipeline \
                 runs {instances}: the state is damaged"
            )));
        }
        let mut states = Vec::with_capacity(instances);
        for instance in 0..instances {
            let mut check = WindowOp::new(window.clone(), self.reserved.clone(), Box::new(Discard))
                .map_err(|e| e.context(name))?;
            let key = format!("window/{name}/{instance}");
            let state = restored.and_then(|s| s.get(&key)).map(<[u8]>::to_vec);
            if let Some(state) = &state {
                check.restore(state).map_err(|e| {
                    Error::damaged(format!(
                        "{name}: the checkpointed state cannot be loaded: {e}"
                    ))
                })?;
            } else if restored.is_some() {
                return Err(Error::damaged(format!(
                    "{name}: the checkpoint has no state for `{key}`: the state is damaged"
                )));
            }
            states.push(state);
        }
        Ok(states)
    }
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
