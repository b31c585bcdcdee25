//! `type = "postgres"` as a sink: rows appended to a table, or upserted by
//! key, exactly once across crashes; and `type = "postgres-cdc"`, a source
//! of a table's changes (see [`cdc`]).
//!
//! - [`table`]: checking and compiling the tables of both;
//! - [`cdc`], [`pgoutput`]: the change source and the replication messages
//!   it reads;
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

pub mod cdc;
mod columns;
mod pgoutput;
mod sink;
mod table;

use super::replay::ReplayableSource;
use super::{Key, Kind, Opening, SinkConnector, SinkType, SourceConnector, SourceType};
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

/// `type = "postgres-cdc"`: a table's changes.
pub const CDC_SOURCE: SourceType = SourceType {
    name: "postgres-cdc",
    keys: &[
        Key("schema", Kind::Table),
        Key("url", Kind::Text),
        Key("table", Kind::Text),
        Key("slot", Kind::Text),
        Key("publication", Kind::Text),
        Key("end_after_idle", Kind::Text),
        Key("snapshot", Kind::Bool),
    ],
    compile: table::cdc_source,
};

/// The field that holds a change's commit time: the event time.
pub const COMMIT_TIME: &str = "commit_time";

/// A postgres-cdc source, as the registry holds it.
#[derive(Debug, Clone)]
pub struct Cdc(pub cdc::CdcPlan);

impl SourceConnector for Cdc {
    fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        let decoder = crate::format::TextDecoder::new(
            crate::format::Format::Jsonl,
            at.schema.clone(),
            at.time.clone(),
            format!("postgres-cdc:{}", self.0.table),
        );
        Ok(Box::new(cdc::CdcSource::open(
            &self.0,
            decoder,
            at.counters.clone(),
            crate::side_outputs::ReservedHandle::new(at.reserved.clone()),
            at.reserved.holds(),
            at.chunk_rows,
            at.batch_interval.max(Duration::from_millis(10)),
        )?))
    }

    fn describe(&self) -> String {
        format!(
            "postgres changes of {} (slot {}, publication {})",
            self.0.table, self.0.slot, self.0.publication
        )
    }

    fn label(&self) -> String {
        format!("postgres-cdc {}", self.0.table)
    }

    fn default_time_field(&self) -> Option<&str> {
        Some(COMMIT_TIME)
    }

    fn identity(&self) -> String {
        // The server's address does not change results.
        format!(
            "{:?}",
            cdc::CdcPlan {
                url: String::new(),
                ..self.0.clone()
            }
        )
    }
}

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
