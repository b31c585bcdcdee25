//! The postgres sink's writer: rows held, then written in one transaction
//! with the sink's progress; a recovery that takes back (append) or lets
//! the replay rewrite (upsert) what committed after the checkpoint.

use super::columns::{self, copy_text, ident, quoted_name, Column};
use super::{Mode, PostgresTarget, PROGRESS_TABLE};
use crate::error::{Error, Fix, Result};
use crate::fault::{self, Fault};
use crate::output::{Durable, RowWriter};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use postgres::{Client, NoTls};
use std::io::Write as _;
use std::time::{Duration, Instant};

/// Writes a stream's rows into a PostgreSQL table.
pub(crate) struct PostgresWriter {
    target: PostgresTarget,
    /// The table's name, quoted.
    table: String,
    client: Option<Client>,
    columns: Vec<Column>,
    /// The index of a changelog's `op` column, in an upsert.
    ops: Option<usize>,
    /// Rows held until the next write to the table.
    held: Vec<RecordBatch>,
    held_rows: usize,
    /// When rows were last written (or the writer opened).
    flushed_at: Instant,
    /// Rows written and committed so far: the sink's length.
    committed: u64,
    /// The lengths of the last two checkpoints: progress rows below the
    /// older are no longer needed by any recovery.
    checkpoints: [u64; 2],
}

impl PostgresWriter {
    pub(crate) fn open(
        target: &PostgresTarget,
        schema: SchemaRef,
        length: Option<u64>,
    ) -> Result<Self> {
        let context = |e: Error| e.context(format!("postgres sink `{}`", target.table));
        let columns = columns::columns(&schema, &target.mode).map_err(Error::output)?;
        let ops = match target.mode {
            Mode::Upsert { .. } => schema.index_of("op").ok(),
            Mode::Append => None,
        };
        let mut writer = Self {
            table: quoted_name(&target.table)
                .ok_or_else(|| Error::output(format!("table \"{}\"", target.table)))?,
            target: target.clone(),
            client: None,
            columns,
            ops,
            held: Vec::new(),
            held_rows: 0,
            flushed_at: Instant::now(),
            committed: 0,
            checkpoints: [0; 2],
        };
        writer.prepare().map_err(context)?;
        writer.recover(length).map_err(context)?;
        Ok(writer)
    }

    /// The connection, made (again) if there is none, tried until
    /// `retry_for` has passed.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            let deadline = Instant::now() + self.target.retry_for;
            let mut wait = Duration::from_millis(100);
            let client = loop {
                match connect(&self.target.url) {
                    Ok(c) => break c,
                    Err(e) if Instant::now() + wait >= deadline => return Err(e),
                    Err(_) => {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            };
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Error::Bug("no postgres connection".into()))
    }

