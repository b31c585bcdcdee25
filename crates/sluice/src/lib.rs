//! Sluice: one dataflow that runs event by event or in micro-batches.
//!
//! A [`Pipeline`] reads [`Source`]s into typed [`Stream`]s. Operators such
//! as [`Stream::map`], [`Stream::filter`] and [`Stream::on`] (rules: trigger
//! → action) are fused onto the thread that produces their input. Where a
//! stream passes through [`Stream::batch`], an edge with a [`FlushPolicy`]
//! decides how events travel to the next thread: one by one
//! ([`FlushPolicy::EachEvent`], event-driven) or in micro-batches
//! ([`FlushPolicy::Count`], [`FlushPolicy::Interval`], …). Mergeable
//! [`aggregate`]s make the micro-batch results exact: every batch is folded
//! on its own and the partial results are merged, so the answer does not
//! depend on the cut. Results leave through sinks, or are published on the
//! event [`bus`], where handlers react and propagate them.
//!
//! ```
//! use sluice::prelude::*;
//!
//! // 10,000 seeded values in micro-batches of 1,000: mean of each batch,
//! // and the exact global mean merged from (sum, count).
//! let pipeline = Pipeline::new();
//! let batches = pipeline
//!     .source(UniformSource::new(42, 10_000))
//!     .batch(FlushPolicy::Count(1_000));
//! let per_batch = batches.map_batch(|values: &[f64]| Mean.finish(&Mean.fold(values))).collect();
//! pipeline.run()?;
//! assert_eq!(per_batch.len(), 10);
//!
//! let pipeline = Pipeline::new();
//! let global = pipeline
//!     .source(UniformSource::new(42, 10_000))
//!     .batch(FlushPolicy::Count(1_000))
//!     .aggregate(Mean)
//!     .collect();
//! pipeline.run()?;
//! let exact: f64 = UniformSource::values(42, 10_000).iter().sum::<f64>() / 10_000.0;
//! let merged = global.take()[0].unwrap();
//! assert!((merged - exact).abs() < 1e-12);
//! # Ok::<(), sluice::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

/// The event bus (the `sluice-bus` crate): topics, handlers, propagation.
pub use sluice_bus as bus;
mod error;
mod fan_out;
mod keyed;
mod ops;
mod pipeline;
mod publish;
mod side;
mod stream;
pub mod watermark;
pub mod window;

pub use error::{BuildError, Error, Result};
pub use keyed::KeyedStream;
pub use ops::{KeyedProcess, RuleCounters};
pub use pipeline::{Pipeline, PipelineReport};
pub use stream::Stream;

pub use sluice_core::{aggregate, cut, Aggregate, Batch, Timestamp};
pub use sluice_runtime::worker::current_stage;
pub use sluice_runtime::{
    AdaptiveController, Barrier, BoxError, Clock, EdgeSnapshot, FlushPolicy, Observed, Operator,
    OperatorError, OperatorResult, RunReport, RuntimeError, Signals, SimulatedClock, Sink, Source,
    SourceStatus, SystemClock, MAX_ADAPTIVE_BATCH,
};

/// The README's guide, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// Sources and sinks (re-exported from `sluice-connectors`).
pub mod connectors {
    pub use sluice_connectors::*;
}

/// The names most programs need.
pub mod prelude {
    pub use crate::aggregate::{
        Aggregate, AggregateExt, Count, Max, Mean, Min, StdDev, Sum, Variance,
    };
    pub use crate::connectors::{Collected, IterSource, StdoutSink, UniformSource};
    pub use crate::window::Window;
    pub use crate::{FlushPolicy, Pipeline, RuleCounters, Stream};
}
