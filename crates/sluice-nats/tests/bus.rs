//! The distributed event bus against a real NATS server (a child process
//! on a free loopback port): a handler in one process receives what a rule
//! in another publishes; the same wiring, written once against `EventBus`,
//! gives the same results on the in-process bus and on NATS.

use serde::{Deserialize, Serialize};
use sluice_bus::{Bus, BusError, DeadLetter, EventBus, Handler, PublishTopic, RetryPolicy};
use sluice_nats::bus::NatsBus;
use sluice_nats::server::NatsServer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Alert {
    sensor: String,
    celsius: f64,
}

fn reading(sensor: &str, celsius: f64) -> Reading {
    Reading {
        sensor: sensor.into(),
        celsius,
    }
}

/// Waits until `done` holds (at most 30 s).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_handler_in_one_process_receives_what_a_rule_in_another_publishes() {
    let server = NatsServer::start().unwrap();
    let mut peer = Command::new(env!("CARGO_BIN_EXE_sluice-bus-peer"))
        .args([&server.url(), "plant"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    // This process: the pager, and whoever watches the dead letters.
    let bus = NatsBus::connect(&server.url(), "plant").unwrap();
    let readings = bus.topic::<Reading>("readings").unwrap();
    let alerts = bus.topic::<Alert>("alerts").unwrap();
    let paged = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let sink = paged.clone();
    bus.subscribe(
        &alerts,
        Handler::new("pager", move |a: &Alert| {
            sink.lock().unwrap().push(a.clone());
            Ok::<(), String>(())
        }),
    )
    .unwrap();
    let letters = dead.clone();
    bus.subscribe(
        &bus.dead_letter_topic(&readings).unwrap(),
        Handler::new("audit", move |d: &DeadLetter<Reading>| {
            letters.lock().unwrap().push(d.clone());
            Ok::<(), String>(())
        }),
    )
    .unwrap();

    for r in [
        reading("boiler", 20.0),
        reading("boiler", 85.0),
        reading("probe", -300.0),
        reading("oven", 90.5),
    ] {
        readings.publish(r).unwrap();
    }
    wait_for("two alerts and a dead letter", || {
        paged.lock().unwrap().len() == 2 && dead.lock().unwrap().len() == 1
    });
    // The rule ran in the other process, in order.
    assert_eq!(
        *paged.lock().unwrap(),
        vec![
            Alert {
                sensor: "boiler".into(),
                celsius: 85.0
            },
            Alert {
                sensor: "oven".into(),
                celsius: 90.5
            },
        ]
    );
    let letter = dead.lock().unwrap()[0].clone();
    assert_eq!(letter.event, reading("probe", -300.0));
    assert_eq!(letter.handler, "threshold");
    assert!(
        letter.error.contains("below absolute zero"),
        "{}",
        letter.error
    );

    drop(peer.stdin.take());
    let mut rest = String::new();
    out.read_line(&mut rest).unwrap();
    assert_eq!(rest.trim(), "report: handled 4 dead_lettered 1");
    assert!(peer.wait().unwrap().success());
    let report = bus.shutdown();
    assert_eq!(report.published, 4);
    assert_eq!(
        report.handled, 3,
        "two alerts and one dead letter handled here"
    );
    assert!(report.unclaimed.is_empty());
}

/// The alerting components, written once for any bus.
fn wire<B: EventBus>(
    bus: &B,
    paged: Arc<Mutex<Vec<Alert>>>,
) -> Result<B::Topic<Reading>, BusError> {
    let readings = bus.topic::<Reading>("readings")?;
    let alerts = bus.topic::<Alert>("alerts")?;
    bus.subscribe(
        &alerts,
        Handler::new("pager", move |a: &Alert| {
            paged.lock().unwrap().push(a.clone());
            Ok::<(), String>(())
        }),
    )?;
    bus.subscribe(
        &readings,
        Handler::publishing("threshold", &alerts, |r: &Reading| {
            Ok::<_, String>((r.celsius > 80.0).then(|| Alert {
                sensor: r.sensor.clone(),
                celsius: r.celsius,
            }))
        })
        .with_retry(RetryPolicy::NEVER),
    )?;
    Ok(readings)
}

fn alerts_on<B: EventBus>(bus: &B) -> Vec<Alert> {
    let paged = Arc::new(Mutex::new(Vec::new()));
    let readings = wire(bus, paged.clone()).unwrap();
    for i in 0..50 {
        readings
            .publish(reading(&format!("s{}", i % 5), 70.0 + f64::from(i)))
            .unwrap();
    }
    // Shutdown drains: everything published is handled, outputs included.
    let report = bus.shutdown();
    assert_eq!(report.dead_lettered, 0);
    let alerts = paged.lock().unwrap().clone();
    alerts
}

#[test]
fn the_same_components_give_the_same_alerts_in_process_and_on_nats() {
    let server = NatsServer::start().unwrap();
    let local = alerts_on(&Bus::new());
    let distributed = alerts_on(&NatsBus::connect(&server.url(), "same").unwrap());
    assert_eq!(local.len(), 39, "readings above 80");
    assert_eq!(local, distributed);
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let server = NatsServer::start().unwrap();
    let bus = NatsBus::connect(&server.url(), "names").unwrap();
    let error = bus.topic::<u32>("has space").unwrap_err().to_string();
    assert!(error.contains("cannot be a NATS subject"), "{error}");
    let error = NatsBus::connect(&server.url(), "a.b")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("no dots"), "{error}");
}
