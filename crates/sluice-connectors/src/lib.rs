//! Sources and sinks for Sluice.
//!
//! - [`IterSource`]: any iterator, with event times from a field or from the
//!   order of arrival;
//! - [`UniformSource`]: seeded pseudo-random values uniform in `[0, 1)`,
//!   reproducible across runs and machines;
//! - [`FormulaSource`]: the shared W0/W1 benchmark stream, from its
//!   integer formula, in any number of partitions;
//! - [`nexmark::NexmarkSource`]: Nexmark persons, auctions and bids;
//! - `kafka::KafkaSource` (feature `kafka`): records of Kafka topics;
//! - [`CollectSink`]: gathers results in memory, to read after the run;
//! - [`StdoutSink`]: one line per event on standard output.
//!
//! ```
//! use sluice_connectors::{CollectSink, IterSource};
//! use sluice_runtime::{Sink, Source, SourceStatus, Batch};
//!
//! let mut source = IterSource::new(vec![1, 2, 3]).with_event_time(|x| *x * 1000);
//! let mut batch = Batch::new();
//! assert_eq!(source.poll(&mut batch, 10)?, SourceStatus::Exhausted);
//! assert_eq!(batch.times(), &[1000, 2000, 3000]);
//!
//! let (mut sink, collected) = CollectSink::new();
//! sink.write(&mut batch)?;
//! assert_eq!(collected.take(), vec![1, 2, 3]);
//! # Ok::<(), sluice_runtime::BoxError>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod collect;
mod formula;
mod generator;
mod iter;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod nexmark;
mod stdout;

pub use collect::{CollectSink, Collected};
pub use formula::{FormulaEvent, FormulaSource};
pub use generator::UniformSource;
pub use iter::IterSource;
pub use stdout::StdoutSink;
