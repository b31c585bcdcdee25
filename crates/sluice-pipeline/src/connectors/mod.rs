//! Connectors: where a pipeline's rows come from and where they go, one
//! folder or file per `type =` of a source or sink. What a connector
//! implements (schema, positions for replay, commit after a checkpoint,
//! durability) is in `docs/connectors.md`.
//!
//! This file is the registry: [`SourceKind`] and [`Target`] hold each
//! connector's settings, and their methods here are the only places that
//! match on the connector's type (the plan compiles a file's tables into
//! them; the run, the dashboard and distributed runs ask them).
//!
//! - [`replay`]: what every replayable source implements, and the wrapper
//!   that takes its checkpoints;
//! - [`sink`]: what every sink implements, and the sink stage;
//! - [`file`]: files (JSON lines, CSV, Parquet), stdin and stdout;
//! - [`generator`]: generated inputs; [`paced`]: a rate limit on any source;
//! - [`nats`]: NATS JetStream, partitioned, for distributed runs.
//!
//! Connectors never import the plan: each holds its own settings type.

pub mod file;
pub mod generator;
pub mod nats;
pub mod paced;
pub mod replay;
pub mod sink;

use crate::checkpoint::Guarantee;
use crate::error::{Error, Fix, Result};
use crate::format::{EventTime, Format, TextDecoder};
use crate::side_outputs::Reserved;
use arrow::datatypes::SchemaRef;
use file::{Bytes, ParquetSource, TextSource};
use nats::{NatsSourcePlan, NatsTarget, PartitionContext};
use replay::{ReplayableSource, SourceCounters};
use sink::RowWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the source's rows come from.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A file.
    File {
        /// Resolved against the pipeline file's folder.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// Standard input.
    Stdin {
        /// JSON lines or CSV.
        format: Format,
    },
    /// The Nexmark benchmark's events.
    Nexmark {
        /// How many.
        events: u64,
    },
    /// The shared W0/W1 benchmark stream: `key`, `value`, `ts` (see
    /// `FormulaEvent`).
    Formula {
        /// How many.
        events: u64,
    },
    /// A partitioned JetStream stream (a distributed run).
    Nats(NatsSourcePlan),
    /// Synthetic sensor readings.
    Generator {
        /// How many.
        events: u64,
        /// Distinct sensors.
        keys: u64,
        /// Seed.
        seed: u64,
        /// Event-time step.
        interval_ms: u64,
    },
}

/// What a source needs to open besides its settings.
pub struct Opening<'a> {
    /// The rows' schema.
    pub schema: SchemaRef,
    /// The event-time column.
    pub time: EventTime,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// How long a partial chunk waits for more input.
    pub batch_interval: Duration,
    /// The adaptive mode steers the chunk size.
    pub adaptive: bool,
    /// Where dead letters go.
    pub reserved: &'a Arc<Reserved>,
    /// The source's counters.
    pub counters: &'a Arc<SourceCounters>,
    /// The partition to read, in a distributed run.
    pub partition: Option<&'a PartitionContext>,
}

