//! The store: its on-disk layout, opening (lock + crash recovery) and layer handles.
//!
//! ```text
//! <root>/lock               flock'ed by the owning process, holds its pid
//! <root>/meta.redb          metadata database
//! <root>/blobs/sha256/<hex> content store
//! <root>/layers/<id>/diff   one directory per layer (overlay upperdir format)
//! <root>/layers/<id>/work   overlay workdir, only while the layer is mutable
//! <root>/mnt/<n>            mount points of live mounts
//! <root>/empty              an always-empty directory (lowest layer of empty chains)
//! <root>/cache-mounts/       `RUN --mount=type=cache` directories (see `cache_mount.rs`)
//! ```

use crate::content::ContentStore;
use crate::error::{StoreError, io_err};
use crate::layer::{LayerDirGuard, LayerId, MutableLayer};
use crate::lease::{Lease, Pins};
use crate::lock::StoreLock;
use crate::meta::Meta;
use crate::mount;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

/// The build cache and image store under one root directory.
///
/// Opening takes the store lock, so one process at a time uses a root; inside that process
/// the handle is cheap to clone and safe to use from many threads.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    pub(crate) root: PathBuf,
    pub(crate) layers_dir: PathBuf,
    pub(crate) mnt_dir: PathBuf,
    pub(crate) empty_dir: PathBuf,
    pub(crate) content: ContentStore,
    pub(crate) meta: Meta,
    pub(crate) pins: Arc<Pins>,
    /// One garbage collection at a time.
    pub(crate) gc_lock: Mutex<()>,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`): layers written in an earlier
    /// boot and never flushed may have lost data in a power failure.
    pub(crate) boot_id: String,
    /// Which of [`crate::mount::UPPER_OPTION_TIERS`] this kernel accepts (decided at the
    /// first writable mount).
    pub(crate) overlay_opts: OnceLock<usize>,
    /// Copies of `RUN --mount=type=cache` directories in use by this process.
    pub(crate) cache_mounts: Arc<crate::cache_mount::CacheMounts>,
    // Last field: dropped after the database is closed.
    _lock: StoreLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.inner.root).finish()
    }
}

/// What opening a store cleaned up after an earlier crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Mounts left behind under `<root>/mnt` that were detached.
    pub stale_mounts: usize,
    /// Layer directories without a committed record that were removed.
    pub uncommitted_layers: usize,
    /// Records dropped because they named missing or lost layers.
    pub dropped_records: usize,
    /// Layers committed but not yet flushed to disk when the machine went down; their
    /// files may be incomplete, so they were dropped with the records naming them.
    pub unflushed_layers: usize,
    /// Records a killed process of this boot had logged in the metadata journal but not
    /// yet made durable, written to the database.
    pub replayed_records: usize,
}

impl Store {
    /// Opens the store at `root`, creating its layout when missing. Waits while another
    /// process holds the store; see [`Store::open_with_wait_notice`].
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Store::open_with_wait_notice(root, |_| {})
    }

    /// Like [`Store::open`], but calls `on_wait` once, before blocking, when another process
    /// holds the store (with its pid when known), so a CLI can print
    /// "waiting for another rbuild (pid N)".
    ///
    /// After taking the lock, it cleans what a crash may have left: detaches stale mounts,
    /// removes uncommitted layer directories and partial blob downloads, and drops records
    /// that name missing layers. Blocking: call it from a blocking context.
    pub fn open_with_wait_notice(
        root: &Path,
        mut on_wait: impl FnMut(Option<u32>),
    ) -> Result<Store, StoreError> {
        Ok(Store::open_inner(root, &mut on_wait)?.0)
    }

    /// Like [`Store::open`], also reporting what crash recovery did.
    pub fn open_with_recovery(root: &Path) -> Result<(Store, Recovery), StoreError> {
        Store::open_inner(root, &mut |_| {})
    }

    fn open_inner(
        root: &Path,
        on_wait: &mut dyn FnMut(Option<u32>),
    ) -> Result<(Store, Recovery), StoreError> {
        fs::create_dir_all(root).map_err(io_err("create store root", root))?;
        let root = fs::canonicalize(root).map_err(io_err("resolve store root", root))?;
        let lock = StoreLock::acquire(&root, on_wait)?;
        let layers_dir = root.join("layers");
        let mnt_dir = root.join("mnt");
        let empty_dir = root.join("empty");
        let scratch_dir = root.join("scratch");
        for dir in [&layers_dir, &mnt_dir, &empty_dir, &scratch_dir] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io_err("create directory", dir))?;
        }
        let mut recovery = Recovery { stale_mounts: mount::detach_stale(&mnt_dir)?, ..Recovery::default() };
        reset_empty_dir(&empty_dir)?;
        // Work directories of a killed process (hard links into layers, no data of their own).
        reset_empty_dir(&scratch_dir)?;
        let content = ContentStore::open(&root)?;
        clear_dir_files(&root.join("blobs").join("tmp"))?;

        let pins = Arc::new(Pins::default());
        let boot_id = current_boot_id();
        let (meta, replayed) = Meta::open(&root.join("meta.redb"), content.clone(), pins.clone(), &boot_id)?;
        recovery.replayed_records = replayed;
        let lost: std::collections::HashSet<LayerId> = meta
            .unsynced()?
            .into_iter()
            .filter(|(_, boot)| boot_id.is_empty() || *boot != boot_id)
            .map(|(id, _)| id)
            .collect();
        recovery.unflushed_layers = lost.len();
        let report =
            meta.repair(|id| !lost.contains(id) && layers_dir.join(id.as_str()).join("diff").is_dir())?;
        recovery.dropped_records =
            report.dropped_cache_records + report.dropped_layers.saturating_sub(lost.len());
        for entry in fs::read_dir(&layers_dir).map_err(io_err("read directory", &layers_dir))? {
            let entry = entry.map_err(io_err("read directory", &layers_dir))?;
            let known = entry.file_name().to_str().and_then(|n| n.parse::<LayerId>().ok());
            if known.as_ref().is_some_and(|id| report.layers.contains(id)) {
                continue;
            }
            let path = entry.path();
            crate::fsutil::remove_any(&path).map_err(io_err("remove layer", &path))?;
            if !known.is_some_and(|id| lost.contains(&id)) {
                recovery.uncommitted_layers += 1;
            }
        }
        if recovery != Recovery::default() {
            tracing::info!(?recovery, root = %root.display(), "recovered store after an unclean shutdown");
        }

        let inner = StoreInner {
            root,
            layers_dir,
            mnt_dir,
            empty_dir,
            content,
            meta,
            pins,
            gc_lock: Mutex::new(()),
            boot_id,
            overlay_opts: OnceLock::new(),
            cache_mounts: Arc::default(),
            _lock: lock,
        };
        // Layers of a crashed process of this boot are complete in the page cache; make
        // them durable now.
        inner.sync_layers()?;
        Ok((Store { inner: Arc::new(inner) }, recovery))
    }

    /// The store's root directory (canonical path).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// A new empty work directory on the layers' file system (so that it can hold hard
    /// links to layer files), removed when dropped, or at the next open after a crash.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let parent = self.inner.root.join("scratch");
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(&parent)
            .map_err(io_err("create directory in", &parent))
    }

    /// The content store (blobs by digest).
    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    /// The metadata database.
    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// Starts a new, empty layer. It is removed when dropped uncommitted.
    pub fn new_layer(&self) -> Result<MutableLayer, StoreError> {
        let (id, dir) = loop {
            let id = LayerId::generate();
            let dir = self.inner.layers_dir.join(id.as_str());
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create layer directory", &dir)(e)),
            }
        };
        let guard = Arc::new(LayerDirGuard {
            id,
            dir: dir.clone(),
            committed: AtomicBool::new(false),
            mounted: AtomicBool::new(false),
        });
        let diff = dir.join("diff");
        let work = dir.join("work");
        for d in [&diff, &work] {
            fs::DirBuilder::new().mode(0o755).create(d).map_err(io_err("create directory", d))?;
        }
        Ok(MutableLayer { guard, diff, work, store: self.inner.clone() })
    }

    /// The diff directory of a committed layer (whether or not it exists).
    pub fn layer_dir(&self, id: &LayerId) -> PathBuf {
        self.inner.layer_dir(id)
    }

    /// The diff directories of `chain` (base first), top-most first: overlay's `lowerdir`
    /// order. A layer that occurs several times (a merge of chains sharing a base) is
    /// listed once, at its top-most place: that shows the same tree, and overlayfs refuses
    /// a directory twice.
    pub fn lower_dirs(&self, chain: &[LayerId]) -> Vec<PathBuf> {
        let mut seen = std::collections::HashSet::new();
        chain.iter().rev().filter(|id| seen.insert(*id)).map(|id| self.inner.layer_dir(id)).collect()
    }

    /// Flushes the files of every layer committed so far to disk (one `syncfs`), so they
    /// survive a power failure. Also done when the store closes; call it at the end of a
    /// build to bound what a power failure can cost.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync_layers()
    }

    /// Protects what a build creates from garbage collection until the lease is dropped.
    pub fn lease(&self) -> Lease {
        Lease::new(&self.inner.pins)
    }
}

impl StoreInner {
    fn sync_layers(&self) -> Result<(), StoreError> {
        let pending: Vec<LayerId> = self.meta.unsynced()?.into_iter().map(|(id, _)| id).collect();
        if pending.is_empty() {
            return Ok(());
        }
        crate::fsutil::sync_filesystem(&self.layers_dir)?;
        self.meta.mark_synced(&pending)
    }

    pub(crate) fn layer_dir(&self, id: &LayerId) -> PathBuf {
        self.layers_dir.join(id.as_str()).join("diff")
    }

    /// The records of `chain`, failing on the first layer that is not committed.
    pub(crate) fn check_chain(&self, chain: &[LayerId]) -> Result<Vec<crate::meta::LayerRecord>, StoreError> {
        chain
            .iter()
            .map(|id| self.meta.layer(id)?.ok_or_else(|| StoreError::LayerNotFound(id.clone())))
            .collect()
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        if let Err(e) = self.sync_layers() {
            tracing::warn!(error = %e, "could not flush layers to disk");
        }
    }
}

/// This boot's id, or empty when the kernel does not say.
fn current_boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Makes sure the shared empty directory is empty (it is the bottom layer of mounts).
fn reset_empty_dir(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let path = entry.map_err(io_err("read directory", dir))?.path();
        crate::fsutil::remove_any(&path).map_err(io_err("remove", &path))?;
    }
    Ok(())
}

/// Removes the files directly in `dir` (partial downloads of a crashed process).
fn clear_dir_files(dir: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("read directory", dir))?.path();
        crate::fsutil::remove_any(&path).map_err(io_err("remove", &path))?;
    }
    Ok(())
}
