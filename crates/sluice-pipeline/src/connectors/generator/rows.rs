//! The generated inputs themselves: sensor readings, the W0/W1 formula
//! stream and Nexmark events, deterministic, so a position is a count of
//! records.

use crate::connectors::replay::Replayable;
use crate::connectors::replay::SourceCounters;
use crate::connectors::replay::*;
use crate::error::Error;
use crate::error::Result;
use crate::rows::Rows;
use arrow::array::Float64Array;
use arrow::array::Int64Array;
use arrow::array::RecordBatch;
use arrow::array::StringArray;
use arrow::array::UInt64Array;
use arrow::datatypes::DataType;
use arrow::datatypes::Field;
use arrow::datatypes::Schema;
use arrow::datatypes::SchemaRef;
use sluice::Batch;
use sluice::BoxError;
use sluice::Source;
use sluice::SourceStatus;
use std::sync::Arc;
use std::time::Duration;

/// Synthetic sensor readings: `sensor` (string), `temperature` (float64),
/// `ts` (int64 epoch ms), reproducible from a seed.
pub struct GeneratorSource {
    schema: SchemaRef,
    remaining: u64,
    next: u64,
    keys: u64,
    interval_ms: u64,
    state: u64,
    chunk_rows: usize,
    counters: Arc<SourceCounters>,
}

impl GeneratorSource {
    /// `events` readings over `keys` sensors, one every `interval_ms`.
    pub fn new(
        events: u64,
        keys: u64,
        seed: u64,
        interval_ms: u64,
        chunk_rows: usize,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self {
            schema: Self::schema(),
            remaining: events,
            next: 0,
            keys: keys.max(1),
            interval_ms,
            state: seed,
            chunk_rows: chunk_rows.max(1),
            counters,
        }
    }

    /// The generator's fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("sensor", DataType::Utf8, false),
            Field::new("temperature", DataType::Float64, false),
            Field::new("ts", DataType::Int64, false),
        ]))
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64: small, fast, and the same on every platform.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source<Rows> for GeneratorSource {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        if self.remaining == 0 {
            return Ok(SourceStatus::Exhausted);
        }
        let n = (self.chunk_rows as u64).min(self.remaining);
        let mut sensors = Vec::with_capacity(n as usize);
        let mut temps = Vec::with_capacity(n as usize);
        let mut times = Vec::with_capacity(n as usize);
        for i in 0..n {
            let r = self.next_random();
            sensors.push(format!("sensor-{}", r % self.keys));
            // 15.0 .. 95.0 degrees, in steps of 0.1.
            temps.push(15.0 + ((r >> 20) % 800) as f64 / 10.0);
            times.push(((self.next + i) * self.interval_ms) as i64);
        }
        let lines = UInt64Array::from_iter_values(self.next + 1..=self.next + n);
        self.next += n;
        self.remaining -= n;
        self.counters.add_read(n);
        self.counters.add_decoded(n);
        let ts = Int64Array::from(times);
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from(sensors)),
                Arc::new(Float64Array::from(temps)),
                Arc::new(ts.clone()),
            ],
        )?;
        push(out, Rows::new(batch, ts, lines));
        Ok(SourceStatus::Ready)
    }

    fn exact_len(&self) -> Option<u64> {
        None
    }
}

impl Replayable for GeneratorSource {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({
            "next": self.next,
            "remaining": self.remaining,
            "state": self.state.to_string(),
        })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let damaged = || Error::damaged("the checkpointed generator position is damaged");
        self.next = position["next"].as_u64().ok_or_else(damaged)?;
        self.remaining = position["remaining"].as_u64().ok_or_else(damaged)?;
        self.state = position["state"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(damaged)?;
        Ok(())
    }
}

/// Nexmark events (people, auctions, bids) as rows of one flat schema:
/// `kind`, `person` (the person, seller or bidder), `auction`, `price`
/// (cents: a bid's price, an auction's initial bid), `category`, `channel`,
/// `city`, `state`, `name` (a person's), `expires` (an auction's end, epoch
/// ms), `ts`; fields that don't apply to a kind are null.
pub struct NexmarkRows {
    events: sluice_connectors::nexmark::NexmarkSource,
    buffer: Batch<sluice_connectors::nexmark::Event>,
    schema: SchemaRef,
    chunk_rows: usize,
    next_line: u64,
    counters: Arc<SourceCounters>,
}

impl NexmarkRows {
    /// The first `events` Nexmark events of the standard generator.
    pub fn new(events: u64, chunk_rows: usize, counters: Arc<SourceCounters>) -> Self {
        Self {
            events: sluice_connectors::nexmark::NexmarkSource::partition(events, 0, 1),
            buffer: Batch::new(),
            schema: Self::schema(),
            chunk_rows: chunk_rows.max(1),
            next_line: 1,
            counters,
        }
    }

    /// The rows' fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("person", DataType::UInt64, true),
            Field::new("auction", DataType::UInt64, true),
            Field::new("price", DataType::UInt64, true),
            Field::new("category", DataType::UInt64, true),
            Field::new("channel", DataType::Utf8, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("state", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("expires", DataType::Int64, true),
            Field::new("ts", DataType::Int64, false),
        ]))
    }
}

