//! The event bus: handlers decoupled from publishers, chains of topics,
//! per-key order, retries, dead letters and a draining shutdown.

use crossbeam_channel::unbounded;
use sluice_bus::{Bus, BusConfig, BusError, DeadLetter, Handler, RetryPolicy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn handlers_run_on_their_own_thread_and_do_not_block_the_publisher() {
    let bus = Bus::new();
    let topic = bus.topic::<u32>("jobs").unwrap();
    let (gate_tx, gate_rx) = unbounded::<()>();
    let (seen_tx, seen_rx) = unbounded();
    let publisher = std::thread::current().id();
    bus.subscribe(
        &topic,
        Handler::new("slow", move |job: &u32| {
            gate_rx.recv().map_err(|e| e.to_string())?;
            seen_tx
                .send((*job, std::thread::current().id()))
                .map_err(|e| e.to_string())
        }),
    )
    .unwrap();
    // The handler is blocked on the gate; publishing still returns.
    for job in 0..3 {
        topic.publish(job).unwrap();
    }
    for _ in 0..3 {
        gate_tx.send(()).unwrap();
    }
    bus.shutdown();
    let seen: Vec<_> = seen_rx.try_iter().collect();
    assert_eq!(
        seen.iter().map(|(j, _)| *j).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(seen.iter().all(|(_, thread)| *thread != publisher));
}

#[test]
fn outputs_propagate_through_a_chain_of_topics() {
    let bus = Bus::new();
    let raw = bus.topic::<i64>("raw").unwrap();
    let doubled = bus.topic::<i64>("doubled").unwrap();
    let labelled = bus.topic::<String>("labelled").unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    bus.subscribe(
        &labelled,
        Handler::new("collect", move |s: &String| {
            sink.lock().unwrap().push(s.clone());
            Ok::<(), String>(())
        }),
    )
    .unwrap();
    bus.subscribe(
        &doubled,
        Handler::publishing("label", &labelled, |x: &i64| {
            Ok::<_, String>(Some(format!("n={x}")))
        }),
    )
    .unwrap();
    bus.subscribe(
        &raw,
        Handler::publishing("double", &doubled, |x: &i64| {
            Ok::<_, String>((*x > 0).then_some(x * 2))
        }),
    )
    .unwrap();
    for x in [-1, 1, 2] {
        raw.publish(x).unwrap();
    }
    let report = bus.shutdown();
    assert_eq!(*out.lock().unwrap(), vec!["n=2", "n=4"]);
    assert_eq!(report.published, 3);
    assert_eq!(report.handled, 3 + 2 + 2);
}

#[test]
fn every_subscriber_gets_every_event() {
    let bus = Bus::new();
    let topic = bus.topic::<u8>("fanout").unwrap();
    let counts: Vec<Arc<AtomicU32>> = (0..3).map(|_| Arc::new(AtomicU32::new(0))).collect();
    for (i, count) in counts.iter().enumerate() {
        let count = count.clone();
        bus.subscribe(
            &topic,
            Handler::new(&format!("h{i}"), move |_: &u8| {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }),
        )
        .unwrap();
    }
    for _ in 0..100 {
        topic.publish(7).unwrap();
    }
    bus.shutdown();
    assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 100));
}

#[test]
fn per_key_order_is_kept_across_parallel_workers() {
    let bus = Bus::with_config(BusConfig {
        queue_capacity: 16,
        ..BusConfig::default()
    })
    .unwrap();
    let topic = bus.topic::<(u32, u32)>("orders").unwrap();
    let seen: Arc<Mutex<HashMap<u32, Vec<u32>>>> = Arc::default();
    let record = seen.clone();
    bus.subscribe(
        &topic,
        Handler::new("per-customer", move |(customer, seq): &(u32, u32)| {
            record
                .lock()
                .unwrap()
                .entry(*customer)
                .or_default()
                .push(*seq);
            Ok::<(), String>(())
        })
        .keyed(4, |(customer, _): &(u32, u32)| *customer),
    )
    .unwrap();
    for seq in 0..2_000 {
        topic.publish((seq % 13, seq)).unwrap();
    }
    bus.shutdown();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 2_000);
    for (customer, seqs) in seen.iter() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "customer {customer} out of order"
        );
    }
}

