//! The final results of a pipeline do not depend on how its input was cut:
//! for random inputs, random source polls, every flush policy and a second
//! edge with another random policy, global and per-key aggregates equal the
//! one-pass results (exactly for integers, to 1e-12 relative for floats).

use proptest::prelude::*;
use sluice::prelude::*;
use std::time::Duration;

fn policies() -> impl Strategy<Value = FlushPolicy> {
    prop_oneof![
        Just(FlushPolicy::EachEvent),
        (1usize..64).prop_map(FlushPolicy::Count),
        (1u64..3).prop_map(|ms| FlushPolicy::Interval(Duration::from_millis(ms))),
        (1usize..64, 1u64..3)
            .prop_map(|(n, ms)| FlushPolicy::CountOrInterval(n, Duration::from_millis(ms))),
        (1usize..20).prop_map(FlushPolicy::Batches),
        (1u64..50).prop_map(|ms| FlushPolicy::EventTime(Duration::from_millis(ms))),
        (1u64..20).prop_map(|ms| FlushPolicy::Adaptive {
            target_latency: Duration::from_millis(ms)
        }),
    ]
}

/// A policy valid on an edge of unknown length.
fn unbounded_policies() -> impl Strategy<Value = FlushPolicy> {
    policies().prop_map(|p| match p {
        FlushPolicy::Batches(k) => FlushPolicy::Count(k),
        other => other,
    })
}

type Event = (u8, i64, f64);

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0u8..8, -1_000_000i64..1_000_000, -1e3..1e3f64), 0..300)
}

type Stats = (u64, i64, Option<i64>, Option<i64>, Option<f64>, Option<f64>);

fn stats() -> impl Aggregate<Event, Output = Stats> + Clone {
    (
        Count,
        Sum.over(|e: &Event| e.1),
        Min.over(|e: &Event| e.1),
        Max.over(|e: &Event| e.1),
        Mean.over(|e: &Event| e.2),
        StdDev::Sample.over(|e: &Event| e.2),
    )
}

fn close(a: Option<f64>, b: Option<f64>, scale: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * scale.max(1.0),
        (None, None) => true,
        _ => false,
    }
}

fn assert_same(one: &Stats, run: &Stats) -> Result<(), TestCaseError> {
    prop_assert_eq!((one.0, one.1, one.2, one.3), (run.0, run.1, run.2, run.3));
    prop_assert!(close(one.4, run.4, 1e3), "mean {:?} vs {:?}", one.4, run.4);
    prop_assert!(
        close(one.5, run.5, 1e3),
        "stddev {:?} vs {:?}",
        one.5,
        run.5
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn results_do_not_depend_on_the_cut(
        data in events(),
        poll in 1usize..50,
        first in policies(),
        second in unbounded_policies(),
        workers in 1usize..9,
    ) {
        let agg = stats();
        let one_pass = agg.finish(&agg.fold(&data));
        let mut keyed_one_pass: Vec<(u8, Stats)> = Vec::new();
        for e in &data {
            if !keyed_one_pass.iter().any(|(k, _)| *k == e.0) {
                let group: Vec<Event> = data.iter().filter(|x| x.0 == e.0).copied().collect();
                keyed_one_pass.push((e.0, agg.finish(&agg.fold(&group))));
            }
        }

        let pipeline = Pipeline::new().with_poll_size(poll).with_channel_capacity(2).with_workers(workers);
        let source = || IterSource::new(data.clone()).with_event_time(|e: &Event| e.1.abs() / 1000);
        let global = pipeline.source(source()).batch(first).batch(second).aggregate(stats()).collect();
        let keyed = pipeline
            .source(source())
            .batch(first)
            .filter(|_| true)
            .batch(second)
            .key_by(|e: &Event| e.0)
            .aggregate(stats())
            .collect();
        pipeline.run().map_err(|e| TestCaseError::fail(e.to_string()))?;

        let global = global.take();
        prop_assert_eq!(global.len(), 1);
        assert_same(&one_pass, &global[0])?;
        // Keys are spread over workers: results of different keys come in any order.
        let mut keyed = keyed.take();
        keyed.sort_by_key(|(k, _)| *k);
        keyed_one_pass.sort_by_key(|(k, _)| *k);
        prop_assert_eq!(keyed.len(), keyed_one_pass.len());
        for ((k1, s1), (k2, s2)) in keyed_one_pass.iter().zip(&keyed) {
            prop_assert_eq!(k1, k2);
            assert_same(s1, s2)?;
        }
    }

    #[test]
    fn every_policy_delivers_every_event_once_in_order(
        data in prop::collection::vec(any::<u32>(), 0..500),
        poll in 1usize..64,
        policy in policies(),
    ) {
        let pipeline = Pipeline::new().with_poll_size(poll);
        let out = pipeline
            .source(IterSource::new(data.clone()).with_event_time(|x| i64::from(*x % 1000)))
            .batch(policy)
            .collect();
        pipeline.run().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out.take(), data);
    }
}

#[test]
fn event_mode_and_micro_batch_mode_agree() {
    let run = |policy| {
        let p = Pipeline::new();
        let out = p
            .source(UniformSource::new(1, 20_000))
            .filter(|x| *x > 0.25)
            .batch(policy)
            .map(|x| (x * 10.0) as u8)
            .key_by(|bucket| *bucket)
            .aggregate(Count)
            .collect();
        p.run().unwrap();
        let mut counts = out.take();
        counts.sort_unstable();
        counts
    };
    let event = run(FlushPolicy::EachEvent);
    let micro = run(FlushPolicy::Count(1000));
    assert_eq!(event, micro);
    let adaptive = run(FlushPolicy::Adaptive {
        target_latency: Duration::from_millis(1),
    });
    assert_eq!(event, adaptive);
    assert_eq!(
        event.iter().map(|(_, c)| c).sum::<u64>(),
        UniformSource::values(1, 20_000)
            .iter()
            .filter(|x| **x > 0.25)
            .count() as u64
    );
}
