//! Joins of two streams on equal keys within a range of event time: the
//! right row's time minus the left row's lies in `[lower, upper]`.
//!
//! An interval join is that range as written; a windowed join of two
//! windowed aggregates is the range `[0, 0]` (rows of one window share its
//! time); a join with a time-to-live is `[-ttl, ttl]`. Each instance holds
//! the rows of both sides whose partners may still come, indexed by key:
//! a row arriving is matched against the other side's rows, then kept. A
//! pair is made once, when its later row arrives, so the output is an
//! append stream of pairs whose time is the later of the two.
//!
//! The watermark (the minimum of both inputs') drops a left row once it
//! passes the row's time plus `upper`, a right row once it passes its time
//! minus `lower`: no row that is not late can match them any more. A row
//! behind the watermark goes to the reserved `late` stream.

use crate::checkpoint::Checkpointing;
use crate::operators::{split_by_worker, Counted};
use crate::rows::Rows;
use crate::side_outputs::{Reserved, ReservedHandle};
use crate::telemetry::LateEvent;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows as KeyRows, SortField};
use sluice::{Batch, Operator, OperatorError, OperatorResult, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Fast = ahash::RandomState;

/// The version of a join's checkpointed state.
const VERSION: u64 = 1;

/// A checked join: its inputs, keys and time range.
#[derive(Debug)]
pub struct JoinPlan {
    /// The transform's name.
    pub name: String,
    /// The left input stream.
    pub left: String,
    /// The right input stream.
    pub right: String,
    /// Key columns of the left input.
    pub left_keys: Vec<usize>,
    /// Key columns of the right input, pairwise equal to the left's.
    pub right_keys: Vec<usize>,
    /// The type both sides' keys are compared in.
    pub key_types: Vec<DataType>,
    /// The least the right row's time minus the left row's may be (ms).
    pub lower: i64,
    /// The most it may be (ms).
    pub upper: i64,
    /// The left input's schema.
    pub left_schema: SchemaRef,
    /// The right input's schema.
    pub right_schema: SchemaRef,
    /// The output: the left's columns, then the right's.
    pub schema: SchemaRef,
}

fn failed(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Failed(error.to_string().into())
}

impl JoinPlan {
    fn converter(&self) -> Result<RowConverter, OperatorError> {
        RowConverter::new(self.key_types.iter().cloned().map(SortField::new).collect())
            .map_err(failed)
    }

    /// The keys of `rows` of one side, in the types both sides compare in,
    /// and whether each has a null (a null equals nothing; so does a value
    /// the cast could not convert).
    fn keys(
        &self,
        right: bool,
        rows: &Rows,
        converter: &RowConverter,
    ) -> Result<(KeyRows, Vec<bool>), OperatorError> {
        let columns = if right {
            &self.right_keys
        } else {
            &self.left_keys
        };
        key_rows(rows.batch.columns(), columns, &self.key_types, converter)
    }
}

/// The row-format keys of `columns` of a batch cast to `types`, and which
/// rows have a null among them.
pub(crate) fn key_rows(
    batch: &[ArrayRef],
    columns: &[usize],
    types: &[DataType],
    converter: &RowConverter,
) -> Result<(KeyRows, Vec<bool>), OperatorError> {
    let arrays = columns
        .iter()
        .zip(types)
        .map(|(&c, t)| cast(&batch[c], t))
        .collect::<Result<Vec<ArrayRef>, _>>()
        .map_err(failed)?;
    let n = arrays.first().map_or(0, |a| a.len());
    let nulls = (0..n)
        .map(|row| arrays.iter().any(|a| a.is_null(row)))
        .collect();
    Ok((converter.convert_columns(&arrays).map_err(failed)?, nulls))
}

/// A chunk of rows of one side, bound for one worker.
#[derive(Debug, Clone)]
pub struct Sided {
    /// From the right input (else the left).
    pub right: bool,
    /// The worker its keys hash to.
    pub worker: u64,
    /// The rows.
    pub rows: Rows,
}

/// Tags the chunks of one side and splits them by the hash of their keys
/// over the workers.
pub struct SplitSide {
    plan: Arc<JoinPlan>,
    right: bool,
    workers: usize,
    converter: RowConverter,
    down: Box<dyn Operator<Sided>>,
    out: Batch<Sided>,
}

impl SplitSide {
    /// Splits the `right` (or left) side of `plan` over `workers`.
    pub fn new(
        plan: Arc<JoinPlan>,
        right: bool,
        workers: usize,
        down: Box<dyn Operator<Sided>>,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            converter: plan.converter()?,
            plan,
            right,
            workers: workers.max(1),
            down,
            out: Batch::new(),
        })
    }
}

