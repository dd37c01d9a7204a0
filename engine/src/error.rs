//! Errors of a build, with the cause kept as a typed source.

use frontend::DockerfileError;

/// A Dockerfile error together with the text it points into (for carets).
#[derive(Debug)]
pub struct DockerfileFailure {
    /// The located error.
    pub error: DockerfileError,
    /// The Dockerfile's text.
    pub text: String,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The Dockerfile is wrong (names file, line and column).
    #[error("{}", .0.error)]
    Dockerfile(Box<DockerfileFailure>),
    /// A step failed or the build was cancelled.
    #[error(transparent)]
    Solve(#[from] solver::SolveError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(Box<registry::RegistryError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cache::StoreError),
    /// The sandbox cannot be set up.
    #[error(transparent)]
    Executor(#[from] executor::ExecutorError),
    /// Writing an output failed.
    #[error(transparent)]
    Export(#[from] exporter::ExportError),
    /// `--expect-cached` and a step would run.
    #[error("expected every step to be served from the cache, but {} would run: {}", .0.step, .0.reason)]
    NotCached(Box<solver::explain::Explanation>),
    /// Exporting the build cache (`--cache-to`) failed.
    #[error(transparent)]
    Cache(Box<crate::CacheIoError>),
    /// The request itself is invalid (names what).
    #[error("{0}")]
    Invalid(String),
    /// An image of the store cannot be found or used.
    #[error(transparent)]
    Image(Box<crate::ImageError>),
    /// An image archive cannot be loaded.
    #[error(transparent)]
    Load(Box<crate::LoadError>),
}

impl From<registry::RegistryError> for EngineError {
    fn from(e: registry::RegistryError) -> EngineError {
        EngineError::Registry(Box::new(e))
    }
}

impl EngineError {
    /// A Dockerfile error located in `text`.
    pub fn dockerfile(error: DockerfileError, text: &str) -> EngineError {
        EngineError::Dockerfile(Box::new(DockerfileFailure { error, text: text.to_string() }))
    }
}
