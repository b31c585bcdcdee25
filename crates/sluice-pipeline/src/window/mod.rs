//! The `window` transform: keyed tumbling, sliding, session and count
//! windows over rows, with SQL aggregates (DataFusion accumulators).
//!
//! A time window fires when the watermark passes its end. Until the
//! watermark passes its end plus the allowed lateness it keeps its state: a
//! late event updates it, and the end of its batch emits a complete new
//! row for that key and window, with `op = "update"`
//! and the next `revision`; a session that a late event merged into
//! another is deleted (`op = "delete"`). Events beyond that go to the
//! `late` stream with the reason.

use crate::checkpoint::Checkpointing;
use crate::format::{row_json, DeadLetter};
use crate::rows::Rows;
use crate::side_outputs::{LateEvent, Reserved, ReservedHandle};
use crate::sql::AggregateExpr;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::GroupsAccumulator;
use sluice::{Batch, Operator, OperatorError, OperatorResult, Timestamp};
use sluice_core::window::{Change, Lateness};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The kind of window and its sizes (milliseconds, or events for count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows.
    Tumbling {
        /// Window length.
        size: i64,
    },
    /// Fixed windows that start every `slide`.
    Sliding {
        /// Window length.
        size: i64,
        /// Step between starts.
        slide: i64,
    },
    /// Per-key activity separated by gaps of at least `gap`.
    Session {
        /// Inactivity that closes a session.
        gap: i64,
    },
    /// Every `size` events of a key.
    Count {
        /// Events per window.
        size: u64,
    },
    /// No window: a running aggregate per key over all of time, whose
    /// changes (insert, then updates) each batch emits (`type =
    /// "aggregate"`, or SQL's GROUP BY without a window).
    Running,
}

/// A compiled window transform.
pub struct WindowPlan {
    /// The transform's name (for late events and dead letters).
    pub name: String,
    /// The kind of window.
    pub kind: WindowKind,
    /// The key columns' indices in the input.
    pub keys: Vec<usize>,
    /// The key columns' types, for the row converter.
    pub key_fields: Vec<SortField>,
    /// Output names and aggregates.
    pub aggregates: Vec<(String, AggregateExpr)>,
    /// Allowed lateness, in milliseconds.
    pub lateness: i64,
    /// It may update a result after firing (time and session windows with
    /// an allowed lateness): every row says what it changes, in `op` and
    /// `revision` after `window_end` (docs/concepts.md).
    pub changelog: bool,
    /// The output schema: keys, `window_start`, `window_end`, `op` and
    /// `revision` if it is a changelog, aggregates.
    pub output: SchemaRef,
}

mod fold;
mod keyed;
mod rows;
mod state;

type Fast = ahash::RandomState;

/// One time window of every key: a group per key, with vectorised
/// accumulators indexed by group.
struct Pane {
    end: i64,
    /// Key bytes (Arrow's row format) to group index.
    index: HashMap<Box<[u8]>, u32, Fast>,
    /// The key of each group, in group order.
    keys: arrow::row::Rows,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    fired: bool,
    /// Rows emitted for each group: the revision of its next row.
    emitted: Vec<u32>,
    /// Groups updated since the pane fired (late events within lateness).
    dirty: Vec<u32>,
    dirty_mark: Vec<bool>,
}

impl Pane {
    fn groups(&self) -> usize {
        self.keys.num_rows()
    }

    /// The group of `key`, added if new.
    fn group(&mut self, key: arrow::row::Row<'_>) -> u32 {
        if let Some(&group) = self.index.get(key.data()) {
            return group;
        }
        let group = self.keys.num_rows() as u32;
        self.index.insert(key.data().into(), group);
        self.keys.push(key);
        self.emitted.push(0);
        group
    }

    /// Marks `group` as updated since the pane fired (once).
    fn touch(&mut self, group: u32) {
        let g = group as usize;
        if self.dirty_mark.len() <= g {
            self.dirty_mark.resize(g + 1, false);
        }
        if !self.dirty_mark[g] {
            self.dirty_mark[g] = true;
            self.dirty.push(group);
        }
    }
}

/// The rows of one batch that fall in one pane.
struct Touched {
    start: i64,
    groups: Vec<usize>,
    mask: Vec<bool>,
}

/// What a session keeps besides its bounds.
struct Open {
    /// Where its aggregates are, in [`fold::Slots`].
    slot: u32,
    fired: bool,
    /// Rows emitted for it: the revision of its next row.
    emitted: u32,
    /// Updated since it fired.
    dirty: bool,
}

/// A session of a key: its bounds and what it keeps.
type Session = sluice_core::window::Session<Open>;

