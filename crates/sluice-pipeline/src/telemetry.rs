//! What a running dataflow tells whoever watches it (the dashboard), as
//! named events: rows and chunks per stream, watermarks, latency from read
//! to sink, late events, dead letters, window firings. The dataflow's parts
//! feed a [`Telemetry`] and know nothing of who shows it; the dashboard
//! (`crate::dashboard::Watch`) implements it.

use crate::accounting::SourceCounters;
use crate::checkpoint::Checkpointing;
use crate::format::DeadLetter;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receives what a run does, as it goes.
pub trait Telemetry: Send + Sync + std::fmt::Debug {
    /// The counters of stream `name`, fed by the operator that counts it.
    fn stream(&self, name: &str) -> Arc<StreamWatch>;
    /// Where the source's counts are, and the input's size when known.
    fn set_source(&self, counters: Arc<SourceCounters>, total_bytes: Option<u64>);
    /// The run's checkpoints.
    fn set_checkpointing(&self, checkpointing: Arc<Checkpointing>);
    /// A sink wrote `rows` rows read at `read_at`.
    fn latency(&self, read_at: Instant, rows: usize);
    /// Events were refused as too late.
    fn late(&self, events: &[LateEvent]);
    /// Records went to the dead letters.
    fn dead(&self, letters: &[DeadLetter]);
    /// Window `transform` fired at `watermark`: `rows` rows, for the
    /// windows from the first start to the last end.
    fn fired(&self, transform: &str, watermark: i64, rows: u64, windows: Option<(i64, i64)>);
}

/// A late event: beyond its window's allowed lateness.
#[derive(Debug, Clone)]
pub struct LateEvent {
    /// The window transform that refused it.
    pub transform: String,
    /// Its line in the source.
    pub line: u64,
    /// Its event time.
    pub event_time: i64,
    /// The transform's watermark when it came.
    pub watermark: i64,
    /// The window it missed: `[start, end)` in epoch ms.
    pub window: (i64, i64),
    /// The window's allowed lateness, in ms.
    pub lateness: i64,
    /// Why it was refused.
    pub reason: String,
    /// The event as JSON.
    pub record: String,
}

/// The counters of one named stream.
#[derive(Debug)]
pub struct StreamWatch {
    pub(crate) records: AtomicU64,
    pub(crate) chunks: AtomicU64,
    pub(crate) largest_chunk: AtomicU64,
    pub(crate) busy_nanos: AtomicU64,
    pub(crate) longest_nanos: AtomicU64,
    pub(crate) newest_event: AtomicI64,
    pub(crate) watermark: AtomicI64,
    pub(crate) instances: AtomicU64,
}

impl Default for StreamWatch {
    fn default() -> Self {
        Self {
            records: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            largest_chunk: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            longest_nanos: AtomicU64::new(0),
            newest_event: AtomicI64::new(i64::MIN),
            watermark: AtomicI64::new(i64::MIN),
            instances: AtomicU64::new(1),
        }
    }
}

impl StreamWatch {
    /// `chunks` chunks of `rows` rows in all (the largest `largest`, the
    /// newest event time `newest`) went through the operators behind the
    /// stream in `took`.
    pub fn chunks(
        &self,
        chunks: usize,
        rows: usize,
        largest: usize,
        newest: Option<i64>,
        took: Duration,
    ) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.records.fetch_add(rows as u64, Ordering::Relaxed);
        self.chunks.fetch_add(chunks as u64, Ordering::Relaxed);
        self.largest_chunk
            .fetch_max(largest as u64, Ordering::Relaxed);
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.longest_nanos.fetch_max(nanos, Ordering::Relaxed);
        if let Some(newest) = newest {
            self.newest_event.fetch_max(newest, Ordering::Relaxed);
        }
    }

    /// The stream's watermark moved to `watermark`.
    pub fn watermark(&self, watermark: i64) {
        self.watermark.fetch_max(watermark, Ordering::Relaxed);
    }

    /// How far the watermark is behind the newest event time, in ms, once
    /// both are known (the end of input moves the watermark to the end of
    /// time: no lag then).
    pub(crate) fn lag_ms(&self) -> Option<i64> {
        let known = |v: i64| (v != i64::MIN && v != i64::MAX).then_some(v);
        let watermark = known(self.watermark.load(Ordering::Relaxed))?;
        let newest = known(self.newest_event.load(Ordering::Relaxed))?;
        Some(newest.saturating_sub(watermark).max(0))
    }

    /// How many instances (threads) carry the stream.
    pub fn set_instances(&self, instances: usize) {
        self.instances
            .store(instances.max(1) as u64, Ordering::Relaxed);
    }
}
