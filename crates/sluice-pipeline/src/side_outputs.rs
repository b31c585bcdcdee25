//! The reserved streams `dead_letter` and `late`: records that could not be
//! decoded or evaluated, and events beyond a window's allowed lateness.
//!
//! Any source or transform may add to them, from any stage, so they are not
//! edges of the dataflow but shared writers: each record is written to every
//! sink subscribed to the stream, counted, and a few are kept as samples for
//! the end-of-run report when no sink takes them.

use crate::error::{Error, Result};
use crate::format::DeadLetter;
use crate::output::RowWriter;
use crate::telemetry::Telemetry;
use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// How many records of a reserved stream the report shows when no sink
/// takes the stream.
const SAMPLES: usize = 5;

/// A writer subscribed to a reserved stream, with its count of rows written.
type Subscriber = (Box<dyn RowWriter>, Arc<AtomicU64>);

/// One reserved stream.
pub struct ReservedStream {
    name: &'static str,
    schema: SchemaRef,
    writers: Mutex<Vec<Subscriber>>,
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
    error: Mutex<Option<Error>>,
}

impl ReservedStream {
    fn new(name: &'static str, schema: SchemaRef) -> Self {
        Self {
            name,
            schema,
            writers: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The schema of its rows.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Subscribes a writer; `emitted` counts what it writes.
    pub fn subscribe(&self, writer: Box<dyn RowWriter>, emitted: Arc<AtomicU64>) {
        lock(&self.writers).push((writer, emitted));
    }

    /// How many records the stream has had.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first few records, as `line N: reason`.
    pub fn samples(&self) -> Vec<String> {
        lock(&self.samples).clone()
    }

    fn publish(&self, batch: RecordBatch, samples: impl Iterator<Item = String>) {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return;
        }
        self.count.fetch_add(rows, Ordering::Relaxed);
        metrics::counter!("sluice_records_total", "stream" => self.name).increment(rows);
        {
            let mut kept = lock(&self.samples);
            let room = SAMPLES.saturating_sub(kept.len());
            kept.extend(samples.take(room));
        }
        for (writer, emitted) in lock(&self.writers).iter_mut() {
            match writer.write(&batch) {
                Ok(()) => {
                    emitted.fetch_add(rows, Ordering::Relaxed);
                }
                Err(error) => {
                    lock(&self.error).get_or_insert(error);
                }
            }
        }
    }

    /// Makes what the writers wrote durable; their lengths, keyed
    /// `reserved/NAME/I`.
    fn checkpoint(&self) -> Result<Vec<(String, Vec<u8>)>> {
        // A record that could not be written must not be covered by a
        // committed checkpoint: the replay writes it again.
        if let Some(error) = lock(&self.error).as_ref() {
            return Err(error.duplicate().context(format!("`{}`", self.name)));
        }
        let mut lengths = Vec::new();
        for (i, (writer, _)) in lock(&self.writers).iter_mut().enumerate() {
            let record = writer.checkpoint()?.sync()?;
            lengths.push((format!("reserved/{}/{i}", self.name), record));
        }
        Ok(lengths)
    }

    /// Closes the writers; the first write or close error, if any.
    pub fn finish(&self) -> Result<()> {
        for (writer, _) in lock(&self.writers).iter_mut() {
            if let Err(error) = writer.finish() {
                lock(&self.error).get_or_insert(error);
            }
        }
        match lock(&self.error).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

pub use crate::telemetry::LateEvent;

/// Both reserved streams.
pub struct Reserved {
    /// `dead_letter`.
    pub dead_letter: ReservedStream,
    /// `late`.
    pub late: ReservedStream,
    /// Checkpointing: handles hold records until the next barrier.
    hold: AtomicBool,
    /// The dashboard's figures, when it is on.
    watch: OnceLock<Arc<dyn Telemetry>>,
    /// Rows that sinks gave up on (an HTTP receiver that kept refusing
    /// them), counted as the sinks hand them over.
    sinks_gave_up: AtomicU64,
}

impl Default for Reserved {
    fn default() -> Self {
        Self::new()
    }
}

impl Reserved {
    /// Empty streams.
    pub fn new() -> Self {
        let dead = Schema::new(vec![
            Field::new("origin", DataType::Utf8, false),
            Field::new("line", DataType::UInt64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("record", DataType::Utf8, false),
        ]);
        let late = Schema::new(vec![
            Field::new("transform", DataType::Utf8, false),
            Field::new("line", DataType::UInt64, false),
            Field::new("event_time", DataType::Int64, false),
            Field::new("watermark", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("record", DataType::Utf8, false),
        ]);
        Self {
            dead_letter: ReservedStream::new("dead_letter", Arc::new(dead)),
            late: ReservedStream::new("late", Arc::new(late)),
            hold: AtomicBool::new(false),
            watch: OnceLock::new(),
            sinks_gave_up: AtomicU64::new(0),
        }
    }

    /// Shows what the streams receive, and what the operators that write
    /// to them do, on `watch`.
    pub fn set_watch(&self, watch: Arc<dyn Telemetry>) {
        let _ = self.watch.set(watch);
    }

    /// The dashboard's figures, when it is on.
    pub fn watch(&self) -> Option<&Arc<dyn Telemetry>> {
        self.watch.get()
    }

    /// Whether checkpoints are on: records are held until barriers.
    pub fn holds(&self) -> bool {
        self.hold.load(Ordering::SeqCst)
    }

    /// With checkpoints, each operator holds its records until it passes a
    /// barrier (see [`ReservedHandle`]).
    pub fn hold_until_barriers(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    /// Makes what the writers of both streams wrote durable; their
    /// lengths by key, for the checkpoint.
    pub fn checkpoint(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut lengths = self.dead_letter.checkpoint()?;
        lengths.extend(self.late.checkpoint()?);
        Ok(lengths)
    }

    /// The stream named `name`, if it is reserved.
    pub fn get(&self, name: &str) -> Option<&ReservedStream> {
        match name {
            "dead_letter" => Some(&self.dead_letter),
            "late" => Some(&self.late),
            _ => None,
        }
    }

    /// Adds the dead letters of rows a sink gave up on. A sink holds them
    /// until its checkpoint (as stages hold theirs until a barrier).
    pub fn dead_from_sink(&self, letters: &[DeadLetter]) {
        self.sinks_gave_up
            .fetch_add(letters.len() as u64, Ordering::Relaxed);
        self.dead(letters);
    }

    /// Rows that sinks gave up on, so far.
    pub fn sinks_gave_up(&self) -> u64 {
        self.sinks_gave_up.load(Ordering::Relaxed)
    }

    /// Adds dead letters.
    pub fn dead(&self, letters: &[DeadLetter]) {
        if letters.is_empty() {
            return;
        }
        if let Some(watch) = self.watch() {
            watch.dead(letters);
        }
        let columns = vec![
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|d| d.origin.as_str()),
            )) as _,
            Arc::new(UInt64Array::from_iter_values(
                letters.iter().map(|d| d.line),
            )) as _,
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|d| d.reason.as_str()),
            )) as _,
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|d| d.record.as_str()),
            )) as _,
        ];
        match RecordBatch::try_new(self.dead_letter.schema(), columns) {
            Ok(batch) => self.dead_letter.publish(
                batch,
                letters
                    .iter()
                    .map(|d| format!("{} line {}: {}", d.origin, d.line, d.reason)),
            ),
            Err(error) => unreachable!("the dead-letter columns fit its schema: {error}"),
        }
    }

    /// Adds late events.
    pub fn late(&self, events: &[LateEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(watch) = self.watch() {
            watch.late(events);
        }
        let columns = vec![
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.transform.as_str()),
            )) as _,
            Arc::new(UInt64Array::from_iter_values(events.iter().map(|e| e.line))) as _,
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.event_time),
            )) as _,
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.watermark),
            )) as _,
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.reason.as_str()),
            )) as _,
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.record.as_str()),
            )) as _,
        ];
        match RecordBatch::try_new(self.late.schema(), columns) {
            Ok(batch) => self.late.publish(
                batch,
                events
                    .iter()
                    .map(|e| format!("{} line {}: {}", e.transform, e.line, e.reason)),
            ),
            Err(error) => unreachable!("the late columns fit its schema: {error}"),
        }
    }
}

