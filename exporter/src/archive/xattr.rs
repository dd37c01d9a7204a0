//! Reading extended attributes of a path without following symlinks.

use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// All extended attributes of `path` (not following a final symlink), sorted by name.
/// File systems without xattr support yield an empty list.
pub(crate) fn list(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match read_names(path) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match read_value(path, name) {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between listing and reading: it is simply not there any more.
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

fn read_names(path: &Path) -> Result<Vec<u8>, Errno> {
    loop {
        let size = rustix::fs::llistxattr_query(path)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // The list grew between the two calls: ask again.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_value(path: &Path, name: &[u8]) -> Result<Vec<u8>, Errno> {
    let name = OsStr::from_bytes(name);
    loop {
        let size = rustix::fs::lgetxattr_query(path, name)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sets an extended attribute on `path` without following a final symlink.
pub(crate) fn set(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = OsStr::from_bytes(name);
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).map_err(io::Error::from)
}
