//! How rows reach windows: time windows (tumbling, sliding) by pane,
//! sessions that merge, count windows that fill; late rows refused.

use super::*;
use crate::rows::Rows;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use sluice::{OperatorError, OperatorResult};
use sluice_core::window::{Change, Lateness, SessionWindows, TimeWindows};
use std::collections::HashMap;
use std::sync::Arc;

/// A session not yet given a slot.
const NO_SLOT: u32 = u32::MAX;

impl WindowOp {
    pub(super) fn time_rows(
        &mut self,
        rows: &Rows,
        keys: &arrow::row::Rows,
        args: &[Vec<ArrayRef>],
        size: i64,
        slide: i64,
    ) -> OperatorResult {
        let lateness = Lateness::allowing(self.plan.lateness);
        let windows = TimeWindows::sliding(size, slide).map_err(failed)?;
        let n = rows.len();
        let mut touched: Vec<Touched> = Vec::new();
        for row in 0..n {
            let t = rows.times.value(row);
            let mut accepted = false;
            for (start, end) in windows.assign(t) {
                if !lateness.is_closed(end, self.judging) {
                    // A window behind the watermark (fired, or opened by a
                    // late event) emits at the end of the batch.
                    self.late_updates |= end <= self.watermark;
                    let pane = match self.panes.get_mut(&start) {
                        Some(pane) => pane,
                        None => {
                            let accs = self.groups_accumulators()?;
                            let keys = self.converter.empty_rows(64, 1024);
                            self.panes.entry(start).or_insert(Pane {
                                end,
                                index: HashMap::with_hasher(Fast::new()),
                                keys,
                                accs,
                                fired: false,
                                emitted: Vec::new(),
                                dirty: Vec::new(),
                                dirty_mark: Vec::new(),
                            })
                        }
                    };
                    let group = pane.group(keys.row(row));
                    if pane.fired {
                        pane.touch(group);
                    }
                    let slot = match touched.iter().position(|t| t.start == start) {
                        Some(i) => i,
                        None => {
                            touched.push(Touched {
                                start,
                                groups: vec![0; n],
                                mask: vec![false; n],
                            });
                            touched.len() - 1
                        }
                    };
                    touched[slot].groups[row] = group as usize;
                    touched[slot].mask[row] = true;
                    accepted = true;
                }
            }
            self.aggregated += u64::from(accepted);
            if !accepted {
                // Refused by its latest window, which closed last.
                let window = windows
                    .assign(t)
                    .next()
                    .unwrap_or((t, t.saturating_add(size)));
                let reason = match lateness.judge(window, self.judging) {
                    Some(late) => late.to_string(),
                    // Not reached: every event time has a window.
                    None => format!("no window of {size} ms holds event time {t}"),
                };
                self.late_event(rows, row, window, reason);
            }
        }
        for slot in touched {
            let Some(pane) = self.panes.get_mut(&slot.start) else {
                continue;
            };
            let groups = pane.groups();
            let filter = if slot.mask.iter().all(|m| *m) {
                None
            } else {
                Some(BooleanArray::from(slot.mask))
            };
            for (acc, values) in pane.accs.iter_mut().zip(args) {
                acc.update_batch(values, &slot.groups, filter.as_ref(), groups)
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// A running aggregate: every row folds into the one pane, which has
    /// "fired" from the start, so each group it touches is emitted at the
    /// end of the batch (insert, then updates).
    pub(super) fn running_rows(
        &mut self,
        rows: &Rows,
        keys: &arrow::row::Rows,
        args: &[Vec<ArrayRef>],
    ) -> OperatorResult {
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        if let Some(latest) = arrow::compute::max(&rows.times) {
            self.latest = self.latest.max(latest);
        }
        if !self.panes.contains_key(&i64::MIN) {
            let accs = self.groups_accumulators()?;
            let keys = self.converter.empty_rows(64, 1024);
            self.panes.insert(
                i64::MIN,
                Pane {
                    end: i64::MAX,
                    index: HashMap::with_hasher(Fast::new()),
                    keys,
                    accs,
                    fired: true,
                    emitted: Vec::new(),
                    dirty: Vec::new(),
                    dirty_mark: Vec::new(),
                },
            );
        }
        let Some(pane) = self.panes.get_mut(&i64::MIN) else {
            return Ok(());
        };
        let mut groups = Vec::with_capacity(n);
        for row in 0..n {
            let group = pane.group(keys.row(row));
            pane.touch(group);
            groups.push(group as usize);
        }
        let total = pane.groups();
        for (acc, values) in pane.accs.iter_mut().zip(args) {
            acc.update_batch(values, &groups, None, total)
                .map_err(failed)?;
        }
        self.aggregated += n as u64;
        self.late_updates = true;
        Ok(())
    }

    pub(super) fn groups_accumulators(
        &self,
    ) -> Result<Vec<Box<dyn GroupsAccumulator>>, OperatorError> {
        self.plan
            .aggregates
            .iter()
            .map(|(_, a)| a.groups_accumulator().map_err(failed))
            .collect()
    }

    /// The result rows of a pane (of its dirty groups, once it has fired);
    /// keeps its state when `keep` (it may still be updated).
    pub(super) fn pane_rows(
        &self,
        start: i64,
        pane: &mut Pane,
        keep: bool,
    ) -> Result<Option<Rows>, OperatorError> {
        let n = pane.groups();
        let subset: Option<UInt32Array> = if pane.fired {
            if pane.dirty.is_empty() {
                return Ok(None);
            }
            let mut dirty = std::mem::take(&mut pane.dirty);
            dirty.sort_unstable();
            pane.dirty_mark.iter_mut().for_each(|m| *m = false);
            Some(UInt32Array::from(dirty))
        } else {
            None
        };
        if n == 0 {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(pane.accs.len());
        for (acc, (_, agg)) in pane.accs.iter_mut().zip(&self.plan.aggregates) {
            if keep {
                // Evaluating consumes a group accumulator: rebuild it from
                // its state, and evaluate a copy.
                let state = acc.state(EmitTo::All).map_err(failed)?;
                let all: Vec<usize> = (0..n).collect();
                let mut kept = agg.groups_accumulator().map_err(failed)?;
                kept.merge_batch(&state, &all, n).map_err(failed)?;
                let mut copy = agg.groups_accumulator().map_err(failed)?;
                copy.merge_batch(&state, &all, n).map_err(failed)?;
                values.push(copy.evaluate(EmitTo::All).map_err(failed)?);
                *acc = kept;
            } else {
                values.push(acc.evaluate(EmitTo::All).map_err(failed)?);
            }
        }
        let mut columns: Vec<ArrayRef> = if self.plan.keys.is_empty() {
            Vec::new()
        } else {
            self.converter
                .convert_rows(pane.keys.iter())
                .map_err(failed)?
        };
        let running = self.plan.kind == WindowKind::Running;
        if !running {
            columns.push(Arc::new(Int64Array::from(vec![start; n])));
            columns.push(Arc::new(Int64Array::from(vec![pane.end; n])));
        }
        if self.plan.changelog {
            let revisions = UInt32Array::from(pane.emitted.clone());
            let ops = StringArray::from_iter_values(
                pane.emitted.iter().map(|&r| Change::of(r, false).as_str()),
            );
            columns.push(Arc::new(ops));
            columns.push(Arc::new(revisions));
        }
        match &subset {
            Some(groups) => groups
                .values()
                .iter()
                .for_each(|&g| pane.emitted[g as usize] += 1),
            None => pane.emitted.iter_mut().for_each(|r| *r += 1),
        }
        columns.extend(values);
        let fields = self.plan.output.fields();
        for (column, field) in columns.iter_mut().zip(fields.iter()) {
            if column.data_type() != field.data_type() {
                *column = cast(column, field.data_type()).map_err(failed)?;
            }
        }
        let batch = RecordBatch::try_new(self.plan.output.clone(), columns).map_err(failed)?;
        let batch = match &subset {
            Some(indices) => arrow::compute::take_record_batch(&batch, indices).map_err(failed)?,
            None => batch,
        };
        let rows = batch.num_rows();
        // A window's rows are at its last instant; a running aggregate's at
        // the latest event time it took.
        // (The watermark, restored from a checkpoint, keeps it from going
        // back after a restart.)
        let time = if running {
            self.latest.max(self.watermark)
        } else {
            pane.end.saturating_sub(1)
        };
        Ok(Some(Rows::new(
            batch,
            Int64Array::from(vec![time; rows]),
            UInt64Array::from(vec![0u64; rows]),
        )))
    }

    pub(super) fn session_rows(
        &mut self,
        rows: &Rows,
        keys: &arrow::row::Rows,
        args: &[Vec<ArrayRef>],
        gap: i64,
    ) -> OperatorResult {
        let lateness = Lateness::allowing(self.plan.lateness);
        let sessions = SessionWindows::with_gap(gap).map_err(failed)?;
        // Rows are visited key by key (by entry, then event time); what
        // they emit besides the sessions (deletes, late events) is put in
        // the order of the keys' bytes after, as if visited in that order.
        let ids: Vec<u32> = (0..rows.len())
            .map(|r| self.sessions.id(keys.row(r).data()))
            .collect();
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_by_key(|&r| (ids[r as usize], rows.times.value(r as usize)));
        let deletes_from = self.pending.len();
        let mut late_rows: Vec<(usize, (i64, i64), String)> = Vec::new();
        for row in order {
            let row = row as usize;
            let (t, end) = sessions.assign(rows.times.value(row));
            if let Some(late) = lateness.judge_session((t, end), self.judging) {
                late_rows.push((row, (t, end), late.to_string()));
                continue;
            }
            self.aggregated += 1;
            let key = keys.row(row);
            let id = ids[row];
            let list = &mut self.sessions.entry(id).sessions;
            // Its slot: that of the first session it merges with, or a new
            // one (below).
            let session = Session {
                start: t,
                end,
                payload: Open {
                    slot: NO_SLOT,
                    fired: false,
                    emitted: 0,
                    dirty: false,
                },
            };
            // The latest end among merged sessions still waiting to fire:
            // each is due there already.
            let mut waiting: Option<i64> = None;
            // Sessions merged away after they emitted a row: their bounds,
            // rows emitted and latest values.
            let mut emitted_before: Vec<(i64, i64, u32, Vec<ScalarValue>)> = Vec::new();
            let changelog = self.plan.changelog && !self.keep_merged;
            let slots = &mut self.slots;
            let merged = list.insert(session, |merged, s| {
                merged.payload.fired |= s.payload.fired;
                if !s.payload.fired || s.payload.dirty {
                    waiting = Some(waiting.map_or(s.end, |w| w.max(s.end)));
                }
                if changelog && s.payload.emitted > 0 {
                    slots.apply(args)?;
                    let values = slots
                        .evaluate(&[s.payload.slot])?
                        .iter()
                        .map(|a| ScalarValue::try_from_array(a, 0).map_err(failed))
                        .collect::<Result<Vec<_>, _>>()?;
                    emitted_before.push((s.start, s.end, s.payload.emitted, values));
                }
                if merged.payload.slot == NO_SLOT {
                    merged.payload.slot = s.payload.slot;
                    Ok(())
                } else {
                    slots.merge(args, merged.payload.slot, s.payload.slot)
                }
            })?;
            if merged.payload.slot == NO_SLOT {
                merged.payload.slot = slots.take();
            }
            slots.add(row, merged.payload.slot);
            merged.payload.dirty = merged.payload.fired;
            self.late_updates |= merged.payload.fired || merged.end <= self.watermark;
            // One that kept its bounds is updated in place; the others are
            // deleted (the merged session is a row of its own), in the
            // order of their starts.
            emitted_before.sort_unstable_by_key(|e| e.0);
            for (start, end, emitted, values) in emitted_before {
                if (start, end) == (merged.start, merged.end) {
                    merged.payload.emitted = emitted;
                } else {
                    self.pending.push(Emission {
                        key: key.owned(),
                        start,
                        end,
                        values,
                        change: Change::Delete,
                        revision: emitted,
                    });
                }
            }
            if waiting != Some(merged.end) {
                let end = merged.end;
                self.sessions.due_at(end, id);
            }
        }
        // (Stable sorts: a key's rows stay in the order of their times.)
        late_rows.sort_by(|a, b| keys.row(a.0).cmp(&keys.row(b.0)));
        for (row, window, reason) in late_rows {
            // A key that only late events brought has no entry to keep.
            self.sessions.remove(ids[row]);
            self.late_event(rows, row, window, reason);
        }
        self.pending[deletes_from..].sort_by(|a, b| a.key.row().cmp(&b.key.row()));
        self.slots.apply(args)
    }

    pub(super) fn count_rows(
        &mut self,
        rows: &Rows,
        keys: &arrow::row::Rows,
        args: &[Vec<ArrayRef>],
        size: u64,
    ) -> OperatorResult {
        let mut groups: HashMap<&[u8], Vec<u32>> = HashMap::new();
        let mut order = Vec::new();
        for row in 0..rows.len() {
            let key = keys.row(row).data();
            let entry = groups.entry(key).or_default();
            if entry.is_empty() {
                order.push(key);
            }
            entry.push(row as u32);
        }
        let mut filled = Fired::new(&self.converter);
        for key in order {
            let indices = &groups[key];
            let mut at = 0;
            while at < indices.len() {
                if !self.counts.contains_key(key) {
                    let first = indices[at] as usize;
                    let counted = Counted {
                        key: keys.row(first).owned(),
                        slot: self.slots.take(),
                        n: 0,
                        first: i64::MAX,
                        last: i64::MIN,
                    };
                    self.counts.insert(key.into(), counted);
                }
                let Some(counted) = self.counts.get_mut(key) else {
                    break;
                };
                // (No room: a window restored fuller than `size` is now;
                // it is emitted below as it is.)
                let room = size.saturating_sub(counted.n) as usize;
                let run = &indices[at..(at + room).min(indices.len())];
                at += run.len();
                for &r in run {
                    self.slots.add(r as usize, counted.slot);
                    let t = rows.times.value(r as usize);
                    counted.first = counted.first.min(t);
                    counted.last = counted.last.max(t);
                }
                counted.n += run.len() as u64;
                self.aggregated += run.len() as u64;
                if counted.n >= size {
                    if let Some(done) = self.counts.remove(key) {
                        let end = done.last.saturating_add(1);
                        filled.push(done.key.row(), done.first, end, 0, done.slot);
                    }
                }
            }
        }
        self.slots.apply(args)?;
        self.emit(filled, true)
    }
}
