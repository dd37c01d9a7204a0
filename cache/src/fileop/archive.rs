//! ADD of local archives: a source file that is a tar archive (plain, gzip, bzip2, xz or
//! zstd; recognised by its content, never by its name) is extracted into the destination
//! directory instead of being copied (BuildKit's `unpack` + `applyRootArchive`).
//!
//! Extraction is scoped to the destination directory as a root: entry names are cleaned and
//! may not climb out of it, symlinks already there (including ones the archive itself
//! created, absolute or relative) are followed inside it, and an existing entry of another
//! type is replaced.

use super::FileOpError;
use super::fsops::{self, Times};
use super::owner::Ids;
use super::resolve::{Root, rel_string};
use super::select::Filter;
use crate::patterns::clean;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// moby's `DetectCompression`, by magic number.
fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path)
}

fn open_stream(path: &Path) -> io::Result<(Box<dyn Read>, Compression)> {
    let mut file = open_nofollow(path)?;
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let kind = detect_compression(&head[..n]);
    let file = BufReader::with_capacity(256 * 1024, open_nofollow(path)?);
    let reader: Box<dyn Read> = match kind {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
    };
    Ok((reader, kind))
}

/// True when `path` is a regular file whose (decompressed) content starts with a valid tar
/// header. Anything unreadable is "not an archive", as in BuildKit.
fn is_archive(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        _ => return false,
    }
    let Ok((reader, _)) = open_stream(path) else { return false };
    let mut archive = tar::Archive::new(reader);
    let Ok(mut entries) = archive.entries() else { return false };
    matches!(entries.next(), Some(Ok(_)))
}

/// Extracts `src` (a path in the source, already a wildcard match) into `dest_path` when it
/// is an archive; returns false (nothing done) when it is not.
pub(crate) fn unpack(
    src_root: &Root,
    src: &str,
    dest: &Root,
    dest_path: &str,
    owner: Option<Ids>,
    times: Option<Times>,
    filter: &Filter,
) -> Result<bool, FileOpError> {
    let src_rel = src_root.resolve_rel(src, true)?;
    if filter.ignored(&rel_string(&src_rel), false) {
        return Ok(false);
    }
    let src_host = src_root.join(&src_rel);
    if !is_archive(&src_host) {
        return Ok(false);
    }
    let dest_host = dest.resolve(dest_path, true)?;
    fsops::mkdir_all(dest, &dest_host, 0o755, owner, times)?;
    let archive_name = src_root.display(&src_host);
    let fail = |reason: String| FileOpError::Archive { archive: archive_name.clone(), reason };
    let (reader, _) = open_stream(&src_host).map_err(|e| fail(e.to_string()))?;
    let root = Root::new(&dest_host);
    extract(reader, &root, owner).map_err(|e| match e {
        Extract::Op(err) => err,
        Extract::Tar(reason) => fail(reason),
    })?;
    Ok(true)
}

enum Extract {
    Op(FileOpError),
    Tar(String),
}

impl From<FileOpError> for Extract {
    fn from(e: FileOpError) -> Self {
        Extract::Op(e)
    }
}

/// Entry name → path relative to the extraction root ("" for the root itself).
fn clean_entry_name(name: &str) -> Result<String, String> {
    let cleaned = clean(name);
    let cleaned = cleaned.trim_start_matches('/');
    if cleaned == "." || cleaned.is_empty() {
        return Ok(String::new());
    }
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(format!("archive path {name:?} is outside the extraction root"));
    }
    Ok(cleaned.to_string())
}

