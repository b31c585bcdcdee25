//! The state of a window operator in a checkpoint, and back.
//!
//! Format (version 3, `VERSION`), all integers little-endian:
//! `version u64, watermark i64`, then the panes of time windows
//! (`count u64`, then per pane: `start i64, end i64, fired u8, dirty count
//! u64 and u32 groups, emitted count u64 and u32 rows emitted per group,
//! widths, batch`), then the open sessions (own columns: start, end, fired,
//! dirty, emitted) and the count windows (`rows u64`, then `widths, batch`
//! if there are rows). A state of an earlier version is refused as
//! damaged: discard it and start over (`--fresh`).
//! A batch is an Arrow IPC stream of one record batch: the key columns,
//! the window's own columns, then the intermediate state of every
//! aggregate (DataFusion's `state`, restored with `merge_batch`); `widths`
//! says how many state columns each aggregate has.

use super::{failed, Counted, Fast, Open, Pane, Session, WindowOp};
use crate::error::{Error, Result};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Field, Schema};
use datafusion::logical_expr::EmitTo;
use sluice::OperatorError;
use sluice_core::window::Lateness;
use std::collections::HashMap;
use std::sync::Arc;

/// 2: rows emitted per group and session (changelogs). 3: a window without
/// keys behind an exchange gathers its rows on one instance; a state of 2
/// may hold partial windows on every instance, so it is not read.
const VERSION: u64 = 3;

impl WindowOp {
    /// The operator's state, after everything before the barrier.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, OperatorError> {
        let mut out = Out::default();
        out.u64(VERSION);
        out.i64(self.watermark);

        out.u64(self.panes.len() as u64);
        let plan = self.plan.clone();
        let aggregates = &plan.aggregates;
        let mut panes = std::mem::take(&mut self.panes);
        for (&start, pane) in panes.iter_mut() {
            out.i64(start);
            out.i64(pane.end);
            out.u8(u8::from(pane.fired));
            out.u64(pane.dirty.len() as u64);
            pane.dirty.iter().for_each(|&g| out.u32(g));
            out.u64(pane.emitted.len() as u64);
            pane.emitted.iter().for_each(|&r| out.u32(r));
            let n = pane.groups();
            let all: Vec<usize> = (0..n).collect();
            let mut columns = self
                .converter
                .convert_rows(pane.keys.iter())
                .map_err(failed)?;
            let mut widths = Vec::new();
            for (acc, (_, agg)) in pane.accs.iter_mut().zip(aggregates) {
                // Taking the state empties a group accumulator: refill it.
                let state = acc.state(EmitTo::All).map_err(failed)?;
                let mut kept = agg.groups_accumulator().map_err(failed)?;
                kept.merge_batch(&state, &all, n).map_err(failed)?;
                *acc = kept;
                widths.push(state.len());
                columns.extend(state);
            }
            out.widths(&widths);
            out.batch(columns)?;
        }
        self.panes = panes;

