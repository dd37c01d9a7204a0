//! Shared fixtures: layer trees made by hand, a content store, running real tools, and a
//! real `docker-registry` on a free loopback port.

use cache::ContentStore;
use rustix::fs::{CWD, FileType, Mode};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Skips the test (with a printed reason) unless running as root.
macro_rules! require_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (mknod, chown, trusted.* xattrs)");
            return;
        }
    };
}
pub(crate) use require_root;

/// A fresh content store in a temporary directory.
pub fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    (dir, store)
}

pub fn write(path: &Path, content: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, content).unwrap();
    chmod(path, mode);
}

pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    chmod(path, mode);
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

pub fn mknod(path: &Path, ft: FileType, major: u32, minor: u32) {
    rustix::fs::mknodat(CWD, path, ft, Mode::from_raw_mode(0o644), rustix::fs::makedev(major, minor))
        .unwrap();
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sets the mtime of everything under `root` (not following symlinks) to `secs`.
pub fn set_all_mtimes(root: &Path, secs: i64) {
    let t = rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        rustix::fs::utimensat(CWD, &p, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
}

/// The long path used by the fixture (longer than USTAR's 100 + 155 split allows).
pub fn long_name() -> String {
    format!("deep/{}/{}", "d".repeat(120), "f".repeat(140))
}

/// A user id that does not fit USTAR's 7 octal digits.
pub const BIG_UID: u32 = 3_000_000;

/// A layer directory exercising every rule: files, dirs, symlinks, hard links, a whiteout,
/// an opaque dir, xattrs (exported and overlay-private), setuid/sticky bits, devices, a
/// fifo, a socket, a long name, a big uid and a non-UTF-8 name.
pub fn layer_fixture(root: &Path) {
    mkdir(root, 0o755);
    write(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    set_xattr(&root.join("etc/passwd"), "user.comment", b"hello");
    set_xattr(&root.join("etc/passwd"), "trusted.overlay.origin", b"\x00\x01");
    mknod(&root.join("etc/removed"), FileType::CharacterDevice, 0, 0);
    write(&root.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    chown(&root.join("bin/tool"), 1000, 1000);
    chmod(&root.join("bin/tool"), 0o4755);
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-hard")).unwrap();
    symlink("tool", root.join("bin/link")).unwrap();
    write(&root.join(OsStr::from_bytes(b"bin/caf\xe9")), b"latin1 name\n", 0o644);
    mkdir(&root.join("var/cache"), 0o755);
    set_xattr(&root.join("var/cache"), "trusted.overlay.opaque", b"y");
    write(&root.join("var/cache/new"), b"fresh\n", 0o600);
    mkdir(&root.join("tmp"), 0o1777);
    mkdir(&root.join("run"), 0o755);
    mknod(&root.join("run/fifo"), FileType::Fifo, 0, 0);
    mkdir(&root.join("dev"), 0o755);
    mknod(&root.join("dev/null"), FileType::CharacterDevice, 1, 3);
    mknod(&root.join("dev/loop0"), FileType::BlockDevice, 7, 0);
    let sock = root.join("run/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    write(&root.join(long_name()), b"long\n", 0o644);
    write(&root.join("home/big/file"), b"big uid\n", 0o640);
    chown(&root.join("home/big/file"), BIG_UID, BIG_UID);
    set_all_mtimes(root, 1_700_000_000);
}

/// Runs a command, asserting success; returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `docker-registry` (CNCF distribution) on a free 127.0.0.1 port with its own storage;
/// killed and cleaned up on drop.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut f = fs::File::create(&config).unwrap();
        write!(
            f,
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry must be installed");
        let start = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, _dir: dir, addr }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unpacks a blob with GNU tar (which detects gzip/zstd itself) including xattrs.
pub fn untar(blob: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    run(
        "tar",
        &["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", path_str(blob), "-C", path_str(dest)],
    );
}
