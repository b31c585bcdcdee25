//! `type = "postgres"` as a sink: rows appended to a table, or upserted by
//! key, exactly once across crashes.
//!
//! - [`table`]: checking and compiling the sink's table;
//! - [`columns`]: Arrow types as PostgreSQL's, and rows as `COPY` text;
//! - [`sink`]: the writer, its transactions and its recovery.
//!
//! Rows are written in transactions, each of which also records in a
//! Sluice-owned progress table (`sluice_progress`) how many rows the sink
//! has written in all: the sink's length in Sluice's checkpoint. A recovery
//! finds what committed after the checkpoint it resumes from and takes it
//! back out (append: the rows those transactions inserted, by their `xmin`)
//! or lets the replay write it again (upsert: writing a key's row twice
//! leaves it as once). docs/connectors.md has the guarantee and its limits.

mod columns;
mod sink;
mod table;

use super::{Key, Kind, SinkConnector, SinkType};
use crate::checkpoint::Guarantee;
use crate::error::{Error, Result};
use crate::output::RowWriter;
use arrow::datatypes::SchemaRef;
use std::time::Duration;

/// `type = "postgres"` as a sink.
pub const SINK: SinkType = SinkType {
    name: "postgres",
    keys: &[
        Key("url", Kind::Text),
        Key("table", Kind::Text),
        Key("mode", Kind::Text),
        Key("key", Kind::Names),
        Key("create", Kind::Bool),
        Key("id", Kind::Text),
        Key("max_buffered_rows", Kind::Unsigned),
        Key("flush_interval", Kind::Text),
        Key("retry_for", Kind::Text),
    ],
    compile: table::sink,
};

/// The table that records what each sink has committed.
pub const PROGRESS_TABLE: &str = "sluice_progress";

/// How rows go into the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Each row is inserted.
    Append,
    /// Each row replaces the table's row of the same key, or is inserted;
    /// a changelog's deletes delete it.
    Upsert {
        /// The key's columns: the table's primary key (or a unique
        /// constraint over them).
        key: Vec<String>,
    },
}

/// A PostgreSQL table that a stream is written to.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// The connection string (`postgresql://user@host:port/db` or
    /// `host=... user=...`).
    pub url: String,
    /// The table, as written (`revenue`, `shop.revenue`).
    pub table: String,
    /// Append or upsert.
    pub mode: Mode,
    /// Create the table when it is missing, with columns from the stream.
    pub create: bool,
    /// The sink's name in the progress table (default: the table's).
    pub id: String,
    /// Rows held before they are written without waiting for a checkpoint.
    pub max_buffered_rows: usize,
    /// Rows held longer than this are written with the next row that
    /// comes (a checkpoint writes them in any case).
    pub flush_interval: Duration,
    /// How long a lost connection is tried again before the run fails.
    pub retry_for: Duration,
}

impl SinkConnector for PostgresTarget {
    fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        Ok(Box::new(sink::PostgresWriter::open(self, schema, length)?))
    }

    fn describe(&self) -> String {
        match &self.mode {
            Mode::Append => format!("postgres table {} (append)", self.table),
            Mode::Upsert { key } => {
                format!(
                    "postgres table {} (upsert by {})",
                    self.table,
                    key.join(", ")
                )
            }
        }
    }

    fn label(&self) -> String {
        format!("postgres:{}", self.table)
    }

    fn refuses_distributed(&self, _guarantee: Guarantee) -> Option<Error> {
        Some(Error::refused(format!(
            "postgres:{}: a postgres sink is written by one process (its progress table \
             counts one writer's rows); a distributed run writes from several",
            self.table
        )))
    }
}
