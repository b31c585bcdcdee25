//! The crate's one error type: what went wrong (an invalid file, the input,
//! an output, the checkpoints, NATS, SQL), what to do about it, and the two
//! signals that travel as errors (a graceful stop, a lost partition).
//!
//! The library never names a command-line flag: where a user can fix a
//! failure by asking for something else (start over, accept repeats), the
//! error carries a [`Fix`] and the CLI words it.

use std::fmt;

/// Any error from a dependency, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a user can do about a failure besides fixing its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fix {
    /// Discard the saved state (checkpoints, outputs) and start over.
    StartOver,
    /// Keep the saved state elsewhere, or discard it and start over.
    OtherStateOrStartOver,
    /// Accept that outputs may repeat after a failure (at-least-once).
    AcceptRepeats,
    /// Accept that what was read since the last checkpoint may be lost
    /// after a failure (at-most-once).
    AcceptLoss,
    /// Run without checkpoints.
    NoCheckpoints,
    /// Take checkpoints more often.
    CheckpointMoreOften,
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fix::StartOver => "discard the saved state and start over",
            Fix::OtherStateOrStartOver => {
                "keep the state somewhere else, or discard it and start over"
            }
            Fix::AcceptRepeats => "accept repeated outputs (at-least-once)",
            Fix::AcceptLoss => "accept losing what was read since a checkpoint (at-most-once)",
            Fix::NoCheckpoints => "run without checkpoints",
            Fix::CheckpointMoreOften => "take checkpoints more often",
        })
    }
}

/// A failure's message, its cause and what fixes it.
#[derive(Debug)]
pub struct Detail {
    message: String,
    cause: Option<BoxError>,
    fix: Option<Fix>,
}

impl Detail {
    fn duplicate(&self) -> Detail {
        Detail {
            message: self.message.clone(),
            cause: self.cause.as_ref().map(|c| c.to_string().into()),
            fix: self.fix,
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// Why a pipeline could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipeline file is not valid: its diagnostic, rendered as
    /// `file:line:col: message` with the line it points at.
    #[error("{0}")]
    Invalid(String),
    /// The input could not be read, or is not what the file says.
    #[error("{0}")]
    Input(Detail),
    /// An output could not be written or made durable.
    #[error("{0}")]
    Output(Detail),
    /// The checkpoints could not be read or written, or do not fit this run.
    #[error("{0}")]
    Checkpoint(Detail),
    /// A NATS server, stream or key-value bucket failed.
    #[error("{0}")]
    Nats(Detail),
    /// A SQL expression or aggregate failed on the data.
    #[error("{0}")]
    Sql(Detail),
    /// The run cannot keep what it was asked to (a guarantee its source or
    /// sinks cannot give).
    #[error("{0}")]
    Refused(Detail),
    /// The run's counts do not add up: a bug, reported instead of a result.
    #[error(
        "bug: the run's counts do not add up, so a record may have been lost or counted \
         twice. Please report this with the pipeline file. What does not add up:\n  {}",
        .0.join("\n  ")
    )]
    Accounting(Vec<String>),
    /// Something that cannot happen did: a bug, reported with what it was.
    #[error("bug: {0}. Please report this with the pipeline file")]
    Bug(String),
    /// Where an error of a kind without a message of its own happened (an
    /// engine error, in partition 3).
    #[error("{what}: {error}")]
    Context {
        /// Where.
        what: String,
        /// The error.
        error: Box<Error>,
    },
    /// A graceful stop: the source ended the run once checkpoint `0` had
    /// committed. [`crate::run::run_with`] turns it into a stopped summary.
    #[error("stopped after checkpoint {0}")]
    Stopped(u64),
    /// This process no longer owns the partition: another process took it
    /// over, or its lease ran out.
    #[error("this process no longer owns partition {partition}: {why}")]
    Fenced {
        /// The partition.
        partition: u32,
        /// How it was lost.
        why: String,
    },
    /// The engine failed while running; a stage's error may be one of ours
    /// (see [`Error::inner`]).
    #[error(transparent)]
    Engine(#[from] sluice::Error),
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident => $variant:ident,)*) => {
        impl Error {
            $(
                $(#[$doc])*
                pub fn $name(message: impl Into<String>) -> Self {
                    Error::$variant(Detail { message: message.into(), cause: None, fix: None })
                }
            )*
        }
    };
}

kinds! {
    /// The input failed: `message` says what and where.
    input => Input,
    /// An output failed.
    output => Output,
    /// The checkpoints failed.
    checkpoint => Checkpoint,
    /// NATS failed.
    nats => Nats,
    /// SQL failed on the data.
    sql => Sql,
    /// The run cannot keep what it was asked to.
    refused => Refused,
}

impl Error {
    /// Saved state this run cannot use (damaged, or written by something
    /// else): starting over fixes it.
    pub fn damaged(message: impl Into<String>) -> Self {
        Error::checkpoint(message).with_fix(Fix::StartOver)
    }

    fn detail_mut(&mut self) -> Option<&mut Detail> {
        match self {
            Error::Input(d)
            | Error::Output(d)
            | Error::Checkpoint(d)
            | Error::Nats(d)
            | Error::Sql(d)
            | Error::Refused(d) => Some(d),
            _ => None,
        }
    }

    /// The same error, with `fix` as what to do about it.
    #[must_use]
    pub fn with_fix(mut self, fix: Fix) -> Self {
        if let Some(d) = self.detail_mut() {
            d.fix = Some(fix);
        }
        self
    }

    /// The same error, caused by `cause` (shown after the message).
    #[must_use]
    pub fn caused_by(mut self, cause: impl Into<BoxError>) -> Self {
        if let Some(d) = self.detail_mut() {
            d.cause = Some(cause.into());
        }
        self
    }

