//! `type = "postgres-cdc"`: a table's inserts, updates and deletes, read
//! through a logical replication slot (`pgoutput`) with SQL
//! (`pg_logical_slot_peek_binary_changes`), whole transactions at a time.
//!
//! Each change is a row: `op` (`insert`, `update`, `delete`), `lsn` (where
//! its transaction ends), `commit_time` (epoch milliseconds: the event
//! time), the new values in the table's columns and the old ones, when the
//! server sends them, in `before_COLUMN`. The slot's confirmed position
//! moves (`pg_replication_slot_advance`) only once a checkpoint that holds
//! the changes has committed, so a recovery reads again what the
//! checkpoint does not hold: exactly once, with the checkpoint.

use super::pgoutput::{self, lsn_text, Message, Value};
use crate::connectors::replay::{push, Replayable, SourceCounters};
use crate::error::{Error, Result};
use crate::format::TextDecoder;
use crate::rows::Rows;
use crate::side_outputs::ReservedHandle;
use postgres::Client;
use sluice::{Batch, BoxError, Source, SourceStatus};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A change source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcPlan {
    /// The connection string.
    pub url: String,
    /// The table, `schema.name`.
    pub table: String,
    /// The replication slot (created if missing).
    pub slot: String,
    /// The publication (created for the table if missing).
    pub publication: String,
    /// The table's columns the source reads, with whether each is a
    /// boolean or a number (written as such in the JSON it decodes).
    pub columns: Vec<String>,
    /// End the input once no change has come for this long.
    pub end_after_idle: Option<Duration>,
    /// Start with the table's rows as inserts (a run that starts from
    /// nothing; a resumed run has read them).
    pub snapshot: bool,
}

/// Reads a table's changes.
pub(crate) struct CdcSource {
    plan: CdcPlan,
    client: Client,
    decoder: TextDecoder,
    counters: std::sync::Arc<SourceCounters>,
    reserved: ReservedHandle,
    /// Checkpoints are on: the slot moves only after they commit.
    durable: bool,
    chunk_rows: usize,
    interval: Duration,
    /// The end of the last transaction emitted.
    emitted: u64,
    /// Rows a peek returns before the first transaction not yet emitted.
    behind: usize,
    /// The positions of checkpoints taken and not yet committed.
    positions: Mutex<VecDeque<u64>>,
    /// The table's columns by relation id: for each column the source
    /// reads, its index in the relation's row and its type OID.
    relations: HashMap<u32, Vec<(usize, u32)>>,
    /// Changes numbered from the start of this run (dead letters' lines).
    changes: u64,
    last_change_at: Instant,
    /// An error found after changes that came before it.
    failed: Option<Error>,
    /// The table's rows are still to be read as inserts.
    snapshot: bool,
    /// Where the slot's confirmed position was last moved.
    confirmed: u64,
    /// A resumed run checks on its first poll that the slot has not moved
    /// past its checkpoint.
    check_slot: bool,
    /// The end of the last transaction that gave rows (or the snapshot's
    /// position): the end of the input waits until the slot is there.
    data_end: u64,
}

