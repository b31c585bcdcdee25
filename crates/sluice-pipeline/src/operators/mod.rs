//! The row-by-row transforms: `filter`, `select` and `rule`, and the
//! operators that count streams and split chunks by key.

use crate::accounting::{Accounting, Count, TransformCounts};
use crate::fault::Fault;
use crate::format::{row_json, DeadLetter};
use crate::rows::Rows;
use crate::side_outputs::{Reserved, ReservedHandle};
use crate::sql::{evaluate_all, Evaluator, ScalarExpr};
use crate::telemetry::StreamWatch;
use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use sluice::{Batch, Operator, OperatorError, OperatorResult, Timestamp};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

/// The signals of an operator that holds dead letters until a barrier (see
/// [`ReservedHandle`]): it releases them at barriers and at the end before
/// passing those on; the other signals pass on by default.
macro_rules! release_reserved_at_barriers {
    () => {
        fn on_barrier(&mut self, barrier: sluice::Barrier) -> OperatorResult {
            self.reserved.release();
            self.down.on_barrier(barrier)
        }
        fn on_end(&mut self) -> OperatorResult {
            self.reserved.release();
            self.down.on_end()
        }
    };
}

/// Evaluates `exprs` on `rows`; rows where an expression fails become dead
/// letters from `origin`, counted in `counts` (and refused in `judge`, for
/// a reader of the input). Returns the surviving rows and the results.
pub fn evaluate_or_dead(
    exprs: &[&ScalarExpr],
    rows: &Rows,
    origin: &str,
    reserved: &ReservedHandle,
    counts: &Counted,
) -> (Rows, Vec<ArrayRef>) {
    let fns: Vec<Box<Evaluator>> = exprs
        .iter()
        .map(|e| {
            let e = (*e).clone();
            Box::new(move |b: &RecordBatch| e.evaluate(b)) as Box<Evaluator>
        })
        .collect();
    let refs: Vec<&Evaluator> = fns.iter().map(|f| f.as_ref()).collect();
    match evaluate_all(&refs, &rows.batch) {
        Ok(columns) => (rows.clone(), columns),
        Err(evaluated) => {
            let dead: Vec<DeadLetter> = evaluated
                .failed
                .iter()
                .map(|(row, reason)| DeadLetter {
                    origin: origin.to_string(),
                    line: rows.lines.value(*row as usize),
                    reason: reason.clone(),
                    record: row_json(&rows.batch, *row as usize),
                })
                .collect();
            counts.counts.dead_letter.add(dead.len() as u64);
            if let Some(judge) = &counts.judge {
                judge.refused(dead.iter().map(|d| d.line), true);
            }
            reserved.dead(&dead);
            let kept = UInt32Array::from(evaluated.ok_rows);
            let kept = rows.take(&kept).unwrap_or_else(|_| rows.slice(0, 0));
            (kept, evaluated.columns)
        }
    }
}

/// Where a transform counts its rows: its counts, and for a reader of the
/// input, the run's accounting, to which it gives a verdict per record.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    /// The transform's counts.
    pub counts: Arc<TransformCounts>,
    /// The run's accounting, when the transform reads the input.
    pub judge: Option<Arc<Accounting>>,
}

impl Counted {
    /// Counts `rows` arriving.
    fn arrived(&self, rows: &Rows) {
        self.counts.rows_in.add(rows.len() as u64);
    }

    /// A reader of the input accepted `rows`.
    fn accepted(&self, rows: &Rows) {
        if let Some(judge) = &self.judge {
            judge.accepted(rows.lines.values().iter().copied());
        }
    }
}

/// Keeps the rows where a predicate is true (null counts as false).
pub struct FilterOp {
    name: String,
    predicate: ScalarExpr,
    reserved: ReservedHandle,
    down: Box<dyn Operator<Rows>>,
    out: Batch<Rows>,
    counted: Counted,
    /// Test-only fault: the first rows filtered out are not counted.
    miscount: bool,
    /// Over a changelog, its `op` column: a failing update or delete passes
    /// on as a delete.
    changelog_op: Option<usize>,
}

