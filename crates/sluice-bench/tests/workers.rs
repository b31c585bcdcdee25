//! A run with `n` workers computes on at most `n` threads, however many
//! stages and stage instances its dataflow has: the threads are counted by
//! the operating system (Linux: `/proc/self/task`), not by the executor.
//!
//! This file holds one test, so that no other test's threads are counted.

use sluice::prelude::*;
use sluice_bench::{w1, w1_reference, W1Checksums};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The names of this process's threads that Sluice started, now.
fn sluice_threads() -> BTreeSet<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return BTreeSet::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("sluice"))
        .collect()
}

#[test]
fn a_run_with_n_workers_computes_on_at_most_n_threads() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("no /proc/self/task: threads cannot be counted on this system");
        return;
    }
    const EVENTS: u64 = 200_000;
    let want = w1_reference(EVENTS);
    for workers in [1, 2, 3, 4, 8] {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let pipeline = Pipeline::new().with_workers(workers);
        let sums = Arc::new(Mutex::new(W1Checksums::default()));
        let totals = sums.clone();
        let sampled = seen.clone();
        let mut rows = 0u64;
        // W1: a source per worker, pre-aggregation, a key exchange, a
        // window per worker, a merge and a sink; the sink samples the
        // threads while the run is on.
        w1(&pipeline, EVENTS, FlushPolicy::Count(1024)).for_each(move |row| {
            if rows % 16 == 0 {
                sampled.lock().unwrap().extend(sluice_threads());
            }
            rows += 1;
            totals.lock().unwrap().add(&row);
        });
        let report = pipeline.run().unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "{workers} workers: no thread was sampled");
        assert!(
            seen.len() <= workers,
            "{workers} workers ran on {} threads: {seen:?}",
            seen.len()
        );
        assert!(
            seen.iter().all(|name| name.starts_with("sluice-worker")),
            "{seen:?}"
        );
        assert!(report.run.worker_threads <= workers);
        assert_eq!(report.run.io_threads, 0);
        // The results of a plain loop, with any number of workers.
        let sums = sums.lock().unwrap().clone();
        assert_eq!(
            (sums.groups, sums.sum_count, sums.max_count),
            (want.groups, want.sum_count, want.max_count),
            "{workers} workers"
        );
    }
}
