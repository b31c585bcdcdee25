//! The event-driven scenario: events 5, 15 and 25 flow one by one through a
//! rule whose trigger is `x > 10` and whose action is `x * 2`. A handler
//! subscribed to the rule's output receives the action's results; a
//! propagator forwards them to another topic, whose subscriber prints
//! `Propagated event: N`. 5 does not trigger.
//!
//! Run: `cargo run --example seed_events`

use sluice::bus::{Bus, Handler};
use sluice::prelude::*;
use std::sync::{Arc, Mutex};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::new();
    let actions = bus.topic::<i64>("rule.actions")?;
    let propagated = bus.topic::<i64>("propagated")?;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let printed = Arc::new(Mutex::new(Vec::new()));

    let seen = handled.clone();
    bus.subscribe(
        &actions,
        Handler::new("handler", move |x: &i64| {
            println!("Handler received: {x}");
            seen.lock().map_err(|e| e.to_string())?.push(*x);
            Ok::<(), String>(())
        }),
    )?;
    bus.subscribe(
        &actions,
        Handler::publishing("propagator", &propagated, |x: &i64| {
            Ok::<_, String>(Some(*x))
        }),
    )?;
    let out = printed.clone();
    bus.subscribe(
        &propagated,
        Handler::new("printer", move |x: &i64| {
            println!("Propagated event: {x}");
            out.lock().map_err(|e| e.to_string())?.push(*x);
            Ok::<(), String>(())
        }),
    )?;

    let rule = Arc::new(RuleCounters::default());
    let pipeline = Pipeline::new();
    pipeline
        .source(IterSource::new([5_i64, 15, 25]))
        .batch(FlushPolicy::EachEvent)
        .inspect(|x| println!("Event {x} arrives"))
        .on_counted(|x| *x > 10, |x| x * 2, rule.clone())
        .publish(&actions);
    pipeline.run()?;
    let report = bus.shutdown();

    println!(
        "rule `x > 10 -> x * 2`: evaluated {} events, fired {}; bus handled {}, dead letters {}",
        rule.evaluated(),
        rule.fired(),
        report.handled,
        report.dead_lettered
    );
    let mut handled = handled.lock().map_err(|e| e.to_string())?.clone();
    let mut printed = printed.lock().map_err(|e| e.to_string())?.clone();
    handled.sort_unstable();
    printed.sort_unstable();
    assert_eq!(
        handled,
        vec![30, 50],
        "the handler receives the action's outputs; 5 does not trigger"
    );
    assert_eq!(
        printed,
        vec![30, 50],
        "the propagated topic receives the same events"
    );
    Ok(())
}
