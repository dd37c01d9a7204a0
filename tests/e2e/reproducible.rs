//! Reproducible builds: with SOURCE_DATE_EPOCH, two clean builds on two different stores give
//! the same image digest, and every time in the image is clamped to the epoch.

use crate::harness::{self, Image, Rbuild, require_lab};

const EPOCH: &str = "1700000000";

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         COPY app.txt /app/app.txt\n\
         RUN mkdir -p /data && echo made > /data/file && touch /data/empty\n\
         ENV A=1\n\
         WORKDIR /work\n"
    )
}

fn oci_build(rb: &Rbuild, ctx: &std::path::Path, extra: &[&str], env: Option<&str>) -> Image {
    let out = harness::tempdir();
    let tar = out.path().join("image.tar");
    let mut cmd = rb.build(ctx).args(extra).arg("-o").arg(format!("type=oci,dest={}", tar.display()));
    if let Some(e) = env {
        cmd = cmd.env("SOURCE_DATE_EPOCH", e);
    }
    cmd.expect_ok();
    Image::from_oci_archive(&tar)
}

#[test]
fn two_stores_give_the_same_digest_with_source_date_epoch() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &dockerfile(&lab.base)), ("app.txt", "app\n")]);
    let a =
        oci_build(&Rbuild::new(), ctx.path(), &["--build-arg", &format!("SOURCE_DATE_EPOCH={EPOCH}")], None);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The environment variable works like the build arg (as with buildx).
    let b = oci_build(&Rbuild::new(), ctx.path(), &[], Some(EPOCH));
    assert_eq!(a.manifest_digest(), b.manifest_digest(), "two clean builds differ");
    assert_eq!(a.config["created"].as_str(), Some("2023-11-14T22:13:20Z"));
    for h in a.history().iter().skip(lab_history_len()) {
        assert_eq!(h["created"].as_str(), Some("2023-11-14T22:13:20Z"), "history entry {h}");
    }
    // Files the build made have their times clamped in the layer tars.
    for (path, entry) in a.new_layer_entries(lab_layer_count()) {
        assert!(entry.mtime <= EPOCH.parse::<u64>().unwrap(), "{path} has mtime {}", entry.mtime);
    }
}

#[test]
fn without_source_date_epoch_times_are_the_build_times() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &dockerfile(&lab.base)), ("app.txt", "app\n")]);
    let a = oci_build(&Rbuild::new(), ctx.path(), &[], None);
    let created = a.config["created"].as_str().unwrap_or_default().to_string();
    assert!(created.starts_with("20") && created.as_str() > "2025", "created {created:?}");
}

fn lab_history_len() -> usize {
    harness::lab().base_config()["history"].as_array().map_or(0, |h| h.len())
}

fn lab_layer_count() -> usize {
    harness::lab().base_config()["rootfs"]["diff_ids"].as_array().map_or(0, |d| d.len())
}
