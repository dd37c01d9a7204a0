//! One build end to end: a typed [`BuildRequest`] goes through the frontend (parse and
//! lower), the solver (against the store and the sandbox) and the exporter, producing
//! progress events and a [`BuildOutcome`]. Used by the CLI locally and, later, by the daemon.
//!
//! Owns: the pipeline and its order (resolve base images, solve, assemble the image, write
//! outputs), base-image tag pinning, image naming in the local store.
//! Must not: parse command-line flags or know about gRPC.
//!
//! Entry point: [`Engine::open`], then [`Engine::build`].

mod build;
pub mod build_log;
mod cache_io;
mod check;
pub mod context;
mod error;
mod explain;
mod export;
mod images;
mod load;
mod pull;
mod push;
mod request;
mod resolve;
mod run_options;
mod save;
mod ssh_agent;

pub use cache_io::{CacheExport, CacheImport, CacheIoError, CacheLocation, CacheMode};
pub use check::CheckReport;
pub use context::{ContextError, GitContext, NamedContext};
pub use error::{DockerfileFailure, EngineError};
pub use images::{
    DANGLING_PREFIX, HistoryEntry, ImageError, ImageInspect, InspectMetadata, InspectRootFs, Removed,
    StoredImage,
};
pub use load::{LoadError, LoadedImage};
pub use pull::{LayerStatus, PullOutcome, TransferProgress};
pub use push::PushOutcome;
pub use request::{BuildOutcome, BuildRequest, ImageSummary};
pub use run_options::{Entitlement, RunOptions, SshSource, UnknownEntitlement};
pub use save::ArchiveFormat;
pub use ssh_agent::SshAgentError;

use cache::Store;
use executor::{Executor, ExecutorConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// How an engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Store root (`/var/lib/rbuild`).
    pub root: PathBuf,
    /// The program the sandbox re-executes (rbuild itself).
    pub init_program: PathBuf,
    /// The standalone sandbox init, preferred when it matches (see
    /// [`executor::ExecutorConfig::standalone_init`]).
    pub standalone_init: Option<PathBuf>,
    /// Registry client settings.
    pub registry: registry::ClientConfig,
    /// Upper bound on concurrently running RUN steps.
    pub max_parallel_exec: usize,
    /// Cap on the store's size: least recently used cache is pruned before and after each
    /// build to stay under it (tagged images are never pruned).
    pub keep_storage: Option<u64>,
    /// What isolates RUN steps: rbuild's own sandbox or an OCI runtime (`--runtime runc`).
    pub runtime: executor::Runtime,
}

/// A build engine over one store. Holds the store lock for its lifetime.
pub struct Engine {
    store: Arc<Store>,
    executor: Arc<Executor>,
    client: registry::Client,
    config: EngineConfig,
}

impl Engine {
    /// Opens the store (waiting for another rbuild holding it; `on_wait` is told the
    /// holder's pid once) and prepares the sandbox and the registry client.
    pub fn open(config: EngineConfig, on_wait: impl FnMut(Option<u32>)) -> Result<Engine, EngineError> {
        let store = Store::open_with_wait_notice(&config.root, on_wait)?;
        let executor = Executor::new(ExecutorConfig {
            init_program: config.init_program.clone(),
            standalone_init: config.standalone_init.clone(),
            state_dir: config.root.join("executor"),
            cgroup_parent: "rbuild".to_string(),
        })?
        .with_runtime(config.runtime.clone())?;
        let client = registry::Client::new(config.registry.clone())?;
        Ok(Engine { store: Arc::new(store), executor: Arc::new(executor), client, config })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The recorded builds and their step logs.
    pub fn build_logs(&self) -> build_log::BuildLogs {
        build_log::BuildLogs::new(self.store.root())
    }

    /// Images with names in the local store, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        let mut out = Vec::new();
        for (name, record) in self.store.meta().list_images()? {
            let size = export::image_size(&self.store, &record.manifest).unwrap_or(0);
            let id = export::image_id(&self.store, &record.manifest).ok();
            out.push(ImageSummary {
                name,
                manifest: record.manifest,
                id,
                created_unix: record.created_unix,
                size,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
