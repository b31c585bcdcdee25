//! [`Rows`]: the event type of declarative pipelines, a chunk of rows in
//! an Arrow record batch with each row's event time and source line.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow::compute::{filter, filter_record_batch, take, take_record_batch};
use arrow::error::ArrowError;
use std::time::Instant;

/// A chunk of rows flowing through a declarative pipeline. In micro-batch
/// mode a chunk holds up to `batch_size` rows; in event mode, one.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The rows' fields.
    pub batch: RecordBatch,
    /// Each row's event time, in epoch milliseconds.
    pub times: Int64Array,
    /// Each row's line in the source (1-based; the row number for Parquet),
    /// for dead letters.
    pub lines: UInt64Array,
    /// The watermark of the reader that read the rows, when it read them
    /// (after the chunks before them; `i64::MIN` when not known): a window
    /// judges lateness against it, or against its own if that is later.
    /// So which events are late depends on their reader alone, not on how
    /// far the source's other readers are.
    pub watermark: i64,
    /// When the source read the chunk (for window results: the chunk
    /// whose watermark fired them). Set only when the dashboard is on, to
    /// measure end-to-end latency at the sinks.
    pub read_at: Option<Instant>,
}

impl Rows {
    /// Rows with their event times and lines.
    pub fn new(batch: RecordBatch, times: Int64Array, lines: UInt64Array) -> Self {
        debug_assert_eq!(batch.num_rows(), times.len());
        debug_assert_eq!(batch.num_rows(), lines.len());
        Self {
            batch,
            times,
            lines,
            watermark: i64::MIN,
            read_at: None,
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest event time, the chunk's time for watermarks.
    pub fn max_time(&self) -> Option<i64> {
        arrow::compute::max(&self.times)
    }

    /// The rows where `mask` is true.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Rows, ArrowError> {
        Ok(Rows {
            batch: filter_record_batch(&self.batch, mask)?,
            times: downcast(filter(&self.times, mask)?),
            lines: downcast(filter(&self.lines, mask)?),
            watermark: self.watermark,
            read_at: self.read_at,
        })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Result<Rows, ArrowError> {
        Ok(Rows {
            batch: take_record_batch(&self.batch, indices)?,
            times: downcast(take(&self.times, indices, None)?),
            lines: downcast(take(&self.lines, indices, None)?),
            watermark: self.watermark,
            read_at: self.read_at,
        })
    }

    /// `len` rows from `offset` (no copy).
    pub fn slice(&self, offset: usize, len: usize) -> Rows {
        Rows {
            batch: self.batch.slice(offset, len),
            times: self.times.slice(offset, len),
            lines: self.lines.slice(offset, len),
            watermark: self.watermark,
            read_at: self.read_at,
        }
    }

    /// The same rows with other fields (a projection).
    pub fn with_batch(&self, batch: RecordBatch) -> Rows {
        Rows {
            batch,
            times: self.times.clone(),
            lines: self.lines.clone(),
            watermark: self.watermark,
            read_at: self.read_at,
        }
    }
}

/// Arrow's kernels return `ArrayRef`; the arrays here have known types.
fn downcast<A: Array + Clone + 'static>(array: ArrayRef) -> A {
    array
        .as_any()
        .downcast_ref::<A>()
        .cloned()
        .unwrap_or_else(|| unreachable!("a kernel kept its input's type"))
}
