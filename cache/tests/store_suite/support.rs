//! Shared helpers: a fresh store per test, a layer-tar builder that can write any entry
//! (including unsafe names), and blob helpers.

use cache::{LayerId, Store};
use registry::{Compression, Descriptor, Digest, MediaType};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Skips (with a printed reason) a test that needs root.
macro_rules! require_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (mounts, mknod, chown, trusted xattrs)");
            return;
        }
    };
}
pub(crate) use require_root;

/// A store in its own temporary directory.
pub struct TestStore {
    pub store: Store,
    // Dropped after the store (field order), so the store closes before its files go.
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        TestStore { store, dir }
    }

    pub fn root(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }

    /// Imports `tar` (compressed with `c`) on `parent`.
    pub fn import(&self, parent: &[LayerId], tar: &[u8], c: Compression) -> LayerId {
        let (desc, diff_id) = put_layer_blob(&self.store, tar, c);
        self.store.import_layer(parent, &desc, &diff_id).unwrap()
    }

    /// A committed layer holding one file `name` with `content`.
    pub fn layer_with_file(&self, name: &str, content: &[u8]) -> LayerId {
        let layer = self.store.new_layer().unwrap();
        let path = layer.diff_dir().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        layer.commit().unwrap()
    }
}

/// Compresses `tar` with `c`, stores it, and returns its descriptor and diff id.
pub fn put_layer_blob(store: &Store, tar: &[u8], c: Compression) -> (Descriptor, Digest) {
    let blob = compress(tar, c);
    let digest = store.content().write_bytes(&blob).unwrap();
    let desc = Descriptor {
        media_type: MediaType::layer(c, true),
        digest,
        size: blob.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    (desc, Digest::of_bytes(tar))
}

pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::Uncompressed => tar.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 1).unwrap(),
    }
}

/// Builds layer tars entry by entry, with raw names (so tests can write unsafe ones).
pub struct TarBuilder {
    out: tar::Builder<Vec<u8>>,
}

const MTIME: u64 = 1_600_000_000;

impl TarBuilder {
    pub fn new() -> TarBuilder {
        TarBuilder { out: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, name: &str, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        assert!(name.len() < 100, "test names stay short");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.out.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.append(Self::header(tar::EntryType::Directory, name, mode), b"")
    }

    pub fn dir_owned(&mut self, name: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, name, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, b"")
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.append(Self::header(tar::EntryType::Regular, name, mode), data)
    }

    pub fn file_owned(&mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, name, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, name, 0o777);
        h.set_link_name_literal(target).unwrap();
        self.append(h, b"")
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, name, 0o644);
        h.set_link_name_literal(target).unwrap();
        self.append(h, b"")
    }

    /// An OCI whiteout for `dir/name`: an empty file `dir/.wh.name`.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, base) = path.rsplit_once('/').map_or(("", path), |(d, b)| (d, b));
        let name = if dir.is_empty() { format!(".wh.{base}") } else { format!("{dir}/.wh.{base}") };
        self.file(&name, b"", 0o644)
    }

    /// The OCI opaque marker for `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn device(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, name, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, b"")
    }

    /// A PAX extended header applying `records` to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // Each record is "<len> <key>=<value>\n" where len counts the whole record.
            let body_len = key.len() + value.len() + 3;
            let mut len = body_len + 1;
            while format!("{len}").len() + body_len != len {
                len = format!("{len}").len() + body_len;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = Self::header(tar::EntryType::XHeader, "PaxHeaders/entry", 0o644);
        self.append(h, &data)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.out.finish().unwrap();
        std::mem::replace(&mut self.out, tar::Builder::new(Vec::new())).into_inner().unwrap()
    }
}

/// (mode & 0o7777, uid, gid) of a path, not following symlinks.
pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// Sorted names in a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// True when `path` is an overlay whiteout (character device 0:0).
pub fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// The value of xattr `name` on `path` itself.
pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    rustix::fs::lgetxattr(path, name, &mut buf[..]).ok().map(|n| buf[..n].to_vec())
}

/// Mount points below `dir` in this process's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = format!("{}/", dir.display());
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(String::from)
        .collect()
}
