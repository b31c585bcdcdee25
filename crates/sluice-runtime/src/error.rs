//! The runtime's errors: why a run failed, and the boxed error of user code and connectors.

use thiserror::Error;

/// Any error from user code or a connector, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a run failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A source could not be read.
    #[error("source `{source_name}` failed: {error}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        error: BoxError,
    },
    /// An operator or sink of a stage failed.
    #[error("stage `{stage}` failed: {error}")]
    Operator {
        /// The stage's name.
        stage: String,
        /// What went wrong.
        error: BoxError,
    },
    /// User code panicked; the message is the panic's.
    #[error("stage `{stage}` panicked: {message}")]
    Panicked {
        /// The stage's name.
        stage: String,
        /// The panic message.
        message: String,
    },
    /// A stage could not be started.
    #[error("could not start a thread for stage `{stage}`: {error}")]
    Spawn {
        /// The stage's name.
        stage: String,
        /// The operating system's error.
        error: std::io::Error,
    },
}

/// The result type of this crate.
pub type RuntimeResult<T> = std::result::Result<T, RuntimeError>;
