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
//! [`ChecksumCache`] under the entry's (path, size, mtime, ctime, inode) so that an
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
use sha2::{Digest as _, Sha256};
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
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
    let root = Root::new(&source.root);
    let filter = Filter::new(&selector.include_patterns, &selector.exclude_patterns, &source.excludes)?;
    let path = clean(&format!("/{}", selector.path));
    let matches = if selector.allow_wildcard && contains_wildcards(&path) {
        resolve_wildcards(&root, &path, selector.follow_symlinks, &filter)?
    } else {
        vec![path]
    };

    let mut walk = Walk {
        filter: &filter,
        cache,
        reset_owner: source.reset_owner,
        records: Vec::new(),
        jobs: Vec::new(),
        pending: Vec::new(),
    };
    for m in &matches {
        let rel = root.resolve_rel(m, selector.follow_symlinks)?;
        let host = root.join(&rel);
        let root_rel = rel_string(&rel);
        let shown = clean(&format!("/{m}"));
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Err(ChecksumError::NotFound { path: shown }),
            Err(source) => return Err(ChecksumError::Io { op: "lstat", path: host, source }),
        };
        if filter.ignored(&root_rel, meta.is_dir()) {
            return Err(ChecksumError::NotFound { path: shown });
        }
        walk.records.push(Record::marker(shown.as_bytes()));
        walk.entry(&host, "", &root_rel, meta, &FilterState::default())?;
    }
    let Walk { mut records, jobs, .. } = walk;

    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let results: Vec<Result<(usize, Entry), ChecksumError>> = jobs.par_iter().map(|job| job.run()).collect();
    let mut remember = Vec::new();
    for (job, result) in jobs.into_iter().zip(results) {
        let (idx, entry) = result?;
        records[idx].content = entry.content.unwrap_or_default();
        records[idx].xattrs = entry.xattrs;
        if !entry.key.is_racy(now_ns) {
            remember.push((job.host, entry));
        }
    }
    cache.insert_many(remember);

    let mut h = Sha256::new();
    h.update(b"rbuild-contenthash-v1\0");
    for r in &records {
        r.hash_into(&mut h);
    }
    Ok(Digest::from_sha256(h.finalize().into()))
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
    record: usize,
    host: PathBuf,
    key: StatKey,
    is_file: bool,
}

impl Job {
    fn run(&self) -> Result<(usize, Entry), ChecksumError> {
        let io = |op| move |source| ChecksumError::Io { op, path: self.host.clone(), source };
        let content = if self.is_file { Some(hash_file(&self.host).map_err(io("read"))?) } else { None };
        let xattrs = hash_xattrs(&self.host).map_err(io("listxattr"))?;
        Ok((self.record, Entry { key: self.key, content, xattrs }))
    }
}

fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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

struct PendingHeader {
    name: String,
    host: PathBuf,
    meta: Metadata,
}

struct Walk<'a> {
    filter: &'a Filter,
    cache: &'a ChecksumCache,
    reset_owner: bool,
    records: Vec<Record>,
    jobs: Vec<Job>,
    /// Directories being walked that are not selected themselves; their headers are
    /// recorded when something inside them is (the copy creates them then).
    pending: Vec<Option<PendingHeader>>,
}

impl Walk<'_> {
    fn entry(
        &mut self,
        host: &Path,
        rel: &str,
        root_rel: &str,
        meta: Metadata,
        parent: &FilterState,
    ) -> Result<(), ChecksumError> {
        let is_dir = meta.is_dir();
        let (decision, state) = if rel.is_empty() {
            (Decision::Include, FilterState::default())
        } else {
            self.filter.decide(rel, root_rel, is_dir, parent)
        };
        match decision {
            Decision::Prune => return Ok(()),
            Decision::Include => {
                self.flush_pending()?;
                self.record(rel, host, &meta)?;
            }
            Decision::Descend => {}
        }
        if !is_dir {
            return Ok(());
        }
        self.pending.push(match decision {
            Decision::Descend => {
                Some(PendingHeader { name: rel.to_string(), host: host.to_path_buf(), meta })
            }
            _ => None,
        });
        let read = std::fs::read_dir(host).map_err(|source| ChecksumError::Io {
            op: "readdir",
            path: host.to_path_buf(),
            source,
        })?;
        let mut children = Vec::new();
        for entry in read {
            let entry = entry.map_err(|source| ChecksumError::Io {
                op: "readdir",
                path: host.to_path_buf(),
                source,
            })?;
            children.push(entry.file_name());
        }
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in children {
            let child = host.join(&name);
            let meta = std::fs::symlink_metadata(&child).map_err(|source| ChecksumError::Io {
                op: "lstat",
                path: child.clone(),
                source,
            })?;
            let name = name.to_string_lossy();
            let child_rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
            let child_root_rel =
                if root_rel.is_empty() { name.to_string() } else { format!("{root_rel}/{name}") };
            self.entry(&child, &child_rel, &child_root_rel, meta, &state)?;
        }
        self.pending.pop();
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), ChecksumError> {
        for i in 0..self.pending.len() {
            if let Some(p) = self.pending[i].take() {
                self.record(&p.name, &p.host, &p.meta)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, rel: &str, host: &Path, meta: &Metadata) -> Result<(), ChecksumError> {
        let ft = meta.file_type();
        let mode = meta.mode();
        let kind = match mode & fsops::S_IFMT {
            fsops::S_IFDIR => b'd',
            fsops::S_IFREG => b'f',
            fsops::S_IFLNK => b'l',
            0o020000 => b'c',
            0o060000 => b'b',
            0o010000 => b'p',
            _ => b's',
        };
        let link = if ft.is_symlink() {
            std::fs::read_link(host)
                .map_err(|source| ChecksumError::Io { op: "readlink", path: host.to_path_buf(), source })?
                .into_os_string()
                .into_vec()
        } else {
            Vec::new()
        };
        let (uid, gid) = if self.reset_owner { (0, 0) } else { (meta.uid(), meta.gid()) };
        let key = StatKey::of(meta);
        let mut record = Record {
            name: rel.as_bytes().to_vec(),
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: if kind == b'f' { meta.size() } else { 0 },
            rdev: meta.rdev(),
            link,
            content: [0; 32],
            xattrs: [0; 32],
        };
        match self.cache.get(host, &key) {
            Some(e) if e.content.is_some() || kind != b'f' => {
                record.content = e.content.unwrap_or_default();
                record.xattrs = e.xattrs;
            }
            _ => self.jobs.push(Job {
                record: self.records.len(),
                host: host.to_path_buf(),
                key,
                is_file: kind == b'f',
            }),
        }
        self.records.push(record);
        Ok(())
    }
}
