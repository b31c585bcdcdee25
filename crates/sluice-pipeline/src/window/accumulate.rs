//! DataFusion's row accumulators of a window: arguments taken per row,
//! updated, merged and evaluated.

use super::*;
use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::take;
use datafusion::common::ScalarValue;
use sluice::{OperatorError, OperatorResult};

/// The argument arrays of the rows at `indices`.
pub(super) fn take_args(
    args: &[Vec<ArrayRef>],
    indices: &[u32],
    len: usize,
) -> Result<Vec<Vec<ArrayRef>>, OperatorError> {
    if indices.len() == len {
        return Ok(args.to_vec());
    }
    let indices = UInt32Array::from(indices.to_vec());
    args.iter()
        .map(|per_agg| {
            per_agg
                .iter()
                .map(|a| take(a.as_ref(), &indices, None).map_err(failed))
                .collect()
        })
        .collect()
}

pub(super) fn update(accs: &mut Accs, arrays: &[Vec<ArrayRef>]) -> OperatorResult {
    for (acc, args) in accs.iter_mut().zip(arrays) {
        acc.update_batch(args).map_err(failed)?;
    }
    Ok(())
}

pub(super) fn evaluate(accs: &mut Accs) -> Result<Vec<ScalarValue>, OperatorError> {
    accs.iter_mut()
        .map(|a| a.evaluate().map_err(failed))
        .collect()
}
