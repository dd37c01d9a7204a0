//! Extra mounts and mount stubs.

use executor::{Mount, MountKind, Rootfs};

use crate::harness::Sandbox;
use crate::require_root;

#[tokio::test]
async fn stubs_are_removed_from_upper() {
    require_root!();
    let sb = Sandbox::new();
    let cache = sb.path("cache");
    std::fs::create_dir(&cache).unwrap();
    let mut spec =
        sb.spec("echo data > /mnt/cache/file; ls /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null");
    spec.cwd = "/app".into();
    spec.mounts = vec![
        Mount { dest: "/mnt/cache".into(), kind: MountKind::Bind { source: cache.clone(), readonly: false } },
        Mount { dest: "/app/node_modules".into(), kind: MountKind::Tmpfs { size: None } },
    ];
    sb.run(spec).await.ok();
    assert_eq!(std::fs::read_to_string(cache.join("file")).unwrap(), "data\n");
    let mut left: Vec<String> = walk(&sb.path("upper"));
    left.sort();
    // The working directory stays (WORKDIR relies on it); every other created mount point
    // (/proc, /dev, /sys, /etc files, /mnt/cache, /app/node_modules) is gone.
    assert_eq!(left, vec!["app", "etc"], "upper holds {left:?}");
    assert_eq!(walk(&sb.path("upper/etc")), Vec::<String>::new());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[tokio::test]
async fn stubs_are_removed_with_an_empty_lower() {
    require_root!();
    let sb = Sandbox::new();
    // Empty lower: the upper directory is the whole root.
    let mut spec = sb.spec("");
    spec.args = vec!["/bin/busybox".into(), "sh".into(), "-c".into(), "echo hi > /scratch/kept".into()];
    let lower = sb.path("lower");
    spec.rootfs = Rootfs::Overlay { lower: vec![], upper: lower.clone(), work: sb.path("work") };
    spec.mounts = vec![Mount { dest: "/scratch".into(), kind: MountKind::Tmpfs { size: Some(1 << 20) } }];
    sb.run(spec).await.ok();
    for gone in ["proc", "dev", "sys", "scratch", "etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        assert!(std::fs::symlink_metadata(lower.join(gone)).is_err(), "{gone} left behind");
    }
    assert!(lower.join("etc/passwd").is_file());
}

#[tokio::test]
async fn bind_tmpfs_and_overlay_mounts() {
    require_root!();
    let sb = Sandbox::new();
    let ro = sb.path("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("f"), "ro\n").unwrap();
    let secret = sb.path("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let (l1, l2, up, wk) = (sb.path("l1"), sb.path("l2"), sb.path("ovl-up"), sb.path("ovl-wk"));
    for d in [&l1, &l2, &up, &wk] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(l1.join("top"), "l1\n").unwrap();
    std::fs::write(l2.join("top"), "l2\n").unwrap();
    std::fs::write(l2.join("bottom"), "l2\n").unwrap();
    let mut spec = sb.spec(
        "cat /ro/f /run/secrets/s /stage/top /stage/bottom; \
         touch /ro/x 2>/dev/null; echo ro=$?; \
         echo w > /stage/new; echo tmp > /tmp/t; df -k /tmp | tail -1 | awk '{print $2}'; \
         cat /img/top; touch /img/x 2>/dev/null; echo img=$?",
    );
    spec.mounts = vec![
        Mount { dest: "/ro".into(), kind: MountKind::Bind { source: ro.clone(), readonly: true } },
        Mount { dest: "/run/secrets/s".into(), kind: MountKind::Bind { source: secret, readonly: true } },
        Mount {
            dest: "/stage".into(),
            kind: MountKind::Overlay {
                lower: vec![l1.clone(), l2.clone()],
                upper_work: Some((up.clone(), wk)),
            },
        },
        Mount { dest: "/tmp".into(), kind: MountKind::Tmpfs { size: Some(2 << 20) } },
        Mount { dest: "/img".into(), kind: MountKind::Overlay { lower: vec![l1.clone()], upper_work: None } },
    ];
    let out = sb.run(spec).await.ok().to_owned();
    assert_eq!(out, "ro\ns3cret\nl1\nl2\nro=1\n2048\nl1\nimg=1\n");
    assert_eq!(std::fs::read_to_string(up.join("new")).unwrap(), "w\n");
    assert!(!ro.join("x").exists());
    assert!(!l1.join("new").exists());
    assert!(!sb.path("upper/tmp/t").exists(), "tmpfs content is not in the layer");
}