#[test]
fn a_failing_handler_is_retried_with_backoff_and_then_succeeds() {
    let bus = Bus::new();
    let topic = bus.topic::<u8>("flaky").unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let tries = attempts.clone();
    bus.subscribe(
        &topic,
        Handler::new("flaky", move |_: &u8| {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("temporarily unavailable")
            } else {
                Ok(())
            }
        })
        .with_retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }),
    )
    .unwrap();
    topic.publish(1).unwrap();
    let report = bus.shutdown();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!((report.retries, report.dead_lettered), (2, 0));
}

#[test]
fn an_event_that_keeps_failing_goes_to_the_dead_letter_topic_with_the_error() {
    let bus = Bus::new();
    let payments = bus.topic::<i64>("payments").unwrap();
    let dead = bus.dead_letter_topic(&payments).unwrap();
    let letters: Arc<Mutex<Vec<DeadLetter<i64>>>> = Arc::default();
    let keep = letters.clone();
    bus.subscribe(
        &dead,
        Handler::new("keep", move |l: &DeadLetter<i64>| {
            keep.lock().unwrap().push(l.clone());
            Ok::<(), String>(())
        }),
    )
    .unwrap();
    bus.subscribe(
        &payments,
        Handler::new("charge", |amount: &i64| {
            if *amount < 0 {
                Err(format!("negative amount {amount}"))
            } else {
                Ok(())
            }
        })
        .with_retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        }),
    )
    .unwrap();
    for amount in [10, -5, 20] {
        payments.publish(amount).unwrap();
    }
    let report = bus.shutdown();
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event, -5);
    assert_eq!(letters[0].error, "negative amount -5");
    assert_eq!(
        (
            letters[0].attempts,
            letters[0].handler.as_str(),
            letters[0].topic.as_str()
        ),
        (2, "charge", "payments")
    );
    assert_eq!(report.dead_lettered, 1);
    assert!(report.unclaimed.is_empty());
}

#[test]
fn dead_letters_nobody_subscribed_to_are_kept_not_lost() {
    let bus = Bus::new();
    let topic = bus.topic::<u8>("t").unwrap();
    bus.subscribe(
        &topic,
        Handler::new("panics", |_: &u8| -> Result<(), String> { panic!("boom") })
            .with_retry(RetryPolicy::NEVER),
    )
    .unwrap();
    topic.publish(9).unwrap();
    let report = bus.shutdown();
    assert_eq!(report.unclaimed.len(), 1);
    assert_eq!(report.unclaimed[0].event, "9");
    assert!(report.unclaimed[0].error.contains("boom"));
}

#[test]
fn output_to_a_topic_without_subscriber_is_dead_lettered() {
    let bus = Bus::new();
    let input = bus.topic::<u8>("in").unwrap();
    let nowhere = bus.topic::<u8>("nowhere").unwrap();
    bus.subscribe(
        &input,
        Handler::publishing("forward", &nowhere, |x: &u8| Ok::<_, String>(Some(*x))),
    )
    .unwrap();
    input.publish(1).unwrap();
    let report = bus.shutdown();
    assert_eq!(report.unclaimed.len(), 1);
    assert!(
        report.unclaimed[0].error.contains("no subscriber"),
        "{:?}",
        report.unclaimed
    );
}

