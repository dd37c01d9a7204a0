//! COPY/ADD: BuildKit's `docopy` plus fsutil's `copy.Copy`.
//!
//! For each source match: the destination's parent is created (`dest/` creates `dest`
//! itself), a file going onto an existing directory lands inside it, a directory's contents
//! are merged into the destination, and the tree is copied entry by entry keeping modes,
//! owners (unless `--chown`), times (unless a timestamp is given), extended attributes,
//! symlinks (as links) and hard links (within one source match). Include and exclude
//! patterns select entries relative to the copied source; a directory that is not itself
//! selected is created only once something inside it is.

use super::archive;
use super::fsops::{self, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Times};
use super::mode::CompiledMode;
use super::owner::Ids;
use super::resolve::{Root, is_missing, rel_string};
use super::select::{Decision, Filter, FilterState};
use super::wildcard::resolve_wildcards;
use super::{CopyAction, FileOpError, SourceRoot};
use crate::patterns::{clean, contains_wildcards};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a copy reads from its source, after `--parents` is taken apart the way BuildKit's
/// Dockerfile frontend does it: `a/./b/c*` copies `b/c*` from `a`, keeping `b/`.
#[derive(Debug, Clone)]
pub(crate) struct SourcePlan {
    pub(crate) src: String,
    pub(crate) include_patterns: Vec<String>,
    /// A path that must exist (for `--parents` without wildcards).
    pub(crate) required: Option<String>,
}

impl SourcePlan {
    pub(crate) fn of(a: &CopyAction) -> SourcePlan {
        if !a.parents {
            return SourcePlan {
                src: a.src.clone(),
                include_patterns: a.include_patterns.clone(),
                required: None,
            };
        }
        let (parent, pattern) = match a.src.split_once("/./") {
            Some((parent, pattern)) => (parent.to_string(), pattern.to_string()),
            None => ("/".to_string(), a.src.clone()),
        };
        let pattern = clean(&format!("/{pattern}")).trim_start_matches('/').to_string();
        let required = (!contains_wildcards(&parent) && !contains_wildcards(&pattern))
            .then(|| clean(&format!("/{parent}/{pattern}")));
        // The pivot pattern replaces include patterns: the Dockerfile never sets both.
        SourcePlan { src: parent, include_patterns: vec![pattern], required }
    }
}

/// BuildKit's `cleanPath`: absolute and clean, but a trailing `/` or `/.` is kept because it
/// means "directory".
fn clean_keep_trailing(p: &str) -> String {
    let cleaned = clean(&format!("/{p}"));
    if p.ends_with("/.") {
        if cleaned == "/" { "/.".to_string() } else { format!("{cleaned}/.") }
    } else if p.ends_with('/') && cleaned != "/" {
        format!("{cleaned}/")
    } else {
        cleaned
    }
}

/// Go's `filepath.Split`: everything up to and including the last `/`, and the rest.
fn split_last(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    }
}

