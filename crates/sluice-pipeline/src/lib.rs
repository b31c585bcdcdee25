//! Declarative Sluice pipelines: a TOML file names a source, transforms and
//! sinks; `sluice run` runs it on the same runtime as the typed API.
//!
//! - [`spec`] reads the file, keeping every value's position;
//! - [`plan`] checks it and compiles its SQL (DataFusion) against the
//!   schema of each stream, with errors at `file:line:col`;
//! - [`run`] builds the dataflow: a source of Arrow [`Rows`], the
//!   transforms (filter, select, window, rule), the sinks, and the reserved
//!   streams `late` and `dead_letter`;
//! - [`checkpoint`] makes a run exactly-once across crashes: barriers,
//!   state snapshots and sink lengths committed to redb (or, for a
//!   partition of a distributed run, to NATS key-value);
//! - [`distributed`] runs a pipeline with a `nats` source as one of many
//!   processes that share its partitions ([`nats`] has the pieces).
//!
//! DataFusion lives in this crate only: the engine builds without it.
//!
//! ```no_run
//! let plan = sluice_pipeline::load("sensors.toml".as_ref(), &[], None)?;
//! print!("{}", plan.describe());
//! let progress = sluice_pipeline::run::progress(&plan);
//! let summary = sluice_pipeline::run::run(plan, &progress)?;
//! assert_eq!(summary.read, summary.processed + summary.late + summary.dead_letter);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod accounting;
pub mod adaptive;
mod build;
pub mod checkpoint;
pub mod config;
pub mod connectors;
pub mod dashboard;
#[cfg(feature = "nats")]
pub mod distributed;
pub mod error;
pub mod fault;
pub mod format;
pub mod operators;
pub mod output;
pub mod plan;
pub mod rows;
pub mod run;
pub mod side_outputs;
pub mod sql;
pub mod telemetry;
pub mod window;

pub use error::{Error, Fix, Result};
pub use plan::{load, Plan};
pub use rows::Rows;
pub use run::{RunOutcome, Summary};
