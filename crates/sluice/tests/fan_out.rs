//! Several consumers of one stream: every branch gets every event, with
//! partitions, edges and windows behind the branches.

use sluice::prelude::*;
use sluice::watermark::WatermarkStrategy;
use std::time::Duration;

#[test]
fn every_branch_gets_every_event_across_partitions_and_edges() {
    let pipeline = Pipeline::new().with_workers(2);
    let branches = pipeline
        .partitioned_source(2, |p| {
            IterSource::new((0..1000_i64).filter(move |i| i % 2 == p as i64))
                .with_event_time(|t| *t)
        })
        .with_watermarks(WatermarkStrategy::bounded(Duration::ZERO))
        .events
        .fan_out(3);
    let mut branches = branches.into_iter();
    let (a, b, unused) = (
        branches.next().unwrap(),
        branches.next().unwrap(),
        branches.next().unwrap(),
    );
    drop(unused); // a branch with no sink does not stop the others
    let all = a.batch(FlushPolicy::Count(64)).collect();
    let per_window = b
        .key_by(|_| ())
        .window(Window::tumbling(Duration::from_millis(100)))
        .aggregate(Count)
        .results
        .collect();
    pipeline.run().unwrap();
    let mut all = all.take();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    let windows = per_window.take();
    assert_eq!(windows.len(), 10);
    assert!(windows.iter().all(|w| w.value == 100));
}

#[test]
fn a_fan_out_with_no_consumed_branch_runs_nothing_and_is_refused() {
    let pipeline = Pipeline::new();
    let branches = pipeline.source(IterSource::new(0..3)).fan_out(2);
    drop(branches);
    assert!(matches!(
        pipeline.run(),
        Err(sluice::Error::Build(sluice::BuildError::NoSink))
    ));
}
