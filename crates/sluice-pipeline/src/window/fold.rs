//! The aggregates of session and count windows, by slot: every open
//! session (or count window being filled) holds a slot, and each aggregate
//! keeps the values of all slots in flat vectors (`count`, `sum`, `avg`,
//! `min`, `max` of 64-bit numbers), or one DataFusion accumulator per slot
//! for any other function.
//!
//! A batch's rows are added to their windows' slots in one pass per
//! aggregate ([`Slots::add`], [`Slots::apply`]); the windows that fire are
//! read from their slots together and the slots reused, so no event
//! allocates. The
//! folds keep DataFusion's semantics (and its state columns, so a
//! checkpoint reads back either way): sums wrap, floats are added one
//! event at a time (in event order, but for an event that bridges sessions:
//! their partial sums are added), minimum and maximum of floats follow
//! `total_cmp` (NaN above everything), nulls are skipped and an aggregate
//! of no value is null.

use super::failed;
use crate::sql::{AggregateExpr, Basic};
use arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, Float64Array, Int64Array,
    PrimitiveArray, UInt32Array, UInt64Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use sluice::{OperatorError, OperatorResult};
use std::sync::Arc;

/// One aggregate's values for every slot.
trait Fold: Send {
    /// Makes room for `slots` slots.
    fn grow(&mut self, slots: usize);
    /// Empties `slot`.
    fn clear(&mut self, slot: usize);
    /// Adds row `rows[i]` of `args` to slot `slots[i]`, in that order.
    fn update(&mut self, args: &[ArrayRef], rows: &[u32], slots: &[u32]) -> OperatorResult;
    /// Adds what slot `from` holds to slot `into`.
    fn merge(&mut self, into: usize, from: usize) -> OperatorResult;
    /// The value of each of `slots`.
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef, OperatorError>;
    /// The state of each of `slots`: DataFusion's state columns.
    fn state(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError>;
    /// How many state columns it has (None: as many as they come).
    fn width(&self) -> Option<usize>;
    /// Adds row `row` of state columns to `slot`.
    fn restore(&mut self, slot: usize, state: &[ArrayRef], row: usize) -> OperatorResult;
}

/// The aggregates of every open session, by slot.
pub(super) struct Slots {
    folds: Vec<Box<dyn Fold>>,
    /// Slots made so far.
    len: usize,
    /// Slots of sessions gone, to reuse.
    free: Vec<u32>,
    /// Rows added since the last [`Slots::apply`], and their slots.
    rows: Vec<u32>,
    slots: Vec<u32>,
}

impl Slots {
    /// Slots for `aggregates`.
    pub(super) fn new(aggregates: &[(String, AggregateExpr)]) -> Self {
        let folds = aggregates
            .iter()
            .map(|(_, a)| -> Box<dyn Fold> {
                match &a.basic {
                    Some(Basic::Count { rows }) => Box::new(Counting {
                        n: Vec::new(),
                        rows: *rows,
                    }),
                    Some(Basic::Avg) => Box::new(Averaging::default()),
                    Some(Basic::Sum(t)) => numbers(t, Op::Sum),
                    Some(Basic::Min(t)) => numbers(t, Op::Min),
                    Some(Basic::Max(t)) => numbers(t, Op::Max),
                    None => Box::new(Accumulators {
                        aggregate: a.clone(),
                        accs: Vec::new(),
                    }),
                }
            })
            .collect();
        Self {
            folds,
            len: 0,
            free: Vec::new(),
            rows: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// An empty slot.
    pub(super) fn take(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        let slot = self.len as u32;
        self.len += 1;
        let len = self.len;
        self.folds.iter_mut().for_each(|f| f.grow(len));
        slot
    }

    /// Empties `slot` and gives it back (its window is gone, read if it
    /// fired; none of its rows wait for [`Slots::apply`]).
    pub(super) fn give_back(&mut self, slot: u32) {
        self.folds.iter_mut().for_each(|f| f.clear(slot as usize));
        self.free.push(slot);
    }

    /// Adds row `row` to `slot` at the next [`Slots::apply`].
    pub(super) fn add(&mut self, row: usize, slot: u32) {
        self.rows.push(row as u32);
        self.slots.push(slot);
    }

    /// Adds the rows added since the last call, from `args`.
    pub(super) fn apply(&mut self, args: &[Vec<ArrayRef>]) -> OperatorResult {
        if self.rows.is_empty() {
            return Ok(());
        }
        for (fold, args) in self.folds.iter_mut().zip(args) {
            fold.update(args, &self.rows, &self.slots)?;
        }
        self.rows.clear();
        self.slots.clear();
        Ok(())
    }

    /// Adds slot `from` to slot `into` (rows added before included), and
    /// gives `from` back.
    pub(super) fn merge(&mut self, args: &[Vec<ArrayRef>], into: u32, from: u32) -> OperatorResult {
        self.apply(args)?;
        for fold in &mut self.folds {
            fold.merge(into as usize, from as usize)?;
        }
        self.give_back(from);
        Ok(())
    }

    /// The values of `slots`, one array per aggregate (rows added since
    /// the last [`Slots::apply`] not included).
    pub(super) fn evaluate(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        self.folds.iter_mut().map(|f| f.evaluate(slots)).collect()
    }

    /// The state of `slots`: how many columns each aggregate has, and the
    /// columns.
    pub(super) fn state(
        &mut self,
        slots: &[u32],
    ) -> Result<(Vec<usize>, Vec<ArrayRef>), OperatorError> {
        let mut widths = Vec::with_capacity(self.folds.len());
        let mut columns = Vec::new();
        for fold in &mut self.folds {
            let state = fold.state(slots)?;
            widths.push(state.len());
            columns.extend(state);
        }
        Ok((widths, columns))
    }

    /// A slot holding row `row` of state columns written by
    /// [`Slots::state`] (or by DataFusion's accumulators).
    pub(super) fn restore(
        &mut self,
        widths: &[usize],
        state: &[ArrayRef],
        row: usize,
    ) -> crate::error::Result<u32> {
        let slot = self.take();
        let mut at = 0;
        for (fold, &w) in self.folds.iter_mut().zip(widths) {
            let damaged = |why: &str| crate::error::Error::damaged(why.to_string());
            if fold.width().is_some_and(|own| own != w) {
                return Err(damaged(
                    "a session's state has columns of another aggregate",
                ));
            }
            let columns = state
                .get(at..at + w)
                .ok_or_else(|| damaged("a session's state is short"))?;
            fold.restore(slot as usize, columns, row)
                .map_err(|e| damaged(&e.to_string()))?;
            at += w;
        }
        Ok(slot)
    }
}

/// `count(*)` or `count(x)`.
struct Counting {
    n: Vec<i64>,
    /// Every row counts (`count(*)`), not only non-null values.
    rows: bool,
}

impl Fold for Counting {
    fn grow(&mut self, slots: usize) {
        self.n.resize(slots, 0);
    }
    fn clear(&mut self, slot: usize) {
        self.n[slot] = 0;
    }
    fn update(&mut self, args: &[ArrayRef], rows: &[u32], slots: &[u32]) -> OperatorResult {
        // Nulls as DataFusion counts them (a dictionary's null values too).
        let nulls = args
            .first()
            .filter(|_| !self.rows)
            .and_then(|c| c.logical_nulls());
        for (&row, &slot) in rows.iter().zip(slots) {
            let counts = nulls.as_ref().is_none_or(|n| n.is_valid(row as usize));
            self.n[slot as usize] += i64::from(counts);
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, from: usize) -> OperatorResult {
        self.n[into] += self.n[from];
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef, OperatorError> {
        Ok(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|&s| self.n[s as usize]),
        )))
    }
    fn state(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        Ok(vec![self.evaluate(slots)?])
    }
    fn width(&self) -> Option<usize> {
        Some(1)
    }
    fn restore(&mut self, slot: usize, state: &[ArrayRef], row: usize) -> OperatorResult {
        let n = primitive::<Int64Type>(&state[0])?;
        if n.is_valid(row) {
            self.n[slot] += n.value(row);
        }
        Ok(())
    }
}

/// `avg(x)` of a float: DataFusion's state (count, then sum).
#[derive(Default)]
struct Averaging {
    n: Vec<u64>,
    sum: Vec<f64>,
}

impl Fold for Averaging {
    fn grow(&mut self, slots: usize) {
        self.n.resize(slots, 0);
        self.sum.resize(slots, 0.0);
    }
    fn clear(&mut self, slot: usize) {
        self.n[slot] = 0;
        self.sum[slot] = 0.0;
    }
    fn update(&mut self, args: &[ArrayRef], rows: &[u32], slots: &[u32]) -> OperatorResult {
        let values = floats(&args[0])?;
        for (&row, &slot) in rows.iter().zip(slots) {
            if values.is_valid(row as usize) {
                self.n[slot as usize] += 1;
                self.sum[slot as usize] += values.value(row as usize);
            }
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, from: usize) -> OperatorResult {
        if self.n[from] > 0 {
            self.n[into] += self.n[from];
            self.sum[into] += self.sum[from];
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef, OperatorError> {
        let values = slots.iter().map(|&s| {
            let (n, sum) = (self.n[s as usize], self.sum[s as usize]);
            (n > 0).then(|| sum / n as f64)
        });
        Ok(Arc::new(Float64Array::from_iter(values)))
    }
    fn state(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        let n = UInt64Array::from_iter_values(slots.iter().map(|&s| self.n[s as usize]));
        let sum = Float64Array::from_iter(slots.iter().map(|&s| {
            let s = s as usize;
            (self.n[s] > 0).then_some(self.sum[s])
        }));
        Ok(vec![Arc::new(n), Arc::new(sum)])
    }
    fn width(&self) -> Option<usize> {
        Some(2)
    }
    fn restore(&mut self, slot: usize, state: &[ArrayRef], row: usize) -> OperatorResult {
        let n = primitive::<UInt64Type>(&state[0])?;
        let sum = primitive::<Float64Type>(&state[1])?;
        if n.is_valid(row) {
            self.n[slot] += n.value(row);
        }
        if sum.is_valid(row) {
            self.sum[slot] += sum.value(row);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Sum,
    Min,
    Max,
}

/// `sum`, `min` or `max` of a 64-bit integer or float column.
fn numbers(data_type: &DataType, op: Op) -> Box<dyn Fold> {
    match data_type {
        DataType::Int64 => Box::new(Numbers::<Int64Type>::new(op)),
        DataType::UInt64 => Box::new(Numbers::<UInt64Type>::new(op)),
        _ => Box::new(Numbers::<Float64Type>::new(op)),
    }
}

/// `sum`, `min` or `max` of numbers of type `T`.
struct Numbers<T: ArrowPrimitiveType> {
    op: Op,
    /// Values seen (none: the result is null).
    n: Vec<u64>,
    value: Vec<T::Native>,
}

impl<T: ArrowPrimitiveType> Numbers<T> {
    fn new(op: Op) -> Self {
        Self {
            op,
            n: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Folds `x` into `slot`.
    fn fold(&mut self, slot: usize, x: T::Native) {
        let v = &mut self.value[slot];
        match self.op {
            // DataFusion starts a sum at zero (0.0 + -0.0 is 0.0).
            Op::Sum => *v = v.add_wrapping(x),
            _ if self.n[slot] == 0 => *v = x,
            Op::Min if x.is_lt(*v) => *v = x,
            Op::Max if x.is_gt(*v) => *v = x,
            _ => {}
        }
        self.n[slot] += 1;
    }

    fn values(&self, slots: &[u32]) -> ArrayRef {
        let values = slots.iter().map(|&s| {
            let s = s as usize;
            (self.n[s] > 0).then_some(self.value[s])
        });
        Arc::new(PrimitiveArray::<T>::from_iter(values))
    }
}

impl<T: ArrowPrimitiveType> Fold for Numbers<T> {
    fn grow(&mut self, slots: usize) {
        self.n.resize(slots, 0);
        self.value.resize(slots, T::Native::default());
    }
    fn clear(&mut self, slot: usize) {
        self.n[slot] = 0;
        self.value[slot] = T::Native::default();
    }
    fn update(&mut self, args: &[ArrayRef], rows: &[u32], slots: &[u32]) -> OperatorResult {
        let cast_to;
        let column = if args[0].data_type() == &T::DATA_TYPE {
            &args[0]
        } else {
            cast_to = cast(&args[0], &T::DATA_TYPE).map_err(failed)?;
            &cast_to
        };
        let values = primitive::<T>(column)?;
        for (&row, &slot) in rows.iter().zip(slots) {
            if values.is_valid(row as usize) {
                self.fold(slot as usize, values.value(row as usize));
            }
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, from: usize) -> OperatorResult {
        if self.n[from] > 0 {
            let n = self.n[from];
            self.fold(into, self.value[from]);
            self.n[into] += n - 1;
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef, OperatorError> {
        Ok(self.values(slots))
    }
    fn state(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        Ok(vec![self.values(slots)])
    }
    fn width(&self) -> Option<usize> {
        Some(1)
    }
    fn restore(&mut self, slot: usize, state: &[ArrayRef], row: usize) -> OperatorResult {
        let values = primitive::<T>(&state[0])?;
        if values.is_valid(row) {
            self.fold(slot, values.value(row));
        }
        Ok(())
    }
}

/// Any other aggregate: one DataFusion accumulator per slot (made at its
/// first row).
struct Accumulators {
    aggregate: AggregateExpr,
    accs: Vec<Option<Box<dyn Accumulator>>>,
}

impl Accumulators {
    fn acc(&mut self, slot: usize) -> Result<&mut Box<dyn Accumulator>, OperatorError> {
        if self.accs[slot].is_none() {
            self.accs[slot] = Some(self.aggregate.accumulator().map_err(failed)?);
        }
        self.accs[slot]
            .as_mut()
            .ok_or_else(|| failed("an accumulator is missing"))
    }

    /// The state of `slot`, leaving it as it was (taking the state may
    /// consume it).
    fn kept_state(&mut self, slot: usize) -> Result<Vec<ScalarValue>, OperatorError> {
        let fresh = self.aggregate.accumulator().map_err(failed)?;
        let acc = self.acc(slot)?;
        let state = acc.state().map_err(failed)?;
        let arrays = state
            .iter()
            .map(|s| s.to_array().map_err(failed))
            .collect::<Result<Vec<_>, _>>()?;
        let mut kept = fresh;
        kept.merge_batch(&arrays).map_err(failed)?;
        *acc = kept;
        Ok(state)
    }
}

impl Fold for Accumulators {
    fn grow(&mut self, slots: usize) {
        self.accs.resize_with(slots, || None);
    }
    fn clear(&mut self, slot: usize) {
        self.accs[slot] = None;
    }
    fn update(&mut self, args: &[ArrayRef], rows: &[u32], slots: &[u32]) -> OperatorResult {
        // Rows of one slot come in runs (a batch's rows are in key order).
        let mut at = 0;
        while at < rows.len() {
            let slot = slots[at];
            let run = slots[at..].iter().take_while(|&&s| s == slot).count();
            let indices = UInt32Array::from(rows[at..at + run].to_vec());
            let values = args
                .iter()
                .map(|a| take(a.as_ref(), &indices, None).map_err(failed))
                .collect::<Result<Vec<_>, _>>()?;
            self.acc(slot as usize)?
                .update_batch(&values)
                .map_err(failed)?;
            at += run;
        }
        Ok(())
    }
    fn merge(&mut self, into: usize, from: usize) -> OperatorResult {
        let Some(mut from) = self.accs[from].take() else {
            return Ok(());
        };
        let state = from.state().map_err(failed)?;
        let arrays = state
            .iter()
            .map(|s| s.to_array().map_err(failed))
            .collect::<Result<Vec<_>, _>>()?;
        self.acc(into)?.merge_batch(&arrays).map_err(failed)
    }
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef, OperatorError> {
        let values = slots
            .iter()
            .map(|&s| self.acc(s as usize)?.evaluate().map_err(failed))
            .collect::<Result<Vec<_>, _>>()?;
        ScalarValue::iter_to_array(values).map_err(failed)
    }
    fn state(&mut self, slots: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        let mut fields: Vec<Vec<ScalarValue>> = Vec::new();
        for &slot in slots {
            let state = self.kept_state(slot as usize)?;
            if fields.is_empty() {
                fields.resize(state.len(), Vec::new());
            }
            for (field, value) in fields.iter_mut().zip(state) {
                field.push(value);
            }
        }
        fields
            .into_iter()
            .map(|values| ScalarValue::iter_to_array(values).map_err(failed))
            .collect()
    }
    fn width(&self) -> Option<usize> {
        None
    }
    fn restore(&mut self, slot: usize, state: &[ArrayRef], row: usize) -> OperatorResult {
        let one: Vec<ArrayRef> = state.iter().map(|c| c.slice(row, 1)).collect();
        self.acc(slot)?.merge_batch(&one).map_err(failed)
    }
}

fn primitive<T: ArrowPrimitiveType>(array: &ArrayRef) -> Result<&PrimitiveArray<T>, OperatorError> {
    array.as_primitive_opt::<T>().ok_or_else(|| {
        failed(format!(
            "expected {}, got {}",
            T::DATA_TYPE,
            array.data_type()
        ))
    })
}

fn floats(array: &ArrayRef) -> Result<&Float64Array, OperatorError> {
    primitive::<Float64Type>(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::SqlContext;
    use arrow::datatypes::{Field, Schema};

    /// A small deterministic generator (SplitMix64).
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn float(r: &mut Random) -> Option<f64> {
        match r.below(12) {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-0.0),
            3 => Some(0.0),
            4 => Some(f64::INFINITY),
            5 => Some(f64::NEG_INFINITY),
            _ => Some((r.next() % 2_000_001) as f64 / 7.0 - 142_857.0),
        }
    }

    fn int(r: &mut Random) -> Option<i64> {
        match r.below(8) {
            0 => None,
            1 => Some(i64::MAX - r.below(3) as i64),
            2 => Some(i64::MIN + r.below(3) as i64),
            _ => Some(r.next() as i64 % 1000),
        }
    }

    /// Slots against DataFusion's accumulators, one per slot fed a row at
    /// a time and merged through their state: equal values and states
    /// (bit for bit), through updates, merges, reuse and a state round
    /// trip.
    #[test]
    fn folds_agree_with_datafusion() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int64, true),
            Field::new("u", DataType::UInt64, true),
        ]));
        let sql = SqlContext::new(schema.clone(), &Default::default()).unwrap();
        let texts = [
            "count(*)",
            "count(f)",
            "sum(f)",
            "avg(f)",
            "min(f)",
            "max(f)",
            "sum(i)",
            "min(i)",
            "max(i)",
            "count(i)",
            "sum(u)",
            "min(u)",
            "max(u)",
            "stddev(f)",
            "avg(i)",
        ];
        let aggregates: Vec<(String, AggregateExpr)> = texts
            .iter()
            .map(|t| (t.to_string(), sql.aggregate(t).unwrap()))
            .collect();
        // stddev goes through an accumulator per slot; the rest is folded
        // (avg(i) of the float SQL's coercion makes of i).
        for (text, (_, a)) in texts.iter().zip(&aggregates) {
            assert_eq!(a.basic.is_none(), text.starts_with("stddev"), "{text}");
        }

        for seed in 0..40 {
            let mut r = Random(seed);
            let mut slots = Slots::new(&aggregates);
            // Reference: per live slot, one accumulator per aggregate.
            let mut reference: Vec<Option<Vec<Box<dyn Accumulator>>>> = Vec::new();
            let fresh = || -> Vec<Box<dyn Accumulator>> {
                aggregates
                    .iter()
                    .map(|(_, a)| a.accumulator().unwrap())
                    .collect()
            };
            let mut live: Vec<u32> = Vec::new();
            for _ in 0..30 {
                let n = 1 + r.below(40) as usize;
                let f: Float64Array = (0..n).map(|_| float(&mut r)).collect();
                let i: Int64Array = (0..n).map(|_| int(&mut r)).collect();
                let u: UInt64Array = (0..n)
                    .map(|_| int(&mut r).map(|v| v.unsigned_abs()))
                    .collect();
                let batch = arrow::array::RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(f), Arc::new(i), Arc::new(u)],
                )
                .unwrap();
                let args: Vec<Vec<ArrayRef>> = aggregates
                    .iter()
                    .map(|(_, a)| a.arguments(&batch).unwrap())
                    .collect();
                for row in 0..n {
                    if live.is_empty() || r.below(4) == 0 {
                        let slot = slots.take();
                        if reference.len() <= slot as usize {
                            reference.resize_with(slot as usize + 1, || None);
                        }
                        reference[slot as usize] = Some(fresh());
                        live.push(slot);
                    }
                    let slot = live[r.below(live.len() as u64) as usize];
                    slots.add(row, slot);
                    let accs = reference[slot as usize].as_mut().unwrap();
                    for (acc, values) in accs.iter_mut().zip(&args) {
                        let one: Vec<ArrayRef> = values.iter().map(|v| v.slice(row, 1)).collect();
                        acc.update_batch(&one).unwrap();
                    }
                    if live.len() > 2 && r.below(10) == 0 {
                        let from = live.swap_remove(r.below(live.len() as u64) as usize);
                        let into = live[r.below(live.len() as u64) as usize];
                        slots.merge(&args, into, from).unwrap();
                        let mut gone = reference[from as usize].take().unwrap();
                        let into = reference[into as usize].as_mut().unwrap();
                        for (acc, from) in into.iter_mut().zip(gone.iter_mut()) {
                            let state: Vec<ArrayRef> = from
                                .state()
                                .unwrap()
                                .iter()
                                .map(|s| s.to_array().unwrap())
                                .collect();
                            acc.merge_batch(&state).unwrap();
                        }
                    }
                    if live.len() > 3 && r.below(20) == 0 {
                        let gone = live.swap_remove(r.below(live.len() as u64) as usize);
                        slots.apply(&args).unwrap();
                        slots.give_back(gone);
                        reference[gone as usize] = None;
                    }
                }
                slots.apply(&args).unwrap();
            }
            // A state round trip into new slots.
            let (widths, state) = slots.state(&live).unwrap();
            let mut restored = Slots::new(&aggregates);
            let again: Vec<u32> = (0..live.len())
                .map(|row| restored.restore(&widths, &state, row).unwrap())
                .collect();
            for (ours, slots_of) in [(&mut slots, &live), (&mut restored, &again)] {
                let values = ours.evaluate(slots_of).unwrap();
                for (k, column) in values.iter().enumerate() {
                    for (row, &slot) in live.iter().enumerate() {
                        let acc = &mut reference[slot as usize].as_mut().unwrap()[k];
                        let want = acc.evaluate().unwrap();
                        let got = ScalarValue::try_from_array(column, row).unwrap();
                        assert!(
                            same(&got, &want),
                            "seed {seed}, {}: {got:?} against DataFusion's {want:?}",
                            texts[k]
                        );
                    }
                }
            }
            // The state columns are DataFusion's.
            let mut at = 0;
            for (k, &w) in widths.iter().enumerate() {
                for (row, &slot) in live.iter().enumerate() {
                    let acc = &mut reference[slot as usize].as_mut().unwrap()[k];
                    let want = acc.state().unwrap();
                    assert_eq!(want.len(), w, "{}", texts[k]);
                    for (c, want) in want.iter().enumerate() {
                        let got = ScalarValue::try_from_array(&state[at + c], row).unwrap();
                        assert!(same(&got, want), "{} state: {got:?}, {want:?}", texts[k]);
                    }
                }
                at += w;
            }
        }
    }

    /// Equal, floats bit for bit (NaN included).
    fn same(a: &ScalarValue, b: &ScalarValue) -> bool {
        match (a, b) {
            (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
            }
            _ => a == b,
        }
    }
}