impl CdcSource {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        plan: &CdcPlan,
        decoder: TextDecoder,
        counters: std::sync::Arc<SourceCounters>,
        reserved: ReservedHandle,
        durable: bool,
        chunk_rows: usize,
        interval: Duration,
    ) -> Result<Self> {
        let context = |what: &str, e: postgres::Error| {
            let error = Error::input(format!("postgres-cdc {}: {what}", plan.table));
            match e.as_db_error() {
                Some(db) => error.caused_by(db.to_string()),
                None => error.caused_by(e),
            }
        };
        let mut client = super::sink::connect(&plan.url)
            .map_err(|e| e.context(format!("postgres-cdc {}", plan.table)))?;
        let exists = |client: &mut Client, sql: &str, name: &str| {
            client
                .query_one(sql, &[&name])
                .map(|row| row.get::<_, bool>(0))
        };
        if !exists(
            &mut client,
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &plan.publication,
        )
        .map_err(|e| context("cannot read the publications", e))?
        {
            let table = super::columns::quoted_name(&plan.table)
                .ok_or_else(|| Error::input(format!("table \"{}\"", plan.table)))?;
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {table}",
                    super::columns::ident(&plan.publication)
                ))
                .map_err(|e| context("cannot create the publication", e))?;
        }
        if !exists(
            &mut client,
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &plan.slot,
        )
        .map_err(|e| context("cannot read the replication slots", e))?
        {
            client
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&plan.slot],
                )
                .map_err(|e| {
                    context(
                        "cannot create the replication slot (the server needs wal_level = \
                         logical, and the user the REPLICATION privilege)",
                        e,
                    )
                })?;
        }
        let mut source = Self {
            plan: plan.clone(),
            client,
            decoder,
            counters,
            reserved,
            durable,
            chunk_rows: chunk_rows.max(1),
            interval,
            emitted: 0,
            behind: 0,
            positions: Mutex::new(VecDeque::new()),
            relations: HashMap::new(),
            changes: 0,
            last_change_at: Instant::now(),
            failed: None,
            snapshot: plan.snapshot,
            confirmed: 0,
            check_slot: false,
            data_end: 0,
        };
        // A fresh run starts where the slot is: a checkpoint taken before
        // the first change holds that position, not 0.
        let slot = source.slot_position()?;
        source.emitted = slot;
        source.confirmed = slot;
        source.data_end = slot;
        Ok(source)
    }

    /// Peeks at the slot: the JSON lines of the transactions not yet
    /// emitted (whole ones), and the end of the last of them.
    fn peek(&mut self) -> Result<(Vec<String>, u64)> {
        let mut limit = self.behind + self.chunk_rows;
        loop {
            let (slot, publication) = (self.plan.slot.clone(), self.plan.publication.clone());
            let rows = self
                .on_slot(|client| {
                    client.query(
                        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                         'proto_version', '1', 'publication_names', $3)",
                        &[
                            &slot,
                            &i32::try_from(limit).unwrap_or(i32::MAX),
                            &publication,
                        ],
                    )
                })
                .map_err(|e| slot_error(&self.plan, "cannot read the slot", e))?;
            let returned = rows.len();
            let (mut lines, mut end, mut behind) = (Vec::new(), self.emitted, 0);
            let (mut txn, mut txn_rows, mut time) = (Vec::new(), 0, 0);
            for row in rows {
                let data: Vec<u8> = row.get(0);
                txn_rows += 1;
                match pgoutput::parse(&data).ok_or_else(|| {
                    Error::input(format!(
                        "postgres-cdc {}: a replication message cannot be read",
                        self.plan.table
                    ))
                })? {
                    Message::Begin { commit_time } => {
                        time = (commit_time + PG_EPOCH_MICROS).div_euclid(1000);
                        txn.clear();
                    }
                    Message::Relation(r) => {
                        if let Err(e) = self.relation(r) {
                            // What came before is emitted; the error at the
                            // next poll.
                            if lines.is_empty() {
                                return Err(e);
                            }
                            self.failed = Some(e);
                            self.behind = behind;
                            return Ok((lines, end));
                        }
                    }
                    Message::Insert { relation, new } => {
                        txn.extend(self.change(relation, "insert", None, Some(&new), time))
                    }
                    Message::Update { relation, old, new } => txn.extend(self.change(
                        relation,
                        "update",
                        old.as_deref(),
                        Some(&new),
                        time,
                    )),
                    Message::Delete { relation, old } => {
                        txn.extend(self.change(relation, "delete", Some(&old), None, time))
                    }
                    Message::Truncate { relations }
                        if !relations.iter().any(|r| self.relations.contains_key(r)) => {}
                    Message::Truncate { .. } => {
                        let error = Error::input(format!(
                            "postgres-cdc {}: the table was truncated, which a change stream \
                             of rows cannot carry; start the pipeline over",
                            self.plan.table
                        ));
                        // What came before is emitted; the error at the
                        // next poll.
                        if lines.is_empty() {
                            return Err(error);
                        }
                        self.failed = Some(error);
                        self.behind = behind;
                        return Ok((lines, end));
                    }
                    Message::Commit { end_lsn } => {
                        if end_lsn > end {
                            for mut change in txn.drain(..) {
                                change.insert("lsn".into(), end_lsn.into());
                                lines.push(serde_json::Value::Object(change).to_string());
                            }
                            end = end_lsn;
                        } else {
                            behind += txn_rows;
                        }
                        txn.clear();
                        txn_rows = 0;
                    }
                    Message::Other => {}
                }
            }
            if end > self.emitted || returned < limit {
                self.behind = behind;
                return Ok((lines, end));
            }
            // Every transaction returned was emitted already: ask for more.
            limit = limit.saturating_mul(2);
        }
    }

    /// Notes a table's columns; a change of the columns the source reads
    /// is an error that says which.
    fn relation(&mut self, r: pgoutput::Relation) -> Result<()> {
        if r.name != self.plan.table {
            return Ok(());
        }
        let mut read = Vec::new();
        for column in &self.plan.columns {
            let Some(index) = r.columns.iter().position(|(name, _)| name == column) else {
                let has: Vec<&str> = r.columns.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::input(format!(
                    "postgres-cdc {}: the table's columns changed mid-stream: it has no column \
                     `{column}` any more (it has: {}); give the source's schema the columns the \
                     table has now and start over",
                    self.plan.table,
                    has.join(", ")
                )));
            };
            read.push((index, r.columns[index].1));
        }
        self.relations.insert(r.id, read);
        Ok(())
    }

    /// A change as a JSON object (its `lsn` still to add), if it is of the
    /// table.
    fn change(
        &self,
        relation: u32,
        op: &str,
        old: Option<&[Value]>,
        new: Option<&[Value]>,
        time: i64,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let columns = self.relations.get(&relation)?;
        let mut object = serde_json::Map::new();
        object.insert("op".into(), op.into());
        object.insert("commit_time".into(), time.into());
        for (name, (index, oid)) in self.plan.columns.iter().zip(columns) {
            let value = |row: Option<&[Value]>| match row.and_then(|r| r.get(*index)) {
                Some(Value::Text(text)) => json_value(text, *oid),
                _ => serde_json::Value::Null,
            };
            // A TOASTed value an update leaves unchanged is not repeated:
            // the old row has it with REPLICA IDENTITY FULL.
            let unchanged = matches!(new.and_then(|r| r.get(*index)), Some(Value::Unchanged));
            let after = if unchanged { value(old) } else { value(new) };
            object.insert(name.clone(), after);
            object.insert(format!("before_{name}"), value(old));
        }
        Some(object)
    }

    /// The table's rows as inserts (`lsn` 0, the time of reading as their
    /// commit time), read in one query after the slot exists: a change
    /// committed between the slot's making and this query is in both.
    fn snapshot(&mut self) -> Result<Vec<String>> {
        let table = super::columns::quoted_name(&self.plan.table)
            .ok_or_else(|| Error::input(format!("table \"{}\"", self.plan.table)))?;
        let columns: Vec<String> = self
            .plan
            .columns
            .iter()
            .map(|c| super::columns::ident(c))
            .collect();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT row_to_json(t)::text FROM (SELECT {} FROM {table}) t",
                    columns.join(", ")
                ),
                &[],
            )
            .map_err(|e| {
                Error::input(format!(
                    "postgres-cdc {}: cannot read the table's rows",
                    self.plan.table
                ))
                .caused_by(e)
            })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut lines = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.get(0);
            let mut object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| {
                    Error::input(format!("postgres-cdc {}: a row", self.plan.table)).caused_by(e)
                })?;
            object.insert("op".into(), "insert".into());
            object.insert("lsn".into(), 0.into());
            object.insert("commit_time".into(), now.into());
            lines.push(serde_json::Value::Object(object).to_string());
        }
        Ok(lines)
    }

    /// Fails if the slot has moved past what the checkpoint holds: the
    /// changes in between are gone.
    fn check_slot(&mut self) -> Result<()> {
        let confirmed = self.slot_position()?;
        if confirmed > self.emitted {
            return Err(Error::damaged(format!(
                "postgres-cdc {}: the slot {} has moved past this pipeline's checkpoint (to {}, \
                 the checkpoint holds {}): the changes in between are gone. Something else \
                 read the slot, or it was made again",
                self.plan.table,
                self.plan.slot,
                lsn_text(confirmed),
                lsn_text(self.emitted)
            )));
        }
        // The checkpoint has committed: the slot may move to it (a run
        // killed before its `committed()` left it behind).
        self.confirmed = confirmed;
        self.advance(self.emitted)
    }

    /// The slot's confirmed position.
    fn slot_position(&mut self) -> Result<u64> {
        let row = self
            .client
            .query_one(
                "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::text FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&self.plan.slot],
            )
            .map_err(|e| slot_error(&self.plan, "the slot", e))?;
        Ok(row
            .get::<_, Option<String>>(0)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0))
    }

    /// Runs `f` on the slot; while the slot is in use by another session
    /// (55006: the server has not yet seen that a killed run's connection
    /// is gone, or its last read is finishing), tries again for a minute.
    fn on_slot<T>(
        &mut self,
        mut f: impl FnMut(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> std::result::Result<T, postgres::Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match f(&mut self.client) {
                Err(e)
                    if Instant::now() < deadline
                        && e.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                outcome => return outcome,
            }
        }
    }

    /// Moves the slot's confirmed position to `lsn`.
    fn advance(&mut self, lsn: u64) -> Result<()> {
        if lsn == 0 {
            return Ok(());
        }
        // Never back: a slot that is ahead stays where it is.
        let slot = self.plan.slot.clone();
        self.on_slot(|client| {
            client.execute(
                "SELECT pg_replication_slot_advance(slot_name, \
                 greatest($2::text::pg_lsn, confirmed_flush_lsn)) \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot, &lsn_text(lsn)],
            )
        })
        .map_err(|e| slot_error(&self.plan, "cannot advance the slot", e))?;
        self.behind = 0;
        self.confirmed = self.confirmed.max(lsn);
        Ok(())
    }
}