impl Operator<Rows> for SplitSide {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        self.out.clear();
        for (rows, time) in batch.drain() {
            if self.workers == 1 {
                self.out.push(
                    Sided {
                        right: self.right,
                        worker: 0,
                        rows,
                    },
                    time,
                );
                continue;
            }
            let (keys, _) = self.plan.keys(self.right, &rows, &self.converter)?;
            for (worker, part) in split_by_worker(&rows, &keys, self.workers)? {
                let time = part.max_time().unwrap_or(time);
                let right = self.right;
                self.out.push(
                    Sided {
                        right,
                        worker,
                        rows: part,
                    },
                    time,
                );
            }
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.down.on_batch(&mut self.out)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}

/// A kept row: its chunk, its row there, its time.
#[derive(Debug, Clone, Copy)]
struct Kept {
    chunk: u64,
    row: u32,
    time: i64,
}

/// A chunk of one side's rows, held while one of its rows may still pair.
struct Chunk {
    rows: Rows,
    keys: KeyRows,
    /// The rows kept (not late, no null key), with their keys' hashes.
    kept: Vec<(u32, u64)>,
}

/// The rows of one side that may still pair, by the hash of their keys.
#[derive(Default)]
struct Held {
    chunks: HashMap<u64, Chunk, Fast>,
    /// A key's hash to the rows kept with it (keys that share a hash are
    /// told apart by comparing them). Most keys hold one row: it is kept
    /// inline, without an allocation.
    index: HashMap<u64, smallvec::SmallVec<[Kept; 1]>, Fast>,
    /// Chunks by the watermark that drops them: the one past their latest
    /// row's range (a row held longer pairs with nothing out of range: the
    /// range is checked at every match).
    due: BTreeMap<i64, Vec<u64>>,
    hasher: Fast,
    next: u64,
}

impl Held {
    /// The id the next chunk held gets.
    fn next_id(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The rows kept with `key`.
    fn partners<'h>(&'h self, key: arrow::row::Row<'h>) -> impl Iterator<Item = Kept> + 'h {
        let hash = self.hash(key.as_ref());
        self.index
            .get(&hash)
            .into_iter()
            .flatten()
            .filter(move |k| {
                self.chunks
                    .get(&k.chunk)
                    .is_some_and(|c| c.keys.row(k.row as usize) == key)
            })
            .copied()
    }

    /// Holds chunk `id`'s rows `kept` (row, time) until the watermark
    /// reaches `drop_at`.
    fn hold(&mut self, id: u64, rows: Rows, keys: KeyRows, kept: &[(u32, i64)], drop_at: i64) {
        if kept.is_empty() {
            return;
        }
        let mut hashed = Vec::with_capacity(kept.len());
        for &(row, time) in kept {
            let hash = self.hash(keys.row(row as usize).as_ref());
            self.index.entry(hash).or_default().push(Kept {
                chunk: id,
                row,
                time,
            });
            hashed.push((row, hash));
        }
        self.chunks.insert(
            id,
            Chunk {
                rows,
                keys,
                kept: hashed,
            },
        );
        self.due.entry(drop_at).or_default().push(id);
    }

    /// Drops the chunks whose drop time is at or before `watermark`.
    fn expire(&mut self, watermark: i64) {
        let later = self.due.split_off(&watermark.saturating_add(1));
        let due = std::mem::replace(&mut self.due, later);
        for id in due.into_values().flatten() {
            let Some(chunk) = self.chunks.remove(&id) else {
                continue;
            };
            // Once per key of the chunk, however many of its rows share it.
            let hashes: std::collections::HashSet<u64, Fast> =
                chunk.kept.iter().map(|(_, hash)| *hash).collect();
            for hash in hashes {
                if let Some(kept) = self.index.get_mut(&hash) {
                    kept.retain(|k| k.chunk != id);
                    if kept.is_empty() {
                        self.index.remove(&hash);
                    }
                }
            }
        }
    }

    /// Every kept row, in one batch (for a checkpoint).
    fn gather(&self) -> Result<Option<Rows>, OperatorError> {
        if self.chunks.is_empty() {
            return Ok(None);
        }
        let mut batches: Vec<&RecordBatch> = Vec::with_capacity(self.chunks.len());
        let mut picks = Vec::new();
        let mut times = Vec::new();
        for chunk in self.chunks.values() {
            batches.push(&chunk.rows.batch);
            for &(row, _) in &chunk.kept {
                picks.push((batches.len() - 1, row as usize));
                times.push(chunk.rows.times.value(row as usize));
            }
        }
        let batch = interleave_record_batch(&batches, &picks).map_err(failed)?;
        let n = batch.num_rows();
        Ok(Some(Rows::new(
            batch,
            Int64Array::from(times),
            UInt64Array::from(vec![0; n]),
        )))
    }
}

/// The join of one worker.
pub struct JoinOp {
    plan: Arc<JoinPlan>,
    converter: RowConverter,
    left: Held,
    right: Held,
    watermark: Timestamp,
    reserved: ReservedHandle,
    counting: Counted,
    /// Whether each side reads the source (its rows are judged).
    judged: (bool, bool),
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    late: Vec<LateEvent>,
    out: Batch<Rows>,
    down: Box<dyn Operator<Rows>>,
}

impl JoinOp {
    /// A join of `plan` feeding `down`.
    pub fn new(
        plan: Arc<JoinPlan>,
        reserved: Arc<Reserved>,
        down: Box<dyn Operator<Rows>>,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            converter: plan.converter()?,
            judged: (plan.left == "source", plan.right == "source"),
            plan,
            left: Held::default(),
            right: Held::default(),
            watermark: Timestamp::MIN,
            reserved: ReservedHandle::new(reserved),
            counting: Counted::default(),
            checkpoint: None,
            late: Vec::new(),
            out: Batch::new(),
            down,
        })
    }