    /// The same error, its message prefixed with `what: ` (where it
    /// happened: a sink, a transform, a partition). Its kind, fix and
    /// signals stay as they were.
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        match &mut self {
            Error::Invalid(message) | Error::Bug(message) => {
                *message = format!("{what}: {message}")
            }
            Error::Fenced { why, .. } => *why = format!("{what}: {why}"),
            other => match other.detail_mut() {
                Some(d) => d.message = format!("{what}: {}", d.message),
                None => {
                    return Error::Context {
                        what: what.to_string(),
                        error: Box::new(self),
                    }
                }
            },
        }
        self
    }

    /// The error of ours a stage raised, when the engine reports one; this
    /// error otherwise.
    pub fn inner(&self) -> &Error {
        match self {
            Error::Engine(engine) => ours(engine).map_or(self, Error::inner),
            Error::Context { error, .. } => error.inner(),
            _ => self,
        }
    }

    /// What fixes this failure, besides its cause.
    pub fn fix(&self) -> Option<Fix> {
        match self.inner() {
            Error::Input(d)
            | Error::Output(d)
            | Error::Checkpoint(d)
            | Error::Nats(d)
            | Error::Sql(d)
            | Error::Refused(d) => d.fix,
            _ => None,
        }
    }

    /// The checkpoint a graceful stop ended after, if this is one.
    pub fn stopped(&self) -> Option<u64> {
        match self.inner() {
            Error::Stopped(id) => Some(*id),
            _ => None,
        }
    }

    /// The error may pass if the run starts again from its last
    /// checkpoint: a broker or server that did not answer in time, an
    /// output not written (as opposed to a damaged state, a refusal or a
    /// bug).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.inner(),
            Error::Input(_) | Error::Output(_) | Error::Nats(_)
        )
    }

    /// This process lost the partition it ran.
    pub fn is_fenced(&self) -> bool {
        matches!(self.inner(), Error::Fenced { .. })
    }

    /// A copy of this error for another party (the checkpoint coordinator
    /// hands the error that stopped the checkpoints to every participant):
    /// the same kind and fix, its cause as text.
    pub(crate) fn duplicate(&self) -> Error {
        if let Error::Context { what, error } = self {
            return Error::Context {
                what: what.clone(),
                error: Box::new(error.duplicate()),
            };
        }
        match self.inner() {
            Error::Invalid(m) => Error::Invalid(m.clone()),
            Error::Input(d) => Error::Input(d.duplicate()),
            Error::Output(d) => Error::Output(d.duplicate()),
            Error::Checkpoint(d) => Error::Checkpoint(d.duplicate()),
            Error::Nats(d) => Error::Nats(d.duplicate()),
            Error::Sql(d) => Error::Sql(d.duplicate()),
            Error::Refused(d) => Error::Refused(d.duplicate()),
            Error::Accounting(wrong) => Error::Accounting(wrong.clone()),
            Error::Bug(what) => Error::Bug(what.clone()),
            Error::Context { what, error } => Error::Context {
                what: what.clone(),
                error: Box::new(error.duplicate()),
            },
            Error::Stopped(id) => Error::Stopped(*id),
            Error::Fenced { partition, why } => Error::Fenced {
                partition: *partition,
                why: why.clone(),
            },
            engine @ Error::Engine(_) => Error::checkpoint(engine.to_string()),
        }
    }

    /// The file is not valid (as opposed to failing while it runs).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
}

/// The error of ours inside an engine error, if a stage raised one.
pub(crate) fn ours(engine: &sluice::Error) -> Option<&Error> {
    use sluice::RuntimeError;
    match engine {
        sluice::Error::Runtime(
            RuntimeError::Source { error, .. } | RuntimeError::Operator { error, .. },
        ) => error.downcast_ref::<Error>(),
        _ => None,
    }
}

#[cfg(feature = "nats")]
impl From<sluice_nats::NatsError> for Error {
    fn from(error: sluice_nats::NatsError) -> Self {
        Error::nats(error.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Error::sql(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_error_of_ours_is_found_inside_the_engine_error() {
        let stop: BoxError = Box::new(Error::Stopped(7));
        let engine = sluice::Error::Runtime(sluice::RuntimeError::Source {
            source_name: "file".into(),
            error: stop,
        });
        let error = Error::from(engine);
        assert_eq!(error.stopped(), Some(7));
        assert!(!error.is_fenced());
        assert_eq!(
            error.to_string(),
            "source `file` failed: stopped after checkpoint 7"
        );
    }

    #[test]
    fn a_context_keeps_the_signals_of_the_error_it_wraps() {
        let fenced = Error::Fenced {
            partition: 3,
            why: "another process took it over".into(),
        };
        let engine = sluice::Error::Runtime(sluice::RuntimeError::Operator {
            stage: "window".into(),
            error: Box::new(fenced),
        });
        let error = Error::from(engine).context("partition 3");
        assert!(error.is_fenced());
        assert!(error.duplicate().is_fenced());
        assert!(error
            .to_string()
            .starts_with("partition 3: stage `window` failed"));
        let stopped = Error::Stopped(4).context("partition 1");
        assert_eq!(stopped.duplicate().stopped(), Some(4));
    }

    #[test]
    fn a_fix_and_a_context_keep_the_message_and_its_cause() {
        let error = Error::output("cannot write out.jsonl")
            .caused_by("disk full")
            .with_fix(Fix::StartOver)
            .context("sink of `alerts`");
        assert_eq!(
            error.to_string(),
            "sink of `alerts`: cannot write out.jsonl: disk full"
        );
        assert_eq!(error.fix(), Some(Fix::StartOver));
    }
}