impl FilterOp {
    /// A filter named `name`.
    pub fn new(
        name: String,
        predicate: ScalarExpr,
        reserved: Arc<Reserved>,
        down: Box<dyn Operator<Rows>>,
    ) -> Self {
        Self {
            name,
            predicate,
            reserved: ReservedHandle::new(reserved),
            down,
            out: Batch::new(),
            counted: Counted::default(),
            miscount: crate::fault::on(Fault::Miscount, std::path::Path::new("")),
            changelog_op: None,
        }
    }

    /// Filters a changelog whose `op` is column `op`: a row that fails the
    /// predicate deletes its key's row downstream (its `op` becomes
    /// `delete`), unless it is an insert, which is dropped.
    pub fn on_changelog(mut self, op: usize) -> Self {
        self.changelog_op = Some(op);
        self
    }

    /// Counts its rows in `counted`.
    pub fn counted(mut self, counted: Counted) -> Self {
        self.counted = counted;
        self
    }
}

/// The rows of `rows` where `mask` (a boolean column) is false or null.
fn keep_false(rows: &Rows, mask: &ArrayRef) -> Result<Rows, OperatorError> {
    let mask = mask
        .as_boolean_opt()
        .ok_or_else(|| OperatorError::Failed("a predicate did not return a boolean".into()))?;
    let not_true: arrow::array::BooleanArray = mask.iter().map(|v| Some(v != Some(true))).collect();
    rows.filter(&not_true)
        .map_err(|e| OperatorError::Failed(e.to_string().into()))
}

/// The rows of a changelog `rows` where `mask` is true, and the updates
/// and deletes where it is not, as deletes (column `op`).
fn retract_failing(rows: &Rows, mask: &ArrayRef, op: usize) -> Result<Rows, OperatorError> {
    use arrow::array::{BooleanArray, StringArray};
    let failed = |e: arrow::error::ArrowError| OperatorError::Failed(e.to_string().into());
    let mask = mask
        .as_boolean_opt()
        .ok_or_else(|| OperatorError::Failed("a predicate did not return a boolean".into()))?;
    let ops = rows
        .batch
        .column(op)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| OperatorError::Failed("a changelog's op is not text".into()))?;
    let passes: Vec<bool> = mask.iter().map(|v| v == Some(true)).collect();
    let keep: BooleanArray = passes
        .iter()
        .zip(ops.iter())
        .map(|(&pass, op)| Some(pass || op != Some("insert")))
        .collect();
    let kept = rows.filter(&keep).map_err(failed)?;
    let new_ops: StringArray = passes
        .iter()
        .zip(ops.iter())
        .filter(|(pass, op)| **pass || *op != Some("insert"))
        .map(|(&pass, op)| if pass { op } else { Some("delete") })
        .collect();
    let mut columns = kept.batch.columns().to_vec();
    columns[op] = Arc::new(new_ops);
    let batch = RecordBatch::try_new(kept.batch.schema(), columns).map_err(failed)?;
    Ok(Rows { batch, ..kept })
}

/// The rows of `rows` where `mask` (a boolean column) is true.
fn keep_true(rows: &Rows, mask: &ArrayRef) -> Result<Rows, OperatorError> {
    let mask = mask
        .as_boolean_opt()
        .ok_or_else(|| OperatorError::Failed("a predicate did not return a boolean".into()))?;
    rows.filter(mask)
        .map_err(|e| OperatorError::Failed(e.to_string().into()))
}

impl Operator<Rows> for FilterOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        self.out.clear();
        for (rows, time) in batch.drain() {
            self.counted.arrived(&rows);
            let (rows, columns) = evaluate_or_dead(
                &[&self.predicate],
                &rows,
                &self.name,
                &self.reserved,
                &self.counted,
            );
            self.counted.accepted(&rows);
            let Some(mask) = columns.first() else {
                continue;
            };
            let kept = match self.changelog_op {
                Some(op) => retract_failing(&rows, mask, op)?,
                None => keep_true(&rows, mask)?,
            };
            let filtered = (rows.len() - kept.len()) as u64;
            // The fault: the first rows dropped vanish from the counts.
            if !(filtered > 0 && std::mem::take(&mut self.miscount)) {
                self.counted.counts.filtered.add(filtered);
            }
            if !kept.is_empty() {
                self.out.push(kept, time);
            }
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.down.on_batch(&mut self.out)
    }
    release_reserved_at_barriers!();
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}

