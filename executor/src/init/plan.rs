//! The mounts a run gets inside its rootfs, as data: planned without touching the system
//! (and unit-tested), then carried out by `apply.rs`.
//!
//! Device isolation does not rely on a devices cgroup: `/dev` is a `nodev` tmpfs and the
//! rootfs and extra mounts are `nodev`, so device nodes that a build creates with
//! CAP_MKNOD cannot be opened; the few usable devices are bind mounts of the host's nodes.

use std::fmt;
use std::path::PathBuf;

use nix::mount::MsFlags;

use super::in_root::Kind;
use crate::protocol::{CgroupFs, InitRequest};
use crate::spec::MountKind;

/// Host devices bind-mounted into `/dev` (Docker's default device list minus consoles).
pub(crate) const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Docker's masked paths: files get `/dev/null` over them, directories an empty read-only
/// tmpfs.
pub(crate) const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub(crate) const READONLY_PATHS: [&str; 5] =
    ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// One step of setting up the rootfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Mount a pseudo or memory file system.
    Fs { dest: String, fstype: &'static str, flags: MsFlags, data: String },
    /// Bind-mount a host path; `remount` flags (if any) are applied with a bind remount,
    /// together with the source mount's own restrictions.
    Bind { dest: String, kind: Kind, source: PathBuf, remount: Option<MsFlags> },
    /// An overlay of host directories.
    Overlay { dest: String, lower: Vec<PathBuf>, upper_work: Option<(PathBuf, PathBuf)> },
    /// A symlink in a tmpfs we own (`/dev/fd`, ...).
    Symlink { dest: String, target: String },
    /// Hide a path if it exists.
    Mask { dest: String },
    /// Make a path read-only if it exists.
    ReadOnly { dest: String },
}

impl Step {
    pub(crate) fn dest(&self) -> &str {
        match self {
            Step::Fs { dest, .. }
            | Step::Bind { dest, .. }
            | Step::Overlay { dest, .. }
            | Step::Symlink { dest, .. }
            | Step::Mask { dest }
            | Step::ReadOnly { dest } => dest,
        }
    }
}

fn flag_names(flags: MsFlags) -> String {
    let names = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
    ];
    let out: Vec<&str> = names.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect();
    if out.is_empty() { "-".to_owned() } else { out.join(",") }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Fs { dest, fstype, flags, data } => {
                write!(f, "{fstype} {dest} {}", flag_names(*flags))?;
                if !data.is_empty() {
                    write!(f, " {data}")?;
                }
                Ok(())
            }
            Step::Bind { dest, kind, source, remount } => {
                let kind = if *kind == Kind::Dir { "dir" } else { "file" };
                write!(f, "bind {dest} {kind} {}", source.display())?;
                if let Some(flags) = remount {
                    write!(f, " remount {}", flag_names(*flags))?;
                }
                Ok(())
            }
            Step::Overlay { dest, lower, upper_work } => {
                let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
                write!(f, "overlay {dest} {}", lower.join(":"))?;
                if let Some((upper, _)) = upper_work {
                    write!(f, " upper {}", upper.display())?;
                }
                Ok(())
            }
            Step::Symlink { dest, target } => write!(f, "symlink {dest} -> {target}"),
            Step::Mask { dest } => write!(f, "mask {dest}"),
            Step::ReadOnly { dest } => write!(f, "readonly {dest}"),
        }
    }
}

fn fs(dest: &str, fstype: &'static str, flags: MsFlags, data: &str) -> Step {
    Step::Fs { dest: dest.to_owned(), fstype, flags, data: data.to_owned() }
}

