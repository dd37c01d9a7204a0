//! Errors of a solve.

use crate::ir::{SourceLocation, VertexMeta};
use std::error::Error as StdError;

/// How a process ended when it did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    /// Exited with a non-zero code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
    /// Killed by the kernel's OOM killer; the limit in bytes when one was set.
    OutOfMemory(Option<u64>),
}

impl std::fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessEnd::Code(c) => write!(f, "exit code: {c}"),
            ProcessEnd::Signal(s) => write!(f, "killed by signal {s}"),
            ProcessEnd::OutOfMemory(Some(limit)) => {
                write!(f, "killed: out of memory, limit {} MiB", limit / (1024 * 1024))
            }
            ProcessEnd::OutOfMemory(None) => write!(f, "killed: out of memory"),
        }
    }
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A `RUN` step's process failed. The wording matches BuildKit's, which users grep for.
    #[error("process \"{command}\" did not complete successfully: {end}")]
    ProcessFailed {
        /// Display name of the step.
        step: String,
        /// The command as one string.
        command: String,
        /// How it ended.
        end: ProcessEnd,
        /// The last lines of its output.
        tail: Vec<String>,
        /// The Dockerfile lines of the step.
        location: Option<SourceLocation>,
    },
    /// A step failed for another reason.
    #[error("{message}")]
    Step {
        /// Display name of the step.
        step: String,
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
        /// The Dockerfile lines of the step.
        location: Option<SourceLocation>,
    },
    /// The solve was cancelled (interrupt, or a sibling failed).
    #[error("build cancelled")]
    Cancelled,
    /// A bug or a broken store: something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SolveError {
    /// A step error with a source.
    pub fn step(
        step: &str,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> SolveError {
        SolveError::Step {
            step: step.to_string(),
            message: message.into(),
            source: Some(Box::new(source)),
            location: None,
        }
    }

    /// A step error without a source.
    pub fn msg(step: &str, message: impl Into<String>) -> SolveError {
        SolveError::Step { step: step.to_string(), message: message.into(), source: None, location: None }
    }

    /// Attaches the step's name and Dockerfile location when the error does not carry them.
    pub fn at(mut self, meta: &VertexMeta) -> SolveError {
        if let SolveError::ProcessFailed { step, location, .. } | SolveError::Step { step, location, .. } =
            &mut self
        {
            if location.is_none() {
                *location = meta.location.clone();
            }
            if step.is_empty() {
                *step = meta.name.clone();
            }
        }
        self
    }

    /// Where in the Dockerfile the failing step comes from, when known.
    pub fn location(&self) -> Option<&SourceLocation> {
        match self {
            SolveError::ProcessFailed { location, .. } | SolveError::Step { location, .. } => {
                location.as_ref()
            }
            _ => None,
        }
    }

    /// The display name of the failing step, when known.
    pub fn step_name(&self) -> Option<&str> {
        match self {
            SolveError::ProcessFailed { step, .. } | SolveError::Step { step, .. } => Some(step),
            _ => None,
        }
    }
}
