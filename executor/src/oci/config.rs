//! The OCI runtime spec (`config.json`) for one run: the same sandbox as the native
//! backend, expressed for runc or crun.

use std::path::Path;

use serde_json::{Value, json};

use crate::caps::keep_set;
use crate::init::plan::{MASKED_PATHS, READONLY_PATHS};
use crate::run_dir::EtcFiles;
use crate::seccomp;
use crate::spec::{MountKind, Network, Spec};
use crate::user::ResolvedUser;

/// Everything the config is built from.
pub(crate) struct ConfigInputs<'a> {
    pub spec: &'a Spec,
    pub user: &'a ResolvedUser,
    /// The mounted rootfs on the host.
    pub rootfs: &'a Path,
    pub etc: &'a EtcFiles,
    /// `cgroupsPath`, relative to the runtime's own cgroup (runc's cgroupfs driver).
    pub cgroups_path: Option<String>,
}

fn mount(dest: &str, fstype: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": fstype, "source": source, "options": options })
}

fn mounts(inputs: &ConfigInputs<'_>) -> Vec<Value> {
    let spec = inputs.spec;
    let sys = if spec.insecure {
        vec!["nosuid", "noexec", "nodev"]
    } else {
        vec!["nosuid", "noexec", "nodev", "ro"]
    };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", &sys),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &[&sys[..], &["relatime"]].concat()),
    ];
    for (dest, source) in [
        ("/etc/hosts", &inputs.etc.hosts),
        ("/etc/resolv.conf", &inputs.etc.resolv),
        ("/etc/hostname", &inputs.etc.hostname),
    ] {
        out.push(mount(
            dest,
            "bind",
            &source.to_string_lossy(),
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        ));
    }
    for m in &spec.mounts {
        out.push(match &m.kind {
            MountKind::Bind { source, readonly } => {
                let mode = if *readonly { "ro" } else { "rw" };
                mount(&m.dest, "bind", &source.to_string_lossy(), &["bind", mode, "nodev"])
            }
            MountKind::Tmpfs { size } => {
                let mut options =
                    vec!["nosuid".to_owned(), "nodev".into(), "strictatime".into(), "mode=1777".into()];
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                json!({ "destination": m.dest, "type": "tmpfs", "source": "tmpfs", "options": options })
            }
            MountKind::Overlay { lower, upper_work: None } if lower.len() == 1 => {
                mount(&m.dest, "bind", &lower[0].to_string_lossy(), &["bind", "ro", "nodev"])
            }
            MountKind::Overlay { lower, upper_work } => {
                let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
                let mut options = vec![format!("lowerdir={}", lower.join(":")), "nodev".to_owned()];
                match upper_work {
                    Some((upper, work)) => {
                        options.push(format!("upperdir={}", upper.display()));
                        options.push(format!("workdir={}", work.display()));
                    }
                    None => options.push("ro".to_owned()),
                }
                json!({ "destination": m.dest, "type": "overlay", "source": "overlay", "options": options })
            }
        });
    }
    out
}

/// Docker's default profile in the OCI format, from the same tables as the native filter.
fn seccomp_profile() -> Value {
    let names: Vec<&str> = seccomp::allowed_names().collect();
    let arches: &[&str] = if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &["SCMP_ARCH_RISCV64"]
    };
    let personality: Vec<Value> = seccomp::PERSONALITIES
        .iter()
        .map(|p| {
            json!({ "names": ["personality"], "action": "SCMP_ACT_ALLOW",
                    "args": [{ "index": 0, "value": p, "op": "SCMP_CMP_EQ" }] })
        })
        .collect();
    let mut syscalls = vec![
        json!({ "names": names, "action": "SCMP_ACT_ALLOW" }),
        json!({ "names": ["socket"], "action": "SCMP_ACT_ALLOW",
                "args": [{ "index": 0, "value": seccomp::AF_VSOCK, "op": "SCMP_CMP_NE" }] }),
        json!({ "names": ["clone"], "action": "SCMP_ACT_ALLOW",
                "args": [{ "index": 0, "value": seccomp::CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ" }] }),
        json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS }),
    ];
    syscalls.extend(personality);
    json!({ "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EPERM,
            "architectures": arches, "syscalls": syscalls })
}

/// The whole `config.json`.
pub(crate) fn config(inputs: &ConfigInputs<'_>) -> Value {
    let spec = inputs.spec;
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", inputs.user.home));
    }
    let mut caps: Vec<String> = keep_set(spec.insecure).iter().map(|c| c.to_string()).collect();
    caps.sort();
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if spec.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        // Deny every device but those the runtime creates by default.
        "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
    });
    if let Some(path) = &inputs.cgroups_path {
        linux["cgroupsPath"] = json!(path);
    }
    if !spec.insecure {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        linux["seccomp"] = seccomp_profile();
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": inputs.user.uid, "gid": inputs.user.gid, "additionalGids": inputs.user.groups },
            "args": spec.args,
            "env": env,
            "cwd": spec.cwd,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": spec.no_new_privileges,
        },
        "root": { "path": inputs.rootfs, "readonly": false },
        "hostname": spec.hostname,
        "mounts": mounts(inputs),
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mount, Rootfs};

    fn inputs_for(spec: &Spec, etc: &EtcFiles, user: &ResolvedUser) -> Value {
        config(&ConfigInputs {
            spec,
            user,
            rootfs: Path::new("/state/runs/r/rootfs"),
            etc,
            cgroups_path: Some("rbuild/r/ctr".into()),
        })
    }

    #[test]
    fn config_carries_the_sandbox() {
        let rootfs = Rootfs::Overlay { lower: vec![], upper: "/u".into(), work: "/w".into() };
        let mut spec = Spec::new(vec!["sh".into(), "-c".into(), "true".into()], rootfs);
        spec.network = Network::None;
        spec.mounts = vec![Mount {
            dest: "/cache".into(),
            kind: MountKind::Bind { source: "/c".into(), readonly: true },
        }];
        let etc =
            EtcFiles { hosts: "/e/hosts".into(), resolv: "/e/resolv".into(), hostname: "/e/hostname".into() };
        let user = ResolvedUser { uid: 1000, gid: 1000, groups: vec![10], home: "/home/app".into() };
        let c = inputs_for(&spec, &etc, &user);
        assert_eq!(c["process"]["user"], json!({"uid": 1000, "gid": 1000, "additionalGids": [10]}));
        assert_eq!(c["process"]["env"], json!(["HOME=/home/app"]));
        assert_eq!(c["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(c["linux"]["cgroupsPath"], "rbuild/r/ctr");
        assert!(c["linux"]["namespaces"].as_array().unwrap().contains(&json!({"type": "network"})));
        assert_eq!(c["linux"]["seccomp"]["defaultErrnoRet"], 1);
        let mounts = c["mounts"].as_array().unwrap();
        let cache = mounts.iter().find(|m| m["destination"] == "/cache").unwrap();
        assert_eq!(cache["options"], json!(["bind", "ro", "nodev"]));
        let hosts = mounts.iter().find(|m| m["destination"] == "/etc/hosts").unwrap();
        assert_eq!(hosts["source"], "/e/hosts");
        spec.insecure = true;
        let c = inputs_for(&spec, &etc, &user);
        assert!(c["linux"].get("seccomp").is_none() && c["linux"].get("maskedPaths").is_none());
    }
}
