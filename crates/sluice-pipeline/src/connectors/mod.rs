//! Connectors: where a pipeline's rows come from and where they go, one
//! folder or file per `type =` of a source or sink. What a connector
//! implements (schema, positions for replay, commit after a checkpoint,
//! durability) is in `docs/connectors.md`.
//!
//! - [`replay`]: what every replayable source implements, and the wrapper
//!   that takes its checkpoints;
//! - [`sink`]: what every sink implements, the [`sink::Target`] of a sink;
//! - [`file`]: files (JSON lines, CSV, Parquet), stdin and stdout;
//! - [`generator`]: generated inputs; [`paced`]: a rate limit on any source;
//! - [`nats`]: NATS JetStream, partitioned, for distributed runs.
//!
//! Connectors never import the plan: each holds its own settings type,
//! which the plan compiles a file's table into.

pub mod file;
pub mod generator;
pub mod nats;
pub mod paced;
pub mod replay;
pub mod sink;
