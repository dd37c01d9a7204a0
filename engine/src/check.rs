//! `rbuild build --check`: the build checks of a request without building. Base images are
//! resolved (their configs decide `UndefinedVar` and `InvalidBaseImagePlatform`), nothing
//! runs and no layer is pulled.

use crate::{BuildRequest, Engine, EngineError};
use frontend::Warning;
use solver::progress::ProgressSink;

/// What `--check` found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The findings, filtered by the Dockerfile's `# check=` settings, in line order.
    pub warnings: Vec<Warning>,
    /// With `# check=error=true` and any finding: BuildKit's error message.
    pub lint_error: Option<String>,
}

impl Engine {
    /// Runs the build checks of `req`.
    ///
    /// Cancellation: dropping the future stops between registry calls; resolved base images
    /// are stored atomically, nothing else is written.
    pub async fn check(
        &self,
        req: &BuildRequest,
        progress: &ProgressSink,
    ) -> Result<CheckReport, EngineError> {
        let lowered = self.lower(req, progress).await?;
        Ok(CheckReport { warnings: lowered.warnings, lint_error: lowered.lint_error })
    }
}