/// Computes new columns (`select`), or fires an action where a condition
/// holds (`rule`: a condition, then the columns to emit).
pub struct ProjectOp {
    name: String,
    condition: Option<ScalarExpr>,
    columns: Option<Vec<ScalarExpr>>,
    schema: SchemaRef,
    reserved: ReservedHandle,
    down: Box<dyn Operator<Rows>>,
    out: Batch<Rows>,
    counted: Counted,
}

impl ProjectOp {
    /// `condition` keeps rows; `columns` (in the order of `schema`)
    /// computes the output, or the input passes as it is when absent.
    pub fn new(
        name: String,
        condition: Option<ScalarExpr>,
        columns: Option<Vec<ScalarExpr>>,
        schema: SchemaRef,
        reserved: Arc<Reserved>,
        down: Box<dyn Operator<Rows>>,
    ) -> Self {
        Self {
            name,
            condition,
            columns,
            schema,
            reserved: ReservedHandle::new(reserved),
            down,
            out: Batch::new(),
            counted: Counted::default(),
        }
    }

    /// Counts its rows in `counted`.
    pub fn counted(mut self, counted: Counted) -> Self {
        self.counted = counted;
        self
    }

    fn apply(&self, rows: Rows) -> Result<Option<Rows>, OperatorError> {
        self.counted.arrived(&rows);
        let rows = match &self.condition {
            Some(condition) => {
                let (rows, columns) = evaluate_or_dead(
                    &[condition],
                    &rows,
                    &self.name,
                    &self.reserved,
                    &self.counted,
                );
                let Some(mask) = columns.first() else {
                    return Ok(None);
                };
                let kept = keep_true(&rows, mask)?;
                let filtered = rows.len() - kept.len();
                self.counted.counts.filtered.add(filtered as u64);
                if filtered > 0 && self.counted.judge.is_some() {
                    // Judged by the condition: accepted (and dropped).
                    let dropped = keep_false(&rows, mask)?;
                    self.counted.accepted(&dropped);
                }
                kept
            }
            None => rows,
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let Some(exprs) = &self.columns else {
            self.counted.accepted(&rows);
            return Ok(Some(rows));
        };
        let refs: Vec<&ScalarExpr> = exprs.iter().collect();
        let (rows, columns) =
            evaluate_or_dead(&refs, &rows, &self.name, &self.reserved, &self.counted);
        self.counted.accepted(&rows);
        if rows.is_empty() {
            return Ok(None);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| OperatorError::Failed(format!("{}: {e}", self.name).into()))?;
        Ok(Some(rows.with_batch(batch)))
    }
}

impl Operator<Rows> for ProjectOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        self.out.clear();
        for (rows, time) in batch.drain() {
            if let Some(rows) = self.apply(rows)? {
                self.out.push(rows, time);
            }
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.down.on_batch(&mut self.out)
    }
    release_reserved_at_barriers!();
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}

/// Counts the rows and chunks of a named stream for metrics, and for the
/// dashboard when it is on.
pub struct CountOp {
    stream: String,
    down: Box<dyn Operator<Rows>>,
    watch: Option<Arc<StreamWatch>>,
    /// Marks chunks with the time they were read (the source's stream).
    stamp: bool,
    /// The stream's rows, for the run's accounting.
    rows: Option<Arc<Count>>,
}

impl CountOp {
    /// Counts `stream`.
    pub fn new(stream: String, down: Box<dyn Operator<Rows>>) -> Self {
        Self {
            stream,
            down,
            watch: None,
            stamp: false,
            rows: None,
        }
    }

    /// Also counts the rows into `rows` (the run's accounting).
    pub fn counting(mut self, rows: Option<Arc<Count>>) -> Self {
        self.rows = rows;
        self
    }

