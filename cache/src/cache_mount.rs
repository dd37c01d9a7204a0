//! The directories behind `RUN --mount=type=cache`: persistent across builds, never part of
//! a layer, shared between concurrent steps the way the mount's `sharing=` asks.
//!
//! ```text
//! <root>/cache-mounts/<key hash>/id        the cache id (and seed variant), for humans
//! <root>/cache-mounts/<key hash>/<n>/      one directory per copy of the cache
//! <root>/cache-mounts/<key hash>/.tmp-...  a copy being created (renamed to <n> when ready)
//! ```
//!
//! A cache usually has one copy. `sharing=private` makes another when every copy is in
//! use, and later users take whichever copy is free, as in BuildKit. Which copies are in use
//! is known only to this process: the store lock makes it the only one using the root.

use registry::Digest;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Errors of preparing a cache mount.
#[derive(Debug, thiserror::Error)]
pub enum CacheMountError {
    /// A file-system operation on the cache's directories failed.
    #[error("cache mount {id:?}: {op} {path}: {source}")]
    Io {
        /// The cache id.
        id: String,
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Filling a new copy of the cache from its `from=` source failed.
    #[error("cache mount {id:?}: seeding from its source: {source}")]
    Seed {
        /// The cache id.
        id: String,
        /// What the seed function reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The task preparing the directory panicked or was cancelled by the runtime.
    #[error("cache mount {id:?}: preparing task failed: {reason}")]
    Task {
        /// The cache id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// How concurrent users of one cache share it (BuildKit's `sharing=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheSharing {
    /// Every concurrent user mounts the same copy.
    #[default]
    Shared,
    /// A user gets a copy nobody else is using, made when all are busy.
    Private,
    /// A user waits until a copy is free.
    Locked,
}

/// Fills a freshly created copy of a cache (the `from=` content); gets the new directory.
pub type Seed = Box<dyn FnOnce(&Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// Which cache to mount and how to create it when there is no copy yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMountRequest {
    /// The cache id (`id=`, default: the target path).
    pub id: String,
    /// Distinguishes caches of one id that start from different content (BuildKit keys a
    /// cache by its id plus the ref it is seeded from); `None` for an empty start.
    pub variant: Option<String>,
    /// Sharing mode.
    pub sharing: CacheSharing,
    /// Mode of a newly created copy's root directory.
    pub mode: u32,
    /// Owner of a newly created copy's root directory.
    pub uid: u32,
    /// Group of a newly created copy's root directory.
    pub gid: u32,
}

/// How one copy is being used right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// Being created; not usable yet. `shared`: the creator is a shared user (others may
    /// join once it is ready).
    Creating { shared: bool },
    /// Mounted by this many shared users.
    Shared(usize),
    /// Mounted by one private or locked user.
    Exclusive,
}

/// The copies in use in this process, by directory; shared by all handles of a store.
#[derive(Default)]
pub(crate) struct CacheMounts {
    uses: Mutex<HashMap<PathBuf, Use>>,
    /// Woken whenever a copy is released or finishes being created.
    changed: Notify,
    next_tmp: AtomicU64,
}

impl CacheMounts {
    fn uses(&self) -> MutexGuard<'_, HashMap<PathBuf, Use>> {
        self.uses.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, dir: &Path) {
        let mut uses = self.uses();
        match uses.get_mut(dir) {
            Some(Use::Shared(n)) if *n > 1 => *n -= 1,
            Some(_) => {
                uses.remove(dir);
            }
            None => {}
        }
        drop(uses);
        self.changed.notify_waiters();
    }
}

/// A copy of a cache in use; mount [`CacheMount::path`]. Dropping it releases the copy
/// (its content stays for later builds).
pub struct CacheMount {
    path: PathBuf,
    mounts: Arc<CacheMounts>,
}

impl CacheMount {
    /// The directory to bind-mount.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for CacheMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheMount").field("path", &self.path).finish()
    }
}

