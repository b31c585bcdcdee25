//! Declarative Sluice pipelines: a TOML file names a source, transforms and
//! sinks; `sluice run` runs it on the same runtime as the typed API.
//!
//! The crate's API is what this page re-exports: [`load`] reads, checks and
//! compiles a file into a [`Plan`] (errors at `file:line:col`); [`run`] and
//! [`run_with`] build its dataflow (a source of Arrow [`Rows`], the
//! transforms, the windows, the sinks, the reserved streams `late` and
//! `dead_letter`) and run it, exactly-once across crashes with a
//! [`CheckpointConfig`]; [`Watch`] feeds the dashboard; [`distributed`] runs
//! a pipeline with a `nats` source as one of many processes. Everything else
//! is private; ARCHITECTURE.md maps its folders.
//!
//! DataFusion lives in this crate only: the engine builds without it.
//!
//! ```no_run
//! let plan = sluice_pipeline::load("sensors.toml".as_ref(), &[], None)?;
//! print!("{}", plan.describe());
//! let progress = sluice_pipeline::progress(&plan);
//! let summary = sluice_pipeline::run(plan, &progress)?;
//! assert_eq!(summary.read, summary.processed + summary.late + summary.dead_letter);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod accounting;
mod adaptive;
mod build;
mod changelog;
mod checkpoint;
mod config;
mod connectors;
mod dashboard;
#[cfg(feature = "nats")]
pub mod distributed;
mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
mod format;
mod join;
mod lookup;
mod operators;
mod output;
mod plan;
mod rows;
mod run;
mod side_outputs;
mod sql;
mod telemetry;
mod window;

pub use checkpoint::{CheckpointConfig, Guarantee, StateLocation};
pub use config::apply_override;
pub use dashboard::Watch;
pub use error::{Error, Fix, Result};
pub use format::{EventTime, Format, TextDecoder};
pub use plan::{load, load_str, load_str_with, load_with, Plan};
pub use rows::Rows;
pub use run::{progress, run, run_with, Progress, RunOptions, RunOutcome, Summary};
pub use sql::Functions;
pub use telemetry::Telemetry;