#[test]
fn shutdown_drains_every_queue_before_stopping() {
    // Queues large enough that most events are still queued when shutdown starts.
    let bus = Bus::with_config(BusConfig {
        queue_capacity: 1024,
        ..BusConfig::default()
    })
    .unwrap();
    let first = bus.topic::<u32>("first").unwrap();
    let second = bus.topic::<u32>("second").unwrap();
    let done = Arc::new(AtomicU32::new(0));
    let count = done.clone();
    bus.subscribe(
        &second,
        Handler::new("slow-end", move |_: &u32| {
            std::thread::sleep(Duration::from_micros(50));
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        }),
    )
    .unwrap();
    bus.subscribe(
        &first,
        Handler::publishing("relay", &second, |x: &u32| Ok::<_, String>(Some(*x))),
    )
    .unwrap();
    let publisher = {
        let first = first.clone();
        std::thread::spawn(move || (0..500).filter(|x| first.publish(*x).is_ok()).count())
    };
    let accepted = publisher.join().unwrap();
    assert!(
        done.load(Ordering::SeqCst) < 500,
        "the handler should still be behind"
    );
    let report = bus.shutdown();
    assert_eq!(accepted, 500);
    assert_eq!(done.load(Ordering::SeqCst), 500);
    assert_eq!(report.handled, 1_000);
    assert!(matches!(first.publish(1), Err(BusError::Closed { .. })));
}

#[test]
fn topics_are_typed() {
    let bus = Bus::new();
    bus.topic::<u8>("x").unwrap();
    let e = bus.topic::<String>("x").unwrap_err();
    assert!(matches!(e, BusError::TypeMismatch { .. }));
    assert!(e.to_string().contains("use another name"), "{e}");
}

/// An inline handler runs on the publisher's thread: each event is handled,
/// its output propagated and its failure dead-lettered before `publish`
/// returns, and a chain of inline handlers may publish back on a topic it
/// reads (no lock is held while a handler runs).
#[test]
fn inline_handlers_run_on_the_publishers_thread_before_publish_returns() {
    let bus = Bus::new();
    let countdown = bus.topic::<u32>("countdown").unwrap();
    let labels = bus.topic::<String>("labels").unwrap();
    let dead = bus.dead_letter_topic(&labels).unwrap();
    let publisher = std::thread::current().id();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let letters: Arc<Mutex<Vec<String>>> = Arc::default();
    let (keep, keep_dead) = (seen.clone(), letters.clone());
    bus.subscribe(
        &dead,
        Handler::new("keep", move |l: &DeadLetter<String>| {
            keep_dead.lock().unwrap().push(l.event.clone());
            Ok::<(), String>(())
        })
        .inline(),
    )
    .unwrap();
    bus.subscribe(
        &labels,
        Handler::new("collect", move |s: &String| {
            assert_eq!(std::thread::current().id(), publisher);
            if s == "n=2" {
                return Err("two is refused".to_string());
            }
            keep.lock().unwrap().push(s.clone());
            Ok(())
        })
        .with_retry(RetryPolicy::NEVER)
        .inline(),
    )
    .unwrap();
    // Counts down by publishing on its own topic, and labels each number.
    let again = countdown.clone();
    bus.subscribe(
        &countdown,
        Handler::publishing("label", &labels, move |n: &u32| {
            if *n > 0 {
                again.publish(n - 1).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(Some(format!("n={n}")))
        })
        .inline(),
    )
    .unwrap();
    countdown.publish(3).unwrap();
    // Handled before publish returned: no shutdown needed to see it.
    assert_eq!(*seen.lock().unwrap(), vec!["n=0", "n=1", "n=3"]);
    assert_eq!(*letters.lock().unwrap(), vec!["n=2"]);
    let report = bus.shutdown();
    assert_eq!(report.published, 4);
    assert_eq!(report.handled, 4 + 4 + 1);
    assert_eq!(report.dead_lettered, 1);
}

/// An inline handler beside a queued one: both get every event, and
/// shutdown still drains the queued one.
#[test]
fn inline_and_queued_handlers_of_one_topic_both_get_every_event() {
    let bus = Bus::new();
    let topic = bus.topic::<u32>("both").unwrap();
    let (inline, queued) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (a, b) = (inline.clone(), queued.clone());
    bus.subscribe(
        &topic,
        Handler::new("queued", move |x: &u32| {
            b.fetch_add(*x, Ordering::SeqCst);
            Ok::<(), String>(())
        }),
    )
    .unwrap();
    bus.subscribe(
        &topic,
        Handler::new("inline", move |x: &u32| {
            a.fetch_add(*x, Ordering::SeqCst);
            Ok::<(), String>(())
        })
        .inline(),
    )
    .unwrap();
    for x in 1..=100 {
        topic.publish(x).unwrap();
    }
    assert_eq!(inline.load(Ordering::SeqCst), 5050);
    let report = bus.shutdown();
    assert_eq!(queued.load(Ordering::SeqCst), 5050);
    assert_eq!((report.delivered, report.handled), (200, 200));
}

/// Runs `f` on a thread of its own and fails the test if it has not
/// returned within a minute (a deadlock), instead of hanging the run.
fn within_a_minute<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("did not return within a minute: a deadlock")
}

