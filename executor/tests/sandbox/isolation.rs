//! What the command can see and do: processes, mounts, network, privileges.

use executor::{Network, Rootfs};

use crate::harness::Sandbox;
use crate::require_root;

#[tokio::test]
async fn only_the_sandbox_processes_are_visible() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.sh("echo $$; ls -d /proc/[0-9]* | wc -l; cat /proc/1/cmdline | tr '\\0' ' '").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "the shell is pid 1's first child");
    // pid 1 (the init), the shell, and the ls/wc/cat of the pipeline at most.
    let count: u32 = lines[1].trim().parse().unwrap();
    assert!(count <= 5, "{count} processes visible: {out}");
    assert!(lines[2].contains(executor::INIT_ARG), "{out}");
}

#[tokio::test]
async fn host_mounts_are_invisible_and_root_is_overlay() {
    require_root!();
    let sb = Sandbox::new();
    let mounts = sb.sh("cat /proc/mounts").await;
    let root = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/")).unwrap();
    assert!(root.starts_with("overlay / overlay") && root.contains("nodev"), "{root}");
    let points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    for host_only in ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/work", "/tmp"] {
        assert!(!points.contains(&host_only), "{host_only} visible:\n{mounts}");
    }
    // The generated /etc files are bind mounts from the host's disk, as in Docker.
    let disks: Vec<&str> = mounts.lines().filter(|l| l.contains(" ext4 ") && !l.contains(" /etc/")).collect();
    assert!(disks.is_empty(), "a host disk is visible: {disks:?}");
    let want =
        ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts", "/etc/resolv.conf"];
    for m in want {
        assert!(mounts.lines().any(|l| l.split(' ').nth(1) == Some(m)), "{m} missing:\n{mounts}");
    }
}

#[tokio::test]
async fn network_none_has_only_loopback() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("ls /sys/class/net; ip -o link | cut -d' ' -f2,3");
    spec.network = Network::None;
    let out = sb.run(spec).await.ok().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo");
    assert!(lines[1].starts_with("lo: <LOOPBACK,UP"), "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    // Host networking sees the host's interfaces.
    let host = sb.sh("ls /sys/class/net | wc -l").await;
    let host_count: usize = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(host.trim(), host_count.to_string());
}

#[tokio::test]
async fn writes_land_in_upper_only() {
    require_root!();
    let sb = Sandbox::new();
    sb.sh("echo new > /created; echo changed >> /etc/passwd; rm /bin/vi; mkdir -p /a/b").await;
    assert_eq!(std::fs::read_to_string(sb.path("upper/created")).unwrap(), "new\n");
    assert!(std::fs::read_to_string(sb.path("upper/etc/passwd")).unwrap().ends_with("changed\n"));
    assert_eq!(std::fs::read_to_string(sb.path("lower/etc/passwd")).unwrap(), crate::harness::PASSWD);
    assert!(std::fs::symlink_metadata(sb.path("lower/bin/vi")).is_ok(), "lower untouched");
    // Deleting a lower file leaves a whiteout (a 0/0 character device) in upper.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(sb.path("upper/bin/vi")).unwrap().file_type().is_char_device());
    assert!(sb.path("upper/a/b").is_dir());
}

#[tokio::test]
async fn capabilities_no_new_privs_and_seccomp() {
    require_root!();
    let sb = Sandbox::new();
    let grep = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '";
    let cases: [(&str, bool, bool, &str); 4] = [
        ("", false, false, "CapEff: 00000000a80425fb\nCapBnd: 00000000a80425fb\nNoNewPrivs: 0\nSeccomp: 2\n"),
        ("", true, false, "CapEff: 00000000a80425fb\nCapBnd: 00000000a80425fb\nNoNewPrivs: 1\nSeccomp: 2\n"),
        (
            "app",
            false,
            false,
            "CapEff: 0000000000000000\nCapBnd: 00000000a80425fb\nNoNewPrivs: 0\nSeccomp: 2\n",
        ),
        ("", false, true, "CapEff: 000001ffffffffff\nCapBnd: 000001ffffffffff\nNoNewPrivs: 0\nSeccomp: 0\n"),
    ];
    let host_bnd = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host_bnd
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    for (user, nnp, insecure, want) in cases {
        let mut spec = sb.spec(grep);
        spec.user = user.into();
        spec.no_new_privileges = nnp;
        spec.insecure = insecure;
        let out = sb.run(spec).await.ok().to_owned();
        // Insecure runs get every capability this kernel supports.
        let want = if insecure { want.replace("000001ffffffffff", &host_bnd) } else { want.to_owned() };
        assert_eq!(out, want, "user {user:?} nnp {nnp} insecure {insecure}");
    }
}

