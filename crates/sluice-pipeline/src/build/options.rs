//! What a run is asked: checkpoints, a graceful stop, the dashboard, the
//! partition of a distributed run; and what it shows while it goes.

use crate::checkpoint::CheckpointConfig;
use crate::connectors::replay::SourceCounters;
#[cfg(feature = "nats")]
use crate::connectors::PartitionContext;
use crate::plan::Plan;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How to run: checkpoints, and a way to ask for a graceful stop.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints into a state directory; none without it.
    pub checkpoints: Option<CheckpointConfig>,
    /// Set (by a signal handler) to stop after a last checkpoint.
    pub stop: Arc<AtomicBool>,
    /// The dashboard's figures, when it is on.
    pub watch: Option<Arc<dyn crate::telemetry::Telemetry>>,
    /// The partition this run reads, in a distributed run.
    #[cfg(feature = "nats")]
    pub partition: Option<PartitionContext>,
}

/// Shared state a run exposes while it goes (for the progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// The source's counters.
    pub source: Arc<SourceCounters>,
    /// The input's size in bytes, when known.
    pub total_bytes: Option<u64>,
}

/// Prepares a run: what the progress bar watches, before [`crate::run::run`].
pub fn progress(plan: &Plan) -> Progress {
    let total_bytes = plan.source.connector.total_bytes();
    Progress {
        source: Arc::new(SourceCounters::default()),
        total_bytes,
    }
}
