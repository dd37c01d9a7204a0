//! Shared helpers of the `fileop_*` and `checksum_*` tests: build a tree from a one-line-per-
//! entry spec, and list a tree in the same format so expectations read like the input.
//!
//! Spec line: `path kind [mode] [uid:gid] [=content | ->symlink-target | =>hardlink-of]`
//! where kind is `d` (directory), `f` (file), `l` (symlink), `h` (hard link) or `p` (FIFO)
//! and mode is octal. Missing parents are created 0755.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Entry {
    pub path: String,
    pub kind: char,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub value: Option<String>,
}

pub fn parse(spec: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in spec.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut rest = line;
        let path = next_token(&mut rest);
        let kind = next_token(&mut rest).chars().next().expect("kind");
        let mut e = Entry { path, kind, mode: None, owner: None, value: None };
        loop {
            let t = rest.trim_start();
            if t.is_empty() {
                break;
            }
            if t.starts_with('=') || t.starts_with("->") {
                e.value = Some(t.to_string());
                break;
            }
            let tok = next_token(&mut rest);
            if let Some((u, g)) = tok.split_once(':') {
                e.owner = Some((u.parse().unwrap(), g.parse().unwrap()));
            } else {
                e.mode = Some(u32::from_str_radix(&tok, 8).unwrap());
            }
        }
        out.push(e);
    }
    out
}

fn next_token(rest: &mut &str) -> String {
    let t = rest.trim_start();
    let end = t.find(' ').unwrap_or(t.len());
    let (tok, r) = t.split_at(end);
    *rest = r;
    tok.to_string()
}

/// Creates the entries of `spec` under `root` (which must exist).
pub fn build(root: &Path, spec: &str) {
    let entries = parse(spec);
    for e in &entries {
        let p = root.join(&e.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        match e.kind {
            'd' => std::fs::create_dir_all(&p).unwrap(),
            'f' => {
                let content =
                    e.value.as_deref().unwrap_or("=").strip_prefix('=').unwrap().replace("\\n", "\n");
                std::fs::write(&p, content).unwrap();
            }
            'l' => {
                let target = e.value.as_deref().unwrap().strip_prefix("->").unwrap();
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
            'h' => {
                let target = e.value.as_deref().unwrap().strip_prefix("=>").unwrap();
                std::fs::hard_link(root.join(target), &p).unwrap();
            }
            'p' => {
                let c = CString::new(p.as_os_str().as_bytes()).unwrap();
                rustix::fs::mkfifoat(rustix::fs::CWD, c.as_c_str(), rustix::fs::Mode::from_raw_mode(0o644))
                    .unwrap();
            }
            k => panic!("unknown kind {k}"),
        }
        if let Some((uid, gid)) = e.owner {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap();
        }
        if let (Some(mode), false) = (e.mode, e.kind == 'l') {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// A fresh directory with `spec` built in it.
pub fn tree(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), spec);
    dir
}

/// Every entry under `root` (not the root itself), sorted, in spec format with mode and
/// owner always given. Files that share an inode get ` #n` (n numbering the inodes).
pub fn listing(root: &Path) -> String {
    let mut paths = Vec::new();
    collect(root, root, &mut paths);
    paths.sort();
    let mut inodes: HashMap<u64, usize> = HashMap::new();
    let mut out = String::new();
    for rel in paths {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let owner = format!("{}:{}", m.uid(), m.gid());
        let mode = m.mode() & 0o7777;
        let line = if ft.is_dir() {
            format!("{rel} d {mode:o} {owner}")
        } else if ft.is_symlink() {
            format!("{rel} l {owner} ->{}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let content = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).replace('\n', "\\n");
            let mut line = format!("{rel} f {mode:o} {owner} ={content}");
            if m.nlink() > 1 {
                let n = inodes.len() + 1;
                let id = *inodes.entry(m.ino()).or_insert(n);
                line = format!("{rel} f {mode:o} {owner} #{id} ={content}");
            }
            line
        } else {
            format!("{rel} p {mode:o} {owner}")
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let p = entry.path();
        out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            collect(root, &p, out);
        }
    }
}

/// `spec` with blank lines dropped and each line trimmed, for comparing with [`listing`].
pub fn normalize(spec: &str) -> String {
    spec.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect()
}

/// Asserts the listing of `root`, showing both in full on mismatch.
pub fn assert_tree(root: &Path, want: &str, case: &str) {
    let got = listing(root);
    let want = normalize(want);
    assert!(got == want, "case {case}: tree differs\n--- want\n{want}--- got\n{got}");
}

/// Owner/mode of a single path as `mode uid:gid`.
pub fn stat(path: &PathBuf) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// A tar archive of the entries in `spec` (kinds `d`, `f`, `l`, `h`; default modes 0755
/// and 0644, owner 0:0, mtime 0). Names are written raw, so `../x` can be expressed.
pub fn tar_bytes(spec: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in parse(spec) {
        let mut header = tar::Header::new_gnu();
        let (kind, default_mode) = match e.kind {
            'd' => (tar::EntryType::Directory, 0o755),
            'f' => (tar::EntryType::Regular, 0o644),
            'l' => (tar::EntryType::Symlink, 0o777),
            'h' => (tar::EntryType::Link, 0o644),
            k => panic!("unsupported archive kind {k}"),
        };
        header.set_entry_type(kind);
        header.set_mode(e.mode.unwrap_or(default_mode));
        let (uid, gid) = e.owner.unwrap_or((0, 0));
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mtime(0);
        let name = e.path.as_bytes();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        let mut data = Vec::new();
        match e.kind {
            'f' => {
                data = e
                    .value
                    .as_deref()
                    .unwrap_or("=")
                    .strip_prefix('=')
                    .unwrap()
                    .replace("\\n", "\n")
                    .into_bytes()
            }
            'l' | 'h' => {
                let value = e.value.as_deref().unwrap();
                let target =
                    value.strip_prefix("->").or_else(|| value.strip_prefix("=>")).unwrap().as_bytes();
                header.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target);
            }
            _ => {}
        }
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

#[derive(Debug, Clone, Copy)]
pub enum Comp {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

pub fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    use std::io::Write;
    match comp {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Comp::Bzip2 => {
            let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Comp::Xz => {
            let mut w = liblzma::write::XzEncoder::new(Vec::new(), 6);
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}
