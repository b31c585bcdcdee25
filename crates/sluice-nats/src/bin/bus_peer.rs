//! A component in a process of its own, for the distributed bus's tests
//! and for trying it out: it subscribes a rule to `readings` on the NATS bus
//! and publishes an alert to `alerts` for every reading above 80 °C; a
//! reading below absolute zero makes the rule fail (a dead letter).
//!
//! `sluice-bus-peer URL NAMESPACE` prints `ready` once subscribed, runs
//! until its standard input closes, then shuts the bus down and prints its
//! report.

use serde::{Deserialize, Serialize};
use sluice_bus::{EventBus, Handler, RetryPolicy};
use std::io::{BufRead, Write};

/// A temperature reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// An alert for a reading above 80 °C.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Alert {
    sensor: String,
    celsius: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(namespace)) = (args.next(), args.next()) else {
        return Err("usage: sluice-bus-peer URL NAMESPACE".into());
    };
    let bus = sluice_nats::bus::NatsBus::connect(&url, &namespace)?;
    let readings = bus.topic::<Reading>("readings")?;
    let alerts = bus.topic::<Alert>("alerts")?;
    let rule = Handler::publishing("threshold", &alerts, |r: &Reading| {
        if r.celsius < -273.15 {
            return Err(format!("{} °C is below absolute zero", r.celsius));
        }
        Ok((r.celsius > 80.0).then(|| Alert {
            sensor: r.sensor.clone(),
            celsius: r.celsius,
        }))
    })
    .with_retry(RetryPolicy::NEVER);
    bus.subscribe(&readings, rule)?;
    println!("ready");
    std::io::stdout().flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    let report = bus.shutdown();
    println!(
        "report: handled {} dead_lettered {}",
        report.handled, report.dead_lettered
    );
    Ok(())
}
