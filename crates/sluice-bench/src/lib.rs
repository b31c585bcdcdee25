//! The shared benchmark workloads (W0, W1, Nexmark) as Sluice pipelines, with plain-loop
//! references: used by `sluice bench`, the `w1` example, the tests that check them against
//! the expected checksums, and the criterion benchmarks. Benchmark code, not library API.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod nexmark;
pub mod sql;

use sluice::prelude::*;
use sluice::watermark::WatermarkStrategy;
use sluice::window::{Window, WindowResult};
use sluice_connectors::{FormulaEvent, FormulaSource};
use std::time::Duration;

/// W0: the first `events` events of the formula stream, read in one
/// partition per worker: keep `value > 0.5`, map to `value * 2`, cut by
/// `policy`; each batch is reduced to its `(count, sum)` on its worker.
///
/// ```
/// use sluice::prelude::*;
/// use sluice_bench::w0;
///
/// let pipeline = Pipeline::new().with_workers(2);
/// let partials = w0(&pipeline, 1_000, FlushPolicy::Count(100)).collect();
/// pipeline.run()?;
/// let count: u64 = partials.take().iter().map(|p| p.0).sum();
/// assert!(count > 400 && count < 600);
/// # Ok::<(), sluice::Error>(())
/// ```
pub fn w0(pipeline: &Pipeline, events: u64, policy: FlushPolicy) -> Stream<(u64, f64)> {
    let partitions = pipeline.workers();
    pipeline
        .partitioned_source(partitions, |p| {
            FormulaSource::partition(events, p, partitions)
        })
        .filter(|e: &FormulaEvent| e.value > 0.5)
        .map(|e: FormulaEvent| e.value * 2.0)
        .batch(policy)
        .map_batch(|values: &[f64]| {
            let sum = Sum.fold(values);
            (values.len() as u64, Aggregate::<f64>::finish(&Sum, &sum))
        })
}

/// The W0 checksums computed by a plain loop: `(count, sum)`.
pub fn w0_reference(events: u64) -> (u64, f64) {
    let mut count = 0;
    let mut sum = sluice_core::aggregate::CompensatedSum::default();
    for i in 0..i64::try_from(events).unwrap_or(i64::MAX) {
        let e = FormulaEvent::at(i);
        if e.value > 0.5 {
            count += 1;
            sum.add(e.value * 2.0);
        }
    }
    (count, sum.value())
}

/// The W1 checksums computed by a plain loop, one window at a time (the
/// events come in time order, 1,000 per window).
pub fn w1_reference(events: u64) -> W1Checksums {
    let mut sums = W1Checksums::default();
    let n = i64::try_from(events).unwrap_or(i64::MAX);
    let mut groups: std::collections::HashMap<i64, (u64, f64, f64, f64)> =
        std::collections::HashMap::new();
    let flush = |groups: &mut std::collections::HashMap<i64, (u64, f64, f64, f64)>,
                 sums: &mut W1Checksums| {
        for (_, (count, sum, min, max)) in groups.drain() {
            sums.groups += 1;
            sums.sum_count += count;
            sums.sum_sum += sum;
            sums.sum_min += min;
            sums.sum_max += max;
            sums.sum_mean += sum / count as f64;
            sums.max_count = sums.max_count.max(count);
        }
    };
    for i in 0..n {
        if i > 0 && i % 1000 == 0 {
            flush(&mut groups, &mut sums);
        }
        let e = FormulaEvent::at(i);
        let g = groups
            .entry(e.key)
            .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        g.0 += 1;
        g.1 += e.value;
        g.2 = g.2.min(e.value);
        g.3 = g.3.max(e.value);
    }
    flush(&mut groups, &mut sums);
    sums
}

/// One W1 result row: count, sum, mean, min and max of a key's values in a
/// one-second window.
pub type W1Row = WindowResult<i64, (u64, f64, Option<f64>, Option<f64>, Option<f64>)>;

/// W1: the first `events` events of the formula stream, read in one
/// partition per worker, exchanged by key in batches cut by `policy`, per
/// key and 1-second tumbling window: count, sum, mean, min, max of the value.
///
/// ```
/// use sluice::prelude::*;
/// use sluice_bench::{w1, W1Checksums};
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
    let value = |e: &FormulaEvent| e.value;
    w1_with(
        pipeline,
        events,
        policy,
        (
            Count,
            Sum.over(value),
            Mean.over(value),
            Min.over(value),
            Max.over(value),
        ),
    )
}

/// W1's pipeline with `aggregate` in place of its five aggregates: with
/// fewer, what the engine costs around them (the `window/w1_*` benches of
/// `hot_paths`).
pub fn w1_with<A>(
    pipeline: &Pipeline,
    events: u64,
    policy: FlushPolicy,
    aggregate: A,
) -> Stream<WindowResult<i64, A::Output>>
where
    A: Aggregate<FormulaEvent> + Clone + 'static,
    A::Output: Send + 'static,
{
    let partitions = pipeline.workers();
    pipeline
        .partitioned_source(partitions, |p| {
            FormulaSource::partition(events, p, partitions)
        })
        // Partitions stay within 2 s of event time of each other, so that
        // window state stays small when one of them runs ahead.
        .with_watermarks(
            WatermarkStrategy::bounded(Duration::ZERO).with_alignment(Duration::from_secs(2)),
        )
        .events
        .batch(policy)
        .key_by(|e: &FormulaEvent| e.key)
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate(aggregate)
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
    /// The checksums of a run of rows (a batch algorithm, to reduce result
    /// rows where they are made).
    pub fn of(rows: &[W1Row]) -> Self {
        let mut sums = Self::default();
        rows.iter().for_each(|row| sums.add(row));
        sums
    }

    /// Adds the checksums of other rows.
    pub fn merge(&mut self, other: &W1Checksums) {
        self.groups += other.groups;
        self.sum_count += other.sum_count;
        self.sum_sum += other.sum_sum;
        self.sum_min += other.sum_min;
        self.sum_max += other.sum_max;
        self.sum_mean += other.sum_mean;
        self.max_count = self.max_count.max(other.max_count);
    }

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