/// Every step after the rootfs itself is mounted, in order.
pub(crate) fn plan(req: &InitRequest) -> Vec<Step> {
    let spec = &req.spec;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut steps = vec![
        fs("/proc", "proc", nosuid_nodev_noexec, ""),
        fs(
            "/dev",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
    ];
    for dev in DEVICES {
        steps.push(Step::Bind {
            dest: format!("/dev/{dev}"),
            kind: Kind::File,
            source: PathBuf::from(format!("/dev/{dev}")),
            remount: None,
        });
    }
    steps.push(fs(
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    ));
    steps.push(Step::Symlink { dest: "/dev/ptmx".to_owned(), target: "pts/ptmx".to_owned() });
    steps.push(fs("/dev/shm", "tmpfs", nosuid_nodev_noexec, "mode=1777,size=65536k"));
    steps.push(fs("/dev/mqueue", "mqueue", nosuid_nodev_noexec, ""));
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        steps.push(Step::Symlink { dest: format!("/dev/{name}"), target: target.to_owned() });
    }
    let sys_flags =
        if spec.insecure { nosuid_nodev_noexec } else { nosuid_nodev_noexec | MsFlags::MS_RDONLY };
    steps.push(fs("/sys", "sysfs", sys_flags, ""));
    match &req.cgroup_fs {
        CgroupFs::None => {}
        CgroupFs::V2(_) => steps.push(fs("/sys/fs/cgroup", "cgroup2", sys_flags, "")),
        CgroupFs::V1(dirs) => {
            // Like runc: a tmpfs holding one read-only bind per hierarchy, made read-only
            // itself once the binds are in (by the read-only step below).
            steps.push(fs("/sys/fs/cgroup", "tmpfs", nosuid_nodev_noexec, "mode=755"));
            let mut ro = nosuid_nodev_noexec;
            if !spec.insecure {
                ro |= MsFlags::MS_RDONLY;
            }
            for (name, dir) in dirs {
                steps.push(Step::Bind {
                    dest: format!("/sys/fs/cgroup/{name}"),
                    kind: Kind::Dir,
                    source: dir.clone(),
                    remount: Some(ro),
                });
                // Co-mounted controllers are also reachable by their own names.
                if name.contains(',') {
                    for single in name.split(',') {
                        steps.push(Step::Symlink {
                            dest: format!("/sys/fs/cgroup/{single}"),
                            target: name.clone(),
                        });
                    }
                }
            }
            if !spec.insecure {
                steps.push(Step::ReadOnly { dest: "/sys/fs/cgroup".to_owned() });
            }
        }
    }
    for (dest, source) in [
        ("/etc/hosts", &req.hosts_file),
        ("/etc/resolv.conf", &req.resolv_file),
        ("/etc/hostname", &req.hostname_file),
    ] {
        steps.push(Step::Bind {
            dest: dest.to_owned(),
            kind: Kind::File,
            source: source.clone(),
            // Read-only like BuildKit's; the files are shared between runs.
            remount: Some(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC),
        });
    }
    for m in &spec.mounts {
        steps.push(match &m.kind {
            MountKind::Bind { source, readonly } => {
                let mut flags = MsFlags::MS_NODEV;
                if *readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                let kind = if source.is_dir() { Kind::Dir } else { Kind::File };
                Step::Bind { dest: m.dest.clone(), kind, source: source.clone(), remount: Some(flags) }
            }
            MountKind::Tmpfs { size } => {
                let mut data = "mode=1777".to_owned();
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                Step::Fs {
                    dest: m.dest.clone(),
                    fstype: "tmpfs",
                    flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
                    data,
                }
            }
            MountKind::Overlay { lower, upper_work } if lower.len() == 1 && upper_work.is_none() => {
                Step::Bind {
                    dest: m.dest.clone(),
                    kind: Kind::Dir,
                    source: lower[0].clone(),
                    remount: Some(MsFlags::MS_NODEV | MsFlags::MS_RDONLY),
                }
            }
            MountKind::Overlay { lower, upper_work } => {
                Step::Overlay { dest: m.dest.clone(), lower: lower.clone(), upper_work: upper_work.clone() }
            }
        });
    }
    if !spec.insecure {
        steps.extend(MASKED_PATHS.iter().map(|p| Step::Mask { dest: (*p).to_owned() }));
        steps.extend(READONLY_PATHS.iter().map(|p| Step::ReadOnly { dest: (*p).to_owned() }));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mount, Rootfs, Spec};

    fn request(spec: Spec, cgroup_fs: CgroupFs) -> InitRequest {
        InitRequest {
            spec,
            rootfs_dir: "/state/run/rootfs".into(),
            hosts_file: "/state/run/hosts".into(),
            resolv_file: "/state/run/resolv.conf".into(),
            hostname_file: "/state/run/hostname".into(),
            cgroup_fs,
            overlay: Default::default(),
        }
    }

    fn spec() -> Spec {
        let rootfs = Rootfs::Overlay { lower: vec![], upper: "/u".into(), work: "/w".into() };
        Spec::new(vec!["true".into()], rootfs)
    }

    #[test]
    fn default_plan() {
        let got: Vec<String> = plan(&request(spec(), CgroupFs::None)).iter().map(|s| s.to_string()).collect();
        let want = "\
proc /proc nosuid,nodev,noexec
tmpfs /dev nosuid,nodev,strictatime mode=755,size=65536k
bind /dev/null file /dev/null
bind /dev/zero file /dev/zero
bind /dev/full file /dev/full
bind /dev/random file /dev/random
bind /dev/urandom file /dev/urandom
bind /dev/tty file /dev/tty
devpts /dev/pts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5
symlink /dev/ptmx -> pts/ptmx
tmpfs /dev/shm nosuid,nodev,noexec mode=1777,size=65536k
mqueue /dev/mqueue nosuid,nodev,noexec
symlink /dev/fd -> /proc/self/fd
symlink /dev/stdin -> /proc/self/fd/0
symlink /dev/stdout -> /proc/self/fd/1
symlink /dev/stderr -> /proc/self/fd/2
symlink /dev/core -> /proc/kcore
sysfs /sys ro,nosuid,nodev,noexec
bind /etc/hosts file /state/run/hosts remount ro,nosuid,nodev,noexec
bind /etc/resolv.conf file /state/run/resolv.conf remount ro,nosuid,nodev,noexec
bind /etc/hostname file /state/run/hostname remount ro,nosuid,nodev,noexec
mask /proc/asound
mask /proc/acpi
mask /proc/interrupts
mask /proc/kcore
mask /proc/keys
mask /proc/latency_stats
mask /proc/timer_list
mask /proc/timer_stats
mask /proc/sched_debug
mask /proc/scsi
mask /sys/firmware
mask /sys/devices/virtual/powercap
readonly /proc/bus
readonly /proc/fs
readonly /proc/irq
readonly /proc/sys
readonly /proc/sysrq-trigger";
        assert_eq!(got.join("\n"), want);
    }

    #[test]
    fn extra_mounts_keep_their_order_before_masks() {
        let mut s = spec();
        s.mounts = vec![
            Mount { dest: "/cache".into(), kind: MountKind::Bind { source: "/".into(), readonly: false } },
            Mount { dest: "/tmp".into(), kind: MountKind::Tmpfs { size: Some(1 << 20) } },
            Mount {
                dest: "/img".into(),
                kind: MountKind::Overlay { lower: vec!["/l1".into()], upper_work: None },
            },
            Mount {
                dest: "/stage".into(),
                kind: MountKind::Overlay {
                    lower: vec!["/l1".into(), "/l2".into()],
                    upper_work: Some(("/u".into(), "/w".into())),
                },
            },
        ];
        let steps = plan(&request(s, CgroupFs::V2("/sys/fs/cgroup/rbuild/run".into())));
        let got: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        let at = got.iter().position(|l| l.starts_with("bind /cache")).unwrap();
        assert_eq!(
            &got[at..at + 4],
            [
                "bind /cache dir / remount nodev",
                "tmpfs /tmp nosuid,nodev,strictatime mode=1777,size=1048576",
                "bind /img dir /l1 remount ro,nodev",
                "overlay /stage /l1:/l2 upper /u",
            ]
        );
        assert!(got[at + 4].starts_with("mask "));
        assert!(got.contains(&"cgroup2 /sys/fs/cgroup ro,nosuid,nodev,noexec".to_owned()));
    }

    #[test]
    fn insecure_has_writable_sys_and_no_masks() {
        let mut s = spec();
        s.insecure = true;
        let got: Vec<String> = plan(&request(s, CgroupFs::None)).iter().map(|s| s.to_string()).collect();
        assert!(got.contains(&"sysfs /sys nosuid,nodev,noexec".to_owned()));
        assert!(!got.iter().any(|l| l.starts_with("mask") || l.starts_with("readonly")));
    }
}