/// The count window of a key being filled.
struct Counted {
    key: OwnedRow,
    /// Where its aggregates are, in [`fold::Slots`].
    slot: u32,
    n: u64,
    first: i64,
    last: i64,
}

/// Windows that fired (sessions, count windows), as columns of their rows.
struct Fired {
    keys: arrow::row::Rows,
    starts: Vec<i64>,
    ends: Vec<i64>,
    revisions: Vec<u32>,
    /// Where their values are.
    slots: Vec<u32>,
}

impl Fired {
    fn new(converter: &RowConverter) -> Self {
        Self {
            keys: converter.empty_rows(0, 0),
            starts: Vec::new(),
            ends: Vec::new(),
            revisions: Vec::new(),
            slots: Vec::new(),
        }
    }

    fn push(&mut self, key: arrow::row::Row<'_>, start: i64, end: i64, revision: u32, slot: u32) {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
        self.revisions.push(revision);
        self.slots.push(slot);
    }
}

/// One result row before it is built into a batch.
struct Emission {
    key: OwnedRow,
    start: i64,
    end: i64,
    values: Vec<ScalarValue>,
    /// What it changes, in a changelog.
    change: Change,
    revision: u32,
}

/// The window operator of one worker.
pub struct WindowOp {
    plan: Arc<WindowPlan>,
    converter: RowConverter,
    watermark: i64,
    /// What the chunk at hand is judged against: the later of the
    /// watermark and its reader's when it read the chunk.
    judging: i64,
    panes: BTreeMap<i64, Pane>,
    /// The open sessions of every key, and when each key is due.
    sessions: keyed::Keyed,
    /// The aggregates of the sessions.
    slots: fold::Slots,
    /// Result rows of sessions and count windows, sent after `pending`.
    fired: Vec<Rows>,
    counts: HashMap<Box<[u8]>, Counted>,
    pending: Vec<Emission>,
    /// Result rows built column-wise (time windows).
    ready: Vec<Rows>,
    late: Vec<LateEvent>,
    reserved: ReservedHandle,
    down: Box<dyn Operator<Rows>>,
    out: Batch<Rows>,
    /// Where its state goes at barriers, under which key.
    checkpoint: Option<(Arc<Checkpointing>, String)>,
    /// When the newest input chunk was read (dashboard on): results carry
    /// it, so sinks measure latency from the read that fired them.
    read_at: Option<std::time::Instant>,
    /// The input has ended: what fires now is fired by the end.
    ended: bool,
    /// Where its rows are counted.
    counting: crate::operators::Counted,
    /// Rows folded into windows since the last count.
    aggregated: u64,
    /// The latest event time folded in: the time of a running aggregate's
    /// rows.
    latest: i64,
    /// Test-only fault: merged sessions are not deleted.
    keep_merged: bool,
    /// A window that fired took a late event in this batch: its update is
    /// emitted at the end of the batch, as the typed windows do.
    late_updates: bool,
}

fn failed(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Failed(error.to_string().into())
}

impl WindowOp {
    /// A window operator feeding `down`.
    pub fn new(
        plan: Arc<WindowPlan>,
        reserved: Arc<Reserved>,
        down: Box<dyn Operator<Rows>>,
    ) -> crate::error::Result<Self> {
        let converter = RowConverter::new(plan.key_fields.clone()).map_err(crate::sql::clean)?;
        let slots = fold::Slots::new(&plan.aggregates);
        Ok(Self {
            plan,
            converter,
            watermark: i64::MIN,
            judging: i64::MIN,
            panes: BTreeMap::new(),
            sessions: keyed::Keyed::default(),
            slots,
            fired: Vec::new(),
            counts: HashMap::new(),
            pending: Vec::new(),
            ready: Vec::new(),
            late: Vec::new(),
            reserved: ReservedHandle::new(reserved),
            down,
            out: Batch::new(),
            checkpoint: None,
            read_at: None,
            ended: false,
            counting: crate::operators::Counted::default(),
            aggregated: 0,
            latest: i64::MIN,
            keep_merged: crate::fault::on(
                crate::fault::Fault::KeepMergedSessions,
                std::path::Path::new(""),
            ),
            late_updates: false,
        })
    }

    /// Counts its rows in `counting`.
    pub fn counted(mut self, counting: crate::operators::Counted) -> Self {
        self.counting = counting;
        self
    }

    /// Reports its state to `checkpointing` at every barrier, under `key`.
    pub fn with_checkpoints(mut self, checkpointing: Arc<Checkpointing>, key: String) -> Self {
        checkpointing.register();
        self.checkpoint = Some((checkpointing, key));
        self
    }

