//! A running aggregate of a changelog: each row replaces the earlier row of
//! its changelog key (an update) or removes it (a delete), so the aggregate
//! takes the earlier row's values back out of its group (`retract_batch`)
//! before it adds the new ones. Its own output is a changelog per group
//! (insert, update, and delete when a group loses its last row).
//!
//! Only aggregates that can take values back out are accepted (`count`,
//! `sum`, `avg`, and the others whose DataFusion accumulator retracts any
//! value): a maximum cannot, without every value kept.

use crate::checkpoint::Checkpointing;
use crate::operators::Counted;
use crate::rows::Rows;
use crate::sql::AggregateExpr;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};
use datafusion::logical_expr::Accumulator;
use datafusion::scalar::ScalarValue;
use sluice::{Batch, Operator, OperatorError, OperatorResult, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;

type Fast = ahash::RandomState;

/// The version of the checkpointed state.
const VERSION: u64 = 2;

fn failed(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Failed(error.to_string().into())
}

/// A checked aggregate of a changelog.
pub struct RetractPlan {
    /// The transform's name.
    pub name: String,
    /// The group key columns of the input.
    pub keys: Vec<usize>,
    /// Their types.
    pub key_fields: Vec<SortField>,
    /// The columns that identify a row of the changelog read.
    pub by: Vec<usize>,
    /// Their types.
    pub by_fields: Vec<SortField>,
    /// The input's `op` column.
    pub op: usize,
    /// Output names and aggregates (each can retract).
    pub aggregates: Vec<(String, AggregateExpr)>,
    /// keys, `op`, `revision`, aggregates.
    pub output: SchemaRef,
}

impl RetractPlan {
    /// A new accumulator of aggregate `i` that can take values back out.
    pub fn accumulator(&self, i: usize) -> Result<Box<dyn Accumulator>, OperatorError> {
        self.aggregates[i]
            .1
            .retracting_accumulator()
            .map_err(failed)
    }
}

/// One group: its accumulators, the rows in it, its next revision, and
/// whether a consumer holds its row (it was inserted and not deleted since).
/// A group is kept when it loses its last row, so that its revisions go on
/// without a gap if it comes back.
struct Group {
    accs: Vec<Box<dyn Accumulator>>,
    rows: u64,
    revision: u32,
    live: bool,
}

/// The latest row of a changelog key: its group and its aggregates'
/// argument values.
struct Held {
    group: Box<[u8]>,
    args: Vec<Vec<ScalarValue>>,
}

/// The aggregate of a changelog, on one instance.
pub struct RetractOp {
    plan: Arc<RetractPlan>,
    /// The group keys' converter (none without keys: one group).
    keys: Option<RowConverter>,
    /// The changelog key's converter (none without one: a single row).
    by: Option<RowConverter>,
    rows: HashMap<Box<[u8]>, Held, Fast>,
    groups: HashMap<Box<[u8]>, Group, Fast>,
    touched: indexmap::IndexSet<Box<[u8]>, Fast>,
    latest: i64,
    watermark: i64,
    counting: Counted,
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    out: Batch<Rows>,
    down: Box<dyn Operator<Rows>>,
}

impl RetractOp {
    /// An aggregate of `plan` feeding `down`.
    pub fn new(
        plan: Arc<RetractPlan>,
        down: Box<dyn Operator<Rows>>,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            keys: if plan.keys.is_empty() {
                None
            } else {
                Some(RowConverter::new(plan.key_fields.clone()).map_err(failed)?)
            },
            by: if plan.by.is_empty() {
                None
            } else {
                Some(RowConverter::new(plan.by_fields.clone()).map_err(failed)?)
            },
            plan,
            rows: HashMap::default(),
            groups: HashMap::default(),
            touched: indexmap::IndexSet::default(),
            latest: i64::MIN,
            watermark: i64::MIN,
            counting: Counted::default(),
            checkpoint: None,
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

    /// Fresh accumulators, one per aggregate.
    fn fresh(&self) -> Result<Vec<Box<dyn Accumulator>>, OperatorError> {
        (0..self.plan.aggregates.len())
            .map(|i| self.plan.accumulator(i))
            .collect()
    }

    /// The group of `key`, made (or, if it was deleted, given accumulators
    /// again) when needed.
    fn group(&mut self, key: &[u8]) -> Result<&mut Group, OperatorError> {
        let needs_accs = self
            .groups
            .get(key)
            .is_none_or(|g| g.accs.is_empty() && !self.plan.aggregates.is_empty());
        if needs_accs {
            let accs = self.fresh()?;
            let group = self.groups.entry(key.into()).or_insert_with(|| Group {
                accs: Vec::new(),
                rows: 0,
                revision: 0,
                live: false,
            });
            group.accs = accs;
        }
        self.groups
            .get_mut(key)
            .ok_or_else(|| failed("a group vanished"))
    }

    /// Adds (or, with `retract`, takes out) one row's argument values.
    fn apply(&mut self, group: &[u8], args: &[Vec<ScalarValue>], retract: bool) -> OperatorResult {
        let entry = self.group(group)?;
        for (acc, values) in entry.accs.iter_mut().zip(args) {
            let arrays = values
                .iter()
                .map(ScalarValue::to_array)
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(failed)?;
            if retract {
                acc.retract_batch(&arrays).map_err(failed)?;
            } else {
                acc.update_batch(&arrays).map_err(failed)?;
            }
        }
        if retract {
            entry.rows = entry.rows.saturating_sub(1);
        } else {
            entry.rows += 1;
        }
        // A group that lost its last row starts again from nothing: what
        // rounding left in its sums must not reach the rows of its return
        // (a restored run would not have it).
        if entry.rows == 0 {
            entry.accs = Vec::new();
            self.group(group)?;
        }
        if !self.touched.contains(group) {
            self.touched.insert(group.into());
        }
        Ok(())
    }

    fn chunk(&mut self, rows: &Rows) -> OperatorResult {
        let columns = |indices: &[usize]| -> Vec<ArrayRef> {
            indices
                .iter()
                .map(|&c| rows.batch.column(c).clone())
                .collect()
        };
        let keys = match &self.keys {
            Some(converter) => Some(
                converter
                    .convert_columns(&columns(&self.plan.keys))
                    .map_err(failed)?,
            ),
            None => None,
        };
        let by = match &self.by {
            Some(converter) => Some(
                converter
                    .convert_columns(&columns(&self.plan.by))
                    .map_err(failed)?,
            ),
            None => None,
        };
        let ops = rows
            .batch
            .column(self.plan.op)
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| failed("a changelog's op is not text"))?;
        let args: Vec<Vec<ArrayRef>> = self
            .plan
            .aggregates
            .iter()
            .map(|(_, a)| a.arguments(&rows.batch))
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        for row in 0..rows.len() {
            self.latest = self.latest.max(rows.times.value(row));
            let id: Box<[u8]> = by
                .as_ref()
                .map_or_else(|| Box::from([]), |b| b.row(row).as_ref().into());
            if let Some(old) = self.rows.remove(&id) {
                self.apply(&old.group, &old.args, true)?;
            }
            if ops.is_valid(row) && ops.value(row) == "delete" {
                continue;
            }
            let values = args
                .iter()
                .map(|arrays| {
                    arrays
                        .iter()
                        .map(|a| ScalarValue::try_from_array(a, row))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed)?;
            let group: Box<[u8]> = keys
                .as_ref()
                .map_or_else(|| Box::from([]), |k| k.row(row).as_ref().into());
            self.apply(&group, &values, false)?;
            self.rows.insert(
                id,
                Held {
                    group,
                    args: values,
                },
            );
        }
        Ok(())
    }

    /// The rows of the groups this batch changed.
    fn emit(&mut self) -> OperatorResult {
        if self.touched.is_empty() {
            return Ok(());
        }
        let touched = std::mem::take(&mut self.touched);
        let mut key_rows = Vec::with_capacity(touched.len());
        let (mut ops, mut revisions) = (Vec::new(), Vec::new());
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.plan.aggregates.len()];
        for key in &touched {
            let Some(group) = self.groups.get_mut(key) else {
                continue;
            };
            let op = match (group.rows, group.live) {
                (0, false) => {
                    // Never emitted: forgotten; deleted before: only its
                    // revision is kept.
                    if group.revision == 0 {
                        self.groups.remove(key);
                    } else {
                        group.accs = Vec::new();
                    }
                    continue;
                }
                (0, true) => "delete",
                (_, false) => "insert",
                (_, true) => "update",
            };
            for (acc, out) in group.accs.iter_mut().zip(values.iter_mut()) {
                out.push(acc.evaluate().map_err(failed)?);
            }
            ops.push(op);
            revisions.push(group.revision);
            group.revision = group.revision.checked_add(1).ok_or_else(|| {
                failed(format!(
                    "{}: a group was updated more than {} times; its revision cannot grow",
                    self.plan.name,
                    u32::MAX
                ))
            })?;
            group.live = op != "delete";
            if op == "delete" {
                // Its accumulators are freed; its revision goes on.
                group.accs = Vec::new();
            }
            key_rows.push(key.clone());
        }
        if ops.is_empty() {
            return Ok(());
        }
        let mut columns = match &self.keys {
            Some(converter) => {
                let parser = converter.parser();
                converter
                    .convert_rows(key_rows.iter().map(|k| parser.parse(k)))
                    .map_err(failed)?
            }
            None => Vec::new(),
        };
        columns.push(Arc::new(StringArray::from(ops)));
        columns.push(Arc::new(UInt32Array::from(revisions)));
        for (i, vals) in values.into_iter().enumerate() {
            let ty = self
                .plan
                .output
                .field(self.plan.keys.len() + 2 + i)
                .data_type();
            let array = ScalarValue::iter_to_array(vals).map_err(failed)?;
            let array = if array.data_type() == ty {
                array
            } else {
                arrow::compute::cast(&array, ty).map_err(failed)?
            };
            columns.push(array);
        }
        let batch = RecordBatch::try_new(self.plan.output.clone(), columns).map_err(failed)?;
        let n = batch.num_rows();
        let time = self.latest.max(self.watermark);
        let rows = Rows::new(
            batch,
            Int64Array::from(vec![time; n]),
            UInt64Array::from(vec![0; n]),
        );
        self.out.clear();
        self.out.push(rows, time);
        self.down.on_batch(&mut self.out)
    }

    /// The latest row of every changelog key, and each group's revision.
    fn snapshot(&mut self) -> Result<Vec<u8>, OperatorError> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.latest.to_le_bytes());
        let ids: Vec<&[u8]> = self.rows.keys().map(AsRef::as_ref).collect();
        let groups: Vec<&[u8]> = self.rows.values().map(|h| h.group.as_ref()).collect();
        let mut fields = vec![
            Field::new("by", DataType::Binary, false),
            Field::new("group", DataType::Binary, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from(ids)),
            Arc::new(BinaryArray::from(groups)),
        ];
        if let Some(first) = self.rows.values().next() {
            for (j, args) in first.args.iter().enumerate() {
                for k in 0..args.len() {
                    let values = self.rows.values().map(|h| h.args[j][k].clone());
                    let array = ScalarValue::iter_to_array(values).map_err(failed)?;
                    fields.push(Field::new(
                        format!("a{j}_{k}"),
                        array.data_type().clone(),
                        true,
                    ));
                    columns.push(array);
                }
            }
        }
        write_ipc(&mut out, fields, columns)?;
        // Each group's accumulators as they are (restored by merging them
        // into fresh ones: sums come back to the bit).
        let mut names: Vec<&[u8]> = Vec::with_capacity(self.groups.len());
        let mut revisions = Vec::with_capacity(self.groups.len());
        let mut live = Vec::with_capacity(self.groups.len());
        let mut counts = Vec::with_capacity(self.groups.len());
        let mut states: Vec<Vec<Vec<ScalarValue>>> = vec![Vec::new(); self.plan.aggregates.len()];
        let empty: Vec<Vec<ScalarValue>> = self
            .fresh()?
            .iter_mut()
            .map(|acc| acc.state().map_err(failed))
            .collect::<Result<_, _>>()?;
        for (name, group) in self.groups.iter_mut() {
            names.push(name.as_ref());
            revisions.push(group.revision);
            live.push(group.live);
            counts.push(group.rows);
            if group.accs.is_empty() {
                // A deleted group: the state of fresh accumulators.
                for (state, out) in empty.iter().zip(states.iter_mut()) {
                    out.push(state.clone());
                }
                continue;
            }
            for (acc, out) in group.accs.iter_mut().zip(states.iter_mut()) {
                out.push(acc.state().map_err(failed)?);
            }
        }
        let mut fields = vec![
            Field::new("group", DataType::Binary, false),
            Field::new("revision", DataType::UInt32, false),
            Field::new("live", DataType::Boolean, false),
            Field::new("rows", DataType::UInt64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from(names)),
            Arc::new(UInt32Array::from(revisions)),
            Arc::new(BooleanArray::from(live)),
            Arc::new(UInt64Array::from(counts)),
        ];
        for (j, per_group) in states.iter().enumerate() {
            let width = per_group.first().map_or(0, Vec::len);
            for k in 0..width {
                let values = per_group.iter().map(|state| state[k].clone());
                let array = ScalarValue::iter_to_array(values).map_err(failed)?;
                fields.push(Field::new(
                    format!("s{j}_{k}"),
                    array.data_type().clone(),
                    true,
                ));
                columns.push(array);
            }
        }
        write_ipc(&mut out, fields, columns)?;
        Ok(out)
    }

    /// Loads a state [`RetractOp::snapshot`] wrote: the rows are added
    /// again to fresh groups, which then take their revisions back.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let damaged = || failed("the aggregate's state is cut short");
        let header = state.get(..16).ok_or_else(damaged)?;
        let version = u64::from_le_bytes(header[..8].try_into().map_err(failed)?);
        if version != VERSION {
            return Err(failed(format!(
                "the aggregate's state is version {version}; this build reads version {VERSION}"
            )));
        }
        self.latest = i64::from_le_bytes(header[8..].try_into().map_err(failed)?);
        if crate::fault::on(
            crate::fault::Fault::ForgetChangelogState,
            std::path::Path::new(""),
        ) {
            return Ok(());
        }
        let mut at = 16;
        let held = read_ipc(state, &mut at)?;
        let meta = read_ipc(state, &mut at)?;
        if at != state.len() {
            return Err(failed("the aggregate's state has bytes after its end"));
        }
        let binary = |batch: &RecordBatch, i: usize| {
            batch
                .columns()
                .get(i)
                .ok_or_else(damaged)?
                .as_any()
                .downcast_ref::<BinaryArray>()
                .cloned()
                .ok_or_else(damaged)
        };
        let widths: Vec<usize> = self
            .plan
            .aggregates
            .iter()
            .map(|(_, a)| a.args.len())
            .collect();
        for batch in meta.iter().filter(|b| b.num_rows() > 0) {
            let names = binary(batch, 0)?;
            let column = |i: usize| batch.columns().get(i).cloned().ok_or_else(damaged);
            let revisions = column(1)?
                .as_any()
                .downcast_ref::<UInt32Array>()
                .cloned()
                .ok_or_else(damaged)?;
            let live = column(2)?
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .ok_or_else(damaged)?;
            let counts = column(3)?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .cloned()
                .ok_or_else(damaged)?;
            for row in 0..batch.num_rows() {
                let group = self.group(names.value(row))?;
                group.revision = revisions.value(row);
                group.live = live.value(row);
                group.rows = counts.value(row);
                let mut at = 4;
                for acc in group.accs.iter_mut() {
                    let width = acc.state().map_err(failed)?.len();
                    let state: Vec<ArrayRef> = (at..at + width)
                        .map(|i| column(i).map(|a| a.slice(row, 1)))
                        .collect::<Result<_, _>>()?;
                    acc.merge_batch(&state).map_err(failed)?;
                    at += width;
                }
                if at != batch.num_columns() {
                    return Err(damaged());
                }
                if group.rows == 0 {
                    group.accs = Vec::new();
                }
            }
        }
        // An empty state has no argument or accumulator columns.
        for batch in held.iter().filter(|b| b.num_rows() > 0) {
            let (ids, groups) = (binary(batch, 0)?, binary(batch, 1)?);
            if batch.num_columns() != 2 + widths.iter().sum::<usize>() {
                return Err(damaged());
            }
            for row in 0..batch.num_rows() {
                let mut column = 2;
                let mut args = Vec::with_capacity(widths.len());
                for &width in &widths {
                    let mut values = Vec::with_capacity(width);
                    for _ in 0..width {
                        values.push(
                            ScalarValue::try_from_array(batch.column(column), row)
                                .map_err(failed)?,
                        );
                        column += 1;
                    }
                    args.push(values);
                }
                let group: Box<[u8]> = groups.value(row).into();
                // A row belongs to a group that holds it.
                if self.groups.get(&group).is_none_or(|g| g.rows == 0) {
                    return Err(damaged());
                }
                self.rows
                    .insert(ids.value(row).into(), Held { group, args });
            }
        }
        self.touched.clear();
        Ok(())
    }
}

