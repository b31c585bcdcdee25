//! The fused operators behind [`Stream`](crate::Stream)'s methods, one per
//! file. Each receives a batch and pushes its output into the operator after
//! it: one virtual call per batch, a tight loop per event.

mod aggregate;
mod filter;
mod flat_map;
mod inspect;
mod keyed_aggregate;
mod keyed_process;
mod map;
mod map_batch;
pub(crate) mod rule;

pub(crate) use aggregate::GlobalAggregate;
pub(crate) use filter::Filter;
pub(crate) use flat_map::FlatMap;
pub(crate) use inspect::Inspect;
pub(crate) use keyed_aggregate::{KeyedMerge, KeyedPartial, KeyedPreAggregate};
pub use keyed_process::KeyedProcess;
pub(crate) use keyed_process::KeyedProcessOperator;
pub(crate) use map::Map;
pub(crate) use map_batch::MapBatch;
pub(crate) use rule::Rule;
pub use rule::RuleCounters;

use sluice_runtime::Operator;

/// The operator an operator pushes into.
pub(crate) type Downstream<T> = Box<dyn Operator<T>>;

/// Pushes `out` into `down` unless it is empty, then clears it for reuse.
pub(crate) fn send<T>(
    out: &mut sluice_core::Batch<T>,
    down: &mut Downstream<T>,
) -> sluice_runtime::OperatorResult {
    if out.is_empty() {
        return Ok(());
    }
    down.on_batch(out)?;
    out.clear();
    Ok(())
}
