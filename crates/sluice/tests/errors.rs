//! Misuse is a typed error with a message that says how to fix it, and
//! failures while running name the stage and the cause; nothing panics.

use sluice::bus::{Bus, Handler};
use sluice::prelude::*;
use sluice::{BoxError, BuildError, Error, RuntimeError, Sink};
use std::time::Duration;

fn build_error(pipeline: Pipeline) -> BuildError {
    match pipeline.run() {
        Err(Error::Build(e)) => e,
        other => panic!("expected a build error, got {other:?}"),
    }
}

#[test]
fn a_batch_size_of_zero_is_refused_with_a_fix() {
    let p = Pipeline::new();
    p.source(IterSource::new(0..3))
        .batch(FlushPolicy::Count(0))
        .collect();
    let e = build_error(p);
    assert!(matches!(
        e,
        BuildError::InvalidBatching {
            error: sluice_core::Error::ZeroBatchSize,
            ..
        }
    ));
    assert!(e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn a_zero_interval_is_refused() {
    let p = Pipeline::new();
    p.source(IterSource::new(0..3))
        .batch(FlushPolicy::CountOrInterval(10, Duration::ZERO))
        .collect();
    let e = build_error(p);
    assert!(e.to_string().contains("longer than zero"), "{e}");
}

#[test]
fn balanced_batches_need_a_known_length() {
    let p = Pipeline::new();
    p.source(IterSource::new(0..10))
        .filter(|x| x % 2 == 0)
        .batch(FlushPolicy::Batches(3))
        .collect();
    let e = build_error(p);
    assert!(e.to_string().contains("known length"), "{e}");
}

#[test]
fn zero_settings_and_missing_sinks_are_refused() {
    let p = Pipeline::new().with_channel_capacity(0);
    p.source(IterSource::new(0..3)).collect();
    assert_eq!(
        build_error(p),
        BuildError::ZeroSetting {
            setting: "channel capacity"
        }
    );

    let p = Pipeline::new();
    let _unused = p.source(IterSource::new(0..3)).map(|x| x + 1);
    assert_eq!(build_error(p), BuildError::NoSink);
}

#[test]
fn publishing_to_a_topic_without_subscriber_is_refused_before_running() {
    let bus = Bus::new();
    let topic = bus.topic::<i32>("nobody-listens").unwrap();
    let p = Pipeline::new();
    p.source(IterSource::new(0..3)).publish(&topic);
    let e = build_error(p);
    assert_eq!(
        e,
        BuildError::NoSubscriber {
            topic: "nobody-listens".into()
        }
    );
    assert!(e.to_string().contains("bus.subscribe"), "{e}");

    bus.subscribe(
        &topic,
        Handler::new("count", |_: &i32| Ok::<(), String>(())),
    )
    .unwrap();
    let p = Pipeline::new();
    p.source(IterSource::new(0..3)).publish(&topic);
    p.run().unwrap();
    assert_eq!(bus.shutdown().handled, 3);
}

#[test]
fn a_panicking_operator_fails_the_run_with_its_message() {
    let p = Pipeline::new();
    p.source(IterSource::new(0..100))
        .batch(FlushPolicy::Count(10))
        .map(|x: i32| if x == 42 { panic!("bad value {x}") } else { x })
        .collect();
    match p.run() {
        Err(Error::Runtime(RuntimeError::Panicked { message, .. })) => {
            assert_eq!(message, "bad value 42")
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

struct FailingSink;

impl Sink<i32> for FailingSink {
    fn write(&mut self, _: &mut sluice::Batch<i32>) -> Result<(), BoxError> {
        Err("disk full".into())
    }
}

#[test]
fn a_failing_sink_fails_the_run_and_stops_the_source() {
    let p = Pipeline::new().with_channel_capacity(1);
    p.source(IterSource::new(0..)) // endless: only the failure can stop it
        .batch(FlushPolicy::Count(100))
        .sink(FailingSink);
    let e = p.run().unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
}

#[test]
fn watermark_alignment_away_from_the_source_is_refused() {
    use sluice::watermark::WatermarkStrategy;
    let p = Pipeline::new();
    p.source(IterSource::new(0..3_i64))
        .batch(FlushPolicy::Count(2))
        .with_watermarks(
            WatermarkStrategy::bounded(Duration::ZERO).with_alignment(Duration::from_secs(1)),
        )
        .events
        .collect();
    let e = build_error(p);
    assert_eq!(e, BuildError::AlignmentAfterSource);
    assert!(e.to_string().contains("right after `source`"), "{e}");
}