#[cfg(test)]
mod cgroup_fs_tests {
    use super::*;
    use crate::spec::{Rootfs, Spec};

    #[test]
    fn v1_cgroup_fs_is_a_read_only_tmpfs_of_binds() {
        let rootfs = Rootfs::Overlay { lower: vec![], upper: "/u".into(), work: "/w".into() };
        let req = InitRequest {
            spec: Spec::new(vec!["true".into()], rootfs),
            rootfs_dir: "/r".into(),
            hosts_file: "/h".into(),
            resolv_file: "/rc".into(),
            hostname_file: "/hn".into(),
            cgroup_fs: CgroupFs::V1(vec![
                ("memory".into(), "/sys/fs/cgroup/memory/rbuild/r1".into()),
                ("cpu,cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct/rbuild/r1".into()),
            ]),
            overlay: Default::default(),
        };
        let got: Vec<String> = plan(&req).iter().map(|s| s.to_string()).collect();
        let at = got.iter().position(|l| l.starts_with("tmpfs /sys/fs/cgroup")).unwrap();
        assert_eq!(
            &got[at..at + 5],
            [
                "tmpfs /sys/fs/cgroup nosuid,nodev,noexec mode=755",
                "bind /sys/fs/cgroup/memory dir /sys/fs/cgroup/memory/rbuild/r1 remount ro,nosuid,nodev,noexec",
                "bind /sys/fs/cgroup/cpu,cpuacct dir /sys/fs/cgroup/cpu,cpuacct/rbuild/r1 remount ro,nosuid,nodev,noexec",
                "symlink /sys/fs/cgroup/cpu -> cpu,cpuacct",
                "symlink /sys/fs/cgroup/cpuacct -> cpu,cpuacct",
            ]
        );
        assert_eq!(got[at + 5], "readonly /sys/fs/cgroup");
    }
}
