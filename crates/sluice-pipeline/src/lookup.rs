//! Lookup joins: each row of a stream paired with the rows of a table read
//! whole when the pipeline starts (a file), by equal keys. No state, no
//! exchange: every worker holds the table.

use crate::join::key_rows;
use crate::operators::Counted;
use crate::rows::Rows;
use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use sluice::{Batch, Operator, OperatorError, OperatorResult};
use std::collections::HashMap;
use std::sync::Arc;

type Fast = ahash::RandomState;

fn failed(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Failed(error.to_string().into())
}

/// A lookup table's rows by key (Arrow's row format).
pub type TableIndex = HashMap<Box<[u8]>, Vec<u32>, Fast>;

/// A checked lookup join: a stream against a table read whole at start.
#[derive(Debug)]
pub struct LookupPlan {
    /// The transform's name.
    pub name: String,
    /// The stream looked up from.
    pub from: String,
    /// Its key columns.
    pub keys: Vec<usize>,
    /// The type both sides' keys are compared in.
    pub key_types: Vec<DataType>,
    /// The table's rows.
    pub table: RecordBatch,
    /// The table's rows by key (Arrow's row format of `key_types`).
    pub index: TableIndex,
    /// The output: the stream's columns, then the table's.
    pub schema: SchemaRef,
}

impl LookupPlan {
    /// Indexes `table` by its `keys` columns, cast to `key_types`.
    pub fn index(
        table: &RecordBatch,
        keys: &[usize],
        key_types: &[DataType],
    ) -> Result<TableIndex, OperatorError> {
        let converter = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())
            .map_err(failed)?;
        let (rows, nulls) = key_rows(table.columns(), keys, key_types, &converter)?;
        let mut index: HashMap<Box<[u8]>, Vec<u32>, Fast> = HashMap::default();
        for (row, key) in rows.iter().enumerate() {
            if nulls[row] {
                continue;
            }
            index
                .entry(key.as_ref().into())
                .or_default()
                .push(row as u32);
        }
        Ok(index)
    }
}

/// Pairs each row of a stream with the rows of a table of equal keys.
pub struct LookupOp {
    plan: Arc<LookupPlan>,
    converter: RowConverter,
    counting: Counted,
    out: Batch<Rows>,
    down: Box<dyn Operator<Rows>>,
}

impl LookupOp {
    /// A lookup of `plan` feeding `down`.
    pub fn new(
        plan: Arc<LookupPlan>,
        down: Box<dyn Operator<Rows>>,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            converter: RowConverter::new(
                plan.key_types.iter().cloned().map(SortField::new).collect(),
            )
            .map_err(failed)?,
            plan,
            counting: Counted::default(),
            out: Batch::new(),
            down,
        })
    }

    /// Counts its rows in `counting`.
    pub fn counted(mut self, counting: Counted) -> Self {
        self.counting = counting;
        self
    }

    fn chunk(&self, rows: &Rows) -> Result<Option<Rows>, OperatorError> {
        let (keys, nulls) = key_rows(
            rows.batch.columns(),
            &self.plan.keys,
            &self.plan.key_types,
            &self.converter,
        )?;
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for (row, key) in keys.iter().enumerate() {
            if nulls[row] {
                continue;
            }
            if let Some(matches) = self.plan.index.get(key.as_ref()) {
                for &m in matches {
                    mine.push(row as u32);
                    theirs.push(m);
                }
            }
        }
        if mine.is_empty() {
            return Ok(None);
        }
        let left = rows.take(&UInt32Array::from(mine)).map_err(failed)?;
        let right = arrow::compute::take_record_batch(&self.plan.table, &UInt32Array::from(theirs))
            .map_err(failed)?;
        let mut columns = left.batch.columns().to_vec();
        columns.extend(right.columns().iter().cloned());
        let batch = RecordBatch::try_new(self.plan.schema.clone(), columns).map_err(failed)?;
        Ok(Some(Rows {
            batch,
            times: left.times,
            lines: left.lines,
            watermark: left.watermark,
            read_at: left.read_at,
        }))
    }
}

impl Operator<Rows> for LookupOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        self.out.clear();
        for (rows, _) in batch.drain() {
            self.counting.counts.rows_in.add(rows.len() as u64);
            self.counting.counts.aggregated.add(rows.len() as u64);
            if let Some(judge) = &self.counting.judge {
                judge.accepted(rows.lines.values().iter().copied());
            }
            if let Some(found) = self.chunk(&rows)? {
                let time = found.max_time().unwrap_or(i64::MIN);
                self.out.push(found, time);
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
