//! The crate-level error: the few cases a caller acts on.

use std::io;

use crate::cgroups::CgroupError;

/// Why a run could not produce an [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The spec cannot be run as given (relative paths, bad hostname, empty argv, ...).
    #[error("invalid sandbox spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// `Spec::user` does not resolve against the rootfs' passwd/group files.
    #[error("unable to find user {user}: {reason}")]
    User {
        /// The user as given.
        user: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// The command could not be executed (not found, not executable, ...).
    #[error("failed to start {command:?}: {reason}")]
    Exec {
        /// `args[0]`.
        command: String,
        /// What the kernel or the lookup said.
        reason: String,
    },
    /// Setting up the sandbox failed (mounts, namespaces, privileges).
    #[error("sandbox setup failed while {stage}: {reason}")]
    Setup {
        /// What the sandbox was doing.
        stage: String,
        /// What went wrong.
        reason: String,
    },
    /// A cgroup could not be created or configured while limits were requested.
    #[error("sandbox cgroup failed")]
    Cgroup(#[from] CgroupError),
    /// Talking to the sandbox or preparing its state directory failed.
    #[error("sandbox i/o failed while {context}")]
    Io {
        /// What the executor was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The cancellation token fired; the process tree was killed and cleaned up.
    #[error("sandboxed run cancelled")]
    Cancelled,
}

impl ExecutorError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> ExecutorError {
        ExecutorError::Io { context: context.into(), source }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> ExecutorError {
        ExecutorError::InvalidSpec { reason: reason.into() }
    }
}