    /// Creates the progress table, and the target when asked; checks that
    /// the target has the stream's columns.
    fn prepare(&mut self) -> Result<()> {
        let create = self.target.create.then(|| self.create_table());
        let (table, columns) = (self.table.clone(), self.columns.clone());
        let client = self.client()?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (sink text NOT NULL, \
                 rows bigint NOT NULL, PRIMARY KEY (sink, rows))"
            ))
            .map_err(|e| sql_error("cannot create the progress table", e))?;
        if let Some(create) = create {
            client
                .batch_execute(&create)
                .map_err(|e| sql_error("cannot create the table", e))?;
        }
        let statement = client
            .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
            .map_err(|e| {
                sql_error(
                    "cannot read the table (create it, or say create = true to let the \
                     sink create it)",
                    e,
                )
            })?;
        let has: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
        if let Some(missing) = columns.iter().find(|c| !has.contains(&c.name.as_str())) {
            return Err(Error::output(format!(
                "the table has no column `{}` (it has: {}); add it, or write to a new table \
                 with create = true",
                missing.name,
                has.join(", ")
            )));
        }
        Ok(())
    }

    /// `CREATE TABLE IF NOT EXISTS` with the stream's columns (an upsert's
    /// key as the primary key).
    fn create_table(&self) -> String {
        let mut columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), c.sql_type))
            .collect();
        if let Mode::Upsert { key } = &self.target.mode {
            let key: Vec<String> = key.iter().map(|k| ident(k)).collect();
            columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table,
            columns.join(", ")
        )
    }

    /// Puts the table back to where a checkpoint of `length` rows left it:
    /// what committed after it is taken out (append) or left for the
    /// replay to write again (upsert). A new run starts the count again.
    fn recover(&mut self, length: Option<u64>) -> Result<()> {
        let (id, table, append) = (
            self.target.id.clone(),
            self.table.clone(),
            self.target.mode == Mode::Append,
        );
        let path = std::path::PathBuf::from(format!("postgres/{id}"));
        let client = self.client()?;
        let Some(length) = length else {
            client
                .execute(
                    &format!("DELETE FROM {PROGRESS_TABLE} WHERE sink = $1"),
                    &[&id],
                )
                .map_err(|e| sql_error("cannot reset the progress table", e))?;
            return Ok(());
        };
        let row = client
            .query_one(
                &format!("SELECT coalesce(max(rows), 0) FROM {PROGRESS_TABLE} WHERE sink = $1"),
                &[&id],
            )
            .map_err(|e| sql_error("cannot read the progress table", e))?;
        let progress = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let at = i64::try_from(length).map_err(|_| Error::damaged("a sink length past i64"))?;
        if progress < length {
            return Err(Error::damaged(format!(
                "the checkpoint says {length} rows were written to the table, but the \
                 progress table ({PROGRESS_TABLE}, sink \"{id}\") has {progress}: it was \
                 changed behind the run"
            ))
            .with_fix(Fix::StartOver));
        }
        if progress > length {
            let mut tx = client
                .transaction()
                .map_err(|e| sql_error("cannot start a transaction", e))?;
            if append && !fault::on(Fault::SkipPostgresUndo, &path) {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE xmin IN (SELECT xmin FROM {PROGRESS_TABLE} \
                         WHERE sink = $1 AND rows > $2)"
                    ),
                    &[&id, &at],
                )
                .map_err(|e| sql_error("cannot take back rows written after the checkpoint", e))?;
            }
            tx.execute(
                &format!("DELETE FROM {PROGRESS_TABLE} WHERE sink = $1 AND rows > $2"),
                &[&id, &at],
            )
            .and_then(|_| tx.commit())
            .map_err(|e| sql_error("cannot roll the progress table back", e))?;
        }
        self.committed = length;
        self.checkpoints = [length; 2];
        Ok(())
    }

    /// Writes the rows held in one transaction with the sink's new length,
    /// through lost connections until `retry_for` has passed.
    fn flush(&mut self) -> Result<()> {
        self.flushed_at = Instant::now();
        if self.held.is_empty() {
            return Ok(());
        }
        let end = self.committed + self.held_rows as u64;
        let mut text = String::new();
        let mut seq = 0;
        for batch in &self.held {
            let numbered = matches!(self.target.mode, Mode::Upsert { .. }).then_some(seq);
            copy_text(batch, &self.columns, self.ops, numbered, &mut text)?;
            seq += batch.num_rows() as u64;
        }
        let statements = self.statements();
        let deadline = Instant::now() + self.target.retry_for;
        let mut retried = false;
        loop {
            let client = self.client()?;
            match write(client, &statements, &text, end) {
                Ok(()) => break,
                Err(e) if e.transient(retried) && Instant::now() < deadline => {
                    retried = true;
                    // The commit may have happened before the connection
                    // was lost: the progress table says.
                    self.client = None;
                    std::thread::sleep(Duration::from_millis(200));
                    if self.committed_up_to(end)? {
                        break;
                    }
                }
                Err(e) => return Err(e.into_error()),
            }
        }
        self.committed = end;
        self.held.clear();
        self.held_rows = 0;
        Ok(())
    }

    /// Whether a transaction that wrote up to `end` rows has committed.
    fn committed_up_to(&mut self, end: u64) -> Result<bool> {
        let id = self.target.id.clone();
        let row = self
            .client()?
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {PROGRESS_TABLE} WHERE sink = $1 AND \
                     rows = $2)"
                ),
                &[&id, &(end as i64)],
            )
            .map_err(|e| sql_error("cannot read the progress table", e))?;
        Ok(row.get(0))
    }

    /// What a transaction runs, around the `COPY` of the rows.
    fn statements(&self) -> Statements {
        let table = &self.table;
        let list = columns::list(&self.columns);
        match &self.target.mode {
            Mode::Append => Statements {
                before: String::new(),
                copy: format!("COPY {table} ({list}) FROM STDIN"),
                after: String::new(),
                id: self.target.id.clone(),
                keep_from: self.checkpoints[0],
            },
            Mode::Upsert { key } => {
                let staged: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", ident(&c.name), c.sql_type))
                    .collect();
                let keys: Vec<String> = key.iter().map(|k| ident(k)).collect();
                let matches: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect();
                let updates: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|c| !key.contains(&c.name))
                    .map(|c| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
                    .collect();
                let on_conflict = if updates.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                let keys = keys.join(", ");
                Statements {
                    before: format!(
                        "CREATE TEMP TABLE sluice_stage (sluice_seq bigint, sluice_op text, {}) \
                         ON COMMIT DROP",
                        staged.join(", ")
                    ),
                    copy: "COPY sluice_stage FROM STDIN".to_string(),
                    after: format!(
                        "CREATE TEMP TABLE sluice_last ON COMMIT DROP AS SELECT DISTINCT ON \
                         ({keys}) * FROM sluice_stage ORDER BY {keys}, sluice_seq DESC; \
                         DELETE FROM {table} t USING sluice_last s WHERE s.sluice_op = \
                         'delete' AND {matches}; \
                         INSERT INTO {table} ({list}) SELECT {list} FROM sluice_last WHERE \
                         sluice_op IS DISTINCT FROM 'delete' ON CONFLICT ({keys}) {on_conflict}",
                        matches = matches.join(" AND ")
                    ),
                    id: self.target.id.clone(),
                    keep_from: self.checkpoints[0],
                }
            }
        }
    }
}

