//! Content checksums for cache keys (BuildKit's `cache/contenthash`): the digest of exactly
//! the files a step selects from a source.
//!
//! The digest covers, for every selected entry, its path relative to the selection, its
//! type, permission bits, owner (0:0 for the build context), size and contents (files),
//! link target (symlinks), device number (devices) and extended attributes. It does not
//! cover access, modification or change times, so touching a file changes nothing while
//! editing, chmod or chown of a selected file does, and editing an unselected file does
//! not. Entries are selected with the same rules a copy uses (wildcards, symlink following
//! of the named path only, include/exclude patterns, the source's ignore patterns), so a key
//! covers what the copy reads.
//!
//! File contents are hashed in parallel, and per-entry digests are remembered in a
//! [`ChecksumCache`] under the entry's (path, size, mtime, ctime, inode, device) so that an
//! unchanged tree costs one `lstat` per entry.

mod cache;

pub use cache::ChecksumCache;

use crate::fileop::resolve::{Root, is_missing, rel_string};
use crate::fileop::select::{Decision, Filter, FilterState};
use crate::fileop::wildcard::resolve_wildcards;
use crate::fileop::{FileOpError, SourceRoot, fsops};
use crate::patterns::{PatternError, clean, contains_wildcards};
use cache::{Entry, StatKey};
use rayon::prelude::*;
use registry::Digest;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, OFlags};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a step reads from a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Path inside the source (`/` for everything); may contain wildcards.
    pub path: String,
    /// Follow a symlink named by `path` (or by each wildcard match).
    pub follow_symlinks: bool,
    /// Only entries (relative to the selected path) matching one of these.
    pub include_patterns: Vec<String>,
    /// Not entries (relative to the selected path) matching these.
    pub exclude_patterns: Vec<String>,
    /// Expand wildcards in `path`.
    pub allow_wildcard: bool,
}

impl Selector {
    /// Everything under `path` (a symlink named by it is followed, no wildcards).
    pub fn path(path: impl Into<String>) -> Selector {
        Selector {
            path: path.into(),
            follow_symlinks: true,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            allow_wildcard: false,
        }
    }
}

/// Why a checksum could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// The selected path does not exist (or is ignored).
    #[error("{path:?}: not found")]
    NotFound {
        /// The path inside the source.
        path: String,
    },
    /// An include, exclude or ignore pattern is malformed.
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    /// Resolving the selection inside the source failed.
    #[error(transparent)]
    Resolve(FileOpError),
    /// Reading the source or the cache file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A saved cache file is not one this version wrote.
    #[error("checksum cache {} is corrupt or from another version", path.display())]
    CorruptCache {
        /// The cache file.
        path: PathBuf,
    },
}

impl From<FileOpError> for ChecksumError {
    fn from(e: FileOpError) -> Self {
        match e {
            FileOpError::NotFound { path } => ChecksumError::NotFound { path },
            FileOpError::Pattern(p) => ChecksumError::Pattern(p),
            other => ChecksumError::Resolve(other),
        }
    }
}

