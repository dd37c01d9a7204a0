//! Several platforms in one build (`--platform linux/amd64,linux/arm64`): one image per
//! platform under an image index, arm64 RUN steps through qemu's binfmt_misc handler, and
//! per-platform local outputs.

use crate::harness::{self, Cmd, Rbuild, require_lab};
use std::path::{Path, PathBuf};

/// An arm64 busybox-static (scripts/setup.sh fetches one), when this machine can run it.
fn arm64_busybox() -> Option<PathBuf> {
    let path = std::env::var_os("RBUILD_TEST_BUSYBOX_ARM64")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rbuild-tests/busybox-arm64"));
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    if !path.is_file() || !handler.starts_with("enabled") {
        eprintln!(
            "SKIPPED: needs {} and an enabled qemu-aarch64 binfmt_misc handler (run scripts/setup.sh)",
            path.display()
        );
        return None;
    }
    Some(path)
}

/// A multi-platform busybox base built by rbuild from per-architecture root file systems.
fn push_multi_base(arm64: &Path, reference: &str) {
    let ctx = harness::tempdir();
    harness::base::busybox_rootfs(&ctx.path().join("rootfs-amd64"));
    harness::base::busybox_rootfs(&ctx.path().join("rootfs-arm64"));
    std::fs::copy(arm64, ctx.path().join("rootfs-arm64/bin/busybox")).expect("arm64 busybox");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\n\
         ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD [\"sh\"]\n",
    )
    .unwrap();
    Rbuild::new()
        .build(ctx.path())
        .args(["--platform", "linux/amd64,linux/arm64", "-t", reference, "--push"])
        .expect_ok();
}

#[test]
fn builds_both_platforms_under_one_index_and_runs_arm64_steps() {
    require_lab!();
    let Some(arm64) = arm64_busybox() else { return };
    let lab = harness::lab();
    let base = lab.registry.image("lab/multi:1");
    push_multi_base(&arm64, &base);

    // The base is an index with both platforms (checked with skopeo).
    let raw = Cmd::tool("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{base}"))
        .expect_ok();
    let index: serde_json::Value = serde_json::from_str(&raw.stdout).expect("index json");
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert_eq!(archs, vec!["amd64", "arm64"], "{index}");

    let ctx = harness::context(&[(
        "Dockerfile",
        &format!(
            "FROM {base}\nARG TARGETPLATFORM\nRUN uname -m > /arch && echo $TARGETPLATFORM > /platform\n"
        ),
    )]);
    let out = harness::tempdir();
    let rb = Rbuild::new();
    let o = rb
        .build(ctx.path())
        .args(["--platform", "linux/amd64,linux/arm64", "-o"])
        .arg(format!("type=local,dest={}", out.path().display()))
        .expect_ok();
    assert!(o.stderr.contains("[linux/arm64 2/2] RUN"), "step names carry the platform:\n{o}");
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("linux_amd64/arch").trim(), "x86_64");
    assert_eq!(read("linux_arm64/arch").trim(), "aarch64");
    assert_eq!(read("linux_arm64/platform").trim(), "linux/arm64");

    // type=tar: one archive, a directory per platform (BuildKit's layout).
    let tar = out.path().join("both.tar");
    rb.build(ctx.path())
        .args(["--platform", "linux/amd64,linux/arm64", "-o"])
        .arg(format!("type=tar,dest={}", tar.display()))
        .expect_ok();
    let entries = harness::image::tar_file_entries(&tar);
    assert_eq!(entries["linux_amd64/arch"].data, b"x86_64\n");
    assert_eq!(entries["linux_arm64/arch"].data, b"aarch64\n");
    assert!(entries.get("linux_arm64").is_some_and(|e| e.kind == 'd'), "platform directory entry");
    assert!(entries.keys().all(|k| k.starts_with("linux_amd64") || k.starts_with("linux_arm64")));

    // The docker exporter holds one platform only.
    let o = rb
        .build(ctx.path())
        .args(["--platform", "linux/amd64,linux/arm64", "-o", "type=docker,dest=/tmp/x.tar"])
        .expect_fail();
    assert!(o.error_text().contains("multi-platform"), "{o}");
}

#[test]
fn a_foreign_platform_without_an_emulator_names_what_is_missing() {
    require_lab!();
    // riscv64 has no emulator registered here (only aarch64/arm are).
    if Path::new("/proc/sys/fs/binfmt_misc/qemu-riscv64").exists() {
        eprintln!("SKIPPED: a riscv64 emulator is registered on this machine");
        return;
    }
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\nRUN true\n")]);
    let o = Rbuild::new().build(ctx.path()).args(["--platform", "linux/riscv64"]).expect_fail();
    assert!(o.error_text().contains("no binfmt_misc handler for riscv64"), "{o}");
}
