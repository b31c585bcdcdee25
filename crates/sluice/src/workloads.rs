//! The shared benchmark workloads, as pipelines: used by the `w1` example,
//! the tests that check them against the expected checksums, and benchmarks.

use crate::prelude::*;
use crate::watermark::WatermarkStrategy;
use crate::window::{Window, WindowResult};
use sluice_connectors::{FormulaEvent, FormulaSource};
use std::time::Duration;

/// One W1 result row: count, sum, mean, min and max of a key's values in a
/// one-second window.
pub type W1Row = WindowResult<i64, (u64, f64, Option<f64>, Option<f64>, Option<f64>)>;

/// W1: the first `events` events of the formula stream, read in one
/// partition per worker, cut by `policy`, per key and 1-second tumbling
/// window: count, sum, mean, min, max of the value.
///
/// ```
/// use sluice::prelude::*;
/// use sluice::workloads::{w1, W1Checksums};
///
/// let pipeline = Pipeline::new().with_workers(1);
/// let rows = w1(&pipeline, 10_000, FlushPolicy::Count(1024)).collect();
/// pipeline.run()?;
/// let mut sums = W1Checksums::default();
/// rows.take().iter().for_each(|row| sums.add(row));
/// assert_eq!(sums.sum_count, 10_000);
/// # Ok::<(), sluice::Error>(())
/// ```
pub fn w1(pipeline: &Pipeline, events: u64, policy: FlushPolicy) -> Stream<W1Row> {
    let partitions = pipeline.workers();
    let value = |e: &FormulaEvent| e.value;
    pipeline
        .partitioned_source(partitions, |p| {
            FormulaSource::partition(events, p, partitions)
        })
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .batch(policy)
        .key_by(|e: &FormulaEvent| e.key)
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate((
            Count,
            Sum.over(value),
            Mean.over(value),
            Min.over(value),
            Max.over(value),
        ))
        .results
}

/// The checksums of W1, named as in `W-expected-1M.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct W1Checksums {
    /// Result rows.
    pub groups: u64,
    /// Sum of the counts: the number of events.
    pub sum_count: u64,
    /// Sum of the sums.
    pub sum_sum: f64,
    /// Sum of the minima.
    pub sum_min: f64,
    /// Sum of the maxima.
    pub sum_max: f64,
    /// Sum of the means.
    pub sum_mean: f64,
    /// The largest count.
    pub max_count: u64,
}

impl W1Checksums {
    /// Adds one result row.
    pub fn add(&mut self, row: &W1Row) {
        let (count, sum, mean, min, max) = row.value;
        self.groups += 1;
        self.sum_count += count;
        self.sum_sum += sum;
        self.sum_mean += mean.unwrap_or(0.0);
        self.sum_min += min.unwrap_or(0.0);
        self.sum_max += max.unwrap_or(0.0);
        self.max_count = self.max_count.max(count);
    }
}
