//! `squash=true`: the layers a build adds on top of its base merged into one layer.
//!
//! The layers are overlayfs upperdirs, so merging them is what overlayfs does when it
//! stacks them, except that deletions must survive: a whiteout still hides a file of the
//! base image underneath the squashed layer. The merge is materialised in a scratch
//! directory of hard links (no file data is copied) and written with the ordinary layer
//! writer, which turns whiteout devices and opaque directories into OCI whiteouts.

use crate::ExportError;
use crate::archive::xattr;
use crate::layer::{ExportedLayer, LayerOptions, export_layer};
use cache::ContentStore;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Writes one layer holding the combined changes of `diff_dirs` (overlayfs upperdirs,
/// bottom first) into the store. `scratch` is an empty directory on the same file system as
/// the layers (it receives hard links) and is left for the caller to remove.
pub fn export_squashed_layer(
    store: &ContentStore,
    diff_dirs: &[PathBuf],
    scratch: &Path,
    opts: &LayerOptions,
) -> Result<ExportedLayer, ExportError> {
    for dir in diff_dirs {
        merge_dir(dir, scratch).map_err(|source| ExportError::Io {
            op: "squash layers into",
            path: scratch.to_path_buf(),
            source,
        })?;
    }
    export_layer(store, scratch, opts)
}

/// The name of the xattr that marks `dir` opaque, when it is.
fn opaque_marker(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    Ok(xattr::list(dir)?.into_iter().find_map(|(name, value)| {
        let is_opaque = name == b"trusted.overlay.opaque" || name == b"user.overlay.opaque";
        (is_opaque && value == b"y").then_some(name)
    }))
}

/// Removes whatever is at `path` (file, whiteout, or a whole directory tree).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies upperdir `src` on top of the merged tree `dst`, as overlayfs would.
fn merge_dir(src: &Path, dst: &Path) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let opaque = opaque_marker(&from)?;
            let existing_dir = fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir());
            if opaque.is_some() || !existing_dir {
                // An opaque directory replaces what the layers below had there.
                remove_any(&to)?;
                fs::create_dir(&to)?;
            }
            merge_dir(&from, &to)?;
            copy_dir_metadata(&from, &to, &meta, opaque.as_deref())?;
        } else {
            // Whiteouts (0:0 character devices), files, symlinks, fifos and devices: the
            // upper entry replaces the lower one whole. A hard link keeps every attribute.
            remove_any(&to)?;
            if let Err(e) = fs::hard_link(&from, &to) {
                if ft.is_file() && e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) {
                    copy_file(&from, &to, &meta)?;
                } else {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Mode, owner, extended attributes and times of a directory (after its children, whose
/// creation changes its mtime).
fn copy_dir_metadata(from: &Path, to: &Path, meta: &fs::Metadata, opaque: Option<&[u8]>) -> io::Result<()> {
    for (name, value) in xattr::list(from)? {
        if !name.starts_with(b"trusted.overlay.") && !name.starts_with(b"user.overlay.") {
            xattr::set(to, &name, &value)?;
        }
    }
    if let Some(name) = opaque {
        xattr::set(to, name, b"y")?;
    }
    copy_owner_mode_times(to, meta)
}

/// A copy for layers that are not on the scratch directory's file system.
fn copy_file(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    fs::copy(from, to)?;
    for (name, value) in xattr::list(from)? {
        xattr::set(to, &name, &value)?;
    }
    copy_owner_mode_times(to, meta)
}

fn copy_owner_mode_times(to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps, chmodat, chownat, utimensat};
    let uid = rustix::fs::Uid::from_raw(meta.uid());
    let gid = rustix::fs::Gid::from_raw(meta.gid());
    chownat(CWD, to, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    // After chown, which clears set-id bits.
    chmodat(CWD, to, Mode::from_raw_mode(meta.mode() & 0o7777), AtFlags::empty())?;
    let times = Timestamps {
        last_access: Timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() as _ },
        last_modification: Timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() as _ },
    };
    utimensat(CWD, to, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    fn whiteout(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }

    /// Entry name → (kind, content) of a layer blob.
    fn entries(store: &ContentStore, layer: &ExportedLayer) -> BTreeMap<String, String> {
        let file = store.open_blob(&layer.blob.digest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut out = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mut content = String::new();
            e.read_to_string(&mut content).unwrap();
            let kind = format!("{:?}", e.header().entry_type());
            out.insert(name, format!("{kind}:{content}"));
        }
        out
    }

    #[test]
    fn later_layers_win_and_deletions_of_the_base_survive() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: whiteout devices and trusted xattrs need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(&tmp.path().join("content")).unwrap();
        let (l1, l2, l3) = (tmp.path().join("l1"), tmp.path().join("l2"), tmp.path().join("l3"));
        // l1: adds /app/a, /app/b, /tmp/junk
        fs::create_dir_all(l1.join("app")).unwrap();
        fs::write(l1.join("app/a"), "a1").unwrap();
        fs::write(l1.join("app/b"), "b1").unwrap();
        fs::create_dir_all(l1.join("tmp")).unwrap();
        fs::write(l1.join("tmp/junk"), "x").unwrap();
        // l2: rewrites /app/a, deletes /app/b and /etc/motd (a base file), replaces /tmp whole
        fs::create_dir_all(l2.join("app")).unwrap();
        fs::write(l2.join("app/a"), "a2").unwrap();
        whiteout(&l2.join("app/b"));
        fs::create_dir_all(l2.join("etc")).unwrap();
        whiteout(&l2.join("etc/motd"));
        fs::create_dir_all(l2.join("tmp")).unwrap();
        xattr::set(&l2.join("tmp"), b"trusted.overlay.opaque", b"y").unwrap();
        fs::write(l2.join("tmp/new"), "n").unwrap();
        // l3: brings /app/b back, makes /app/a executable
        fs::create_dir_all(l3.join("app")).unwrap();
        fs::write(l3.join("app/b"), "b3").unwrap();
        fs::copy(l2.join("app/a"), l3.join("app/a")).unwrap();
        fs::set_permissions(l3.join("app/a"), fs::Permissions::from_mode(0o755)).unwrap();

        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        let layer = export_squashed_layer(&store, &[l1, l2, l3], &scratch, &LayerOptions::default()).unwrap();
        let got = entries(&store, &layer);
        let want: BTreeMap<String, String> = [
            ("app", "Directory:"),
            ("app/a", "Regular:a2"),
            ("app/b", "Regular:b3"),
            ("etc", "Directory:"),
            ("etc/.wh.motd", "Regular:"),
            ("tmp", "Directory:"),
            ("tmp/.wh..wh..opq", "Regular:"),
            ("tmp/new", "Regular:n"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