/// The digest of what `selector` selects in `source`.
///
/// Synchronous; safe to call concurrently with a shared `cache`. Hashes uncached file
/// contents on the rayon thread pool.
pub fn checksum(
    source: &SourceRoot,
    selector: &Selector,
    cache: &ChecksumCache,
) -> Result<Digest, ChecksumError> {
    let records = selected_records(source, selector, cache)?;
    let mut h = Sha256::new();
    h.update(b"rbuild-contenthash-v1\0");
    for r in &records {
        r.hash_into(&mut h);
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

/// Every entry `selector` selects with its own digest (type, mode, owner, content or link
/// target), sorted by path; `None` when there are more than `limit` entries. This is what
/// `--explain` compares between two builds to name the files that changed.
pub fn listing(
    source: &SourceRoot,
    selector: &Selector,
    cache: &ChecksumCache,
    limit: usize,
) -> Result<Option<Vec<(String, Digest)>>, ChecksumError> {
    let records = selected_records(source, selector, cache)?;
    if records.len() > limit {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut base = String::new();
    for r in &records {
        let name = String::from_utf8_lossy(&r.name).into_owned();
        if r.kind == b'M' {
            base = name;
            continue;
        }
        let path = match (base.trim_end_matches('/'), name.as_str()) {
            (b, "") => {
                if b.is_empty() {
                    "/".to_string()
                } else {
                    b.to_string()
                }
            }
            (b, n) => format!("{b}/{n}"),
        };
        let mut h = Sha256::new();
        r.hash_into(&mut h);
        out.push((path, Digest::from_sha256(h.finalize().into())));
    }
    out.sort();
    Ok(Some(out))
}

/// The selected entries in walk order, with their digests filled in.
fn selected_records(
    source: &SourceRoot,
    selector: &Selector,
    cache: &ChecksumCache,
) -> Result<Vec<Record>, ChecksumError> {
    let root = Root::new(&source.root);
    let filter = Filter::new(&selector.include_patterns, &selector.exclude_patterns, &source.excludes)?;
    let path = clean(&format!("/{}", selector.path));
    let matches = if selector.allow_wildcard && contains_wildcards(&path) {
        resolve_wildcards(&root, &path, selector.follow_symlinks, &filter)?
    } else {
        vec![path]
    };

    let walk = Walk { filter: &filter, cache, reset_owner: source.reset_owner };
    let mut records = Vec::new();
    for m in &matches {
        let rel = root.resolve_rel(m, selector.follow_symlinks)?;
        let host = root.join(&rel);
        let root_rel = rel_string(&rel);
        let shown = clean(&format!("/{m}"));
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(meta) => Meta::from_std(&meta),
            Err(e) if is_missing(&e) => return Err(ChecksumError::NotFound { path: shown }),
            Err(source) => return Err(ChecksumError::Io { op: "lstat", path: host, source }),
        };
        if filter.ignored(&root_rel, meta.is_dir()) {
            return Err(ChecksumError::NotFound { path: shown });
        }
        records.push(Record::marker(shown.as_bytes()));
        let top = Node { parent: None, name: host.as_os_str(), host: host.clone(), meta };
        records.extend(walk.entry(top, String::new(), root_rel, &FilterState::default())?);
    }

    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let results: Vec<Result<Entry, ChecksumError>> =
        records.par_iter().filter_map(|r| r.job.as_ref()).map(Job::run).collect();
    let mut remember = Vec::new();
    let mut results = results.into_iter();
    for record in records.iter_mut() {
        let Some(job) = record.job.take() else { continue };
        let entry = results.next().expect("one result per job")?;
        record.content = entry.content.unwrap_or_default();
        record.xattrs = entry.xattrs;
        if !entry.key.is_racy(now_ns) {
            remember.push((job.host, entry));
        }
    }
    cache.insert_many(remember);
    Ok(records)
}

/// One selected entry, in walk order.
struct Record {
    /// Path relative to the selection root ("" for the root); for a marker, the match.
    name: Vec<u8>,
    /// 'M' marker of a new match, 'd', 'f', 'l', 'c', 'b', 'p', 's'.
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    link: Vec<u8>,
    content: [u8; 32],
    xattrs: [u8; 32],
    /// Digests still to compute (the cache did not know the entry).
    job: Option<Job>,
}

impl Record {
    fn marker(name: &[u8]) -> Record {
        Record {
            name: name.to_vec(),
            kind: b'M',
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            rdev: 0,
            link: Vec::new(),
            content: [0; 32],
            xattrs: [0; 32],
            job: None,
        }
    }

    fn hash_into(&self, h: &mut Sha256) {
        h.update([self.kind]);
        h.update((self.name.len() as u64).to_le_bytes());
        h.update(&self.name);
        if self.kind == b'M' {
            return;
        }
        h.update(self.mode.to_le_bytes());
        h.update(self.uid.to_le_bytes());
        h.update(self.gid.to_le_bytes());
        match self.kind {
            b'f' => {
                h.update(self.size.to_le_bytes());
                h.update(self.content);
            }
            b'l' => {
                h.update((self.link.len() as u64).to_le_bytes());
                h.update(&self.link);
            }
            b'c' | b'b' => h.update(self.rdev.to_le_bytes()),
            _ => {}
        }
        h.update(self.xattrs);
    }
}

/// Digests to compute for an entry the cache does not know.
struct Job {
    host: PathBuf,
    key: StatKey,
    is_file: bool,
}

impl Job {
    fn run(&self) -> Result<Entry, ChecksumError> {
        let io = |op| move |source| ChecksumError::Io { op, path: self.host.clone(), source };
        let content = if self.is_file { Some(hash_file(&self.host).map_err(io("read"))?) } else { None };
        let xattrs = hash_xattrs(&self.host).map_err(io("listxattr"))?;
        Ok(Entry { key: self.key, content, xattrs })
    }
}

fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    thread_local! {
        // One read buffer per hashing thread instead of a zeroed allocation per file.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    // The walk saw a regular file here; never follow a link that replaced it since.
    let mut file =
        std::fs::OpenOptions::new().read(true).custom_flags(OFlags::NOFOLLOW.bits() as i32).open(path)?;
    let mut h = Sha256::new();
    BUF.with_borrow_mut(|buf| {
        loop {
            match file.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })?;
    Ok(h.finalize().into())
}

/// All zeros when there are none (the common case), otherwise sha256 of the sorted pairs.
fn hash_xattrs(path: &Path) -> io::Result<[u8; 32]> {
    let attrs = fsops::list_xattrs(path)?;
    if attrs.is_empty() {
        return Ok([0; 32]);
    }
    let mut h = Sha256::new();
    for (name, value) in attrs {
        h.update((name.len() as u64).to_le_bytes());
        h.update(&name);
        h.update((value.len() as u64).to_le_bytes());
        h.update(&value);
    }
    Ok(h.finalize().into())
}

/// What the digest uses from `lstat`.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    key: StatKey,
}

impl Meta {
    fn from_std(m: &Metadata) -> Meta {
        Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            rdev: m.rdev(),
            key: StatKey::of(m),
        }
    }

    // The `stat` field types differ between architectures, so some casts are no-ops here.
    #[allow(clippy::unnecessary_cast)]
    fn from_stat(st: &rustix::fs::Stat) -> Meta {
        let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            rdev: st.st_rdev as u64,
            key: StatKey {
                size: st.st_size as u64,
                mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
                ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
                ino: st.st_ino as u64,
                dev: st.st_dev as u64,
            },
        }
    }

    fn kind(&self) -> u8 {
        match self.mode & fsops::S_IFMT {
            fsops::S_IFDIR => b'd',
            fsops::S_IFREG => b'f',
            fsops::S_IFLNK => b'l',
            0o020000 => b'c',
            0o060000 => b'b',
            0o010000 => b'p',
            _ => b's',
        }
    }

    fn is_dir(&self) -> bool {
        self.mode & fsops::S_IFMT == fsops::S_IFDIR
    }
}

