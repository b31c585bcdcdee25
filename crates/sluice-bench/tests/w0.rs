//! W0 against its plain loop: the same count and sum with any number of
//! workers and any cut (its filter keeps events without a branch per
//! event: see `keep_in_place` in crates/sluice/src/ops/filter.rs).

use sluice::prelude::*;
use sluice_bench::{w0, w0_reference};

#[test]
fn w0_matches_the_loop() {
    const EVENTS: u64 = 100_003;
    let (want_count, want_sum) = w0_reference(EVENTS);
    for workers in [1, 2, 3, 4] {
        for policy in [FlushPolicy::Count(1000), FlushPolicy::Count(7)] {
            let pipeline = Pipeline::new().with_workers(workers);
            let partials = w0(&pipeline, EVENTS, policy).collect();
            pipeline.run().unwrap();
            let partials = partials.take();
            let count: u64 = partials.iter().map(|p| p.0).sum();
            let sum: f64 = partials.iter().map(|p| p.1).sum();
            let what = format!("{workers} workers, {policy:?}");
            assert_eq!(count, want_count, "{what}");
            assert!(
                (sum - want_sum).abs() <= 1e-9 * want_sum,
                "{what}: {sum} against {want_sum}"
            );
        }
    }
}
