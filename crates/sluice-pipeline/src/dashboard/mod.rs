//! What a running pipeline does, for the dashboard (`sluice run --ui`).
//!
//! A [`Watch`] is shared by the operators of a run. They add to it as they
//! go, with a few relaxed atomic operations per chunk (never per event):
//! rows and chunks per stream, the time the operators behind a stream took,
//! watermarks and the newest event time, the latency of chunks from read to
//! sink; and, rarely, a sample: a late event, a dead letter, a window
//! firing. [`Watch::sample`], called about once a second by whoever shows
//! the figures, turns the counters into rates and keeps a history.
//!
//! Without `--ui` there is no watch and the operators skip all of it.

use crate::accounting::SourceCounters;
use crate::checkpoint::Checkpointing;
use crate::plan::Plan;
pub use crate::telemetry::StreamWatch;
use crate::telemetry::{LateEvent, Telemetry};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

mod graph;

use graph::{graph_of, Graph};

/// How many samples of each kind (late, dead letters, firings,
/// checkpoints) are kept: the newest.
const KEPT: usize = 50;
/// How many points of history are kept (at one a second, ten minutes).
const HISTORY: usize = 600;
/// Chunk latencies kept per sampling interval (more are counted, not kept).
const LATENCIES: usize = 1 << 16;
/// A stream whose downstream operators take this share of their threads'
/// time holds up what produces it: its producer is backpressured.
const BACKPRESSURED: f64 = 0.8;

/// The live figures of one run.
pub struct Watch {
    started: Instant,
    pipeline: String,
    mode: String,
    workers: usize,
    graph: Graph,
    streams: Vec<(String, Arc<StreamWatch>)>,
    latencies: Mutex<Latencies>,
    late: Mutex<VecDeque<LateSample>>,
    dead: Mutex<VecDeque<DeadSample>>,
    firings: Mutex<VecDeque<Firing>>,
    late_count: AtomicU64,
    dead_count: AtomicU64,
    firing_count: AtomicU64,
    checkpointing: Mutex<Option<Arc<Checkpointing>>>,
    checkpoints: Mutex<VecDeque<CheckpointSample>>,
    /// The source's counters and the input's size, once the run starts.
    source: Mutex<Option<(Arc<SourceCounters>, Option<u64>)>>,
    state: Mutex<RunState>,
    history: Mutex<History>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("pipeline", &self.pipeline)
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

/// Chunk latencies since the last sample: (microseconds, rows).
#[derive(Debug, Default)]
struct Latencies {
    kept: Vec<(u64, u64)>,
}

/// Whether the run goes on, and how it ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RunState {
    /// Still reading.
    Running,
    /// The input ended and everything was written.
    Finished {
        /// Seconds from the start.
        at_s: f64,
    },
    /// The run failed.
    Failed {
        /// Seconds from the start.
        at_s: f64,
        /// Why.
        error: String,
    },
}

/// A late event, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LateSample {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// The window transform that refused it.
    pub transform: String,
    /// Its line in the source.
    pub line: u64,
    /// Its event time (epoch ms).
    pub event_time: i64,
    /// The transform's watermark when it came.
    pub watermark: i64,
    /// How far behind the watermark it was, in ms.
    pub behind_ms: i64,
    /// The window it missed: `[start, end)` in epoch ms.
    pub window: (i64, i64),
    /// How long after that window closed (its end plus the allowed
    /// lateness) it came, in ms of event time.
    pub too_late_ms: i64,
    /// Why it was refused.
    pub reason: String,
    /// The record, as JSON.
    pub record: String,
}

/// A dead letter, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadSample {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// Where it was refused: the source or a transform.
    pub origin: String,
    /// Its line in the source.
    pub line: u64,
    /// Why.
    pub reason: String,
    /// The record as it was read.
    pub record: String,
}

/// Results a window transform emitted at once.
#[derive(Debug, Clone, Serialize)]
pub struct Firing {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// The window transform.
    pub transform: String,
    /// The watermark that fired them (`null` at the end of the input,
    /// which fires everything).
    pub watermark: Option<i64>,
    /// Result rows.
    pub rows: u64,
    /// Windows they cover: `[earliest start, latest end)` in epoch ms.
    pub windows: Option<(i64, i64)>,
}

