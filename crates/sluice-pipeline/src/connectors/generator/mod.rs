//! Generated inputs (`type = "generator"`, `"formula"`, `"nexmark"`):
//! deterministic, so a position is a count of records, and their event
//! time is the field `ts`.
//!
//! - this file: their tables and settings;
//! - [`rows`]: the sources that make the rows.

mod rows;

use super::replay::ReplayableSource;
use super::{CompiledSource, Key, Kind, Opening, SourceConnector, SourceTable, SourceType};
use crate::config::diag::{at, Failure};
use crate::error::Result;
use std::sync::Arc;

pub use rows::{FormulaRows, GeneratorSource, NexmarkRows};

/// `type = "generator"`.
pub const GENERATOR: SourceType = SourceType {
    name: "generator",
    keys: &[
        Key("events", Kind::Unsigned),
        Key("keys", Kind::Unsigned),
        Key("seed", Kind::Unsigned),
        Key("interval_ms", Kind::Unsigned),
    ],
    compile: generator_table,
};

/// `type = "nexmark"`.
pub const NEXMARK: SourceType = SourceType {
    name: "nexmark",
    keys: &[Key("events", Kind::Unsigned)],
    compile: |t| {
        let events = t.get::<u64>("events")?.map_or(1_000_000, |v| *v.get_ref());
        Ok(CompiledSource {
            connector: Arc::new(Nexmark { events }),
            schema: NexmarkRows::schema(),
        })
    },
};

/// `type = "formula"`.
pub const FORMULA: SourceType = SourceType {
    name: "formula",
    keys: &[Key("events", Kind::Unsigned)],
    compile: |t| {
        let events = t.get::<u64>("events")?.map_or(10_000_000, |v| *v.get_ref());
        Ok(CompiledSource {
            connector: Arc::new(Formula { events }),
            schema: FormulaRows::schema(),
        })
    },
};

/// Synthetic sensor readings.
#[derive(Debug, Clone)]
pub struct Generator {
    /// How many.
    pub events: u64,
    /// Distinct sensors.
    pub keys: u64,
    /// Seed.
    pub seed: u64,
    /// Event-time step.
    pub interval_ms: u64,
}

/// The Nexmark benchmark's events.
#[derive(Debug, Clone)]
pub struct Nexmark {
    /// How many.
    pub events: u64,
}

/// The shared W0/W1 benchmark stream: `key`, `value`, `ts` (see
/// `FormulaEvent`).
#[derive(Debug, Clone)]
pub struct Formula {
    /// How many.
    pub events: u64,
}

/// Synthetic sensor readings: how many, over how many keys, how far apart.
fn generator_table(t: &SourceTable<'_>) -> Result<CompiledSource, Failure> {
    let events = t.get::<u64>("events")?.map_or(1_000_000, |v| *v.get_ref());
    let keys = t.get::<u64>("keys")?;
    if let Some(zero) = keys.as_ref().filter(|k| *k.get_ref() == 0) {
        return Err(at(zero.span(), "keys must be at least 1"));
    }
    let interval = t.get::<u64>("interval_ms")?;
    let interval_ms = interval.as_ref().map_or(1, |v| *v.get_ref());
    if events
        .checked_mul(interval_ms)
        .is_none_or(|last| last > i64::MAX as u64)
    {
        let span = interval.map_or(t.span(), |v| v.span());
        return Err(at(
            span,
            format!(
                "{events} events {interval_ms}ms apart go past the last event time \
                 (year 292 million); make interval_ms or events smaller"
            ),
        ));
    }
    Ok(CompiledSource {
        connector: Arc::new(Generator {
            events,
            keys: keys.map_or(100, |v| *v.get_ref()),
            seed: t.get::<u64>("seed")?.map_or(7, |v| *v.get_ref()),
            interval_ms,
        }),
        schema: GeneratorSource::schema(),
    })
}

impl SourceConnector for Generator {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        Ok(Box::new(GeneratorSource::new(
            self.events,
            self.keys,
            self.seed,
            self.interval_ms,
            at.chunk_rows,
            at.counters.clone(),
        )))
    }

    fn describe(&self) -> String {
        format!("generator ({} events, {} keys)", self.events, self.keys)
    }

    fn label(&self) -> String {
        "generator".into()
    }

    fn default_time_field(&self) -> Option<&str> {
        Some("ts")
    }
}

impl SourceConnector for Nexmark {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        Ok(Box::new(NexmarkRows::new(
            self.events,
            at.chunk_rows,
            at.counters.clone(),
        )))
    }

    fn describe(&self) -> String {
        format!("nexmark ({} events)", self.events)
    }

    fn label(&self) -> String {
        "nexmark".into()
    }

    fn default_time_field(&self) -> Option<&str> {
        Some("ts")
    }
}

impl SourceConnector for Formula {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        Ok(Box::new(FormulaRows::new(
            self.events,
            at.chunk_rows,
            at.counters.clone(),
        )))
    }

    fn describe(&self) -> String {
        format!("formula ({} events)", self.events)
    }

    fn label(&self) -> String {
        "formula".into()
    }

    fn default_time_field(&self) -> Option<&str> {
        Some("ts")
    }
}