/// An error of the server about the slot, with what was being done.
fn slot_error(plan: &CdcPlan, what: &str, e: postgres::Error) -> Error {
    super::sink::sql_error(
        &format!("postgres-cdc {}: {what} {}", plan.table, plan.slot),
        e,
    )
}

/// A value in PostgreSQL's text form as JSON: booleans and numbers as
/// such, anything else as a string.
fn json_value(text: &str, oid: u32) -> serde_json::Value {
    match oid {
        16 => serde_json::Value::Bool(text == "t"),
        20 | 21 | 23 | 26 | 700 | 701 | 1700 => text
            .parse::<serde_json::Number>()
            .map_or_else(|_| text.into(), serde_json::Value::Number),
        _ => text.into(),
    }
}

impl Source<Rows> for CdcSource {
    fn poll(&mut self, out: &mut Batch<Rows>, _max: usize) -> Result<SourceStatus, BoxError> {
        if let Some(error) = self.failed.take() {
            return Err(error.into());
        }
        if std::mem::take(&mut self.check_slot) {
            self.check_slot()?;
        }
        let (lines, end) = if std::mem::take(&mut self.snapshot) {
            // One chunk, so that no checkpoint falls inside it.
            (self.snapshot()?, self.emitted)
        } else {
            self.peek()?
        };
        if lines.is_empty() {
            // Transactions of other tables, or without changes.
            self.emitted = self.emitted.max(end);
            if let Some(idle) = self.plan.end_after_idle {
                // With checkpoints, the end waits for one that holds
                // everything emitted, so that the slot moves past it.
                let confirmed = !self.durable || self.confirmed >= self.data_end;
                if self.last_change_at.elapsed() >= idle && confirmed {
                    return Ok(SourceStatus::Exhausted);
                }
            }
            std::thread::sleep(self.interval);
            return Ok(SourceStatus::Idle);
        }
        self.last_change_at = Instant::now();
        let mut region = Vec::new();
        let mut numbered = Vec::with_capacity(lines.len());
        for line in &lines {
            self.changes += 1;
            let start = region.len();
            region.extend_from_slice(line.as_bytes());
            numbered.push((self.changes, start..region.len()));
            region.push(b'\n');
        }
        self.counters.add_read(lines.len() as u64);
        self.counters.add_bytes(region.len() as u64);
        let decoded = self.decoder.decode(&region, &numbered);
        self.counters
            .decoded_into(decoded.rows.as_ref(), &decoded.dead);
        self.reserved.dead(&decoded.dead);
        if let Some(rows) = decoded.rows {
            push(out, rows);
        }
        self.emitted = end;
        self.data_end = end;
        let early = crate::fault::on(
            crate::fault::Fault::CdcAdvanceEarly,
            std::path::Path::new("postgres-cdc"),
        );
        if !self.durable || early {
            self.advance(end)?;
        }
        Ok(SourceStatus::Ready)
    }

    /// A poll waits for changes (a batch interval when there are none).
    fn blocking(&self) -> bool {
        true
    }
}

impl Replayable for CdcSource {
    fn position(&self) -> serde_json::Value {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(self.emitted);
        serde_json::json!({ "lsn": self.emitted })
    }

    fn seek(&mut self, position: &serde_json::Value) -> Result<()> {
        self.emitted = position["lsn"].as_u64().ok_or_else(|| {
            Error::damaged(format!(
                "a postgres-cdc position without an lsn: {position}"
            ))
        })?;
        // A resumed run has read the snapshot: it is one chunk, and the
        // first barrier comes after it.
        self.snapshot = false;
        self.data_end = self.emitted;
        self.check_slot = true;
        Ok(())
    }

    fn release_reserved(&self) {
        self.reserved.release();
    }

    fn committed(&mut self) -> Result<()> {
        let lsn = self
            .positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        match lsn {
            Some(lsn) => self.advance(lsn),
            None => Ok(()),
        }
    }
}