impl SourceKind {
    /// Opens the source.
    pub fn open(&self, at: &Opening<'_>) -> Result<Box<dyn ReplayableSource>> {
        let text = |bytes: Bytes, path: String, format: Format| {
            let decoder =
                TextDecoder::new(format, at.schema.clone(), at.time.clone(), "source".into());
            let header = usize::from(format == Format::Csv);
            Box::new(TextSource::new(
                bytes,
                path,
                decoder,
                header,
                at.chunk_rows,
                at.batch_interval,
                at.reserved.clone(),
                at.counters.clone(),
            ))
        };
        Ok(match self {
            SourceKind::File {
                path,
                format: Format::Parquet,
            } => Box::new(ParquetSource::open(
                path,
                // Adaptive chunks are slices of batches of the largest size
                // the controller picks.
                if at.adaptive {
                    sluice::MAX_ADAPTIVE_BATCH
                } else {
                    at.chunk_rows
                },
                at.chunk_rows,
                at.time.clone(),
                at.reserved.clone(),
                at.counters.clone(),
            )?),
            SourceKind::File { path, format } => {
                let file = std::fs::File::open(path).map_err(|e| {
                    Error::input(format!("cannot read {}", path.display())).caused_by(e)
                })?;
                text(Bytes::File(file), path.display().to_string(), *format)
            }
            SourceKind::Stdin { format } => text(Bytes::stdin(), "stdin".into(), *format),
            SourceKind::Nats(settings) => nats::open(settings, at)?,
            SourceKind::Formula { events } => Box::new(generator::FormulaRows::new(
                *events,
                at.chunk_rows,
                at.counters.clone(),
            )),
            SourceKind::Nexmark { events } => Box::new(generator::NexmarkRows::new(
                *events,
                at.chunk_rows,
                at.counters.clone(),
            )),
            SourceKind::Generator {
                events,
                keys,
                seed,
                interval_ms,
            } => Box::new(generator::GeneratorSource::new(
                *events,
                *keys,
                *seed,
                *interval_ms,
                at.chunk_rows,
                at.counters.clone(),
            )),
        })
    }

    /// What `sluice validate` says of it.
    pub fn describe(&self) -> String {
        match self {
            SourceKind::File { path, format } => {
                format!("file {} ({})", path.display(), format.name())
            }
            SourceKind::Stdin { format } => format!("stdin ({})", format.name()),
            SourceKind::Generator { events, keys, .. } => {
                format!("generator ({events} events, {keys} keys)")
            }
            SourceKind::Nexmark { events } => format!("nexmark ({events} events)"),
            SourceKind::Formula { events } => format!("formula ({events} events)"),
            SourceKind::Nats(n) => format!(
                "nats stream {} ({} partitions of {})",
                n.stream.name, n.stream.partitions, n.stream.subject
            ),
        }
    }

    /// A short name, for the dashboard's graph.
    pub fn label(&self) -> String {
        match self {
            SourceKind::File { path, format } => format!(
                "{:?} file {}",
                format,
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )
            .to_lowercase(),
            SourceKind::Stdin { format } => format!("{format:?} stdin").to_lowercase(),
            SourceKind::Generator { .. } => "generator".into(),
            SourceKind::Formula { .. } => "formula".into(),
            SourceKind::Nexmark { .. } => "nexmark".into(),
            SourceKind::Nats(n) => format!("nats {}", n.stream.name),
        }
    }

    /// The input's size in bytes, when known (for the progress bar).
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            SourceKind::File { path, .. } => std::fs::metadata(path).ok().map(|m| m.len()),
            _ => None,
        }
    }

    /// Why this source cannot keep `guarantee` across a crash, if it cannot.
    pub fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        match self {
            SourceKind::Stdin { .. } if guarantee != Guarantee::AtMostOnce => Some(
                Error::refused(
                    "stdin cannot be read again after a crash, so a run from stdin cannot be \
                     exactly-once (or at-least-once): what was read since the last checkpoint \
                     is lost. Read from a file, or accept that loss",
                )
                .with_fix(Fix::AcceptLoss),
            ),
            _ => None,
        }
    }

    /// The settings of a NATS source (a distributed run), if it is one.
    pub fn nats(&self) -> Option<&NatsSourcePlan> {
        match self {
            SourceKind::Nats(n) => Some(n),
            _ => None,
        }
    }

    /// The settings that identify the pipeline's state: without those that
    /// do not change results (for NATS: servers, TTL, flow control,
    /// replicas, which can be tuned between runs).
    pub fn identity(&self) -> SourceKind {
        match self {
            SourceKind::Nats(nats) => SourceKind::Nats(nats.identity()),
            other => other.clone(),
        }
    }
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Standard output, as JSON lines.
    Stdout,
    /// A file in a format.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: Format,
    },
    /// A NATS subject, through JetStream.
    Nats(NatsTarget),
}