fn extract(reader: Box<dyn Read>, root: &Root, owner: Option<Ids>) -> Result<(), Extract> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs: Vec<(PathBuf, Times)> = Vec::new();
    let entries = archive.entries().map_err(|e| Extract::Tar(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Extract::Tar(e.to_string()))?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_entry_name(&raw_name).map_err(Extract::Tar)?;
        if name.is_empty() {
            continue;
        }
        let rel = root.resolve_rel(&name, kind.is_dir())?;
        if rel.is_empty() {
            continue;
        }
        let path = root.join(&rel);
        let parent = root.join(&rel[..rel.len() - 1]);
        fsops::mkdir_all(root, &parent, 0o755, None, None)?;
        if let Ok(existing) = std::fs::symlink_metadata(&path)
            && !(existing.is_dir() && kind.is_dir())
        {
            fsops::remove_all(&path).map_err(|e| root.io_err("remove", &path, e))?;
        }

        let header_uid = header.uid().map_err(|e| Extract::Tar(e.to_string()))?;
        let header_gid = header.gid().map_err(|e| Extract::Tar(e.to_string()))?;
        let ids = owner.unwrap_or(Ids { uid: header_uid as u32, gid: header_gid as u32 });
        let mode = header.mode().map_err(|e| Extract::Tar(e.to_string()))? & 0o7777;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let times = Times::at(mtime);
        let p = &path;
        let io_err = |op: &'static str| move |e: io::Error| Extract::Op(root.io_err(op, p, e));

        match kind {
            tar::EntryType::Directory => {
                if let Err(e) = std::fs::create_dir(&path)
                    && e.kind() != io::ErrorKind::AlreadyExists
                {
                    return Err(io_err("mkdir")(e));
                }
                fsops::lchown(&path, ids).map_err(io_err("chown"))?;
                fsops::chmod(&path, mode).map_err(io_err("chmod"))?;
                dirs.push((path.clone(), times));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(io_err("create"))?;
                io::copy(&mut entry, &mut file).map_err(|e| Extract::Tar(e.to_string()))?;
                std::os::unix::fs::fchown(&file, Some(ids.uid), Some(ids.gid)).map_err(io_err("chown"))?;
                file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(io_err("chmod"))?;
                drop(file);
                fsops::set_times(&path, times).map_err(io_err("utimes"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| Extract::Tar(format!("symlink {raw_name:?} has no target")))?;
                std::os::unix::fs::symlink(&target, &path).map_err(io_err("symlink"))?;
                fsops::lchown(&path, ids).map_err(io_err("chown"))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| Extract::Tar(format!("hard link {raw_name:?} has no target")))?;
                let link = clean_entry_name(&link).map_err(Extract::Tar)?;
                if link.is_empty() {
                    return Err(Extract::Tar(format!("hard link {raw_name:?} targets the extraction root")));
                }
                let link_path = root.resolve(&link, false)?;
                std::fs::hard_link(&link_path, &path).map_err(io_err("link"))?;
                fsops::lchown(&path, ids).map_err(io_err("chown"))?;
                let linked = std::fs::symlink_metadata(&path).map_err(io_err("lstat"))?;
                if !linked.file_type().is_symlink() {
                    fsops::chmod(&path, mode).map_err(io_err("chmod"))?;
                    fsops::set_times(&path, times).map_err(io_err("utimes"))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let type_bits = match kind {
                    tar::EntryType::Char => 0o020000,
                    tar::EntryType::Block => 0o060000,
                    _ => 0o010000,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                fsops::make_special(&path, type_bits | mode, dev).map_err(io_err("mknod"))?;
                fsops::lchown(&path, ids).map_err(io_err("chown"))?;
                fsops::chmod(&path, mode).map_err(io_err("chmod"))?;
                fsops::set_times(&path, times).map_err(io_err("utimes"))?;
            }
            other => {
                return Err(Extract::Tar(format!(
                    "unsupported tar entry {raw_name:?} of type {:?}",
                    other.as_byte() as char
                )));
            }
        }
        // Best effort, like BuildKit's BestEffortXattrs.
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let (Ok(key), value) = (ext.key(), ext.value_bytes()) else { continue };
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    let _ = rustix::fs::lsetxattr(&path, attr, value, rustix::fs::XattrFlags::empty());
                }
            }
        }
    }
    // Directory times last: creating entries inside a directory changes its mtime.
    for (dir, times) in dirs.iter().rev() {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.nlink() > 0) {
            fsops::set_times(dir, *times).map_err(|e| root.io_err("utimes", dir, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_magic() {
        let cases: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b, 0x08, 0], Compression::Gzip),
            (&[0x1f, 0x8b, 0x07], Compression::None),
            (b"BZh91AY", Compression::Bzip2),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd, 1], Compression::Zstd),
            (b"hello", Compression::None),
            (b"", Compression::None),
        ];
        for (head, want) in cases {
            assert_eq!(detect_compression(head), *want, "{head:?}");
        }
    }

    #[test]
    fn entry_names() {
        assert_eq!(clean_entry_name("/etc/./passwd").unwrap(), "etc/passwd");
        assert_eq!(clean_entry_name("./").unwrap(), "");
        assert_eq!(clean_entry_name("/../x").unwrap(), "x");
        assert!(clean_entry_name("../x").is_err());
        assert!(clean_entry_name("a/../../x").is_err());
    }
}