fn write_ipc(out: &mut Vec<u8>, fields: Vec<Field>, columns: Vec<ArrayRef>) -> OperatorResult {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(failed)?;
    let mut ipc = Vec::new();
    let mut writer = StreamWriter::try_new(&mut ipc, &schema).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    writer.finish().map_err(failed)?;
    drop(writer);
    out.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
    out.extend_from_slice(&ipc);
    Ok(())
}

fn read_ipc(state: &[u8], at: &mut usize) -> Result<Vec<RecordBatch>, OperatorError> {
    let damaged = || failed("the aggregate's state is cut short");
    let len = state.get(*at..*at + 8).ok_or_else(damaged)?;
    let len = u64::from_le_bytes(len.try_into().map_err(failed)?) as usize;
    *at += 8;
    let bytes = state.get(*at..at.saturating_add(len)).ok_or_else(damaged)?;
    *at += len;
    StreamReader::try_new(bytes, None)
        .map_err(failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)
}

impl Operator<Rows> for RetractOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        for (rows, _) in batch.drain() {
            self.counting.counts.rows_in.add(rows.len() as u64);
            self.counting.counts.aggregated.add(rows.len() as u64);
            self.chunk(&rows)?;
        }
        self.emit()
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        self.watermark = self.watermark.max(watermark);
        self.down.on_watermark(watermark)
    }

    fn on_barrier(&mut self, barrier: sluice::Barrier) -> OperatorResult {
        if let Some((checkpointing, key)) = self.checkpoint.clone() {
            let state = self.snapshot()?;
            checkpointing
                .report(barrier.id, vec![(key, state)])
                .map_err(|e| OperatorError::Failed(Box::new(e)))?;
        }
        self.down.on_barrier(barrier)
    }

    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Functions, SqlContext};
    use std::sync::Mutex;

    /// `sum(v)` by `g` of a changelog identified by `k`.
    fn plan() -> Arc<RetractPlan> {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("g", DataType::Utf8, false),
            Field::new("op", DataType::Utf8, false),
            Field::new("revision", DataType::UInt32, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let sql = SqlContext::new(input, &Functions::new()).unwrap();
        let output = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("op", DataType::Utf8, false),
            Field::new("revision", DataType::UInt32, false),
            Field::new("s", DataType::Float64, true),
        ]));
        Arc::new(RetractPlan {
            name: "sums".into(),
            keys: vec![1],
            key_fields: vec![SortField::new(DataType::Utf8)],
            by: vec![0],
            by_fields: vec![SortField::new(DataType::Utf8)],
            op: 2,
            aggregates: vec![("s".into(), sql.aggregate("sum(v)").unwrap())],
            output,
        })
    }

    /// Keeps what it is given, as JSON lines.
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl Operator<Rows> for Collect {
        fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
            for (rows, _) in batch.drain() {
                for row in 0..rows.len() {
                    let line = crate::format::row_json(&rows.batch, row);
                    self.0.lock().unwrap().push(line);
                }
            }
            Ok(())
        }
        fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
            None
        }
    }

    fn op() -> (RetractOp, Arc<Mutex<Vec<String>>>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let op = RetractOp::new(plan(), Box::new(Collect(out.clone()))).unwrap();
        (op, out)
    }

    /// One changelog row per batch: (key, group, op, value).
    fn feed(op: &mut RetractOp, rows: &[(&str, &str, &str, f64)]) {
        for (k, g, o, v) in rows {
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("k", DataType::Utf8, false),
                    Field::new("g", DataType::Utf8, false),
                    Field::new("op", DataType::Utf8, false),
                    Field::new("revision", DataType::UInt32, false),
                    Field::new("v", DataType::Float64, true),
                ])),
                vec![
                    Arc::new(StringArray::from(vec![*k])),
                    Arc::new(StringArray::from(vec![*g])),
                    Arc::new(StringArray::from(vec![*o])),
                    Arc::new(UInt32Array::from(vec![0])),
                    Arc::new(arrow::array::Float64Array::from(vec![*v])),
                ],
            )
            .unwrap();
            let rows = Rows::new(batch, Int64Array::from(vec![0]), UInt64Array::from(vec![1]));
            let mut batch = Batch::new();
            batch.push(rows, 0);
            op.on_batch(&mut batch).unwrap();
        }
    }

    #[test]
    fn an_empty_state_is_restored() {
        let (mut empty, _) = op();
        let state = empty.snapshot().unwrap();
        let (mut restored, out) = op();
        restored.restore(&state).unwrap();
        feed(&mut restored, &[("a", "x", "insert", 1.5)]);
        assert_eq!(out.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_restored_state_gives_the_same_rows_to_the_bit() {
        // Values whose float sums depend on the order of their additions
        // and retractions.
        let before = [
            // z empties with a rounding leftover, and comes back after.
            ("e", "z", "insert", 1e16),
            ("f", "z", "insert", 1.0),
            ("e", "z", "delete", 1e16),
            ("f", "z", "delete", 1.0),
            ("a", "x", "insert", 0.1),
            ("b", "x", "insert", 0.2),
            ("c", "y", "insert", 1e16),
            ("a", "x", "update", 0.3),
            ("c", "x", "update", 0.7),
            ("b", "x", "delete", 0.2),
        ];
        let after = [
            ("d", "x", "insert", 0.1),
            ("a", "y", "update", 3.3),
            ("c", "x", "delete", 0.7),
            ("c", "x", "insert", 0.05),
            ("g", "z", "insert", 5.0),
        ];
        let (mut whole, whole_out) = op();
        feed(&mut whole, &before);
        let state = whole.snapshot().unwrap();
        let (mut restored, restored_out) = op();
        restored.restore(&state).unwrap();
        let seen = whole_out.lock().unwrap().len();
        feed(&mut whole, &after);
        feed(&mut restored, &after);
        let whole_rows = whole_out.lock().unwrap()[seen..].to_vec();
        assert_eq!(*restored_out.lock().unwrap(), whole_rows);
        assert!(
            whole_rows
                .iter()
                .any(|r| r.contains("\"g\":\"z\"") && r.contains("\"s\":5.0")),
            "{whole_rows:?}"
        );
        assert!(whole_rows
            .iter()
            .any(|r| r.contains("\"op\":\"delete\"") || r.contains("\"op\":\"update\"")));
    }
}