/// Go's `filepath.Base` of a clean-ish path: the last non-empty component.
fn base_name(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

pub(crate) fn copy(
    dest: &Root,
    source: &SourceRoot,
    a: &CopyAction,
    owner: Option<Ids>,
) -> Result<(), FileOpError> {
    let src_root = Root::new(&source.root);
    let plan = SourcePlan::of(a);
    let mode = a.mode.as_ref().map(|m| m.compile()).transpose()?;
    let filter = Filter::new(&plan.include_patterns, &a.exclude_patterns, &source.excludes)?;
    let src_path = clean_keep_trailing(&plan.src);
    let dest_path = clean_keep_trailing(&a.dest);

    if !a.create_dest_path {
        let p = dest.resolve(&a.dest, true)?;
        let parent = p.parent().filter(|d| d.starts_with(dest.host())).unwrap_or(dest.host());
        std::fs::symlink_metadata(parent).map_err(|e| FileOpError::Io {
            op: "stat",
            path: clean_keep_trailing(&a.dest),
            source: e,
        })?;
    }

    // With wildcards allowed, BuildKit expands even a plain path, which cleans it (a
    // trailing "/." no longer hides the base name).
    let matches = if !a.allow_wildcard {
        vec![src_path.clone()]
    } else if contains_wildcards(&src_path) {
        resolve_wildcards(&src_root, &src_path, a.follow_symlinks, &filter)?
    } else {
        vec![clean(&src_path)]
    };
    if matches.is_empty() {
        if a.allow_empty_wildcard {
            return Ok(());
        }
        return Err(FileOpError::NotFound { path: src_path });
    }
    if let Some(required) = &plan.required {
        let rel = src_root.resolve_rel(required, true)?;
        let host = src_root.join(&rel);
        let exists = std::fs::symlink_metadata(&host);
        if exists.is_err() || filter.ignored(&rel_string(&rel), exists.is_ok_and(|m| m.is_dir())) {
            return Err(FileOpError::NotFound { path: required.clone() });
        }
    }

    let times = a.timestamp.map(Times::at);
    let dir_perm = match &mode {
        Some(CompiledMode::Octal(v)) => v & 0o777,
        Some(m @ CompiledMode::Symbolic(_)) => m.apply(S_IFDIR | 0o755),
        None => 0o755,
    };
    for m in &matches {
        if a.attempt_unpack && archive::unpack(&src_root, m, dest, &dest_path, owner, times, &filter)? {
            continue;
        }
        let mut copier = Copier {
            src_root: &src_root,
            dest,
            owner,
            reset_owner: source.reset_owner,
            mode: mode.as_ref(),
            times,
            filter: &filter,
            always_replace: a.always_replace_existing,
            dir_perm,
            inodes: HashMap::new(),
            parents: Vec::new(),
        };
        copier.copy_one(m, &dest_path, a.follow_symlinks, a.dir_copy_contents || a.parents)?;
    }
    Ok(())
}

struct PendingDir {
    src: PathBuf,
    dst: PathBuf,
    copied: bool,
}

struct Copier<'a> {
    src_root: &'a Root,
    dest: &'a Root,
    owner: Option<Ids>,
    reset_owner: bool,
    mode: Option<&'a CompiledMode>,
    times: Option<Times>,
    filter: &'a Filter,
    always_replace: bool,
    /// Permission bits of directories the copy creates around the copied tree.
    dir_perm: u32,
    /// First destination of each multiply-linked source inode, to recreate hard links.
    inodes: HashMap<(u64, u64), PathBuf>,
    /// Directories being walked; those not selected yet are created when something inside
    /// them is.
    parents: Vec<PendingDir>,
}

