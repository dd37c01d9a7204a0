//! The solver: the build graph IR ([`ir`]) and the scheduler that runs a graph against the
//! content-addressed cache, running independent vertices concurrently.
//!
//! Owns: the IR and its digests, cache-key computation, scheduling, in-flight
//! de-duplication, cancellation and progress events.
//! Must not: know Dockerfile syntax or how a process is isolated.

pub mod ir;
