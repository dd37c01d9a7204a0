//! Per-entry digests remembered across builds, keyed by what `lstat` says about the entry,
//! so that a tree nobody touched is not read again.

use super::ChecksumError;
use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"rbcsum02";

/// What identifies an unchanged entry: any write changes size, mtime or ctime, and a
/// replaced file has a new inode. The device is included too, so that another file system
/// mounted later at the same path is never mistaken for the first one. The change time also moves on chmod, chown and xattr
/// changes, so the extended-attribute digest can be remembered under the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
    pub(crate) ctime_ns: i128,
    pub(crate) ino: u64,
    pub(crate) dev: u64,
}

impl StatKey {
    pub(crate) fn of(meta: &Metadata) -> StatKey {
        StatKey {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// True when the entry changed so recently that another change within the file system's
    /// timestamp granularity could go unnoticed (git's "racily clean" problem); such digests
    /// are used but not remembered.
    pub(crate) fn is_racy(&self, now_ns: i128) -> bool {
        const WINDOW_NS: i128 = 2_000_000_000;
        self.mtime_ns.max(self.ctime_ns) + WINDOW_NS > now_ns
    }
}

/// Remembered digests of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: StatKey,
    /// sha256 of a regular file's contents.
    pub(crate) content: Option<[u8; 32]>,
    /// sha256 of the sorted extended attributes.
    pub(crate) xattrs: [u8; 32],
}

/// Content digests by host path, valid while the entry's size, mtime, ctime, inode and device
/// stay the same. Shared by concurrent checksums (`&self` everywhere).
#[derive(Debug, Default)]
pub struct ChecksumCache {
    entries: RwLock<HashMap<PathBuf, Entry>>,
    dirty: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ChecksumCache {
    /// An empty cache.
    pub fn new() -> ChecksumCache {
        ChecksumCache::default()
    }

    /// Reads a cache saved by [`ChecksumCache::save`]. A missing file gives an empty cache; a
    /// damaged or foreign one is an error (callers may then start empty).
    pub fn load(path: &Path) -> Result<ChecksumCache, ChecksumError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ChecksumCache::new()),
            Err(source) => return Err(ChecksumError::Io { op: "read", path: path.to_path_buf(), source }),
        };
        let corrupt = || ChecksumError::CorruptCache { path: path.to_path_buf() };
        let entries = decode(&bytes).ok_or_else(corrupt)?;
        Ok(ChecksumCache { entries: RwLock::new(entries), ..ChecksumCache::default() })
    }

    /// Writes the cache to `path` atomically (temporary file, fsync, rename). Does nothing
    /// when nothing changed since the last load or save.
    pub fn save(&self, path: &Path) -> Result<(), ChecksumError> {
        if !self.dirty.swap(false, Ordering::AcqRel) && path.exists() {
            return Ok(());
        }
        let bytes = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            encode(&entries)
        };
        let err = |op| move |source| ChecksumError::Io { op, path: path.to_path_buf(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err("mkdir"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err("create"))?;
        tmp.write_all(&bytes).map_err(err("write"))?;
        tmp.as_file().sync_all().map_err(err("fsync"))?;
        tmp.persist(path).map_err(|e| err("rename")(e.error))?;
        Ok(())
    }

    /// Number of remembered entries.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything under `root` (for example a snapshot that was deleted).
    pub fn forget_under(&self, root: &Path) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|p, _| !p.starts_with(root));
        if entries.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// How many entries were served from the cache since it was created or loaded.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many entries had to be read (not cached, or changed) since it was created or
    /// loaded.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub(crate) fn get(&self, path: &Path, key: &StatKey) -> Option<Entry> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let found = entries.get(path).filter(|e| e.key == *key).copied();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert_many(&self, items: Vec<(PathBuf, Entry)>) {
        if items.is_empty() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for (path, entry) in items {
            entries.insert(path, entry);
        }
        self.dirty.store(true, Ordering::Release);
    }
}

fn encode(entries: &HashMap<PathBuf, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, e) in entries {
        let p = path.as_os_str().as_bytes();
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(&e.key.size.to_le_bytes());
        out.extend_from_slice(&e.key.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.key.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.key.ino.to_le_bytes());
        out.extend_from_slice(&e.key.dev.to_le_bytes());
        match e.content {
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&e.xattrs);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<HashMap<PathBuf, Entry>> {
    let mut r = bytes;
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).ok()?;
    if &magic != MAGIC {
        return None;
    }
    let count = u64::from_le_bytes(take(&mut r)?);
    let mut out = HashMap::with_capacity(count.min(1 << 24) as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(&mut r)?) as usize;
        if r.len() < len {
            return None;
        }
        let path = PathBuf::from(std::ffi::OsString::from_vec(r[..len].to_vec()));
        r = &r[len..];
        let key = StatKey {
            size: u64::from_le_bytes(take(&mut r)?),
            mtime_ns: i128::from_le_bytes(take(&mut r)?),
            ctime_ns: i128::from_le_bytes(take(&mut r)?),
            ino: u64::from_le_bytes(take(&mut r)?),
            dev: u64::from_le_bytes(take(&mut r)?),
        };
        let [flag] = take::<1>(&mut r)?;
        let content = match flag {
            0 => None,
            1 => Some(take::<32>(&mut r)?),
            _ => return None,
        };
        let xattrs = take::<32>(&mut r)?;
        out.insert(path, Entry { key, content, xattrs });
    }
    r.is_empty().then_some(out)
}

fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}