    /// Evaluates every aggregate's arguments; rows where one fails become
    /// dead letters.
    fn arguments(&self, rows: Rows) -> (Rows, Vec<Vec<ArrayRef>>) {
        let all = self
            .plan
            .aggregates
            .iter()
            .map(|(_, a)| a.arguments(&rows.batch))
            .collect::<Result<Vec<_>, _>>();
        if let Ok(args) = all {
            return (rows, args);
        }
        let mut ok = Vec::new();
        let mut dead = Vec::new();
        for row in 0..rows.len() {
            let one = rows.batch.slice(row, 1);
            match self
                .plan
                .aggregates
                .iter()
                .try_for_each(|(_, a)| a.arguments(&one).map(|_| ()))
            {
                Ok(()) => ok.push(row as u32),
                Err(reason) => dead.push(DeadLetter {
                    origin: self.plan.name.clone(),
                    line: rows.lines.value(row),
                    reason: reason.to_string(),
                    record: row_json(&rows.batch, row),
                }),
            }
        }
        self.counting.counts.dead_letter.add(dead.len() as u64);
        if let Some(judge) = &self.counting.judge {
            judge.refused(dead.iter().map(|d| d.line), true);
        }
        self.reserved.dead(&dead);
        let rows = rows
            .take(&UInt32Array::from(ok))
            .unwrap_or_else(|_| rows.slice(0, 0));
        let args = self
            .plan
            .aggregates
            .iter()
            .map(|(_, a)| a.arguments(&rows.batch).unwrap_or_default())
            .collect();
        (rows, args)
    }

    fn late_event(&mut self, rows: &Rows, row: usize, window: (i64, i64), reason: String) {
        self.late.push(LateEvent {
            transform: self.plan.name.clone(),
            line: rows.lines.value(row),
            event_time: rows.times.value(row),
            watermark: self.judging,
            window,
            lateness: self.plan.lateness,
            reason,
            record: row_json(&rows.batch, row),
        });
    }

    /// Fires what the watermark `upto` closes (everything at the end).
    fn fire(&mut self, upto: i64, end_of_input: bool) -> OperatorResult {
        let lateness = Lateness::allowing(self.plan.lateness);
        let mut panes = std::mem::take(&mut self.panes);
        let running = self.plan.kind == WindowKind::Running;
        for (&start, pane) in panes.iter_mut() {
            if pane.end > upto && !end_of_input && !running {
                break;
            }
            let keep = !end_of_input && !lateness.is_closed(pane.end, upto);
            if let Some(rows) = self.pane_rows(start, pane, keep)? {
                self.ready.push(rows);
            }
            pane.fired = true;
        }
        panes.retain(|_, pane| (running || !lateness.is_closed(pane.end, upto)) && !end_of_input);
        self.panes = panes;

        let ids = self
            .sessions
            .due_by(if end_of_input { i64::MAX } else { upto });
        // The sessions that fire, as rows built at the end, and the slots
        // of those that close.
        let mut fired = Fired::new(&self.converter);
        let mut closed: Vec<u32> = Vec::new();
        let parser = self.converter.parser();
        for id in ids {
            let entry = self.sessions.entry(id);
            let sessions = &mut entry.sessions;
            // Sessions fired now and kept for late events: visited again
            // at their end plus the lateness, to drop them.
            let mut drops: Vec<i64> = Vec::new();
            for s in sessions.iter_mut() {
                if (s.end <= upto || end_of_input) && (!s.payload.fired || s.payload.dirty) {
                    s.payload.fired = true;
                    s.payload.dirty = false;
                    let drop_at = lateness.closes_at(s.end);
                    if drop_at > upto && !end_of_input {
                        drops.push(drop_at);
                    }
                    let key = parser.parse(&entry.key);
                    fired.push(key, s.start, s.end, s.payload.emitted, s.payload.slot);
                    s.payload.emitted += 1;
                }
            }
            sessions.retain(|s| {
                let keep = !lateness.is_closed(s.end, upto) && !end_of_input;
                if !keep {
                    // Given back once read, below.
                    closed.push(s.payload.slot);
                }
                keep
            });
            if sessions.is_empty() {
                self.sessions.remove(id);
                continue;
            }
            for at in drops {
                self.sessions.due_at(at, id);
            }
        }
        self.emit(fired, false)?;
        for slot in closed {
            self.slots.give_back(slot);
        }

        if end_of_input {
            let mut partial: Vec<(Box<[u8]>, Counted)> = self.counts.drain().collect();
            partial.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut fired = Fired::new(&self.converter);
            for (_, counted) in partial {
                let end = counted.last.saturating_add(1);
                fired.push(counted.key.row(), counted.first, end, 0, counted.slot);
            }
            self.emit(fired, true)?;
        }
        Ok(())
    }