impl Copier<'_> {
    fn copy_one(
        &mut self,
        src: &str,
        dest_path: &str,
        follow: bool,
        dir_contents: bool,
    ) -> Result<(), FileOpError> {
        let (dir, file) = split_last(dest_path);
        let ensure = if !file.is_empty() && file != "." { dir } else { dest_path };
        if !ensure.is_empty() {
            let host = self.dest.resolve(ensure, true)?;
            fsops::mkdir_all(self.dest, &host, self.dir_perm, self.owner, self.times)?;
        }
        let dst = self.dest.resolve(&clean(dest_path), true)?;

        let src_rel = self.src_root.resolve_rel(src, follow)?;
        let src_host = self.src_root.join(&src_rel);
        let root_rel = rel_string(&src_rel);
        let not_found = || FileOpError::NotFound { path: clean(&format!("/{src}")) };
        let meta = match std::fs::symlink_metadata(&src_host) {
            Ok(m) => m,
            Err(e) if is_missing(&e) => return Err(not_found()),
            Err(e) => return Err(self.src_root.io_err("lstat", &src_host, e)),
        };
        if self.filter.ignored(&root_rel, meta.is_dir()) {
            return Err(not_found());
        }
        let target = self.prepare_target_dir(&meta, src, dst, dir_contents)?;
        self.copy_entry(&src_host, "", &root_rel, &target, false, &FilterState::default())
    }

    /// fsutil's `prepareTargetDir`: decides where the source lands and creates its parent.
    fn prepare_target_dir(
        &mut self,
        src_meta: &Metadata,
        src: &str,
        dest: PathBuf,
        dir_contents: bool,
    ) -> Result<PathBuf, FileOpError> {
        let dest_meta = match std::fs::symlink_metadata(&dest) {
            Ok(m) => Some(m),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(self.dest.io_err("stat", &dest, e)),
        };
        let src_dir = src_meta.is_dir();
        let mut dest_path = dest;
        if (!dir_contents && src_dir && dest_meta.is_some())
            || (!src_dir && dest_meta.as_ref().is_some_and(|m| m.is_dir()))
        {
            let base = base_name(src);
            if !base.is_empty() && base != "." && base != ".." {
                dest_path.push(OsStr::new(base));
            }
        }
        let target = if dir_contents && src_dir && dest_meta.is_none() {
            dest_path.clone()
        } else {
            match dest_path.parent() {
                Some(p) if p.starts_with(self.dest.host()) => p.to_path_buf(),
                _ => self.dest.host().to_path_buf(),
            }
        };
        fsops::mkdir_all(self.dest, &target, self.dir_perm, self.owner, self.times)?;
        Ok(dest_path)
    }

    fn copy_entry(
        &mut self,
        src: &Path,
        rel: &str,
        root_rel: &str,
        target: &Path,
        overwrite_meta: bool,
        parent_state: &FilterState,
    ) -> Result<(), FileOpError> {
        let meta = std::fs::symlink_metadata(src).map_err(|e| self.src_root.io_err("lstat", src, e))?;
        let is_dir = meta.is_dir();
        let (decision, state) = if rel.is_empty() {
            (Decision::Include, FilterState::default())
        } else {
            self.filter.decide(rel, root_rel, is_dir, parent_state)
        };
        if decision == Decision::Prune {
            return Ok(());
        }
        let include = decision == Decision::Include;
        let mut target_meta = match std::fs::symlink_metadata(target) {
            Ok(m) => Some(m),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(self.dest.io_err("lstat", target, e)),
        };
        if include {
            if self.always_replace && target_meta.as_ref().is_some_and(|t| !(is_dir && t.is_dir())) {
                fsops::remove_all(target).map_err(|e| self.dest.io_err("remove", target, e))?;
                target_meta = None;
            }
            self.create_parent_dirs(overwrite_meta)?;
        }
        if !is_dir && let Some(t) = &target_meta {
            if t.is_dir() {
                return Err(FileOpError::Conflict {
                    path: self.dest.display(target),
                    reason: "cannot replace directory with file",
                });
            }
            std::fs::remove_file(target).map_err(|e| self.dest.io_err("remove", target, e))?;
        }

        let mut copy_info = include;
        let mut restore_times = false;
        match meta.mode() & S_IFMT {
            S_IFDIR => {
                let created =
                    self.copy_directory(src, rel, root_rel, target, &meta, overwrite_meta, include, &state)?;
                if !overwrite_meta {
                    copy_info = created;
                    restore_times = !created;
                }
            }
            S_IFREG => {
                let key = (meta.dev(), meta.ino());
                let linked = if meta.nlink() > 1 { self.inodes.get(&key).cloned() } else { None };
                if let Some(first) = linked {
                    std::fs::hard_link(&first, target).map_err(|e| self.dest.io_err("link", target, e))?;
                } else {
                    if meta.nlink() > 1 {
                        self.inodes.insert(key, target.to_path_buf());
                    }
                    let file =
                        fsops::copy_file(src, target).map_err(|e| self.dest.io_err("copy", target, e))?;
                    // Metadata through the open descriptor: no more path lookups.
                    self.file_info_fd(&file, &meta, target)?;
                    fsops::copy_xattrs(src, target);
                    return Ok(());
                }
            }
            S_IFLNK => {
                let link = std::fs::read_link(src).map_err(|e| self.src_root.io_err("readlink", src, e))?;
                std::os::unix::fs::symlink(&link, target)
                    .map_err(|e| self.dest.io_err("symlink", target, e))?;
            }
            _ => {
                fsops::make_special(target, meta.mode(), meta.rdev())
                    .map_err(|e| self.dest.io_err("mknod", target, e))?;
            }
        }
        if copy_info {
            self.file_info(&meta, target)?;
            fsops::copy_xattrs(src, target);
        } else if restore_times && target_meta.is_some() {
            let t = self.times.unwrap_or_else(|| Times::of(&meta));
            fsops::set_times(target, t).map_err(|e| self.dest.io_err("utimes", target, e))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_directory(
        &mut self,
        src: &Path,
        rel: &str,
        root_rel: &str,
        dst: &Path,
        meta: &Metadata,
        overwrite_meta: bool,
        include: bool,
        state: &FilterState,
    ) -> Result<bool, FileOpError> {
        let created = if include { self.copy_directory_only(dst, meta, overwrite_meta)? } else { false };
        self.parents.push(PendingDir { src: src.to_path_buf(), dst: dst.to_path_buf(), copied: include });
        let mut names = Vec::new();
        for entry in std::fs::read_dir(src).map_err(|e| self.src_root.io_err("readdir", src, e))? {
            let entry = entry.map_err(|e| self.src_root.io_err("readdir", src, e))?;
            names.push(entry.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let name_str = name.to_string_lossy();
            let child_rel = if rel.is_empty() { name_str.to_string() } else { format!("{rel}/{name_str}") };
            let child_root_rel =
                if root_rel.is_empty() { name_str.to_string() } else { format!("{root_rel}/{name_str}") };
            self.copy_entry(&src.join(&name), &child_rel, &child_root_rel, &dst.join(&name), true, state)?;
        }
        self.parents.pop();
        Ok(created)
    }

    /// Makes `dst` a directory: creates it (returns true), or checks the existing one and,
    /// when overwriting metadata, gives it the source's mode.
    fn copy_directory_only(
        &self,
        dst: &Path,
        meta: &Metadata,
        overwrite_meta: bool,
    ) -> Result<bool, FileOpError> {
        match std::fs::symlink_metadata(dst) {
            Err(e) if is_missing(&e) => {
                std::fs::create_dir(dst).map_err(|e| self.dest.io_err("mkdir", dst, e))?;
                Ok(true)
            }
            Err(e) => Err(self.dest.io_err("lstat", dst, e)),
            Ok(m) if !m.is_dir() => Err(FileOpError::Conflict {
                path: self.dest.display(dst),
                reason: "cannot copy directory to non-directory",
            }),
            Ok(_) => {
                if overwrite_meta {
                    fsops::chmod(dst, meta.mode()).map_err(|e| self.dest.io_err("chmod", dst, e))?;
                }
                Ok(false)
            }
        }
    }

    /// Creates the walked directories that were skipped by the filters, now that something
    /// inside them is selected.
    fn create_parent_dirs(&mut self, overwrite_meta: bool) -> Result<(), FileOpError> {
        for i in 0..self.parents.len() {
            if self.parents[i].copied {
                continue;
            }
            let (src, dst) = (self.parents[i].src.clone(), self.parents[i].dst.clone());
            let meta = std::fs::symlink_metadata(&src).map_err(|e| self.src_root.io_err("stat", &src, e))?;
            if self.copy_directory_only(&dst, &meta, overwrite_meta)? {
                self.file_info(&meta, &dst)?;
                fsops::copy_xattrs(&src, &dst);
            }
            self.parents[i].copied = true;
        }
        Ok(())
    }

    fn owner_of(&self, meta: &Metadata) -> Ids {
        match self.owner {
            Some(ids) => ids,
            None if self.reset_owner => Ids { uid: 0, gid: 0 },
            None => Ids { uid: meta.uid(), gid: meta.gid() },
        }
    }

    fn mode_of(&self, meta: &Metadata) -> u32 {
        match self.mode {
            Some(m) => m.apply(meta.mode()),
            None => meta.mode() & 0o7777,
        }
    }

    /// Owner, then mode (chown clears set-id bits), then times — fsutil's `copyFileInfo`.
    fn file_info(&self, meta: &Metadata, target: &Path) -> Result<(), FileOpError> {
        fsops::lchown(target, self.owner_of(meta)).map_err(|e| self.dest.io_err("chown", target, e))?;
        if !meta.file_type().is_symlink() {
            fsops::chmod(target, self.mode_of(meta)).map_err(|e| self.dest.io_err("chmod", target, e))?;
        }
        let t = self.times.unwrap_or_else(|| Times::of(meta));
        fsops::set_times(target, t).map_err(|e| self.dest.io_err("utimes", target, e))
    }

    fn file_info_fd(&self, file: &std::fs::File, meta: &Metadata, target: &Path) -> Result<(), FileOpError> {
        let err = |op| move |e: io::Error| self.dest.io_err(op, target, e);
        let ids = self.owner_of(meta);
        std::os::unix::fs::fchown(file, Some(ids.uid), Some(ids.gid)).map_err(err("chown"))?;
        rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(self.mode_of(meta) as _))
            .map_err(|e| err("chmod")(e.into()))?;
        let t = self.times.unwrap_or_else(|| Times::of(meta));
        let ts = |(sec, nsec): (i64, i64)| rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec as _ };
        let stamps = rustix::fs::Timestamps { last_access: ts(t.atime), last_modification: ts(t.mtime) };
        rustix::fs::futimens(file, &stamps).map_err(|e| err("utimes")(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_helpers() {
        let cases =
            [("a/b/", "/a/b/"), ("a/b/.", "/a/b/."), ("/", "/"), (".", "/"), ("./", "/"), ("a/../b", "/b")];
        for (input, want) in cases {
            assert_eq!(clean_keep_trailing(input), want, "{input}");
        }
        assert_eq!(split_last("/a/b"), ("/a/", "b"));
        assert_eq!(split_last("/a/b/"), ("/a/b/", ""));
        assert_eq!(base_name("/sub/l0"), "l0");
        assert_eq!(base_name("/sub/dir/"), "dir");
    }

    #[test]
    fn parents_plan() {
        let mut a = CopyAction::new(0, "foo1/foo2/bar", "/");
        a.parents = true;
        let p = SourcePlan::of(&a);
        assert_eq!(
            (p.src.as_str(), p.include_patterns.clone(), p.required.as_deref()),
            ("/", vec!["foo1/foo2/bar".to_string()], Some("/foo1/foo2/bar"))
        );
        a.src = "x/./foo2/ba*".into();
        let p = SourcePlan::of(&a);
        assert_eq!(
            (p.src.as_str(), p.include_patterns.clone(), p.required),
            ("x", vec!["foo2/ba*".to_string()], None)
        );
    }
}