/// A topic whose inline handler publishes back to it: the calls nest on
/// the publisher's stack. The bus cuts the cycle at a depth with a dead
/// letter instead of running out of stack (which aborts the process).
#[test]
fn a_cycle_of_inline_handlers_ends_in_a_dead_letter_not_a_stack_overflow() {
    // A small stack: without the cut, the nesting overflows it.
    let report = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let bus = Bus::new();
            let ping = bus.topic::<u64>("ping").unwrap();
            bus.subscribe(
                &ping,
                Handler::publishing("echo", &ping, |n: &u64| Ok::<_, String>(Some(n + 1))).inline(),
            )
            .unwrap();
            let letters: Arc<Mutex<Vec<DeadLetter<u64>>>> = Arc::default();
            let keep = letters.clone();
            bus.subscribe(
                &bus.dead_letter_topic(&ping).unwrap(),
                Handler::new("keep", move |l: &DeadLetter<u64>| {
                    keep.lock().unwrap().push(l.clone());
                    Ok::<(), String>(())
                }),
            )
            .unwrap();
            ping.publish(0).unwrap();
            let report = bus.shutdown();
            let letters = letters.lock().unwrap().clone();
            (report, letters)
        })
        .unwrap()
        .join()
        .unwrap();
    let (report, letters) = report;
    // 64 nested calls handled 0..=63 (the 64th could not call the next),
    // and the dead letter was handled.
    assert_eq!(report.handled, 64 + 1);
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event, 63);
    assert!(
        letters[0].error.contains("nested 64 deep"),
        "{}",
        letters[0].error
    );
}

/// A handler that shuts the bus down cannot wait for itself: the bus stops
/// taking events and the call returns; shutting down from outside then
/// waits and stops the threads.
#[test]
fn a_handler_that_shuts_the_bus_down_does_not_wait_for_itself() {
    for inline in [true, false] {
        let report = within_a_minute(move || {
            let bus = Bus::new();
            let topic = bus.topic::<u8>("stop").unwrap();
            let inner = bus.clone();
            let handler = Handler::new("stopper", move |_: &u8| {
                inner.shutdown();
                Ok::<(), String>(())
            });
            let handler = if inline { handler.inline() } else { handler };
            bus.subscribe(&topic, handler).unwrap();
            topic.publish(1).unwrap();
            let report = bus.shutdown();
            assert!(matches!(topic.publish(2), Err(BusError::Closed { .. })));
            report
        });
        assert_eq!(
            (report.published, report.handled),
            (1, 1),
            "inline {inline}"
        );
    }
}

/// An inline handler runs on the publisher's thread: by default it does not
/// retry (a backoff would hold up the publisher); told to, it does.
#[test]
fn an_inline_handler_retries_only_when_told_to() {
    for (retry, attempts) in [
        (None, 1),
        (
            Some(RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
            }),
            3,
        ),
    ] {
        let bus = Bus::new();
        let topic = bus.topic::<u8>("fails").unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let count = calls.clone();
        let mut handler = Handler::new("fail", move |_: &u8| {
            count.fetch_add(1, Ordering::Relaxed);
            Err::<(), String>("no".to_string())
        })
        .inline();
        if let Some(policy) = retry {
            handler = handler.with_retry(policy);
        }
        bus.subscribe(&topic, handler).unwrap();
        topic.publish(1).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), attempts);
        let report = bus.shutdown();
        assert_eq!(report.retries, u64::from(attempts - 1));
        assert_eq!(report.dead_lettered, 1);
    }
}

