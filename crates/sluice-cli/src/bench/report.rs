//! The one JSON line a benchmark run prints.

use super::{BenchArgs, Mode};
use serde_json::{json, Map, Value};

/// What a run measured and checked.
pub struct Report {
    fields: Map<String, Value>,
    problems: Vec<String>,
}

impl Report {
    pub fn new(args: &BenchArgs) -> Self {
        let mut fields = Map::new();
        fields.insert(
            "workload".into(),
            json!(clap::ValueEnum::to_possible_value(&args.workload)
                .map(|v| v.get_name().to_string())),
        );
        fields.insert(
            "mode".into(),
            json!(match args.mode {
                Mode::Event => "event",
                Mode::MicroBatch => "micro-batch",
            }),
        );
        fields.insert("workers".into(), json!(args.workers()));
        fields.insert("batch_size".into(), json!(args.batch_size));
        fields.insert("batch_interval_ms".into(), json!(args.batch_interval));
        Self {
            fields,
            problems: Vec::new(),
        }
    }

    /// A figure already set, as a number.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.fields.get(name).and_then(Value::as_f64)
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.fields.insert(name.to_string(), value);
    }

    /// Throughput figures of a run over `events` in `seconds`, and memory.
    /// Per core means per second of CPU time the process used (all its
    /// threads), so it does not depend on how many threads ran.
    pub fn throughput(&mut self, events: u64, seconds: f64, cpu_seconds: Option<f64>) {
        let per_sec = events as f64 / seconds;
        self.set("events", json!(events));
        self.set("seconds", json!(round(seconds, 4)));
        self.set("events_per_sec", json!(per_sec.round()));
        if let Some(cpu) = cpu_seconds.filter(|c| *c > 0.0) {
            self.set("cpu_seconds", json!(round(cpu, 2)));
            self.set(
                "events_per_sec_per_core",
                json!((events as f64 / cpu).round()),
            );
        }
        self.set("peak_rss_mb", json!(peak_rss_mb()));
    }

    /// An integer checksum that must match exactly.
    pub fn check_exact(&mut self, name: &str, got: u64, want: u64) {
        self.set(name, json!(got));
        if got != want {
            self.problems
                .push(format!("{name} = {got}, expected {want}"));
        }
    }

    /// A float checksum that must match to 1e-9 relative.
    pub fn check_close(&mut self, name: &str, got: f64, want: f64) {
        self.set(name, json!(got));
        if (got - want).abs() > 1e-9 * want.abs().max(1e-300) {
            self.problems
                .push(format!("{name} = {got}, expected {want}"));
        }
    }

    pub fn failure(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| self.problems.join("; "))
    }

    pub fn to_json(&self) -> String {
        let mut fields = self.fields.clone();
        fields.insert(
            "checks".into(),
            json!(if self.problems.is_empty() {
                "ok"
            } else {
                "FAILED"
            }),
        );
        Value::Object(fields).to_string()
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The process's peak resident memory, from `/proc/self/status` (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kb / 1024.0, 1))
}

/// CPU time (user + system) the process has used so far, from
/// `/proc/self/stat` (Linux; 100 ticks per second).
pub fn cpu_seconds() -> Option<f64> {
    stat_seconds(11)
}

/// CPU time of the children the process has waited for.
pub fn children_cpu_seconds() -> Option<f64> {
    stat_seconds(13)
}

/// The sum of two tick counts of `/proc/self/stat`, at `first` and the one
/// after it (counted after the command's name), in seconds.
fn stat_seconds(first: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(first)?.parse().ok()?;
    let system: f64 = fields.get(first + 1)?.parse().ok()?;
    Some((user + system) / 100.0)
}