    /// Counts its rows in `counting`.
    pub fn counted(mut self, counting: Counted) -> Self {
        self.counting = counting;
        self
    }

    /// Reports its state to `checkpointing` at every barrier, under `key`.
    pub fn with_checkpoints(mut self, checkpointing: Arc<Checkpointing>, key: String) -> Self {
        checkpointing.register();
        self.checkpoint = Some((checkpointing, key));
        self
    }

    /// How long past its time a row of each side is kept.
    fn margins(&self) -> (i64, i64) {
        (self.plan.upper, self.plan.lower.saturating_neg())
    }

    /// Matches a chunk of one side against the other and keeps its rows.
    fn chunk(&mut self, right: bool, rows: Rows) -> Result<Option<Rows>, OperatorError> {
        let n = rows.len();
        self.counting.counts.rows_in.add(n as u64);
        let (keys, nulls) = self.plan.keys(right, &rows, &self.converter)?;
        let (lower, upper) = (self.plan.lower, self.plan.upper);
        let (left_margin, right_margin) = self.margins();
        // Judged as windows judge: against the watermark of the rows' reader
        // when it read them, if later than the join's.
        let watermark = self.watermark.max(rows.watermark);
        let mut accepted = Vec::with_capacity(n);
        let mut late = Vec::new();
        let mut kept: Vec<(u32, i64)> = Vec::with_capacity(n);
        let mut latest = i64::MIN;
        // Pairs as (left chunk, row), (right chunk, row), time.
        let mut pairs: Vec<(Kept, Kept)> = Vec::new();
        let (own, other, margin) = if right {
            (&mut self.right, &self.left, right_margin)
        } else {
            (&mut self.left, &self.right, left_margin)
        };
        let id = own.next_id();
        for (row, key) in keys.iter().enumerate() {
            let time = rows.times.value(row);
            if time < watermark {
                late.push(row);
                continue;
            }
            accepted.push(rows.lines.value(row));
            if nulls[row] {
                continue;
            }
            let this = Kept {
                chunk: id,
                row: row as u32,
                time,
            };
            for p in other.partners(key) {
                let (l, r) = if right { (p, this) } else { (this, p) };
                let d = r.time.saturating_sub(l.time);
                if (lower..=upper).contains(&d) {
                    pairs.push((l, r));
                }
            }
            kept.push((row as u32, time));
            latest = latest.max(time);
        }
        let drop_at = latest.saturating_add(margin).saturating_add(1);
        own.hold(id, rows.clone(), keys, &kept, drop_at);
        self.counting.counts.aggregated.add(accepted.len() as u64);
        self.counting.counts.late.add(late.len() as u64);
        if let Some(judge) = &self.counting.judge {
            if (right && self.judged.1) || (!right && self.judged.0) {
                judge.refused(late.iter().map(|&r| rows.lines.value(r)), false);
                judge.accepted(accepted.into_iter());
            }
        }
        for row in late {
            let time = rows.times.value(row);
            let (from, to) = if right {
                (time.saturating_sub(upper), time.saturating_sub(lower))
            } else {
                (time.saturating_add(lower), time.saturating_add(upper))
            };
            self.late.push(LateEvent {
                transform: self.plan.name.clone(),
                line: rows.lines.value(row),
                event_time: time,
                watermark,
                window: (from, to.saturating_add(1)),
                lateness: 0,
                reason: format!(
                    "join {}: the row came after the watermark {watermark} passed its time; \
                     the rows it could join with are no longer held",
                    self.plan.name
                ),
                record: crate::format::row_json(&rows.batch, row),
            });
        }
        if pairs.is_empty() {
            return Ok(None);
        }
        self.pairs(&pairs).map(Some)
    }