/// An entry being walked: its name in its parent directory (opened), or a host path for the
/// top of a selection.
struct Node<'a> {
    parent: Option<BorrowedFd<'a>>,
    name: &'a OsStr,
    host: PathBuf,
    meta: Meta,
}

struct Walk<'a> {
    filter: &'a Filter,
    cache: &'a ChecksumCache,
    reset_owner: bool,
}

impl Walk<'_> {
    /// The records of `node` and everything selected below it, in order. Directories are
    /// read through their file descriptors (no path lookups) and subdirectories are walked
    /// in parallel.
    fn entry(
        &self,
        node: Node<'_>,
        rel: String,
        root_rel: String,
        parent: &FilterState,
    ) -> Result<Vec<Record>, ChecksumError> {
        let is_dir = node.meta.is_dir();
        let (decision, state) = if rel.is_empty() {
            (Decision::Include, FilterState::default())
        } else {
            self.filter.decide(&rel, &root_rel, is_dir, parent)
        };
        if decision == Decision::Prune {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if decision == Decision::Include {
            out.push(self.record(&node, &rel)?);
        }
        if !is_dir {
            return Ok(out);
        }
        let io = |op, source| ChecksumError::Io { op, path: node.host.clone(), source };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match node.parent {
            Some(dir) => rustix::fs::openat(dir, node.name, flags, rustix::fs::Mode::empty()),
            None => rustix::fs::open(&node.host, flags, rustix::fs::Mode::empty()),
        }
        .map_err(|e| io("open", e.into()))?;
        let mut children = Vec::new();
        {
            let mut dir = rustix::fs::Dir::read_from(&fd).map_err(|e| io("readdir", e.into()))?;
            while let Some(entry) = dir.read() {
                let entry = entry.map_err(|e| io("readdir", e.into()))?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    children.push(std::ffi::OsString::from_vec(name.to_vec()));
                }
            }
        }
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let fd = fd.as_fd();
        let below: Vec<Vec<Record>> = children
            .par_iter()
            .with_min_len(16)
            .map(|name| {
                let host = node.host.join(name);
                let st = rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| ChecksumError::Io { op: "lstat", path: host.clone(), source: e.into() })?;
                let name_str = name.to_string_lossy();
                let child_rel =
                    if rel.is_empty() { name_str.to_string() } else { format!("{rel}/{name_str}") };
                let child_root_rel =
                    if root_rel.is_empty() { name_str.to_string() } else { format!("{root_rel}/{name_str}") };
                let child =
                    Node { parent: Some(fd), name: name.as_os_str(), host, meta: Meta::from_stat(&st) };
                self.entry(child, child_rel, child_root_rel, &state)
            })
            .collect::<Result<_, _>>()?;
        let selected_below = below.iter().any(|b| !b.is_empty());
        if decision == Decision::Descend && selected_below {
            // Not selected itself, but the copy creates it for what is inside.
            out.push(self.record(&node, &rel)?);
        }
        out.extend(below.into_iter().flatten());
        Ok(out)
    }

    fn record(&self, node: &Node<'_>, rel: &str) -> Result<Record, ChecksumError> {
        let meta = &node.meta;
        let kind = meta.kind();
        let link = if kind == b'l' {
            let target: io::Result<Vec<u8>> = match node.parent {
                Some(dir) => rustix::fs::readlinkat(dir, node.name, Vec::new())
                    .map(|c| c.into_bytes())
                    .map_err(Into::into),
                None => std::fs::read_link(&node.host).map(|p| p.into_os_string().into_vec()),
            };
            target.map_err(|source| ChecksumError::Io { op: "readlink", path: node.host.clone(), source })?
        } else {
            Vec::new()
        };
        let (uid, gid) = if self.reset_owner { (0, 0) } else { (meta.uid, meta.gid) };
        let mut record = Record {
            name: rel.as_bytes().to_vec(),
            kind,
            mode: meta.mode & 0o7777,
            uid,
            gid,
            size: if kind == b'f' { meta.size } else { 0 },
            rdev: meta.rdev,
            link,
            content: [0; 32],
            xattrs: [0; 32],
            job: None,
        };
        match self.cache.get(&node.host, &meta.key) {
            Some(e) if e.content.is_some() || kind != b'f' => {
                record.content = e.content.unwrap_or_default();
                record.xattrs = e.xattrs;
            }
            _ => record.job = Some(Job { host: node.host.clone(), key: meta.key, is_file: kind == b'f' }),
        }
        Ok(record)
    }
}
