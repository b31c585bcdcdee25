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

/// Passes ticks, watermarks, idleness and the end on to `self.down`
/// unchanged: for operators that only transform events.
macro_rules! forward_signals {
    () => {
        fn on_tick(
            &mut self,
            now: std::time::Duration,
        ) -> Result<Option<std::time::Duration>, sluice_runtime::OperatorError> {
            self.down.on_tick(now)
        }
        fn on_watermark(
            &mut self,
            watermark: sluice_core::Timestamp,
        ) -> sluice_runtime::OperatorResult {
            self.down.on_watermark(watermark)
        }
        fn on_idle(&mut self) -> sluice_runtime::OperatorResult {
            self.down.on_idle()
        }
        fn on_barrier(
            &mut self,
            barrier: sluice_runtime::Barrier,
        ) -> sluice_runtime::OperatorResult {
            self.down.on_barrier(barrier)
        }
        fn on_end(&mut self) -> sluice_runtime::OperatorResult {
            self.down.on_end()
        }
    };
}
pub(crate) use forward_signals;