impl Target {
    /// Opens the target for rows of `schema`, resuming at `length` bytes
    /// when given (after a checkpoint): what the file has beyond it was
    /// written after the checkpoint and is cut off. The error names the path.
    pub fn open_at(&self, schema: SchemaRef, length: Option<u64>) -> Result<Box<dyn RowWriter>> {
        match self {
            Target::Nats(target) => Ok(Box::new(nats::sink::NatsWriter::open(target, length)?)),
            Target::Stdout => Ok(file::sink::stdout()),
            Target::File { path, format } => file::sink::open(path, *format, schema, length),
        }
    }

    /// Why this target cannot take part in checkpoints under `guarantee`,
    /// if it cannot.
    pub fn refuses(&self, guarantee: Guarantee) -> Option<Error> {
        match self {
            Target::Stdout if guarantee == Guarantee::ExactlyOnce => Some(
                Error::refused(
                    "stdout cannot take back what it printed, so after a crash the lines \
                     since the last checkpoint would be printed twice. Write to a file (jsonl \
                     or csv), or accept repeats",
                )
                .with_fix(Fix::AcceptRepeats),
            ),
            Target::Nats(n) if n.id_prefix.is_empty() && guarantee == Guarantee::ExactlyOnce => {
                Some(
                    Error::refused(format!(
                        "nats:{}: outside a distributed run (a nats source) a nats sink \
                         cannot tell a replay from new output, so after a crash what it \
                         published since the last checkpoint is published again. Accept \
                         repeats",
                        n.subject
                    ))
                    .with_fix(Fix::AcceptRepeats),
                )
            }
            Target::File {
                format: Format::Parquet,
                path,
            } => Some(
                Error::refused(format!(
                    "{}: Parquet files cannot be cut back to a checkpoint (their footer comes \
                     last), so they cannot be written with checkpoints yet. Write jsonl or \
                     csv, or run without checkpoints",
                    path.display()
                ))
                .with_fix(Fix::NoCheckpoints),
            ),
            _ => None,
        }
    }

    /// The target's name, for reports.
    pub fn describe(&self) -> String {
        match self {
            Target::Stdout => "stdout".into(),
            Target::File { path, format } => format!("{} ({})", path.display(), format.name()),
            Target::Nats(n) => format!("nats subject {}", n.subject),
        }
    }

    /// The file it writes, if it writes one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Target::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The settings of a NATS sink, if it is one.
    pub fn nats(&self) -> Option<&NatsTarget> {
        match self {
            Target::Nats(n) => Some(n),
            _ => None,
        }
    }

    /// The settings of a NATS sink, to set its message ids.
    pub fn nats_mut(&mut self) -> Option<&mut NatsTarget> {
        match self {
            Target::Nats(n) => Some(n),
            _ => None,
        }
    }

    /// Why this target cannot be written by whichever process owns a
    /// partition of a distributed run under `guarantee`, if it cannot.
    pub fn refuses_distributed(&self, guarantee: Guarantee) -> Option<Error> {
        match self {
            Target::Nats(_) => None,
            Target::Stdout if guarantee != Guarantee::ExactlyOnce => None,
            Target::Stdout => Some(
                Error::refused(
                    "stdout cannot take back what it printed, so after a takeover the lines \
                     since the last checkpoint are printed again. Publish to a nats sink, or \
                     accept repeats",
                )
                .with_fix(Fix::AcceptRepeats),
            ),
            Target::File { path, .. } => Some(Error::refused(format!(
                "in a distributed run (a nats source) a partition moves between processes and \
                 machines, so {} would be written in pieces in many places. Publish to a nats \
                 sink (type = \"nats\") instead",
                path.display()
            ))),
        }
    }
}