impl Drop for CacheMount {
    fn drop(&mut self) {
        self.mounts.release(&self.path);
    }
}

/// What the pool lets a user do next.
enum Decision {
    Use(PathBuf),
    Create(PathBuf),
    Wait,
}

/// The numbered copies of a cache: on disk, plus those being created.
fn copies(key_dir: &Path, uses: &HashMap<PathBuf, Use>) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out: Vec<(u64, PathBuf)> = Vec::new();
    match fs::read_dir(key_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
                    out.push((n, entry.path()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for path in uses.keys() {
        if path.parent() == Some(key_dir)
            && let Some(n) = path.file_name().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok())
            && !out.iter().any(|(m, _)| *m == n)
        {
            out.push((n, path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

fn decide(sharing: CacheSharing, key_dir: &Path, uses: &mut HashMap<PathBuf, Use>) -> io::Result<Decision> {
    let copies = copies(key_dir, uses)?;
    let free = copies.iter().find(|(_, p)| !uses.contains_key(p)).map(|(_, p)| p.clone());
    let next = copies.last().map_or(0, |(n, _)| n + 1);
    let new_copy = key_dir.join(next.to_string());
    let decision = match sharing {
        CacheSharing::Shared => {
            if let Some((_, p)) = copies.iter().find(|(_, p)| matches!(uses.get(p), Some(Use::Shared(_)))) {
                Decision::Use(p.clone())
            } else if copies.iter().any(|(_, p)| uses.get(p) == Some(&Use::Creating { shared: true })) {
                // Another shared user is creating the copy this one would join.
                Decision::Wait
            } else if let Some(p) = free {
                Decision::Use(p)
            } else {
                Decision::Create(new_copy)
            }
        }
        CacheSharing::Private => match free {
            Some(p) => Decision::Use(p),
            None => Decision::Create(new_copy),
        },
        CacheSharing::Locked => match free {
            Some(p) => Decision::Use(p),
            None if copies.is_empty() => Decision::Create(new_copy),
            None => Decision::Wait,
        },
    };
    let shared = sharing == CacheSharing::Shared;
    match &decision {
        Decision::Use(p) => {
            let entry = uses.entry(p.clone()).or_insert(Use::Shared(0));
            *entry = match (*entry, shared) {
                (Use::Shared(n), true) => Use::Shared(n + 1),
                _ => Use::Exclusive,
            };
        }
        Decision::Create(p) => {
            uses.insert(p.clone(), Use::Creating { shared });
        }
        Decision::Wait => {}
    }
    Ok(decision)
}

/// A copy being created; releases its reservation when dropped unfinished.
struct Creating {
    path: PathBuf,
    mounts: Arc<CacheMounts>,
    shared: bool,
    done: bool,
}

impl Creating {
    fn finish(mut self) -> CacheMount {
        self.done = true;
        let mut uses = self.mounts.uses();
        uses.insert(self.path.clone(), if self.shared { Use::Shared(1) } else { Use::Exclusive });
        drop(uses);
        self.mounts.changed.notify_waiters();
        CacheMount { path: self.path.clone(), mounts: self.mounts.clone() }
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        if !self.done {
            self.mounts.release(&self.path);
        }
    }
}

/// Creates copy `target` in a temporary directory beside it, seeds it, and renames it into
/// place, so that a crash never leaves a half-seeded copy under a number.
fn create_copy(
    req: &CacheMountRequest,
    key_dir: &Path,
    target: &Path,
    tmp_name: &str,
    seed: Option<Seed>,
) -> Result<(), CacheMountError> {
    let io = |op: &'static str, path: &Path| {
        let id = req.id.clone();
        let path = path.to_path_buf();
        move |source| CacheMountError::Io { id, op, path, source }
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(key_dir).map_err(io("create", key_dir))?;
    let label = key_dir.join("id");
    if !label.exists() {
        let text = match &req.variant {
            Some(v) => format!("{}\n{v}\n", req.id),
            None => format!("{}\n", req.id),
        };
        fs::write(&label, text).map_err(io("write", &label))?;
    }
    let tmp = key_dir.join(tmp_name);
    fs::DirBuilder::new().mode(0o700).create(&tmp).map_err(io("create", &tmp))?;
    let filled = (|| {
        std::os::unix::fs::chown(&tmp, Some(req.uid), Some(req.gid)).map_err(io("chown", &tmp))?;
        // After chown, which may clear set-id bits.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(req.mode & 0o7777))
            .map_err(io("chmod", &tmp))?;
        if let Some(seed) = seed {
            seed(&tmp).map_err(|source| CacheMountError::Seed { id: req.id.clone(), source })?;
        }
        fs::rename(&tmp, target).map_err(io("rename", &tmp))
    })();
    if filled.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    filled
}

/// One cache of `RUN --mount=type=cache` on disk (all its copies), for `du` and prune.
#[derive(Clone, Debug)]
pub(crate) struct CacheMountUsage {
    /// `<root>/cache-mounts/<key hash>`.
    pub key_dir: PathBuf,
    /// The cache id (and seed variant), as the `id` label says.
    pub id: String,
    /// Bytes of its files, all copies.
    pub size: u64,
    /// When a step last mounted it (the label's mtime).
    pub last_used_unix: i64,
    /// A step of this process has a copy mounted now.
    pub in_use: bool,
}

/// Apparent size of the files under `dir` (not following symlinks).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Marks the cache at `key_dir` as used now (its label's mtime), for least-recently-used
/// pruning. Best effort: a cache whose label cannot be touched only looks older.
fn touch_label(key_dir: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(key_dir.join("id")) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Removes copies a crashed process left half created (`.tmp-<pid>-<n>` of other pids).
fn remove_stale_tmp(key_dir: &Path) {
    let Ok(entries) = fs::read_dir(key_dir) else { return };
    let own = format!(".tmp-{}-", std::process::id());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".tmp-") && !name.starts_with(&own) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl crate::Store {
    /// Every cache mount on disk with its size and last use.
    pub(crate) fn cache_mount_usage(&self) -> Vec<CacheMountUsage> {
        let Ok(entries) = fs::read_dir(self.inner.root.join("cache-mounts")) else { return Vec::new() };
        let uses = self.inner.cache_mounts.uses();
        let mut out: Vec<CacheMountUsage> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| {
                let key_dir = e.path();
                let label = key_dir.join("id");
                let id = fs::read_to_string(&label)
                    .map_or_else(|_| "?".to_string(), |s| s.trim().replace('\n', " "));
                let last_used_unix = fs::metadata(&label)
                    .or_else(|_| fs::metadata(&key_dir))
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                let in_use = uses.keys().any(|p| p.starts_with(&key_dir));
                CacheMountUsage { size: tree_size(&key_dir), key_dir, id, last_used_unix, in_use }
            })
            .collect();
        out.sort_by(|a, b| a.key_dir.cmp(&b.key_dir));
        out
    }

    /// A copy of the cache `req` names, to mount for one step. Creates the first copy
    /// (and, with [`CacheSharing::Private`], another one when all are busy) with `req`'s
    /// mode and owner, filled by `seed` when given; waits while every copy is busy with
    /// [`CacheSharing::Locked`].
    ///
    /// Cancellation: dropping the future while it waits leaves nothing behind; dropped while
    /// a new copy is being seeded, the seeding finishes in the background and the copy is
    /// kept, free for the next user. Concurrent calls are safe; that is the point.
    pub async fn cache_mount(
        &self,
        req: &CacheMountRequest,
        seed: Option<Seed>,
    ) -> Result<CacheMount, CacheMountError> {
        let mounts = self.inner.cache_mounts.clone();
        let key = match &req.variant {
            Some(v) => format!("{}:{v}", req.id),
            None => req.id.clone(),
        };
        // Prefixed, so that directories of the earlier one-directory-per-id layout (named by
        // the id's bare hash) are never taken for a pool.
        let name = Digest::of_bytes(format!("cache-mount:{key}").as_bytes());
        let key_dir = self.inner.root.join("cache-mounts").join(&name.hex()[..32]);
        loop {
            // Created before looking, so that a release between the look and the wait wakes it.
            let changed = mounts.changed.notified();
            let decision = {
                let mut uses = mounts.uses();
                decide(req.sharing, &key_dir, &mut uses).map_err(|source| CacheMountError::Io {
                    id: req.id.clone(),
                    op: "read directory",
                    path: key_dir.clone(),
                    source,
                })?
            };
            match decision {
                Decision::Use(path) => {
                    touch_label(&key_dir);
                    return Ok(CacheMount { path, mounts: mounts.clone() });
                }
                Decision::Wait => changed.await,
                Decision::Create(path) => {
                    let creating = Creating {
                        path: path.clone(),
                        mounts: mounts.clone(),
                        shared: req.sharing == CacheSharing::Shared,
                        done: false,
                    };
                    let tmp_name = format!(
                        ".tmp-{}-{}",
                        std::process::id(),
                        mounts.next_tmp.fetch_add(1, Ordering::Relaxed)
                    );
                    let req_owned = req.clone();
                    let task = tokio::task::spawn_blocking(move || {
                        remove_stale_tmp(&key_dir);
                        let result = create_copy(&req_owned, &key_dir, &path, &tmp_name, seed);
                        touch_label(&key_dir);
                        (creating, result)
                    });
                    let (creating, result) = task
                        .await
                        .map_err(|e| CacheMountError::Task { id: req.id.clone(), reason: e.to_string() })?;
                    result?;
                    return Ok(creating.finish());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses_of(entries: &[(&str, Use)]) -> HashMap<PathBuf, Use> {
        entries.iter().map(|(p, u)| (PathBuf::from(p), *u)).collect()
    }

    /// The pool's choice for each sharing mode, from the copies in use (none on disk).
    #[test]
    fn decisions() {
        let key = Path::new("/nonexistent/k");
        let shared = Use::Shared(1);
        let creating_shared = Use::Creating { shared: true };
        type Case<'a> = (CacheSharing, &'a [(&'a str, Use)], &'a str);
        let cases: &[Case<'_>] = &[
            (CacheSharing::Shared, &[], "create /nonexistent/k/0"),
            (CacheSharing::Shared, &[("/nonexistent/k/0", shared)], "use /nonexistent/k/0"),
            (CacheSharing::Shared, &[("/nonexistent/k/0", Use::Exclusive)], "create /nonexistent/k/1"),
            (CacheSharing::Shared, &[("/nonexistent/k/0", creating_shared)], "wait"),
            (CacheSharing::Private, &[], "create /nonexistent/k/0"),
            (CacheSharing::Private, &[("/nonexistent/k/0", shared)], "create /nonexistent/k/1"),
            (
                CacheSharing::Private,
                &[("/nonexistent/k/0", shared), ("/nonexistent/k/2", Use::Exclusive)],
                "create /nonexistent/k/3",
            ),
            (CacheSharing::Locked, &[], "create /nonexistent/k/0"),
            (CacheSharing::Locked, &[("/nonexistent/k/0", Use::Exclusive)], "wait"),
            (CacheSharing::Locked, &[("/nonexistent/k/0", shared)], "wait"),
        ];
        for (sharing, entries, want) in cases {
            let mut uses = uses_of(entries);
            let got = match decide(*sharing, key, &mut uses).unwrap() {
                Decision::Use(p) => format!("use {}", p.display()),
                Decision::Create(p) => format!("create {}", p.display()),
                Decision::Wait => "wait".to_string(),
            };
            assert_eq!(&got, want, "{sharing:?} with {entries:?}");
        }
    }

    #[test]
    fn shared_users_are_counted_and_released() {
        let mounts = Arc::new(CacheMounts::default());
        let dir = PathBuf::from("/nonexistent/k/0");
        mounts.uses().insert(dir.clone(), Use::Shared(2));
        mounts.release(&dir);
        assert_eq!(mounts.uses().get(&dir), Some(&Use::Shared(1)));
        mounts.release(&dir);
        assert!(mounts.uses().is_empty());
    }

    fn request(id: &str, sharing: CacheSharing) -> CacheMountRequest {
        CacheMountRequest { id: id.into(), variant: None, sharing, mode: 0o751, uid: 1001, gid: 1002 }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn copies_persist_and_follow_sharing() {
        let root = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = crate::Store::open(root.path()).unwrap();
            let shared = request("/cache", CacheSharing::Shared);
            let a = store.cache_mount(&shared, None).await.unwrap();
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(a.path()).unwrap();
            assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1001, 1002, 0o751));
            fs::write(a.path().join("kept"), "1").unwrap();
            let b = store.cache_mount(&shared, None).await.unwrap();
            assert_eq!(a.path(), b.path(), "shared users mount one copy");
            let private = store.cache_mount(&request("/cache", CacheSharing::Private), None).await.unwrap();
            assert_ne!(private.path(), a.path(), "a private user gets a copy nobody uses");
            assert!(!private.path().join("kept").exists());
            let other = store.cache_mount(&request("/other", CacheSharing::Shared), None).await.unwrap();
            assert!(!other.path().join("kept").exists(), "ids are separate caches");
            let first = a.path().to_path_buf();
            drop((a, b, private, other));
            // Free again: the first copy comes back, with its content.
            let again = store.cache_mount(&request("/cache", CacheSharing::Locked), None).await.unwrap();
            assert_eq!(again.path(), first);
            assert!(again.path().join("kept").exists());
        });
    }

    #[test]
    fn locked_users_wait_for_each_other() {
        let root = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = crate::Store::open(root.path()).unwrap();
            let locked = request("/cache", CacheSharing::Locked);
            let first = store.cache_mount(&locked, None).await.unwrap();
            let waiting = store.cache_mount(&locked, None);
            tokio::pin!(waiting);
            let timeout = tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting).await;
            assert!(timeout.is_err(), "a second locked user got the cache while it was held");
            let path = first.path().to_path_buf();
            drop(first);
            let second =
                tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
            assert_eq!(second.path(), path);
        });
    }

    #[test]
    fn seeds_fill_new_copies_of_their_variant_only() {
        let root = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = crate::Store::open(root.path()).unwrap();
            let mut seeded = request("/cache", CacheSharing::Shared);
            seeded.variant = Some("from-a".into());
            let seed: Seed = Box::new(|dir: &Path| {
                fs::write(dir.join("seed"), "a")?;
                Ok(())
            });
            let a = store.cache_mount(&seeded, Some(seed)).await.unwrap();
            assert_eq!(fs::read_to_string(a.path().join("seed")).unwrap(), "a");
            let plain = store.cache_mount(&request("/cache", CacheSharing::Shared), None).await.unwrap();
            assert!(!plain.path().join("seed").exists(), "another variant is another cache");
            let failing: Seed = Box::new(|_: &Path| Err("no such source".into()));
            seeded.variant = Some("from-b".into());
            let err = store.cache_mount(&seeded, Some(failing)).await.unwrap_err();
            assert!(err.to_string().contains("no such source"), "{err}");
            // A failed seed leaves no copy behind: the next try creates (and seeds) one.
            let seed: Seed = Box::new(|dir: &Path| {
                fs::write(dir.join("seed"), "b")?;
                Ok(())
            });
            let b = store.cache_mount(&seeded, Some(seed)).await.unwrap();
            assert_eq!(fs::read_to_string(b.path().join("seed")).unwrap(), "b");
        });
    }
}
