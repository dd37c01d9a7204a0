//! The solver: the build graph IR ([`ir`]) and the scheduler that runs a graph against the
//! content-addressed cache, running independent vertices concurrently.
//!
//! Owns: the IR and its digests, cache-key computation ([`key`]), scheduling, in-flight
//! de-duplication, cancellation and progress events ([`progress`]).
//! Must not: know Dockerfile syntax or how a process is isolated.
//!
//! Entry point: [`Solver::solve`] with a [`Worker`].

mod error;
pub mod explain;
pub mod ir;
pub mod key;
pub mod progress;
mod scheduler;
#[cfg(test)]
mod scheduler_tests;
mod worker;

pub use error::{ProcessEnd, SolveError};
pub use scheduler::{Plan, Solution, SolveOptions, Solver, Step, Worker};
pub use worker::{
    GitError, HttpError, LocalWorker, MAX_SECRET_SIZE, Ref, RunConfig, SecretError, SecretSource, SshError,
    WorkerConfig, redact_git_remote, remember_chain,
};
