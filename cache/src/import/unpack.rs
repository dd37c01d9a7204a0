//! Applying the entries of a layer tar to an empty diff directory, producing overlayfs
//! upperdir format: OCI whiteouts (`.wh.name`) become 0:0 character devices, opaque markers
//! (`.wh..wh..opq`) become `trusted.overlay.opaque=y`, and hard links to files of lower
//! layers copy those files up first.
//!
//! Entries within one tar follow the OCI rules: a later entry replaces an earlier one,
//! directories merge, and a whiteout only hides lower layers, never an entry of the same tar.

use super::ImportError;
use super::lookup::{CreatedDir, ResolveError, lookup_union, normalize, resolve_dir, union_root_names};
use crate::error::StoreError;
use crate::fsutil::{self, is_whiteout};
use registry::Digest;
use rustix::fs::FileType;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tar::EntryType;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Applies every entry of the tar stream `reader` to `diff`, with `lowers` (top-most first)
/// as the layers below. `blob` names the blob in errors.
pub(crate) fn apply_tar<R: Read>(
    reader: R,
    diff: &Path,
    lowers: &[PathBuf],
    blob: &Digest,
) -> Result<(), StoreError> {
    let lowers: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let mut unpacker = Unpacker { diff, lowers, blob, dirs: Vec::new(), root_opaque: false, last_dir: None };
    let mut archive = tar::Archive::new(reader);
    let read_err = |source| ImportError::Read { digest: blob.clone(), source };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        unpacker.apply(&mut entry)?;
    }
    unpacker.finish()
}

struct Unpacker<'a> {
    diff: &'a Path,
    lowers: Vec<&'a Path>,
    blob: &'a Digest,
    /// Directories whose times must be set once nothing more is created in them.
    dirs: Vec<CreatedDir>,
    /// The tar had `.wh..wh..opq` at its root.
    root_opaque: bool,
    /// The last directory resolved, by its entry components: consecutive entries of a tar
    /// usually share it. Cleared whenever something is removed from the layer.
    last_dir: Option<(Vec<OsString>, PathBuf)>,
}