/// A committed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSample {
    /// Seconds from the start of the run (when it was seen committed).
    pub at_s: f64,
    /// Its number.
    pub id: u64,
    /// From the barrier to the commit, in ms.
    pub duration_ms: f64,
    /// Bytes of state.
    pub bytes: u64,
}

/// One stream in a point of history.
#[derive(Debug, Clone, Serialize)]
pub struct StreamPoint {
    /// Rows per second.
    pub rate: f64,
    /// Chunks per second.
    pub chunks: f64,
    /// Rows per chunk, on average.
    pub mean_batch: f64,
    /// The largest chunk.
    pub max_batch: u64,
    /// Milliseconds the operators behind the stream took per chunk, on
    /// average.
    pub mean_batch_ms: f64,
    /// The longest any chunk took, in ms.
    pub max_batch_ms: f64,
    /// Share of the stream's threads' time spent in the operators behind
    /// it (0 to 1).
    pub busy: f64,
    /// How far the watermark is behind the newest event time, in ms.
    pub lag_ms: Option<i64>,
}

/// End-to-end latency percentiles over an interval, in ms: from the source
/// reading a chunk to a sink writing it (for window results: from reading
/// the chunk whose watermark fired them).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencyPoint {
    /// Rows measured.
    pub rows: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// A point of history: the figures of one sampling interval.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds from the start, at the end of the interval.
    pub t: f64,
    /// Per stream, in the order of [`Watch::streams`].
    pub streams: Vec<StreamPoint>,
    /// End-to-end latency.
    pub latency: LatencyPoint,
}