    /// Builds the rows of windows that `fired`, to send after `pending`;
    /// gives their slots back if they are `done`.
    fn emit(&mut self, fired: Fired, done: bool) -> OperatorResult {
        if fired.slots.is_empty() {
            return Ok(());
        }
        let values = self.slots.evaluate(&fired.slots)?;
        if done {
            for &slot in &fired.slots {
                self.slots.give_back(slot);
            }
        }
        let rows = self.fired_batch(fired, values)?;
        self.fired.push(rows);
        Ok(())
    }

    /// Sends late events and results on.
    fn flush(&mut self) -> OperatorResult {
        if !self.late.is_empty() {
            self.reserved.late(&self.late);
            self.late.clear();
        }
        self.out.clear();
        for rows in self.ready.drain(..) {
            let time = rows.max_time().unwrap_or(i64::MIN);
            self.out.push(rows, time);
        }
        if !self.pending.is_empty() {
            let emissions = std::mem::take(&mut self.pending);
            let rows = self.build(emissions)?;
            let time = rows.max_time().unwrap_or(i64::MIN);
            self.out.push(rows, time);
        }
        for rows in self.fired.drain(..) {
            let time = rows.max_time().unwrap_or(i64::MIN);
            self.out.push(rows, time);
        }
        if self.out.is_empty() {
            return Ok(());
        }
        if self.read_at.is_some() {
            for rows in self.out.parts_mut().0 {
                rows.read_at = self.read_at;
            }
        }
        if let Some(watch) = self.reserved.watch() {
            let fired_by = if self.ended { i64::MAX } else { self.watermark };
            let (rows, windows) = self.fired_windows();
            watch.fired(&self.plan.name, fired_by, rows, windows);
        }
        self.down.on_batch(&mut self.out)
    }

    /// The rows about to be sent, and the windows they cover:
    /// `[earliest start, latest end)`.
    fn fired_windows(&self) -> (u64, Option<(i64, i64)>) {
        let start = self.plan.keys.len();
        let mut rows = 0;
        let mut span: Option<(i64, i64)> = None;
        for chunk in self.out.items() {
            rows += chunk.len() as u64;
            let columns = chunk.batch.columns();
            let (Some(starts), Some(ends)) = (
                columns
                    .get(start)
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
                columns
                    .get(start + 1)
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
            ) else {
                continue;
            };
            if let (Some(first), Some(last)) =
                (arrow::compute::min(starts), arrow::compute::max(ends))
            {
                span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
            }
        }
        (rows, span)
    }

    /// The rows of windows that fired, their aggregates' `values`.
    fn fired_batch(&self, fired: Fired, values: Vec<ArrayRef>) -> Result<Rows, OperatorError> {
        let n = fired.starts.len();
        let mut columns: Vec<ArrayRef> = if self.plan.keys.is_empty() {
            Vec::new()
        } else {
            self.converter
                .convert_rows(fired.keys.iter())
                .map_err(failed)?
        };
        let ends = Int64Array::from(fired.ends);
        columns.push(Arc::new(Int64Array::from(fired.starts)));
        columns.push(Arc::new(ends.clone()));
        if self.plan.changelog {
            let ops = StringArray::from_iter_values(
                fired
                    .revisions
                    .iter()
                    .map(|&r| Change::of(r, false).as_str()),
            );
            columns.push(Arc::new(ops));
            columns.push(Arc::new(UInt32Array::from(fired.revisions)));
        }
        columns.extend(values);
        self.batch(columns, ends, n)
    }

    /// Result rows of `columns`, cast to the declared types, at the last
    /// instant of their windows (`ends`).
    fn batch(
        &self,
        mut columns: Vec<ArrayRef>,
        ends: Int64Array,
        n: usize,
    ) -> Result<Rows, OperatorError> {
        // Keep the declared types (an accumulator may return a wider one).
        let fields = self.plan.output.fields();
        for (column, field) in columns.iter_mut().zip(fields.iter()) {
            if column.data_type() != field.data_type() {
                *column = cast(column, field.data_type()).map_err(failed)?;
            }
        }
        let batch = RecordBatch::try_new(self.plan.output.clone(), columns).map_err(failed)?;
        // A result's event time is the last instant of its window.
        let times = Int64Array::from_iter_values(ends.values().iter().map(|e| e.saturating_sub(1)));
        Ok(Rows::new(batch, times, UInt64Array::from(vec![0u64; n])))
    }