        let mut rows = self.converter.empty_rows(0, 0);
        let (mut starts, mut ends, mut fired, mut dirty) = (vec![], vec![], vec![], vec![]);
        let mut emitted: Vec<u32> = Vec::new();
        let mut slots: Vec<u32> = Vec::new();
        let parser = self.converter.parser();
        for id in self.sessions.all() {
            let entry = self.sessions.entry(id);
            for session in entry.sessions.iter() {
                rows.push(parser.parse(&entry.key));
                starts.push(session.start);
                ends.push(session.end);
                fired.push(session.payload.fired);
                dirty.push(session.payload.dirty);
                emitted.push(session.payload.emitted);
                slots.push(session.payload.slot);
            }
        }
        let own: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(starts)),
            Arc::new(Int64Array::from(ends)),
            Arc::new(BooleanArray::from(fired)),
            Arc::new(BooleanArray::from(dirty)),
            Arc::new(UInt32Array::from(emitted)),
        ];
        let states = self.slots.state(&slots)?;
        self.write_rows(&mut out, &rows, own, states)?;

        let mut keys: Vec<Box<[u8]>> = self.counts.keys().cloned().collect();
        keys.sort_unstable();
        let mut rows = self.converter.empty_rows(0, 0);
        let (mut ns, mut firsts, mut lasts) = (vec![], vec![], vec![]);
        let mut slots: Vec<u32> = Vec::new();
        for key in &keys {
            let Some(counted) = self.counts.get_mut(key) else {
                continue;
            };
            rows.push(counted.key.row());
            ns.push(counted.n);
            firsts.push(counted.first);
            lasts.push(counted.last);
            slots.push(counted.slot);
        }
        let own: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(ns)),
            Arc::new(Int64Array::from(firsts)),
            Arc::new(Int64Array::from(lasts)),
        ];
        let states = self.slots.state(&slots)?;
        self.write_rows(&mut out, &rows, own, states)?;
        Ok(out.0)
    }

    /// Writes sessions or count windows: their number, then (if any) the
    /// widths and one batch of key columns, `own` columns and states.
    fn write_rows(
        &self,
        out: &mut Out,
        keys: &arrow::row::Rows,
        own: Vec<ArrayRef>,
        (widths, state): (Vec<usize>, Vec<ArrayRef>),
    ) -> Result<(), OperatorError> {
        out.u64(keys.num_rows() as u64);
        if keys.num_rows() == 0 {
            return Ok(());
        }
        let mut columns = self.converter.convert_rows(keys.iter()).map_err(failed)?;
        columns.extend(own);
        columns.extend(state);
        out.widths(&widths);
        out.batch(columns)
    }

    /// Loads a state written by [`WindowOp::snapshot`].
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let mut input = In { data: bytes, at: 0 };
        let version = input.u64()?;
        if version != VERSION {
            return Err(damaged(format!(
                "window state version {version}; this Sluice reads {VERSION}"
            )));
        }
        self.watermark = input.i64()?;
        let panes = input.u64()?;
        for _ in 0..panes {
            self.restore_pane(&mut input)?;
        }
        if input.u64()? > 0 {
            self.restore_sessions(&mut input)?;
        }
        if input.u64()? > 0 {
            self.restore_counts(&mut input)?;
        }
        if input.at != bytes.len() {
            return Err(damaged("the window state has trailing bytes"));
        }
        Ok(())
    }

    /// One pane of a time window: its bounds, whether it fired, its dirty
    /// groups, and its groups' keys and accumulators.
    fn restore_pane(&mut self, input: &mut In<'_>) -> Result<()> {
        let k = self.plan.key_fields.len();
        let plan = self.plan.clone();
        let aggregates = &plan.aggregates;
        let start = input.i64()?;
        let end = input.i64()?;
        let fired = input.u8()? != 0;
        let dirty: Vec<u32> = (0..input.u64()?)
            .map(|_| input.u32())
            .collect::<Result<_, _>>()?;
        let emitted: Vec<u32> = (0..input.u64()?)
            .map(|_| input.u32())
            .collect::<Result<_, _>>()?;
        let widths = input.widths(aggregates.len())?;
        let columns = input.batch()?;
        let keys = self
            .converter
            .convert_columns(
                columns
                    .get(..k)
                    .ok_or_else(|| damaged("a pane has no key columns"))?,
            )
            .map_err(damaged)?;
        let n = keys.num_rows();
        let mut index = HashMap::with_hasher(Fast::new());
        for (g, key) in keys.iter().enumerate() {
            index.insert(key.data().into(), g as u32);
        }
        let all: Vec<usize> = (0..n).collect();
        let mut accs = Vec::with_capacity(aggregates.len());
        let mut at = k;
        for ((_, agg), &w) in aggregates.iter().zip(&widths) {
            let mut acc = agg.groups_accumulator()?;
            let state = columns
                .get(at..at + w)
                .ok_or_else(|| damaged("a pane's state is short"))?;
            acc.merge_batch(state, &all, n).map_err(damaged)?;
            accs.push(acc);
            at += w;
        }
        let mut dirty_mark = vec![false; n];
        for &g in &dirty {
            if let Some(mark) = dirty_mark.get_mut(g as usize) {
                *mark = true;
            }
        }
        if emitted.len() != n {
            return Err(damaged("a pane's rows emitted do not match its groups"));
        }
        let pane = Pane {
            end,
            index,
            keys,
            accs,
            fired,
            emitted,
            dirty,
            dirty_mark,
        };
        self.panes.insert(start, pane);
        Ok(())
    }

    /// The open sessions of every key, and when each is due.
    fn restore_sessions(&mut self, input: &mut In<'_>) -> Result<()> {
        let k = self.plan.key_fields.len();
        let plan = self.plan.clone();
        let aggregates = &plan.aggregates;
        let widths = input.widths(aggregates.len())?;
        let columns = input.batch()?;
        let width = 5;
        let own = columns
            .get(k..k + width)
            .ok_or_else(|| damaged("the sessions' columns are short"))?;
        let (starts, ends) = (int64(&own[0])?, int64(&own[1])?);
        let (fired, dirty) = (boolean(&own[2])?, boolean(&own[3])?);
        let emitted = own[4]
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| damaged("a rows-emitted column is not u32"))?;
        let keys = self
            .converter
            .convert_columns(&columns[..k])
            .map_err(damaged)?;
        for (r, key) in keys.iter().enumerate() {
            let slot = self.slots.restore(&widths, &columns[k + width..], r)?;
            let id = self.sessions.id(key.data());
            // A fired session waits to be dropped; the others to fire.
            let (end, was_fired, is_dirty) = (ends.value(r), fired.value(r), dirty.value(r));
            let due = if was_fired && !is_dirty {
                Lateness::allowing(self.plan.lateness).closes_at(end)
            } else {
                end
            };
            self.sessions.due_at(due, id);
            self.sessions.entry(id).sessions.push(Session {
                start: starts.value(r),
                end: ends.value(r),
                payload: Open {
                    slot,
                    fired: fired.value(r),
                    emitted: emitted.value(r),
                    dirty: dirty.value(r),
                },
            });
        }
        Ok(())
    }

    /// The count windows of every key.
    fn restore_counts(&mut self, input: &mut In<'_>) -> Result<()> {
        let k = self.plan.key_fields.len();
        let plan = self.plan.clone();
        let aggregates = &plan.aggregates;
        let widths = input.widths(aggregates.len())?;
        let columns = input.batch()?;
        let own = columns
            .get(k..k + 3)
            .ok_or_else(|| damaged("the count windows' columns are short"))?;
        let ns = own[0]
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| damaged("a count column is not u64"))?;
        let (firsts, lasts) = (int64(&own[1])?, int64(&own[2])?);
        let keys = self
            .converter
            .convert_columns(&columns[..k])
            .map_err(damaged)?;
        for (r, key) in keys.iter().enumerate() {
            let slot = self.slots.restore(&widths, &columns[k + 3..], r)?;
            self.counts.insert(
                key.data().into(),
                Counted {
                    key: key.owned(),
                    slot,
                    n: ns.value(r),
                    first: firsts.value(r),
                    last: lasts.value(r),
                },
            );
        }
        Ok(())
    }
}

