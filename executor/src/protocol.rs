//! What the parent and the sandbox init say to each other.
//!
//! The init's stdin is one end of a Unix stream socket pair. The parent writes one JSON
//! [`InitRequest`] and shuts down its writing side; the init reads to EOF, moves the socket
//! to a close-on-exec fd, and answers with JSON lines of [`InitMessage`]. Passing the
//! channel as stdin (instead of extra fds set up in a `pre_exec` hook) lets the parent
//! spawn with `posix_spawn` rather than forking a large multi-threaded process.
//!
//! Only one process writes at a time (the outer init before it forks, pid 1 around the
//! command's lifetime, the command's pre-exec child while pid 1 waits), and each message is
//! one `write(2)`, so lines never interleave.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{ExitStatus, Spec};

/// Everything the init needs; paths are host paths prepared by the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitRequest {
    pub spec: Spec,
    /// Empty directory on which the rootfs is mounted.
    pub rootfs_dir: PathBuf,
    pub hosts_file: PathBuf,
    pub resolv_file: PathBuf,
    pub hostname_file: PathBuf,
    /// What to show at `/sys/fs/cgroup`.
    pub cgroup_fs: CgroupFs,
    /// Which layer-format options this kernel's overlayfs accepts.
    pub overlay: OverlayFeatures,
}

/// The overlayfs options rbuild turns off when the kernel knows them. Each keeps the upper
/// directory in plain upperdir format, so that a layer can be exported as a tar and reused
/// as a lower layer anywhere: no inode index tying an upper to its lowers (`index`), no
/// directory-rename redirects (`redirect_dir`) and no metadata-only copy-ups (`metacopy`);
/// the last two are xattrs a tar exporter cannot represent. Distributions build their
/// kernels with different defaults, so they are always passed explicitly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OverlayFeatures {
    /// `index=off`.
    pub index: bool,
    /// `redirect_dir=off`.
    pub redirect_dir: bool,
    /// `metacopy=off`.
    pub metacopy: bool,
    /// `volatile` (Linux 5.10): the overlay does not flush the upper file system when it
    /// is unmounted or synced. Layers are flushed once, at the end of the build (see the
    /// cache's `Store::sync_layers`); without it every RUN's unmount flushed the whole
    /// file system holding the store.
    #[serde(default)]
    pub volatile: bool,
}

impl OverlayFeatures {
    /// What the running kernel's overlay module knows: each option has a module parameter
    /// of the same name once the kernel supports it (index 4.13, redirect_dir 4.10,
    /// metacopy 4.19).
    pub(crate) fn detect() -> OverlayFeatures {
        let known = |name: &str| std::path::Path::new("/sys/module/overlay/parameters").join(name).exists();
        OverlayFeatures {
            index: known("index"),
            redirect_dir: known("redirect_dir"),
            metacopy: known("metacopy"),
            volatile: kernel_at_least(&rustix::system::uname().release().to_string_lossy(), (5, 10)),
        }
    }

    /// The `(key, value)` options to add to an overlay mount with an upper directory.
    pub(crate) fn options(&self) -> Vec<(&'static str, &'static str)> {
        [("index", self.index), ("redirect_dir", self.redirect_dir), ("metacopy", self.metacopy)]
            .into_iter()
            .filter(|(_, known)| *known)
            .map(|(key, _)| (key, "off"))
            .collect()
    }

    /// The flag options (no value) to add to an overlay mount with an upper directory.
    pub(crate) fn flags(&self) -> Vec<&'static str> {
        if self.volatile { vec!["volatile"] } else { Vec::new() }
    }
}

/// Whether a kernel release string ("6.1.0-18-amd64") is at least `(major, minor)`.
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
    }
}

/// The run's own cgroup, as the command sees it at `/sys/fs/cgroup` (read-only, as in
/// Docker), so that runtimes that size themselves from cgroup limits (JVM, Go, Node) see
/// the run's limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CgroupFs {
    /// No cgroup: `/sys/fs/cgroup` stays as sysfs has it (empty).
    None,
    /// A fresh cgroup2 mount, rooted at the run's cgroup (this directory on the host) by
    /// the cgroup namespace.
    V2(PathBuf),
    /// A tmpfs with one bind mount per v1 hierarchy: (directory name such as "memory" or
    /// "cpu,cpuacct", the run's cgroup directory on the host).
    V1(Vec<(String, PathBuf)>),
}

/// Where a failure inside the sandbox happened; the parent maps it onto
/// [`crate::ExecutorError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FailStage {
    /// Resolving `Spec::user`.
    User,
    /// Finding or executing `args[0]`.
    Exec,
    /// Anything else; the string says what was being set up.
    Setup(String),
}

/// A line from the init.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InitMessage {
    /// Mount points the init created in the rootfs, to be removed after the run when still
    /// empty (paths inside the rootfs, in creation order).
    Stubs { paths: Vec<String> },
    /// Setup failed; the command did not run.
    Failed { stage: FailStage, message: String },
    /// The command ended.
    Exited { status: ExitStatus },
    /// Resource usage of every process pid 1 reaped (fallback when there is no cgroup).
    Usage { cpu_us: u64, max_rss_kib: u64 },
}

/// Longest message text sent, so that a line stays below `PIPE_BUF` (4096).
const MAX_MESSAGE: usize = 3000;

impl InitMessage {
    pub(crate) fn failed(stage: FailStage, message: impl Into<String>) -> InitMessage {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        InitMessage::Failed { stage, message }
    }

    /// Writes the message as one line with one `write(2)`.
    pub(crate) fn send(&self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let file = fd.try_clone_to_owned()?;
        let mut file = std::fs::File::from(file);
        file.write_all(&line)
    }

    /// Parses one line; `None` for garbage (which a broken init could write).
    pub(crate) fn parse(line: &[u8]) -> Option<InitMessage> {
        serde_json::from_slice(line).ok()
    }
}

/// Sends a message, ignoring errors: the parent may already be gone, and there is nobody
/// else to tell.
pub(crate) fn send_quietly(fd: impl AsFd, msg: &InitMessage) {
    let _ = msg.send(fd.as_fd());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = [
            InitMessage::Stubs { paths: vec!["/etc/hosts".into()] },
            InitMessage::failed(FailStage::Setup("mounting /proc".into()), "EPERM"),
            InitMessage::Exited { status: ExitStatus::Signal(9) },
            InitMessage::Usage { cpu_us: 5, max_rss_kib: 100 },
        ];
        for m in msgs {
            let line = serde_json::to_vec(&m).unwrap();
            assert_eq!(InitMessage::parse(&line), Some(m));
        }
        assert_eq!(InitMessage::parse(b"nonsense"), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let msg = InitMessage::failed(FailStage::Exec, "é".repeat(4000));
        let InitMessage::Failed { message, .. } = msg else { unreachable!() };
        assert!(message.len() <= MAX_MESSAGE);
    }
}

#[cfg(test)]
mod kernel_version_tests {
    use super::kernel_at_least;

    #[test]
    fn release_strings() {
        for (release, want) in [
            ("6.18.44-fc-v595", true),
            ("5.10.0-28-amd64", true),
            ("5.9.16", false),
            ("4.19.0-26-amd64", false),
            ("10.0", true),
            ("garbage", false),
            ("", false),
        ] {
            assert_eq!(kernel_at_least(release, (5, 10)), want, "{release}");
        }
    }
}