#[tokio::test]
async fn mount_unshare_and_raw_devices_are_refused() {
    require_root!();
    let sb = Sandbox::new();
    let script = "mkdir -p /mnt; mount -t tmpfs none /mnt 2>&1; echo mount=$?; unshare -m true 2>&1; echo unshare=$?; \
                  mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null 2>&1; echo mem=$?; \
                  echo 1 > /proc/sys/kernel/panic 2>/dev/null; echo sysctl=$?; echo x > /sys/kernel/x 2>/dev/null; echo sys=$?";
    let out = sb.sh(script).await;
    for want in ["mount=1", "unshare=1", "mem=1", "sysctl=1", "sys=1"] {
        assert!(out.contains(want), "{want} in:\n{out}");
    }
    assert!(out.contains("Operation not permitted") || out.contains("Permission denied"), "{out}");
}

#[tokio::test]
async fn masked_paths_are_hidden() {
    require_root!();
    let sb = Sandbox::new();
    // Only paths this kernel has can be checked (e.g. /proc/kcore may be compiled out).
    let files: Vec<&str> = ["/proc/interrupts", "/proc/keys", "/proc/timer_list", "/proc/kcore"]
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    let dirs: Vec<&str> =
        ["/proc/acpi", "/sys/firmware"].into_iter().filter(|p| std::path::Path::new(p).exists()).collect();
    assert!(!files.is_empty() && !dirs.is_empty(), "nothing to check on this kernel");
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!("wc -c < {f}; "));
    }
    for d in &dirs {
        script.push_str(&format!("ls {d} | wc -l; "));
    }
    script.push_str("grep -c ' /proc/sys ' /proc/mounts");
    let out = sb.sh(&script).await;
    let want = "0\n".repeat(files.len() + dirs.len()) + "1\n";
    assert_eq!(out, want, "{script}");
}

#[tokio::test]
async fn symlinks_to_the_host_cannot_redirect_writes() {
    require_root!();
    let sb = Sandbox::new();
    let host = tempfile::tempdir().unwrap();
    let host_dir = host.path().to_str().unwrap().to_owned();
    // A hostile image: /etc points at a host directory, /escape at /, /mnt/x at the host.
    let evil = sb.path("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink(&host_dir, evil.join("etc")).unwrap();
    std::os::unix::fs::symlink("/", evil.join("escape")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../..{host_dir}"), evil.join("climb")).unwrap();
    let mut spec = sb
        .spec("echo pwned > /escape/pwned; echo pwned > /climb/pwned 2>/dev/null; cat /etc/hosts | head -1");
    spec.rootfs = Rootfs::Overlay {
        lower: vec![evil.clone(), sb.path("lower")],
        upper: sb.path("upper"),
        work: sb.path("work"),
    };
    spec.mounts =
        vec![executor::Mount { dest: "/climb/mnt".into(), kind: executor::MountKind::Tmpfs { size: None } }];
    let ran = sb.run(spec).await;
    assert!(ran.ok().starts_with("127.0.0.1"), "{}", ran.stdout);
    assert_eq!(
        std::fs::read_dir(host.path()).unwrap().count(),
        0,
        "nothing may appear in the host directory"
    );
    assert!(!std::path::Path::new("/pwned").exists());
}

#[tokio::test]
async fn glibc_threads_work_under_seccomp() {
    require_root!();
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: needs the host's /usr/bin/python3");
        return;
    }
    let sb = Sandbox::new();
    // The host's /usr read-only, with the merged-/usr links its dynamic loader needs.
    let links = sb.path("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink("usr/lib", links.join("lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib64", links.join("lib64")).unwrap();
    let mut spec = sb.spec("");
    spec.rootfs = Rootfs::Overlay {
        lower: vec![links, sb.path("lower")],
        upper: sb.path("upper"),
        work: sb.path("work"),
    };
    spec.mounts = vec![executor::Mount {
        dest: "/usr".into(),
        kind: executor::MountKind::Bind { source: "/usr".into(), readonly: true },
    }];
    // glibc's pthread_create tries clone3 first and only falls back to clone on ENOSYS.
    let script =
        "import threading\nt = threading.Thread(target=lambda: print('thread ok'))\nt.start(); t.join()";
    spec.args = vec!["/usr/bin/python3".into(), "-c".into(), script.into()];
    assert_eq!(sb.run(spec).await.ok(), "thread ok\n");
}