/// The statements of one write.
struct Statements {
    before: String,
    copy: String,
    after: String,
    id: String,
    /// Progress rows below this length are deleted.
    keep_from: u64,
}

/// Why a write failed.
enum Failed {
    /// The server or the connection.
    Sql(postgres::Error),
    /// Sending the rows.
    Io(std::io::Error),
}

impl Failed {
    /// Whether writing again on a new connection may succeed: the
    /// connection was lost, the server restarts, or the transaction lost a
    /// race with another.
    fn transient(&self, retried: bool) -> bool {
        match self {
            Failed::Io(_) => true,
            Failed::Sql(e) => match e.as_db_error() {
                None => true,
                Some(db) => {
                    let code = db.code().code();
                    // 23505 on the progress row: a commit whose answer was
                    // lost may still have been finishing; the progress
                    // table is asked again.
                    let progress_row = retried
                        && code == "23505"
                        && db.constraint() == Some(&format!("{PROGRESS_TABLE}_pkey"));
                    progress_row
                        || code.starts_with("08")
                        || ["57P01", "57P02", "57P03", "40001", "40P01"].contains(&code)
                }
            },
        }
    }

    fn into_error(self) -> Error {
        match self {
            Failed::Sql(e) => sql_error("cannot write the rows", e),
            Failed::Io(e) => Error::output("cannot send the rows").caused_by(e),
        }
    }
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Failed::Sql(e)
    }
}

/// One transaction: the rows and the sink's new length `end`; progress
/// rows below `keep_from` are deleted (no recovery needs them).
fn write(client: &mut Client, s: &Statements, text: &str, end: u64) -> Result<(), Failed> {
    let mut tx = client.transaction()?;
    if !s.before.is_empty() {
        tx.batch_execute(&s.before)?;
    }
    let mut copy = tx.copy_in(s.copy.as_str())?;
    copy.write_all(text.as_bytes()).map_err(Failed::Io)?;
    copy.finish()?;
    if !s.after.is_empty() {
        tx.batch_execute(&s.after)?;
    }
    tx.execute(
        &format!("INSERT INTO {PROGRESS_TABLE} (sink, rows) VALUES ($1, $2)"),
        &[&s.id, &(end as i64)],
    )?;
    tx.execute(
        &format!("DELETE FROM {PROGRESS_TABLE} WHERE sink = $1 AND rows < $2"),
        &[&s.id, &(s.keep_from as i64)],
    )?;
    Ok(tx.commit()?)
}

/// An error of the server, with what was being done.
pub(super) fn sql_error(what: &str, e: postgres::Error) -> Error {
    let error = Error::output(what);
    match e.as_db_error() {
        Some(db) => error.caused_by(db.to_string()),
        None => error.caused_by(e),
    }
}

impl RowWriter for PostgresWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.held.push(batch.clone());
        self.held_rows += batch.num_rows();
        if self.held_rows >= self.target.max_buffered_rows
            || self.flushed_at.elapsed() >= self.target.flush_interval
        {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.flush()
            .map_err(|e| e.context(format!("postgres sink `{}`", self.target.table)))
    }

    fn checkpoint(&mut self) -> Result<Durable> {
        self.flush()
            .map_err(|e| e.context(format!("postgres sink `{}`", self.target.table)))?;
        self.checkpoints = [self.checkpoints[1], self.committed];
        Ok(Durable::written(self.committed))
    }
}

/// A connection with timestamps read and written in UTC.
pub(super) fn connect(url: &str) -> Result<Client> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| Error::output("the connection string is not valid").caused_by(e))?;
    config
        .connect_timeout(Duration::from_secs(10))
        .options("-c TimeZone=UTC");
    config
        .connect(NoTls)
        .map_err(|e| Error::output("cannot connect").caused_by(e))
}