    /// The output rows of `pairs`.
    fn pairs(&self, pairs: &[(Kept, Kept)]) -> Result<Rows, OperatorError> {
        let side = |held: &Held, kept: &mut dyn Iterator<Item = Kept>| {
            let mut at: HashMap<u64, usize> = HashMap::new();
            let mut batches: Vec<&RecordBatch> = Vec::new();
            let picks: Vec<(usize, usize)> = kept
                .map(|k| {
                    let i = *at.entry(k.chunk).or_insert_with(|| {
                        batches.push(&held.chunks[&k.chunk].rows.batch);
                        batches.len() - 1
                    });
                    (i, k.row as usize)
                })
                .collect();
            interleave_record_batch(&batches, &picks).map_err(failed)
        };
        let left = side(&self.left, &mut pairs.iter().map(|(l, _)| *l))?;
        let right = side(&self.right, &mut pairs.iter().map(|(_, r)| *r))?;
        let mut columns = left.columns().to_vec();
        columns.extend(right.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.plan.schema.clone(), columns).map_err(failed)?;
        let times = Int64Array::from_iter_values(pairs.iter().map(|(l, r)| l.time.max(r.time)));
        let n = batch.num_rows();
        Ok(Rows::new(batch, times, UInt64Array::from(vec![0; n])))
    }

    fn flush(&mut self) -> OperatorResult {
        if !self.late.is_empty() {
            self.reserved.late(&self.late);
            self.late.clear();
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.down.on_batch(&mut self.out);
        self.out.clear();
        result
    }

    /// The rows held, the watermark, as bytes.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.watermark.to_le_bytes());
        for (held, schema) in [
            (&self.left, &self.plan.left_schema),
            (&self.right, &self.plan.right_schema),
        ] {
            let mut ipc = Vec::new();
            if let Some(rows) = held.gather()? {
                let mut fields = schema.fields().to_vec();
                fields.push(Arc::new(arrow::datatypes::Field::new(
                    "_time",
                    DataType::Int64,
                    false,
                )));
                let with_times = Arc::new(arrow::datatypes::Schema::new(fields));
                let mut columns = rows.batch.columns().to_vec();
                columns.push(Arc::new(rows.times.clone()));
                let batch = RecordBatch::try_new(with_times.clone(), columns).map_err(failed)?;
                let mut writer = StreamWriter::try_new(&mut ipc, &with_times).map_err(failed)?;
                writer.write(&batch).map_err(failed)?;
                writer.finish().map_err(failed)?;
            }
            out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
            out.extend_from_slice(&ipc);
        }
        Ok(out)
    }

