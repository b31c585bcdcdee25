//! Criterion benches of the hot parts: batch flush, aggregate merge, key
//! exchange, window update and rule evaluation. Figures are per event
//! (`Throughput::Elements`). Run: `cargo bench -p sluice --bench hot_paths`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::aggregate::{Aggregate, AggregateExt, Count, Max, Mean, Min, Sum};
use sluice::prelude::*;
use sluice::{Batch, SystemClock};
use sluice_connectors::{FormulaEvent, FormulaSource};
use sluice_runtime::{exchange, Batcher, Operator};
use std::sync::Arc;
use std::time::Duration;

const EVENTS: usize = 4096;

fn formula_batch(n: usize) -> Batch<FormulaEvent> {
    let mut batch = Batch::with_capacity(n);
    for i in 0..n as i64 {
        batch.push(FormulaEvent::at(i), i);
    }
    batch
}

/// Cutting 4,096 events into batches of 256 and releasing them.
fn batch_flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_flush");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for policy in [
        FlushPolicy::Count(256),
        FlushPolicy::EachEvent,
        FlushPolicy::EventTime(Duration::from_millis(100)),
    ] {
        group.bench_function(format!("{policy:?}"), |b| {
            let mut batcher = Batcher::new(policy, None).unwrap();
            let mut released = 0usize;
            b.iter_batched(
                || formula_batch(EVENTS),
                |mut input| {
                    batcher
                        .push(
                            &mut input,
                            Duration::ZERO,
                            &mut |held: &mut Batch<FormulaEvent>| -> Result<(), ()> {
                                released += held.len();
                                held.clear();
                                Ok(())
                            },
                        )
                        .unwrap();
                },
                BatchSize::SmallInput,
            );
            black_box(released);
        });
    }
    group.finish();
}

/// Folding 4,096 values into W1's five aggregates, and merging partials.
fn aggregate_merge(c: &mut Criterion) {
    let value = |e: &FormulaEvent| e.value;
    let agg = (
        Count,
        Sum.over(value),
        Mean.over(value),
        Min.over(value),
        Max.over(value),
    );
    let batch = formula_batch(EVENTS);
    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("fold_w1_aggregates", |b| {
        b.iter(|| black_box(agg.fold(batch.items())))
    });
    let partials: Vec<_> = batch.items().chunks(4).map(|c| agg.fold(c)).collect();
    group.throughput(Throughput::Elements(partials.len() as u64));
    group.bench_function("merge_w1_partials", |b| {
        b.iter(|| {
            let mut total = agg.init();
            for p in &partials {
                agg.merge(&mut total, p);
            }
            black_box(agg.finish(&total))
        })
    });
    group.finish();
}

/// Routing 4,096 events by key to two workers and receiving them.
fn key_exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_exchange");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("route_4096_to_2_workers", |b| {
        let clock = Arc::new(SystemClock::new());
        let route: Arc<dyn Fn(&FormulaEvent) -> u64 + Send + Sync> = Arc::new(|e| e.key as u64);
        let (mut senders, receivers) = exchange(
            "bench",
            FlushPolicy::Forward,
            64,
            clock.clone(),
            1,
            2,
            route,
        )
        .unwrap();
        let drains: Vec<_> = receivers
            .into_iter()
            .map(|r| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    struct Drop;
                    impl Operator<FormulaEvent> for Drop {
                        fn on_batch(
                            &mut self,
                            batch: &mut Batch<FormulaEvent>,
                        ) -> sluice_runtime::OperatorResult {
                            black_box(batch.len());
                            Ok(())
                        }
                        fn downstream(&mut self) -> Option<&mut dyn sluice_runtime::Signals> {
                            None
                        }
                    }
                    sluice_runtime::stage::run_receiver("drain", &r, &mut Drop, &*clock)
                })
            })
            .collect();
        let mut sender = senders.pop().unwrap();
        b.iter_batched(
            || formula_batch(EVENTS),
            |mut batch| sender.on_batch(&mut batch).unwrap(),
            BatchSize::SmallInput,
        );
        sender.on_end().unwrap();
        for d in drains {
            d.join().unwrap().unwrap();
        }
    });
    group.finish();
}

/// `sluice_bench::w1_with` on one worker, its rows counted.
fn w1_with<A>(events: u64, aggregate: A)
where
    A: Aggregate<FormulaEvent> + Clone + 'static,
    A::Output: Send + 'static,
{
    let pipeline = Pipeline::new().with_workers(1);
    sluice_bench::w1_with(&pipeline, events, FlushPolicy::Count(4096), aggregate)
        .map_batch(|rows: &[_]| rows.len())
        .for_each(|n| {
            black_box(n);
        });
    pipeline.run().unwrap();
}

/// W1 end to end on one worker (`sluice_bench::w1`): 200,000 events
/// through a tumbling window; then the same pipeline with fewer aggregates,
/// down to a count alone (the engine's part of W1's cost per event).
fn window_update(c: &mut Criterion) {
    const N: u64 = 200_000;
    let value = |e: &FormulaEvent| e.value;
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    group.bench_function("w1_tumbling_1_worker", |b| {
        b.iter(|| {
            let pipeline = Pipeline::new().with_workers(1);
            sluice_bench::w1(&pipeline, N, FlushPolicy::Count(4096))
                .map_batch(|rows: &[_]| rows.len())
                .for_each(|n| {
                    black_box(n);
                });
            pipeline.run().unwrap();
        })
    });
    group.bench_function("w1_count_min_max_1_worker", |b| {
        b.iter(|| w1_with(N, (Count, Min.over(value), Max.over(value))))
    });
    group.bench_function("w1_count_sum_1_worker", |b| {
        b.iter(|| w1_with(N, (Count, Sum.over(value))))
    });
    group.bench_function("w1_count_only_1_worker", |b| b.iter(|| w1_with(N, Count)));
    group.finish();
}

/// A rule (trigger -> action) fused after a source: 200,000 events.
fn rule_evaluation(c: &mut Criterion) {
    const N: u64 = 200_000;
    let mut group = c.benchmark_group("rule");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    group.bench_function("trigger_action_fused", |b| {
        b.iter(|| {
            let pipeline = Pipeline::new();
            pipeline
                .source(FormulaSource::new(0, N as i64, 1))
                .on(|e: &FormulaEvent| e.value > 0.9, |e: FormulaEvent| e.key)
                .map_batch(|keys: &[i64]| keys.len())
                .for_each(|n| {
                    black_box(n);
                });
            pipeline.run().unwrap();
        })
    });
    group.finish();
}

// criterion_group! makes an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(
        benches,
        batch_flush,
        aggregate_merge,
        key_exchange,
        window_update,
        rule_evaluation
    );
}
criterion_main!(group::benches);
