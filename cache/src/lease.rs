//! In-memory protection of layers and blobs against garbage collection while they are in
//! use by this process: mounts pin their chain, and a [`Lease`] protects everything a build
//! creates or looks up until the build has recorded what it keeps.

use crate::layer::LayerId;
use registry::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Default)]
struct PinState {
    /// Layers of live mounts, with a count per layer.
    mounted: HashMap<LayerId, usize>,
    /// Live leases by id, with their start time.
    leases: BTreeMap<u64, SystemTime>,
    next_lease: u64,
    /// Layers committed, imported or looked up while a lease was alive.
    leased_layers: HashSet<LayerId>,
    /// Blobs of cache records looked up while a lease was alive.
    leased_blobs: HashSet<Digest>,
}

/// What garbage collection must not touch right now.
pub(crate) struct Protected {
    /// Layers in use by mounts or leases.
    pub(crate) layers: HashSet<LayerId>,
    /// Blobs in use by leases.
    pub(crate) blobs: HashSet<Digest>,
    /// Blobs written after this time may still be unreferenced parts of a running build.
    pub(crate) blobs_since: Option<SystemTime>,
}

/// Shared by the store, its metadata handle and every mount.
#[derive(Default)]
pub(crate) struct Pins {
    state: Mutex<PinState>,
}

impl Pins {
    fn state(&self) -> MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a layer that was just committed or imported.
    pub(crate) fn note_new_layer(&self, id: &LayerId) {
        let mut s = self.state();
        if !s.leases.is_empty() {
            s.leased_layers.insert(id.clone());
        }
    }

    /// Records layers and blobs a lookup handed out (a cache hit about to be used).
    pub(crate) fn note_used(&self, ids: &[LayerId], blobs: &[Digest]) {
        let mut s = self.state();
        if !s.leases.is_empty() {
            s.leased_layers.extend(ids.iter().cloned());
            s.leased_blobs.extend(blobs.iter().cloned());
        }
    }

    /// Pins `chain` until the returned guard is dropped.
    pub(crate) fn pin(self: &Arc<Self>, chain: &[LayerId]) -> PinGuard {
        let mut s = self.state();
        for id in chain {
            *s.mounted.entry(id.clone()).or_default() += 1;
        }
        PinGuard { pins: self.clone(), layers: chain.to_vec() }
    }

    /// A snapshot of what is protected now.
    pub(crate) fn protected(&self) -> Protected {
        let s = self.state();
        let mut layers: HashSet<LayerId> = s.mounted.keys().cloned().collect();
        layers.extend(s.leased_layers.iter().cloned());
        Protected { layers, blobs: s.leased_blobs.clone(), blobs_since: s.leases.values().min().copied() }
    }
}

/// Keeps the layers of a live mount from being collected.
pub(crate) struct PinGuard {
    pins: Arc<Pins>,
    layers: Vec<LayerId>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut s = self.pins.state();
        for id in &self.layers {
            if let Some(n) = s.mounted.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    s.mounted.remove(id);
                }
            }
        }
    }
}

/// Protects a build's work in progress from [`crate::Store::prune`] running at the same time
/// in this process.
///
/// While any lease is alive, every layer committed, imported or returned by
/// [`crate::Meta::get_cache`] is kept, and so is every blob written since the oldest live
/// lease began. When the last lease is dropped the protection ends: what the build recorded
/// (cache records, images) stays reachable, the rest becomes garbage. Leases live in memory
/// only; other processes cannot prune meanwhile because they wait for the store lock.
#[must_use = "a lease protects only while it is alive"]
pub struct Lease {
    pins: Arc<Pins>,
    id: u64,
}

impl Lease {
    pub(crate) fn new(pins: &Arc<Pins>) -> Lease {
        let mut s = pins.state();
        let id = s.next_lease;
        s.next_lease += 1;
        s.leases.insert(id, SystemTime::now());
        Lease { pins: pins.clone(), id }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.pins.state();
        s.leases.remove(&self.id);
        if s.leases.is_empty() {
            s.leased_layers.clear();
            s.leased_blobs.clear();
        }
    }
}