    /// Also counts into `watch`; with `stamp`, marks each chunk with the
    /// time it passes (for the latency the sinks measure).
    pub fn with_watch(mut self, watch: Arc<StreamWatch>, stamp: bool) -> Self {
        self.watch = Some(watch);
        self.stamp = stamp;
        self
    }
}

impl Operator<Rows> for CountOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        let start = Instant::now();
        let rows: usize = batch.items().iter().map(Rows::len).sum();
        if let Some(count) = &self.rows {
            count.add(rows as u64);
        }
        let stream = self.stream.clone();
        metrics::counter!("sluice_records_total", "stream" => stream.clone())
            .increment(rows as u64);
        let mut largest = 0;
        for chunk in batch.items() {
            largest = largest.max(chunk.len());
            metrics::histogram!("sluice_batch_rows", "stream" => stream.clone())
                .record(chunk.len() as f64);
        }
        let (chunks, newest) = (batch.len(), batch.max_time());
        if self.stamp {
            for chunk in batch.parts_mut().0 {
                chunk.read_at.get_or_insert(start);
            }
        }
        let result = self.down.on_batch(batch);
        let took = start.elapsed();
        metrics::histogram!("sluice_batch_seconds", "stream" => stream).record(took.as_secs_f64());
        if let Some(watch) = &self.watch {
            watch.chunks(chunks, rows, largest, newest, took);
        }
        result
    }
    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        let lag_ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(watermark);
        metrics::gauge!("sluice_watermark_ms", "stream" => self.stream.clone())
            .set(watermark as f64);
        metrics::gauge!("sluice_watermark_lag_seconds", "stream" => self.stream.clone())
            .set(lag_ms as f64 / 1000.0);
        if let Some(watch) = &self.watch {
            watch.watermark(watermark);
        }
        self.down.on_watermark(watermark)
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}

/// Splits chunks by the hash of their key columns into one chunk per
/// worker, tagged with the worker, for an exchange.
pub struct SplitByKey {
    keys: Vec<usize>,
    workers: usize,
    converter: RowConverter,
    down: Box<dyn Operator<Routed>>,
    out: Batch<Routed>,
}

/// A chunk of rows bound for one worker.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The worker.
    pub worker: u64,
    /// The rows.
    pub rows: Rows,
}

impl SplitByKey {
    /// Splits by the columns `keys` over `workers`.
    pub fn new(
        keys: Vec<usize>,
        converter: RowConverter,
        workers: usize,
        down: Box<dyn Operator<Routed>>,
    ) -> Self {
        Self {
            keys,
            workers: workers.max(1),
            converter,
            down,
            out: Batch::new(),
        }
    }
}

/// A hasher that is the same in every process (for routing).
fn stable_hash(bytes: &[u8]) -> u64 {
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(bytes)
}

/// The rows of `rows` by the worker of `workers` their `keys` hash to (the
/// chunk itself when every row goes to one).
pub fn split_by_worker(
    rows: &Rows,
    keys: &arrow::row::Rows,
    workers: usize,
) -> Result<Vec<(u64, Rows)>, OperatorError> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<u32>> = vec![Vec::new(); workers];
    for (row, key) in keys.iter().enumerate() {
        let worker = (stable_hash(key.as_ref()) % workers as u64) as usize;
        per_worker[worker].push(row as u32);
    }
    let mut parts = Vec::new();
    for (worker, indices) in per_worker.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        let part = if indices.len() == rows.len() {
            rows.clone()
        } else {
            rows.take(&UInt32Array::from(indices))
                .map_err(|e| OperatorError::Failed(e.to_string().into()))?
        };
        parts.push((worker as u64, part));
    }
    Ok(parts)
}

impl Operator<Rows> for SplitByKey {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        self.out.clear();
        for (rows, time) in batch.drain() {
            let columns: Vec<ArrayRef> = self
                .keys
                .iter()
                .map(|&k| rows.batch.column(k).clone())
                .collect();
            let keys = self
                .converter
                .convert_columns(&columns)
                .map_err(|e| OperatorError::Failed(e.to_string().into()))?;
            for (worker, rows) in split_by_worker(&rows, &keys, self.workers)? {
                self.out.push(Routed { worker, rows }, time);
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
