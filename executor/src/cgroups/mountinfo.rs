//! Finding cgroup mounts (`/proc/self/mountinfo`) and our own cgroups (`/proc/self/cgroup`).

use std::path::{Path, PathBuf};

/// A cgroup file system mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// Path of the hierarchy that is mounted (usually `/`; deeper inside containers).
    pub root: String,
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fs_type: String,
    /// v1 controllers bound to this mount (empty for v2 and named hierarchies).
    pub controllers: Vec<String>,
    /// All super options, including `name=systemd` of named v1 hierarchies.
    pub options: Vec<String>,
}

impl CgroupMount {
    pub(crate) fn is_v2(&self) -> bool {
        self.fs_type == "cgroup2"
    }

    /// The directory of `cgroup_path` (a path in the hierarchy) under this mount.
    pub(crate) fn dir_of(&self, cgroup_path: &str) -> PathBuf {
        let rel = if self.root == "/" {
            cgroup_path
        } else {
            cgroup_path.strip_prefix(self.root.as_str()).unwrap_or(cgroup_path)
        };
        let mut out = self.mount_point.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            out.push(part);
        }
        out
    }
}

/// A line of `/proc/self/cgroup`: hierarchy id, controllers, path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnCgroup {
    pub controllers: Vec<String>,
    pub path: String,
}

/// Decodes the octal escapes (`\040` for a space) the kernel writes in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let digit = |b: u8| u32::from(b - b'0');
            let v = digit(bytes[i + 1]) * 64 + digit(bytes[i + 2]) * 8 + digit(bytes[i + 3]);
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Cgroup mounts from mountinfo text; other lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fs_type = post[0];
        if fs_type != "cgroup" && fs_type != "cgroup2" {
            continue;
        }
        let controllers = if fs_type == "cgroup" {
            post[2]
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro") && !o.contains('=') && !o.starts_with("clone_children")
                })
                .filter(|o| !matches!(*o, "noprefix" | "xattr" | "cpuset_v2_mode"))
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        out.push(CgroupMount {
            root: unescape(pre[3]),
            mount_point: PathBuf::from(unescape(pre[4])),
            fs_type: fs_type.to_owned(),
            controllers,
            options: post[2].split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// Entries of `/proc/self/cgroup`.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(OwnCgroup {
                controllers: controllers.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// Our own path in the hierarchy of `mount`: the `0::` line for v2, else the line whose
/// controllers (or `name=`) are among the mount's options.
pub(crate) fn own_path<'a>(mount: &CgroupMount, own: &'a [OwnCgroup]) -> Option<&'a str> {
    own.iter()
        .find(|o| {
            if mount.is_v2() {
                o.controllers.is_empty()
            } else {
                !o.controllers.is_empty() && o.controllers.iter().all(|c| mount.options.contains(c))
            }
        })
        .map(|o| o.path.as_str())
}

/// The directory under which runs' cgroups go, for a mount and our own path in it.
pub(crate) fn parent_dir(mount: &CgroupMount, own_path: &str, parent: &str) -> PathBuf {
    if parent.starts_with('/') { mount.dir_of("/") } else { mount.dir_of(own_path) }
}

/// Whether `p` is inside the mount point (used to validate explicit v2 mount points).
pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    a.components().eq(b.components())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_table() {
        let text = "\
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 30 0:30 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
36 30 0:33 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
37 30 0:34 / /sys/fs/cgroup/uni\\040fied rw - cgroup2 cgroup2 rw,nsdelegate
20 1 8:1 / / rw - ext4 /dev/vda rw
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(mounts[1].root, "/docker/abc");
        assert!(mounts[2].controllers.is_empty());
        assert!(mounts[3].is_v2());
        assert_eq!(mounts[3].mount_point, Path::new("/sys/fs/cgroup/uni fied"));
    }

    #[test]
    fn dirs_table() {
        let m = |root: &str| CgroupMount {
            root: root.to_owned(),
            mount_point: "/sys/fs/cgroup/memory".into(),
            fs_type: "cgroup".into(),
            controllers: vec!["memory".into()],
            options: vec!["rw".into(), "memory".into()],
        };
        let cases = [
            ("/", "/a/b", "rbuild", "/sys/fs/cgroup/memory/a/b"),
            ("/", "/a/b", "/rbuild", "/sys/fs/cgroup/memory"),
            ("/docker/abc", "/docker/abc/x", "rbuild", "/sys/fs/cgroup/memory/x"),
            ("/docker/abc", "/docker/abc", "rbuild", "/sys/fs/cgroup/memory"),
        ];
        for (root, own, parent, want) in cases {
            assert_eq!(parent_dir(&m(root), own, parent), Path::new(want), "{root} {own} {parent}");
        }
    }

    #[test]
    fn proc_cgroup() {
        let own = parse_proc_cgroup("4:memory:/x/y\n2:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(own[0].controllers, vec!["memory"]);
        assert_eq!(own[0].path, "/x/y");
        assert_eq!(own[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(own[2].controllers.is_empty());
    }
}