impl Source<Rows> for NexmarkRows {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        use arrow::array::{Int64Builder, StringBuilder, UInt64Builder};
        use sluice_connectors::nexmark::Event;
        self.buffer.clear();
        let status = self.events.poll(&mut self.buffer, self.chunk_rows)?;
        let n = self.buffer.len();
        if n > 0 {
            let mut kind = StringBuilder::new();
            let mut person = UInt64Builder::new();
            let mut auction = UInt64Builder::new();
            let mut price = UInt64Builder::new();
            let mut category = UInt64Builder::new();
            let mut channel = StringBuilder::new();
            let mut city = StringBuilder::new();
            let mut state = StringBuilder::new();
            let mut name = StringBuilder::new();
            let mut expires = Int64Builder::new();
            let mut ts = Vec::with_capacity(n);
            for event in self.buffer.items() {
                ts.push(event.date_time());
                match event {
                    Event::Person(p) => {
                        kind.append_value("person");
                        person.append_value(p.id);
                        auction.append_null();
                        price.append_null();
                        category.append_null();
                        channel.append_null();
                        city.append_value(p.city());
                        state.append_value(p.state());
                        name.append_value(p.name());
                        expires.append_null();
                    }
                    Event::Auction(a) => {
                        kind.append_value("auction");
                        person.append_value(a.seller);
                        auction.append_value(a.id);
                        price.append_value(a.initial_bid);
                        category.append_value(a.category);
                        channel.append_null();
                        city.append_null();
                        state.append_null();
                        name.append_null();
                        expires.append_value(a.expires);
                    }
                    Event::Bid(b) => {
                        kind.append_value("bid");
                        person.append_value(b.bidder);
                        auction.append_value(b.auction);
                        price.append_value(b.price);
                        category.append_null();
                        channel.append_value(b.channel_name());
                        city.append_null();
                        state.append_null();
                        name.append_null();
                        expires.append_null();
                    }
                }
            }
            let times = Int64Array::from(ts);
            let batch = RecordBatch::try_new(
                self.schema.clone(),
                vec![
                    Arc::new(kind.finish()),
                    Arc::new(person.finish()),
                    Arc::new(auction.finish()),
                    Arc::new(price.finish()),
                    Arc::new(category.finish()),
                    Arc::new(channel.finish()),
                    Arc::new(city.finish()),
                    Arc::new(state.finish()),
                    Arc::new(name.finish()),
                    Arc::new(expires.finish()),
                    Arc::new(times.clone()),
                ],
            )?;
            let lines = UInt64Array::from_iter_values(self.next_line..self.next_line + n as u64);
            self.next_line += n as u64;
            self.counters.add_read(n as u64);
            self.counters.add_decoded(n as u64);
            push(out, Rows::new(batch, times, lines));
        }
        Ok(status)
    }
}

impl Replayable for NexmarkRows {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "events": self.next_line - 1 })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        let events = position["events"]
            .as_u64()
            .ok_or_else(|| Error::damaged("the checkpointed Nexmark position is damaged"))?;
        // The generator is deterministic: generate and drop what was read.
        let mut left = events;
        while left > 0 {
            self.buffer.clear();
            let want = left.min(1 << 16) as usize;
            let status = self
                .events
                .poll(&mut self.buffer, want)
                .map_err(|e| Error::input("cannot generate the Nexmark input").caused_by(e))?;
            left -= self.buffer.len() as u64;
            if status == SourceStatus::Exhausted && left > 0 {
                return Err(Error::damaged(
                    "the checkpoint is past the end of the Nexmark input",
                ));
            }
        }
        self.buffer.clear();
        self.next_line = events + 1;
        Ok(())
    }
}

/// The shared W0/W1 benchmark stream as rows: `key` (int64, 0..1000),
/// `value` (float64 in [0, 1)) and `ts` (int64: event `i` at `i` ms).
pub struct FormulaRows {
    next: u64,
    events: u64,
    chunk_rows: usize,
    schema: SchemaRef,
    counters: Arc<SourceCounters>,
}

impl FormulaRows {
    /// The first `events` events of the stream.
    pub fn new(events: u64, chunk_rows: usize, counters: Arc<SourceCounters>) -> Self {
        Self {
            next: 0,
            events,
            chunk_rows: chunk_rows.max(1),
            schema: Self::schema(),
            counters,
        }
    }

    /// The rows' fields.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
            Field::new("ts", DataType::Int64, false),
        ]))
    }
}

impl Source<Rows> for FormulaRows {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        use sluice_connectors::FormulaEvent;
        let n = (self.chunk_rows as u64).min(self.events - self.next);
        if n == 0 {
            return Ok(SourceStatus::Exhausted);
        }
        let range = self.next as i64..(self.next + n) as i64;
        let (keys, values): (Vec<i64>, Vec<f64>) = range
            .clone()
            .map(|i| {
                let e = FormulaEvent::at(i);
                (e.key, e.value)
            })
            .unzip();
        let times = Int64Array::from_iter_values(range);
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(Float64Array::from(values)),
                Arc::new(times.clone()),
            ],
        )?;
        let lines = UInt64Array::from_iter_values(self.next + 1..=self.next + n);
        self.next += n;
        self.counters.add_read(n);
        self.counters.add_decoded(n);
        push(out, Rows::new(batch, times, lines));
        Ok(SourceStatus::Ready)
    }
}

impl Replayable for FormulaRows {
    fn resize(&mut self, rows: usize, _wait: Duration) {
        self.chunk_rows = rows.max(1);
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "next": self.next })
    }
    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.next = position["next"]
            .as_u64()
            .filter(|&n| n <= self.events)
            .ok_or_else(|| Error::damaged("the checkpointed formula position is damaged"))?;
        Ok(())
    }
}
