//! Errors of a build, with the cause kept as a typed source.

use frontend::DockerfileError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The Dockerfile is wrong (names file, line and column). `source` is the text, for carets.
    #[error("{error}")]
    Dockerfile {
        /// The located error.
        error: DockerfileError,
        /// The Dockerfile's text.
        text: String,
    },
    /// A step failed or the build was cancelled.
    #[error(transparent)]
    Solve(#[from] solver::SolveError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cache::StoreError),
    /// The sandbox cannot be set up.
    #[error(transparent)]
    Executor(#[from] executor::ExecutorError),
    /// Writing an output failed.
    #[error(transparent)]
    Export(#[from] exporter::ExportError),
    /// The request itself is invalid (names what).
    #[error("{0}")]
    Invalid(String),
}
