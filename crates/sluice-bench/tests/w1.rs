//! W1 at 1,000,000 events gives the expected checksums (integers exactly,
//! floats to 1e-9 relative), with 1, 2, 3 and 8 workers, event, micro-batch and adaptive mode.
//! The expected figures are those of the shared workloads, computed
//! independently with numpy (`tests/data/W-expected-1M.json`).

use sluice::prelude::*;
use sluice_bench::{w1, W1Checksums};
use std::sync::{Arc, Mutex};

fn expected() -> W1Checksums {
    let text = include_str!("data/W-expected-1M.json");
    let field = |name: &str| -> f64 {
        let start = text.find(&format!("\"{name}\": ")).unwrap() + name.len() + 4;
        let end = text[start..].find([',', '}']).unwrap() + start;
        text[start..end].trim().parse().unwrap()
    };
    W1Checksums {
        groups: field("groups") as u64,
        sum_count: field("sum_count") as u64,
        sum_sum: field("sum_sum"),
        sum_min: field("sum_min"),
        sum_max: field("sum_max"),
        sum_mean: field("sum_mean"),
        max_count: field("max_count") as u64,
    }
}

fn run(workers: usize, policy: FlushPolicy) -> W1Checksums {
    let pipeline = Pipeline::new().with_workers(workers);
    let sums = Arc::new(Mutex::new(W1Checksums::default()));
    let totals = sums.clone();
    w1(&pipeline, 1_000_000, policy).for_each(move |row| totals.lock().unwrap().add(&row));
    pipeline.run().unwrap();
    let sums = sums.lock().unwrap().clone();
    sums
}

fn assert_matches(got: &W1Checksums, want: &W1Checksums, label: &str) {
    assert_eq!(
        (got.groups, got.sum_count, got.max_count),
        (want.groups, want.sum_count, want.max_count),
        "{label}"
    );
    for (name, a, b) in [
        ("sum_sum", got.sum_sum, want.sum_sum),
        ("sum_min", got.sum_min, want.sum_min),
        ("sum_max", got.sum_max, want.sum_max),
        ("sum_mean", got.sum_mean, want.sum_mean),
    ] {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs(),
            "{label}: {name} = {a}, expected {b}"
        );
    }
}

#[test]
fn w1_checksums_match_in_micro_batch_mode() {
    let want = expected();
    for workers in [1, 2, 3, 8] {
        assert_matches(
            &run(workers, FlushPolicy::Count(4096)),
            &want,
            &format!("micro-batch, {workers} workers"),
        );
    }
}

#[test]
fn w1_checksums_match_in_event_mode() {
    let want = expected();
    for workers in [1, 2, 3, 8] {
        assert_matches(
            &run(workers, FlushPolicy::EachEvent),
            &want,
            &format!("event, {workers} workers"),
        );
    }
}

#[test]
fn w1_checksums_match_in_adaptive_mode() {
    let want = expected();
    for workers in [1, 2, 3, 8] {
        assert_matches(
            &run(
                workers,
                FlushPolicy::Adaptive {
                    target_latency: std::time::Duration::from_millis(5),
                },
            ),
            &want,
            &format!("adaptive, {workers} workers"),
        );
    }
}