#[derive(Debug, Default)]
struct History {
    points: VecDeque<Point>,
    /// The counters at the last sample: (records, chunks, busy, at).
    last: Vec<(u64, u64, u64)>,
    last_at: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn push_kept<T>(queue: &Mutex<VecDeque<T>>, item: T) {
    let mut queue = lock(queue);
    if queue.len() == KEPT {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl Watch {
    /// A watch for `plan`, with a stream for `source`, every transform and
    /// the reserved streams.
    pub fn new(plan: &Plan) -> Arc<Self> {
        let graph = graph_of(plan);
        let mut names = vec!["source".to_string()];
        names.extend(plan.transforms.iter().map(|t| t.name.clone()));
        let streams = names
            .into_iter()
            .map(|name| (name, Arc::new(StreamWatch::default())))
            .collect();
        let mode = match (plan.execution.event_mode, plan.execution.target_latency) {
            (_, Some(target)) => format!("adaptive ({target:?})"),
            (true, None) => "event".to_string(),
            (false, None) => format!("micro-batch ({} rows)", plan.execution.batch_size),
        };
        Arc::new(Self {
            started: Instant::now(),
            pipeline: plan.name.clone(),
            mode,
            workers: plan.execution.workers,
            graph,
            streams,
            latencies: Mutex::new(Latencies::default()),
            late: Mutex::new(VecDeque::new()),
            dead: Mutex::new(VecDeque::new()),
            firings: Mutex::new(VecDeque::new()),
            late_count: AtomicU64::new(0),
            dead_count: AtomicU64::new(0),
            firing_count: AtomicU64::new(0),
            checkpointing: Mutex::new(None),
            checkpoints: Mutex::new(VecDeque::new()),
            source: Mutex::new(None),
            state: Mutex::new(RunState::Running),
            history: Mutex::new(History::default()),
        })
    }

    fn since_start(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The counters of stream `name` (a new, unlisted one if it is not a
    /// stream of the plan).
    pub fn stream(&self, name: &str) -> Arc<StreamWatch> {
        self.streams
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(Default::default, |(_, s)| s.clone())
    }

    /// The dataflow.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The names of the streams, in the order of `Point::streams`.
    pub fn streams(&self) -> Vec<String> {
        self.streams.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Where the source's counts are.
    pub fn set_source(&self, counters: Arc<SourceCounters>, total_bytes: Option<u64>) {
        *lock(&self.source) = Some((counters, total_bytes));
    }

    /// Checkpoints to show.
    pub fn set_checkpointing(&self, checkpointing: Arc<Checkpointing>) {
        *lock(&self.checkpointing) = Some(checkpointing);
    }

    /// A sink wrote `rows` rows read at `read_at`.
    pub fn latency(&self, read_at: Instant, rows: usize) {
        let micros = u64::try_from(read_at.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut latencies = lock(&self.latencies);
        if latencies.kept.len() < LATENCIES {
            latencies.kept.push((micros, rows as u64));
        }
    }

    /// Late events were refused.
    pub fn late(&self, events: &[LateEvent]) {
        self.late_count
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let at_s = self.since_start();
        // Only the newest can be shown.
        let skip = events.len().saturating_sub(KEPT);
        for e in &events[skip..] {
            push_kept(
                &self.late,
                LateSample {
                    at_s,
                    transform: e.transform.clone(),
                    line: e.line,
                    event_time: e.event_time,
                    watermark: e.watermark,
                    behind_ms: e.watermark.saturating_sub(e.event_time),
                    window: e.window,
                    too_late_ms: e
                        .watermark
                        .saturating_sub(e.window.1.saturating_add(e.lateness)),
                    reason: e.reason.clone(),
                    record: shortened(&e.record),
                },
            );
        }
    }

    /// Records were sent to the dead letters.
    pub fn dead(&self, letters: &[crate::format::DeadLetter]) {
        self.dead_count
            .fetch_add(letters.len() as u64, Ordering::Relaxed);
        let at_s = self.since_start();
        let skip = letters.len().saturating_sub(KEPT);
        for d in &letters[skip..] {
            push_kept(
                &self.dead,
                DeadSample {
                    at_s,
                    origin: d.origin.clone(),
                    line: d.line,
                    reason: d.reason.clone(),
                    record: shortened(&d.record),
                },
            );
        }
    }

    /// Window transform `transform` emitted `rows` results for windows in
    /// `windows`, fired by `watermark` (`i64::MAX` at the end of input).
    pub fn fired(&self, transform: &str, watermark: i64, rows: u64, windows: Option<(i64, i64)>) {
        self.firing_count.fetch_add(1, Ordering::Relaxed);
        push_kept(
            &self.firings,
            Firing {
                at_s: self.since_start(),
                transform: transform.to_string(),
                // Count windows fire on input, maybe before any watermark.
                watermark: (watermark != i64::MAX && watermark != i64::MIN).then_some(watermark),
                rows,
                windows,
            },
        );
    }

    /// The run ended: `Ok` when everything was written.
    pub fn finish(&self, result: Result<(), &crate::Error>) {
        let at_s = self.since_start();
        *lock(&self.state) = match result {
            Ok(()) => RunState::Finished { at_s },
            Err(error) => RunState::Failed {
                at_s,
                error: error.to_string(),
            },
        };
    }

    /// Ends a sampling interval: rates since the last call, latency
    /// percentiles, new checkpoints. Call it about once a second.
    pub fn sample(&self) -> Point {
        let now = Instant::now();
        let t = now.duration_since(self.started).as_secs_f64();
        let mut history = lock(&self.history);
        let elapsed = history
            .last_at
            .map_or(now.duration_since(self.started), |at| {
                now.duration_since(at)
            })
            .as_secs_f64()
            .max(1e-6);
        history.last_at = Some(now);
        if history.last.len() != self.streams.len() {
            history.last = vec![(0, 0, 0); self.streams.len()];
        }
        let mut streams = Vec::with_capacity(self.streams.len());
        for ((_, s), last) in self.streams.iter().zip(history.last.iter_mut()) {
            let records = s.records.load(Ordering::Relaxed);
            let chunks = s.chunks.load(Ordering::Relaxed);
            let busy = s.busy_nanos.load(Ordering::Relaxed);
            let (d_records, d_chunks, d_busy) = (
                records.saturating_sub(last.0),
                chunks.saturating_sub(last.1),
                busy.saturating_sub(last.2),
            );
            *last = (records, chunks, busy);
            let instances = s.instances.load(Ordering::Relaxed).max(1) as f64;
            streams.push(StreamPoint {
                rate: d_records as f64 / elapsed,
                chunks: d_chunks as f64 / elapsed,
                mean_batch: if d_chunks == 0 {
                    0.0
                } else {
                    d_records as f64 / d_chunks as f64
                },
                max_batch: s.largest_chunk.swap(0, Ordering::Relaxed),
                mean_batch_ms: if d_chunks == 0 {
                    0.0
                } else {
                    d_busy as f64 / d_chunks as f64 / 1e6
                },
                max_batch_ms: s.longest_nanos.swap(0, Ordering::Relaxed) as f64 / 1e6,
                busy: (d_busy as f64 / 1e9 / elapsed / instances).min(1.0),
                lag_ms: s.lag_ms(),
            });
        }
        let kept = std::mem::take(&mut lock(&self.latencies).kept);
        let point = Point {
            t,
            streams,
            latency: percentiles(kept),
        };
        if history.points.len() == HISTORY {
            history.points.pop_front();
        }
        history.points.push_back(point.clone());
        drop(history);
        self.poll_checkpoints(t);
        point
    }

    fn poll_checkpoints(&self, at_s: f64) {
        let Some(checkpointing) = lock(&self.checkpointing).clone() else {
            return;
        };
        let Some(last) = checkpointing.last() else {
            return;
        };
        let mut kept = lock(&self.checkpoints);
        if kept.back().is_some_and(|c| c.id >= last.id) {
            return;
        }
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(CheckpointSample {
            at_s,
            id: last.id,
            duration_ms: last.duration.as_secs_f64() * 1e3,
            bytes: last.bytes,
        });
    }

    /// The history: every point kept, oldest first.
    pub fn history(&self) -> serde_json::Value {
        let history = lock(&self.history);
        serde_json::json!({
            "streams": self.streams(),
            "points": history.points,
        })
    }

    /// The newest point of history (`null` before the first sample).
    pub fn last_point(&self) -> serde_json::Value {
        serde_json::to_value(lock(&self.history).points.back()).unwrap_or_default()
    }

    /// Everything the dashboard shows now, with the last point of history.
    pub fn snapshot(&self) -> serde_json::Value {
        let last = lock(&self.history).points.back().cloned();
        let streams: Vec<serde_json::Value> = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, (name, s))| {
                let point = last.as_ref().and_then(|p| p.streams.get(i));
                let known = |v: i64| (v != i64::MIN && v != i64::MAX).then_some(v);
                let watermark = known(s.watermark.load(Ordering::Relaxed));
                let newest = known(s.newest_event.load(Ordering::Relaxed));
                let busy = point.map_or(0.0, |p| p.busy);
                serde_json::json!({
                    "name": name,
                    "records": s.records.load(Ordering::Relaxed),
                    "instances": s.instances.load(Ordering::Relaxed),
                    "rate": point.map_or(0.0, |p| p.rate),
                    "mean_batch": point.map_or(0.0, |p| p.mean_batch),
                    "mean_batch_ms": point.map_or(0.0, |p| p.mean_batch_ms),
                    "busy": busy,
                    "backpressured": busy >= BACKPRESSURED,
                    "watermark": watermark,
                    "newest_event": newest,
                    "watermark_lag_ms": s.lag_ms(),
                })
            })
            .collect();
        let source = lock(&self.source).clone();
        let checkpointing = lock(&self.checkpointing).clone();
        serde_json::json!({
            "pipeline": self.pipeline,
            "mode": self.mode,
            "workers": self.workers,
            "uptime_s": self.since_start(),
            "run": *lock(&self.state),
            "source": {
                "read": source.as_ref().map_or(0, |(c, _)| c.read.load(Ordering::Relaxed)),
                "bytes": source.as_ref().map_or(0, |(c, _)| c.bytes.load(Ordering::Relaxed)),
                "total_bytes": source.as_ref().and_then(|(_, total)| *total),
            },
            "streams": streams,
            "latency": last.as_ref().map(|p| p.latency),
            "late": {
                "count": self.late_count.load(Ordering::Relaxed),
                "newest": lock(&self.late).iter().rev().cloned().collect::<Vec<_>>(),
            },
            "dead_letter": {
                "count": self.dead_count.load(Ordering::Relaxed),
                "newest": lock(&self.dead).iter().rev().cloned().collect::<Vec<_>>(),
            },
            "firings": {
                "count": self.firing_count.load(Ordering::Relaxed),
                "newest": lock(&self.firings).iter().rev().cloned().collect::<Vec<_>>(),
            },
            "checkpoints": {
                "enabled": checkpointing.is_some(),
                "committed": checkpointing.as_ref().map_or(0, |c| c.count()),
                "newest": lock(&self.checkpoints).iter().rev().cloned().collect::<Vec<_>>(),
            },
        })
    }

    /// Whether the run has ended.
    pub fn ended(&self) -> bool {
        !matches!(*lock(&self.state), RunState::Running)
    }
}

/// The longest record a sample keeps, in bytes: a snapshot stays small
/// whatever the input's lines.
const RECORD: usize = 1000;

/// `record`, cut to [`RECORD`] bytes (at a character) with an ellipsis.
fn shortened(record: &str) -> String {
    if record.len() <= RECORD {
        return record.to_string();
    }
    let mut end = RECORD;
    while !record.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &record[..end])
}

/// Row-weighted percentiles of chunk latencies.
fn percentiles(mut kept: Vec<(u64, u64)>) -> LatencyPoint {
    let rows: u64 = kept.iter().map(|&(_, r)| r).sum();
    if rows == 0 {
        return LatencyPoint::default();
    }
    kept.sort_unstable();
    let at = |q: f64| {
        let wanted = (q * rows as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for &(micros, r) in &kept {
            seen += r;
            if seen >= wanted {
                return micros as f64 / 1e3;
            }
        }
        kept.last().map_or(0.0, |&(m, _)| m as f64 / 1e3)
    };
    LatencyPoint {
        rows,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: kept.last().map_or(0.0, |&(m, _)| m as f64 / 1e3),
    }
}

impl Telemetry for Watch {
    fn stream(&self, name: &str) -> Arc<StreamWatch> {
        Watch::stream(self, name)
    }
    fn set_source(&self, counters: Arc<SourceCounters>, total_bytes: Option<u64>) {
        Watch::set_source(self, counters, total_bytes)
    }
    fn set_checkpointing(&self, checkpointing: Arc<Checkpointing>) {
        Watch::set_checkpointing(self, checkpointing)
    }
    fn latency(&self, read_at: Instant, rows: usize) {
        Watch::latency(self, read_at, rows)
    }
    fn late(&self, events: &[LateEvent]) {
        Watch::late(self, events)
    }
    fn dead(&self, letters: &[crate::format::DeadLetter]) {
        Watch::dead(self, letters)
    }
    fn fired(&self, transform: &str, watermark: i64, rows: u64, windows: Option<(i64, i64)>) {
        Watch::fired(self, transform, watermark, rows, windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_weigh_chunks_by_their_rows() {
        // One chunk of 99 rows at 1 ms, one of 1 row at 100 ms.
        let p = percentiles(vec![(100_000, 1), (1_000, 99)]);
        assert_eq!(p.rows, 100);
        assert_eq!(p.p50, 1.0);
        assert_eq!(p.p99, 1.0);
        assert_eq!(p.max, 100.0);
        let p = percentiles(vec![(100_000, 2), (1_000, 98)]);
        assert_eq!(p.p99, 100.0);
        assert_eq!(percentiles(Vec::new()).rows, 0);
    }

    #[test]
    fn samples_keep_at_most_a_kilobyte_of_a_record() {
        assert_eq!(shortened("{\"a\": 1}"), "{\"a\": 1}");
        let long = "é".repeat(700);
        let cut = shortened(&long);
        assert!(cut.len() <= RECORD + "…".len() && cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }
}
