//! Every Nexmark query, run by Sluice with 1 to 8 workers and in both
//! modes, gives the same rows (count and checksum) as a plain
//! single-threaded loop over the same events.

use sluice::prelude::*;
use sluice_bench::nexmark::{query, reference, QueryChecksum, QUERIES};
use std::sync::{Arc, Mutex};

fn run(name: &str, events: u64, workers: usize, policy: FlushPolicy) -> QueryChecksum {
    let pipeline = Pipeline::new().with_workers(workers);
    let total = Arc::new(Mutex::new(QueryChecksum::default()));
    let sink = total.clone();
    query(&pipeline, name, events, policy)
        .unwrap()
        .for_each(move |partial| sink.lock().unwrap().merge(&partial));
    pipeline.run().unwrap();
    let total = *total.lock().unwrap();
    total
}

#[test]
fn every_query_matches_its_reference() {
    // 120,000 events: 12 s of event time, so the windowed queries see
    // several complete 10 s windows.
    const EVENTS: u64 = 120_000;
    for name in QUERIES {
        let want = reference(name, EVENTS).unwrap();
        assert!(want.rows > 0, "{name}: the reference has no rows");
        for (workers, policy) in [
            (1, FlushPolicy::Count(1024)),
            (3, FlushPolicy::Count(100)),
            (2, FlushPolicy::EachEvent),
            (8, FlushPolicy::Count(256)),
        ] {
            assert_eq!(
                run(name, EVENTS, workers, policy),
                want,
                "{name} with {workers} workers, {policy:?}"
            );
        }
    }
}

#[test]
fn unknown_queries_are_refused() {
    assert!(query(&Pipeline::new(), "q6", 10, FlushPolicy::EachEvent).is_none());
    assert!(reference("q6", 10).is_none());
}