    /// Loads a state [`JoinOp::snapshot`] wrote.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let damaged = || failed("the join's state is cut short");
        let mut at = 0usize;
        let word = |at: &mut usize| -> Result<[u8; 8], OperatorError> {
            let bytes = state.get(*at..*at + 8).ok_or_else(damaged)?;
            *at += 8;
            Ok(bytes.try_into().unwrap_or_default())
        };
        let version = u64::from_le_bytes(word(&mut at)?);
        if version != VERSION {
            return Err(failed(format!(
                "the join's state is version {version}; this build reads version {VERSION}"
            )));
        }
        self.watermark = i64::from_le_bytes(word(&mut at)?);
        if crate::fault::on(
            crate::fault::Fault::ForgetJoinState,
            std::path::Path::new(""),
        ) {
            return Ok(());
        }
        for right in [false, true] {
            let len = u64::from_le_bytes(word(&mut at)?) as usize;
            let bytes = state.get(at..at.saturating_add(len)).ok_or_else(damaged)?;
            at += len;
            if bytes.is_empty() {
                continue;
            }
            let reader = StreamReader::try_new(bytes, None).map_err(failed)?;
            for batch in reader {
                let batch = batch.map_err(failed)?;
                let last = batch.num_columns().checked_sub(1).ok_or_else(damaged)?;
                let times = batch
                    .column(last)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .cloned()
                    .ok_or_else(damaged)?;
                let schema = if right {
                    &self.plan.right_schema
                } else {
                    &self.plan.left_schema
                };
                let columns = batch.columns()[..last].to_vec();
                let data = RecordBatch::try_new(schema.clone(), columns).map_err(failed)?;
                let n = data.num_rows();
                let rows = Rows::new(data, times, UInt64Array::from(vec![0; n]));
                self.hold(right, rows)?;
            }
        }
        if at != state.len() {
            return Err(failed("the join's state has bytes after its end"));
        }
        Ok(())
    }

    /// Keeps rows restored from a checkpoint.
    fn hold(&mut self, right: bool, rows: Rows) -> Result<(), OperatorError> {
        let (keys, nulls) = self.plan.keys(right, &rows, &self.converter)?;
        let (left_margin, right_margin) = self.margins();
        let (own, margin) = if right {
            (&mut self.right, right_margin)
        } else {
            (&mut self.left, left_margin)
        };
        let kept: Vec<(u32, i64)> = (0..rows.len())
            .filter(|&row| !nulls[row])
            .map(|row| (row as u32, rows.times.value(row)))
            .collect();
        let latest = kept.iter().map(|(_, t)| *t).max().unwrap_or(i64::MIN);
        let id = own.next_id();
        own.hold(
            id,
            rows,
            keys,
            &kept,
            latest.saturating_add(margin).saturating_add(1),
        );
        Ok(())
    }
}

impl Operator<Sided> for JoinOp {
    fn on_batch(&mut self, batch: &mut Batch<Sided>) -> OperatorResult {
        for (sided, _) in batch.drain() {
            if sided.rows.is_empty() {
                continue;
            }
            if let Some(rows) = self.chunk(sided.right, sided.rows)? {
                let time = rows.max_time().unwrap_or(i64::MIN);
                self.out.push(rows, time);
            }
        }
        self.flush()
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.left.expire(watermark);
        self.right.expire(watermark);
        self.flush()?;
        self.down.on_watermark(watermark)
    }

    fn on_barrier(&mut self, barrier: sluice::Barrier) -> OperatorResult {
        self.flush()?;
        self.reserved.release();
        if let Some((checkpointing, key)) = self.checkpoint.clone() {
            let state = self.snapshot()?;
            checkpointing
                .report(barrier.id, vec![(key, state)])
                .map_err(|e| OperatorError::Failed(Box::new(e)))?;
        }
        self.down.on_barrier(barrier)
    }

    fn on_end(&mut self) -> OperatorResult {
        self.flush()?;
        self.reserved.release();
        self.down.on_end()
    }

    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}