/// A handler of one bus that shuts down another waits for that other bus
/// like any caller from outside: its queues drained, its counters final.
#[test]
fn a_handler_that_shuts_another_bus_down_waits_for_it() {
    let report = within_a_minute(|| {
        let (control, data) = (Bus::new(), Bus::new());
        let readings = data.topic::<u32>("readings").unwrap();
        let slow = Handler::new("slow", |_: &u32| {
            std::thread::sleep(Duration::from_millis(1));
            Ok::<(), String>(())
        });
        data.subscribe(&readings, slow).unwrap();
        for n in 0..50 {
            readings.publish(n).unwrap();
        }
        let stop = control.topic::<()>("stop").unwrap();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let keep = reports.clone();
        control
            .subscribe(
                &stop,
                Handler::new("stop data", move |_: &()| {
                    keep.lock().unwrap().push(data.shutdown());
                    Ok::<(), String>(())
                })
                .inline(),
            )
            .unwrap();
        stop.publish(()).unwrap();
        control.shutdown();
        let report = reports.lock().unwrap().pop().unwrap();
        report
    });
    assert_eq!((report.published, report.handled), (50, 50));
}

/// A key function that panics makes that publish panic, and nothing more:
/// the event it was publishing is not left counted in flight, so shutdown
/// still returns.
#[test]
fn a_key_function_that_panics_does_not_hang_shutdown() {
    let report = within_a_minute(|| {
        let bus = Bus::new();
        let topic = bus.topic::<u32>("keyed").unwrap();
        let handler = Handler::new("h", |_: &u32| Ok::<(), String>(())).keyed(2, |n: &u32| {
            assert_ne!(*n, 13, "the key of 13 cannot be computed");
            *n
        });
        bus.subscribe(&topic, handler).unwrap();
        let inline = Handler::new("i", |_: &u32| Ok::<(), String>(())).inline();
        bus.subscribe(&topic, inline).unwrap();
        for n in 0..20 {
            let publish =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| topic.publish(n)));
            assert_eq!(publish.is_err(), n == 13);
        }
        bus.shutdown()
    });
    // 19 events reached the keyed handler and the inline one; 13 reached
    // neither (the keyed route comes first and panicked).
    assert_eq!(report.handled, 19 * 2);
}

/// A panic on a handler's thread after its function ran (here: the next
/// topic's key function) does not end the thread: the events queued behind
/// it are still handled, the lost one is reported, and shutdown returns.
#[test]
fn a_panic_on_a_handlers_thread_after_the_handler_ran_loses_only_that_event_and_says_so() {
    let report = within_a_minute(|| {
        let bus = Bus::new();
        let a = bus.topic::<u32>("a").unwrap();
        let b = bus.topic::<u32>("b").unwrap();
        bus.subscribe(
            &a,
            Handler::publishing("forward", &b, |n: &u32| Ok::<_, String>(Some(*n))),
        )
        .unwrap();
        let keyed = Handler::new("keyed", |_: &u32| Ok::<(), String>(())).keyed(2, |n: &u32| {
            assert_ne!(*n, 13, "the key of 13 cannot be computed");
            *n
        });
        bus.subscribe(&b, keyed).unwrap();
        for n in 0..20 {
            a.publish(n).unwrap();
        }
        bus.shutdown()
    });
    assert_eq!(report.handled, 20 + 19);
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(report.unclaimed.len(), 1);
    assert!(
        report.unclaimed[0].error.contains("the key of 13"),
        "{:?}",
        report.unclaimed[0]
    );
}
