//! The errors of a pipeline: refused as built, or failed while running.

use sluice_runtime::RuntimeError;
use thiserror::Error;

/// A pipeline that cannot run as built. Each message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// An argument of a cut or flush policy is invalid.
    #[error("edge `{edge}`: {error}")]
    InvalidBatching {
        /// The edge whose policy is wrong.
        edge: String,
        /// What is wrong with it.
        error: sluice_core::Error,
    },
    /// A pipeline setting is out of range.
    #[error("{setting} must be at least 1 (got 0)")]
    ZeroSetting {
        /// The setting.
        setting: &'static str,
    },
    /// Nothing consumes the pipeline's output.
    #[error(
        "the pipeline has no sink: end a stream with `sink`, `collect`, `for_each` or `publish`"
    )]
    NoSink,
    /// Watermark alignment was asked for away from the sources.
    #[error("watermark alignment pauses a source partition that runs ahead, so it must be set on the stream a source produces: call `with_watermarks(...with_alignment(..))` right after `source`/`partitioned_source`, before any `batch`, `key_by` or `merge`")]
    AlignmentAfterSource,
    /// A stream publishes to a topic that nobody subscribed to.
    #[error("topic `{topic}` has no subscriber: call `bus.subscribe(&topic, handler)` before running the pipeline, or its events would have nowhere to go")]
    NoSubscriber {
        /// The topic.
        topic: String,
    },
}

/// Why a pipeline failed: before it started, or while it ran.
#[derive(Debug, Error)]
pub enum Error {
    /// The pipeline was refused before anything ran.
    #[error("invalid pipeline: {0}")]
    Build(#[from] BuildError),
    /// A stage failed while running.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