fn int64(array: &ArrayRef) -> Result<&Int64Array> {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| damaged("a window bound column is not i64"))
}

fn boolean(array: &ArrayRef) -> Result<&BooleanArray> {
    array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| damaged("a flag column is not boolean"))
}

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn widths(&mut self, widths: &[usize]) {
        self.u64(widths.len() as u64);
        widths.iter().for_each(|&w| self.u64(w as u64));
    }
    fn batch(&mut self, columns: Vec<ArrayRef>) -> Result<(), OperatorError> {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(failed)?;
        let mut bytes = Vec::new();
        {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema())
                .map_err(failed)?;
            writer.write(&batch).map_err(failed)?;
            writer.finish().map_err(failed)?;
        }
        self.u64(bytes.len() as u64);
        self.0.extend_from_slice(&bytes);
        Ok(())
    }
}

struct In<'a> {
    data: &'a [u8],
    at: usize,
}

impl In<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| damaged("the window state is truncated"))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn i64(&mut self) -> Result<i64> {
        self.u64().map(|v| v as i64)
    }
    fn widths(&mut self, aggregates: usize) -> Result<Vec<usize>> {
        let n = self.u64()? as usize;
        if n != aggregates {
            return Err(damaged(format!(
                "the window state has {n} aggregates, the pipeline {aggregates}"
            )));
        }
        (0..n).map(|_| self.u64().map(|w| w as usize)).collect()
    }
    fn batch(&mut self) -> Result<Vec<ArrayRef>> {
        let len = self.u64()? as usize;
        let bytes = self.take(len)?;
        let mut reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .map_err(damaged)?;
        let batch = reader
            .next()
            .ok_or_else(|| damaged("a state batch is empty"))?
            .map_err(damaged)?;
        Ok(batch.columns().to_vec())
    }
}

/// A window state this run cannot load: the message says why.
fn damaged(why: impl std::fmt::Display) -> Error {
    Error::damaged(why.to_string())
}