    fn build(&self, emissions: Vec<Emission>) -> Result<Rows, OperatorError> {
        let n = emissions.len();
        let mut columns: Vec<ArrayRef> = self
            .converter
            .convert_rows(emissions.iter().map(|e| e.key.row()))
            .map_err(failed)?;
        if self.plan.keys.is_empty() {
            columns.clear();
        }
        let starts = Int64Array::from_iter_values(emissions.iter().map(|e| e.start));
        let ends = Int64Array::from_iter_values(emissions.iter().map(|e| e.end));
        columns.push(Arc::new(starts));
        columns.push(Arc::new(ends.clone()));
        if self.plan.changelog {
            let ops = StringArray::from_iter_values(emissions.iter().map(|e| e.change.as_str()));
            let revisions = UInt32Array::from_iter_values(emissions.iter().map(|e| e.revision));
            columns.push(Arc::new(ops));
            columns.push(Arc::new(revisions));
        }
        let mut emissions = emissions;
        for (i, _) in self.plan.aggregates.iter().enumerate() {
            let values = emissions
                .iter_mut()
                .map(|e| std::mem::replace(&mut e.values[i], ScalarValue::Null));
            let array = ScalarValue::iter_to_array(values).map_err(failed)?;
            columns.push(array);
        }
        self.batch(columns, ends, n)
    }
}

impl WindowOp {
    /// Folds one chunk of rows (past the arguments) into the windows.
    fn chunk(&mut self, rows: &Rows, args: &[Vec<ArrayRef>]) -> OperatorResult {
        {
            let key_columns: Vec<ArrayRef> = self
                .plan
                .keys
                .iter()
                .map(|&k| rows.batch.column(k).clone())
                .collect();
            // No key: one group per window, through a constant column.
            let key_columns = if key_columns.is_empty() {
                vec![Arc::new(BooleanArray::from(vec![true; rows.len()])) as ArrayRef]
            } else {
                key_columns
            };
            let keys = self
                .converter
                .convert_columns(&key_columns)
                .map_err(failed)?;
            match self.plan.kind {
                WindowKind::Tumbling { size } => self.time_rows(rows, &keys, args, size, size)?,
                WindowKind::Sliding { size, slide } => {
                    self.time_rows(rows, &keys, args, size, slide)?
                }
                WindowKind::Session { gap } => self.session_rows(rows, &keys, args, gap)?,
                WindowKind::Count { size } => self.count_rows(rows, &keys, args, size)?,
                WindowKind::Running => self.running_rows(rows, &keys, args)?,
            }
        }
        Ok(())
    }
}

impl Operator<Rows> for WindowOp {
    fn on_batch(&mut self, batch: &mut Batch<Rows>) -> OperatorResult {
        for (rows, _) in batch.drain() {
            if rows.read_at.is_some() {
                self.read_at = rows.read_at;
            }
            self.counting.counts.rows_in.add(rows.len() as u64);
            let late_before = self.late.len();
            self.judging = self.watermark.max(rows.watermark);
            let (rows, args) = self.arguments(rows);
            if rows.is_empty() {
                continue;
            }
            let result = self.chunk(&rows, &args);
            self.counting
                .counts
                .aggregated
                .add(std::mem::take(&mut self.aggregated));
            let late = &self.late[late_before..];
            self.counting.counts.late.add(late.len() as u64);
            if let Some(judge) = &self.counting.judge {
                judge.refused(late.iter().map(|l| l.line), false);
                if late.is_empty() {
                    judge.accepted(rows.lines.values().iter().copied());
                } else {
                    let refused: std::collections::HashSet<u64> =
                        late.iter().map(|l| l.line).collect();
                    let accepted: Vec<u64> = rows
                        .lines
                        .values()
                        .iter()
                        .copied()
                        .filter(|l| !refused.contains(l))
                        .collect();
                    judge.accepted(accepted.into_iter());
                }
            }
            result?;
        }
        if std::mem::take(&mut self.late_updates) {
            // Emits the updated windows (everything else up to the
            // watermark has fired already).
            self.fire(self.watermark, false)?;
        }
        self.flush()
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> OperatorResult {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.fire(watermark, false)?;
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
                // Typed: a fenced commit must stay recognisable.
                .map_err(|e| OperatorError::Failed(Box::new(e)))?;
        }
        self.down.on_barrier(barrier)
    }

    fn on_end(&mut self) -> OperatorResult {
        self.ended = true;
        self.fire(i64::MAX, true)?;
        self.flush()?;
        self.reserved.release();
        self.down.on_end()
    }
    fn downstream(&mut self) -> Option<&mut dyn sluice::Signals> {
        Some(&mut self.down)
    }
}