/// Ownership, mode, times and xattrs of an entry.
struct Attrs {
    uid: u32,
    gid: u32,
    mode: u32,
    atime: (i64, i64),
    mtime: (i64, i64),
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Unpacker<'_> {
    fn invalid(&self, entry: &str, reason: impl Into<String>) -> StoreError {
        ImportError::InvalidEntry {
            digest: self.blob.clone(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
        .into()
    }

    fn write_err(&self, entry: &str, op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let (digest, entry, path) = (self.blob.clone(), entry.to_string(), path.to_path_buf());
        move |source| ImportError::Write { digest, entry, op, path, source }.into()
    }

    /// The directory `comps` inside the layer, created when missing.
    fn dir(&mut self, comps: &[OsString], entry: &str) -> Result<PathBuf, StoreError> {
        if let Some((last, path)) = &self.last_dir
            && last.as_slice() == comps
        {
            return Ok(path.clone());
        }
        match resolve_dir(self.diff, &self.lowers, comps, true, &mut self.dirs) {
            Ok(Some(p)) => {
                self.last_dir = Some((comps.to_vec(), p.clone()));
                Ok(p)
            }
            Ok(None) => Err(self.invalid(entry, "parent directory vanished")),
            Err(e) => Err(self.resolve_err(entry, e)),
        }
    }

    /// Removes whatever is at `path`, forgetting resolved directories that may go with it.
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.last_dir = None;
        fsutil::remove_any(path)
    }

    fn resolve_err(&self, entry: &str, e: ResolveError) -> StoreError {
        match e {
            ResolveError::NotADirectory(p) => {
                let rel = p.strip_prefix(self.diff).unwrap_or(&p).display().to_string();
                self.invalid(entry, format!("parent {rel} is not a directory"))
            }
            ResolveError::TooManySymlinks => self.invalid(entry, "too many levels of symbolic links"),
            ResolveError::Io(op, path, source) => self.write_err(entry, op, &path)(source),
        }
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), StoreError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let comps = normalize(&raw_name);
        // The layer root's own entry: overlay takes the root's attributes from the upper
        // directory, which the store owns (containerd ignores it too).
        let Some((base, parent)) = comps.split_last() else { return Ok(()) };
        let attrs = self.attrs(entry, &name)?;
        if base.as_bytes().starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent, base.as_bytes(), &name, &attrs);
        }
        let dir = self.dir(parent, &name)?;
        let path = dir.join(base);
        if kind == EntryType::Link {
            let target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
            return self.hard_link(&path, &target, &name);
        }

        let existing = match fs::symlink_metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.write_err(&name, "stat", &path)(e)),
        };
        let mut merge_dir = false;
        let mut make_opaque = false;
        if let Some(m) = existing {
            if m.is_dir() && kind == EntryType::Directory {
                merge_dir = true;
            } else {
                make_opaque = is_whiteout(&m) && kind == EntryType::Directory;
                self.remove(&path).map_err(self.write_err(&name, "replace", &path))?;
            }
        }

        match kind {
            EntryType::Directory => {
                if !merge_dir {
                    fs::create_dir(&path).map_err(self.write_err(&name, "create directory", &path))?;
                }
                if make_opaque {
                    fsutil::set_opaque(&path).map_err(self.write_err(&name, "mark opaque", &path))?;
                }
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(fsutil::o_nofollow())
                    .open(&path)
                    .map_err(self.write_err(&name, "create", &path))?;
                self.copy_data(entry, &mut file, &name, &path)?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(self.invalid(&name, "symbolic link without a target"));
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(self.write_err(
                    &name,
                    "create symlink",
                    &path,
                ))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                // A 0:0 character device is an overlay whiteout that leaked into a tar; kept
                // as is, it acts as one (as containerd's unpacker does).
                fsutil::make_node(&path, ft, rustix::fs::makedev(major, minor)).map_err(self.write_err(
                    &name,
                    "create device node",
                    &path,
                ))?;
            }
            other => return Err(self.invalid(&name, format!("unsupported entry type {other:?}"))),
        }

        let is_symlink = kind == EntryType::Symlink;
        fsutil::set_owner_mode(&path, attrs.uid, attrs.gid, attrs.mode, is_symlink)
            .map_err(self.write_err(&name, "set owner and mode of", &path))?;
        for (key, value) in &attrs.xattrs {
            fsutil::set_xattr(&path, key, value).map_err(self.write_err(&name, "set xattr on", &path))?;
        }
        if kind == EntryType::Directory {
            self.dirs.push(CreatedDir { path, times: Some((attrs.atime, attrs.mtime)) });
        } else {
            fsutil::set_times(&path, attrs.atime, attrs.mtime).map_err(self.write_err(
                &name,
                "set times of",
                &path,
            ))?;
        }
        Ok(())
    }

    /// Copies an entry's data, telling read errors (a corrupt blob) from write errors.
    fn copy_data<R: Read>(
        &self,
        from: &mut R,
        to: &mut fs::File,
        name: &str,
        path: &Path,
    ) -> Result<(), StoreError> {
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ImportError::Read { digest: self.blob.clone(), source }.into()),
            };
            to.write_all(&buf[..n]).map_err(self.write_err(name, "write", path))?;
        }
    }

    fn attrs<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Attrs, StoreError> {
        let h = entry.header();
        let bad = |what: &str| self.invalid(name, format!("bad {what} in header"));
        let mut attrs = Attrs {
            uid: h.uid().map_err(|_| bad("uid"))?.try_into().map_err(|_| bad("uid"))?,
            gid: h.gid().map_err(|_| bad("gid"))?.try_into().map_err(|_| bad("gid"))?,
            mode: h.mode().map_err(|_| bad("mode"))?,
            atime: (0, 0),
            mtime: (h.mtime().map_err(|_| bad("mtime"))?.min(i64::MAX as u64) as i64, 0),
            xattrs: Vec::new(),
        };
        let mut atime = None;
        let read_err = |source| ImportError::Read { digest: self.blob.clone(), source };
        if let Some(exts) = entry.pax_extensions().map_err(read_err)? {
            for ext in exts {
                let ext = ext.map_err(read_err)?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                if let Some(xattr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    attrs.xattrs.push((OsString::from(xattr), value.to_vec()));
                    continue;
                }
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => attrs.uid = text.parse().map_err(|_| bad("pax uid"))?,
                    "gid" => attrs.gid = text.parse().map_err(|_| bad("pax gid"))?,
                    "mtime" => attrs.mtime = parse_pax_time(text).ok_or_else(|| bad("pax mtime"))?,
                    "atime" => atime = parse_pax_time(text),
                    _ => {}
                }
            }
        }
        attrs.atime = atime.unwrap_or(attrs.mtime);
        Ok(attrs)
    }

    fn whiteout(
        &mut self,
        parent: &[OsString],
        base: &[u8],
        name: &str,
        attrs: &Attrs,
    ) -> Result<(), StoreError> {
        if base == OPAQUE_MARKER {
            if parent.is_empty() {
                self.root_opaque = true;
                return Ok(());
            }
            let dir = self.dir(parent, name)?;
            return fsutil::set_opaque(&dir).map_err(self.write_err(name, "mark opaque", &dir));
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            // Other `.wh..wh.` names are aufs bookkeeping (`.wh..wh.plnk`), not content.
            return Ok(());
        }
        let target = &base[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(self.invalid(name, "whiteout without a name"));
        }
        let dir = self.dir(parent, name)?;
        let path = dir.join(OsStr::from_bytes(target));
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fsutil::make_whiteout(&path).map_err(self.write_err(name, "create whiteout", &path))?;
                fsutil::set_owner_mode(&path, attrs.uid, attrs.gid, 0, false).map_err(self.write_err(
                    name,
                    "set owner of",
                    &path,
                ))
            }
            Err(e) => Err(self.write_err(name, "stat", &path)(e)),
            // This tar's own directory stays; only the lower layers' one goes away.
            Ok(m) if m.is_dir() => {
                fsutil::set_opaque(&path).map_err(self.write_err(name, "mark opaque", &path))
            }
            // A non-directory of this tar (or a whiteout) already hides the lower layers.
            Ok(_) => Ok(()),
        }
    }

    fn hard_link(&mut self, path: &Path, target: &[u8], name: &str) -> Result<(), StoreError> {
        let target_comps = normalize(target);
        let Some((tbase, tparent)) = target_comps.split_last() else {
            return Err(self.invalid(name, "hard link to the layer root"));
        };
        // First this layer's own entries (the usual case), then the layers below.
        let in_layer = match resolve_dir(self.diff, &self.lowers, tparent, false, &mut self.dirs) {
            Ok(Some(dir)) => {
                let p = dir.join(tbase);
                match fs::symlink_metadata(&p) {
                    Ok(m) if !m.is_dir() && !is_whiteout(&m) => Some(p),
                    _ => None,
                }
            }
            Ok(None) => None,
            Err(e) => return Err(self.resolve_err(name, e)),
        };
        let source = match in_layer {
            Some(p) => p,
            None => {
                let mut layers = vec![self.diff];
                layers.extend(self.lowers.iter().copied());
                let found = lookup_union(&layers, &target_comps).map_err(self.write_err(
                    name,
                    "look up hard link target",
                    path,
                ))?;
                let Some((lower, _)) = found.filter(|(_, m)| !m.is_dir()) else {
                    let t = String::from_utf8_lossy(target);
                    return Err(self.invalid(name, format!("hard link target {t} not found")));
                };
                // Copy the lower file up so both names share one inode in this layer.
                let dir = self.dir(tparent, name)?;
                let up = dir.join(tbase);
                self.remove(&up).map_err(self.write_err(name, "replace", &up))?;
                fsutil::copy_node(&lower, &up)?;
                up
            }
        };
        if source == path {
            return Ok(());
        }
        self.remove(path).map_err(self.write_err(name, "replace", path))?;
        fs::hard_link(&source, path).map_err(self.write_err(name, "create hard link", path))
    }

    fn finish(self) -> Result<(), StoreError> {
        if self.root_opaque {
            // overlayfs ignores the opaque xattr on a layer root, so hide each lower root
            // entry instead: a whiteout where this layer has nothing, opaque where it has
            // a directory of its own.
            let op = ".wh..wh..opq";
            for name in union_root_names(&self.lowers).map_err(self.write_err(op, "list", self.diff))? {
                let path = self.diff.join(&name);
                match fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fsutil::make_whiteout(&path).map_err(self.write_err(op, "create whiteout", &path))?
                    }
                    Err(e) => return Err(self.write_err(op, "stat", &path)(e)),
                    Ok(m) if m.is_dir() => {
                        fsutil::set_opaque(&path).map_err(self.write_err(op, "mark opaque", &path))?
                    }
                    Ok(_) => {}
                }
            }
        }
        for dir in &self.dirs {
            if let Some((atime, mtime)) = dir.times {
                fsutil::set_times(&dir.path, atime, mtime).map_err(self.write_err(
                    "(directory times)",
                    "set times of",
                    &dir.path,
                ))?;
            }
        }
        Ok(())
    }
}

/// Parses a PAX time (`seconds[.fraction]`) into (seconds, nanoseconds).
fn parse_pax_time(text: &str) -> Option<(i64, i64)> {
    let (secs, frac) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    // A negative time with a fraction counts the fraction backwards from the seconds.
    if secs < 0 && nanos > 0 { Some((secs - 1, 1_000_000_000 - nanos)) } else { Some((secs, nanos)) }
}

#[cfg(test)]
mod tests {
    use super::parse_pax_time;

    #[test]
    fn pax_times_parse() {
        let cases = [
            ("1700000000", Some((1_700_000_000, 0))),
            ("1700000000.5", Some((1_700_000_000, 500_000_000))),
            ("1.123456789123", Some((1, 123_456_789))),
            ("-1.5", Some((-2, 500_000_000))),
            ("x", None),
            ("1.x", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_pax_time(text), want, "{text}");
        }
    }
}