/// An operator's access to the reserved streams.
///
/// Without checkpoints, records are written at once. With checkpoints they
/// are held until the stage passes the next barrier (or ends): the
/// stream's writers are shared by every stage, and a record written by a
/// stage after it passed barrier `n` must not be in checkpoint `n`'s
/// committed length, or a replay from `n` would write it twice.
///
/// What is held is kept per stage (a worker runs several on its thread:
/// one stage's records must not go out at another's barrier), in the order
/// the operators of the stage produced it, and any of them releases it all: so
/// one stage's records come out in the same order as without checkpoints,
/// whatever the barriers' timing, and a run of one worker whose side outputs
/// come from one stage, resumed after a crash, writes the same bytes as a run
/// that never stopped. Records of several stages (a join's stage and the
/// source's, say) are grouped by where each stage's barriers fell.
pub struct ReservedHandle {
    shared: Arc<Reserved>,
    hold: bool,
}

/// Records held by the stages of this thread, per run and stage.
type Held = Vec<((usize, usize), Vec<DeadLetter>, Vec<LateEvent>)>;

thread_local! {
    static HELD: std::cell::RefCell<Held> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ReservedHandle {
    /// A handle on `shared`.
    pub fn new(shared: Arc<Reserved>) -> Self {
        let hold = shared.hold.load(Ordering::SeqCst);
        Self { shared, hold }
    }

    fn held<R>(&self, f: impl FnOnce(&mut Vec<DeadLetter>, &mut Vec<LateEvent>) -> R) -> R {
        let id = (Arc::as_ptr(&self.shared) as usize, sluice::current_stage());
        HELD.with_borrow_mut(|held| {
            let at = match held.iter().position(|(i, _, _)| *i == id) {
                Some(at) => at,
                None => {
                    held.push((id, Vec::new(), Vec::new()));
                    held.len() - 1
                }
            };
            let (_, dead, late) = &mut held[at];
            f(dead, late)
        })
    }

    /// The dashboard's figures, when it is on.
    pub fn watch(&self) -> Option<&Arc<dyn Telemetry>> {
        self.shared.watch()
    }

    /// Adds dead letters.
    pub fn dead(&self, letters: &[DeadLetter]) {
        if self.hold {
            self.held(|dead, _| dead.extend_from_slice(letters));
        } else {
            self.shared.dead(letters);
        }
    }

    /// Adds late events.
    pub fn late(&self, events: &[LateEvent]) {
        if self.hold {
            self.held(|_, late| late.extend_from_slice(events));
        } else {
            self.shared.late(events);
        }
    }

    /// Writes what this thread holds: at a barrier, and at the end.
    pub fn release(&self) {
        if !self.hold {
            return;
        }
        let (dead, late) = self.held(|dead, late| (std::mem::take(dead), std::mem::take(late)));
        self.shared.dead(&dead);
        self.shared.late(&late);
    }
}

/// Locks, recovering from a panic elsewhere (the run reports that panic).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl crate::checkpoint::Held for Reserved {
    fn checkpoint(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Reserved::checkpoint(self)
    }
}
