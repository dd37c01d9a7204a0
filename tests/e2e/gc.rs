//! Disk usage and garbage collection: `du`, `prune` (tagged images always survive) and the
//! configured store cap.

use crate::harness::{self, Rbuild, require_lab};

/// A context whose build adds a `size`-byte incompressible file.
fn big_context(base: &str, name: &str, size: usize) -> tempfile::TempDir {
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {base}\nCOPY {name} /{name}\n"))]);
    let mut data = vec![0u8; size];
    let mut x: u64 = name.len() as u64 + 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(ctx.path().join(name), data).unwrap();
    ctx
}

fn total_bytes(rb: &Rbuild) -> u64 {
    let o = rb.cmd(["du"]).expect_ok();
    let line = o.stdout.lines().find(|l| l.starts_with("layers:")).unwrap_or_default().to_string();
    let value = line.split_whitespace().nth(1).unwrap_or("0B");
    let (num, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    let factor = match unit {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    (n * factor) as u64
}

#[test]
fn prune_all_keeps_tagged_images_and_removes_the_rest() {
    require_lab!();
    let base = &harness::lab().base;
    let rb = Rbuild::new();
    let kept = big_context(base, "kept.bin", 1 << 20);
    let gone = big_context(base, "gone.bin", 1 << 20);
    rb.build(kept.path()).args(["-t", "kept:1"]).expect_ok();
    rb.build(gone.path()).expect_ok();
    let before = total_bytes(&rb);
    let o = rb.cmd(["prune", "--all"]).expect_ok();
    assert!(o.stdout.contains("total reclaimed"), "{o}");
    let after = total_bytes(&rb);
    assert!(after < before, "prune reclaimed nothing: {before} -> {after}");
    assert!(rb.images().contains("kept:1"), "the tagged image is gone");
    // The tagged image still exports completely.
    let out = harness::tempdir();
    let tar = out.path().join("kept.tar");
    rb.build(kept.path()).args(["-o"]).arg(format!("type=oci,dest={}", tar.display())).expect_ok();
}

#[test]
fn the_configured_cap_bounds_the_store() {
    require_lab!();
    let base = &harness::lab().base;
    let rb = Rbuild::new();
    std::fs::write(rb.config_file(), "[gc]\nkeep_storage = \"3MB\"\n").unwrap();
    for name in ["one.bin", "two.bin", "three.bin"] {
        let ctx = big_context(base, name, 1 << 20);
        rb.build(ctx.path()).expect_ok();
        let total = total_bytes(&rb);
        assert!(total <= 3_000_000, "after {name}: layers take {total} bytes, over the 3MB cap");
    }
}

#[test]
fn bad_config_files_are_errors_naming_the_key() {
    let rb = Rbuild::new();
    std::fs::write(rb.config_file(), "[gc]\nkeep_storage = \"lots\"\n").unwrap();
    let o = rb.cmd(["images"]).expect_fail();
    assert!(o.stderr.contains("gc.keep_storage"), "{o}");
    std::fs::write(rb.config_file(), "colour = \"blue\"\n").unwrap();
    let o = rb.cmd(["images"]).expect_fail();
    assert!(o.stderr.contains("colour"), "{o}");
}

/// `RUN --mount=type=cache` directories are build cache too: `du` lists them with their
/// size, `prune` removes them (and a cap counts them), and the next build starts them anew.
#[test]
fn cache_mounts_are_counted_and_pruned() {
    require_lab!();
    let base = &harness::lab().base;
    let df = format!(
        "FROM {base}\n\
         RUN --mount=type=cache,id=e2e-gc,target=/cache \
         ls /cache > /seen && head -c 3000000 /dev/urandom > /cache/blob\n"
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let rb = Rbuild::new();
    rb.build(ctx.path()).expect_ok();
    let du = rb.cmd(["du", "--verbose"]).expect_ok();
    let line =
        du.stdout.lines().find(|l| l.contains("type=cache id=e2e-gc")).unwrap_or_else(|| panic!("{du}"));
    assert!(line.contains("3.00MB"), "size of the cache mount: {line}");
    assert!(du.stdout.lines().any(|l| l.starts_with("cache mounts:") && l.contains("3.00MB")), "{du}");

    let pruned = rb.cmd(["prune"]).expect_ok();
    assert!(pruned.stdout.contains("e2e-gc") || pruned.stderr.contains("e2e-gc"), "{pruned}");
    let du = rb.cmd(["du", "--verbose"]).expect_ok();
    assert!(!du.stdout.contains("id=e2e-gc"), "{du}");
    let mounts = std::fs::read_dir(rb.root().join("cache-mounts")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(mounts, 0, "cache mount directories left after prune");

    // The next build gets an empty cache again (the step re-runs: it was pruned too).
    let out = harness::tempdir();
    rb.build(ctx.path())
        .args(["--no-cache", "-o", &format!("type=local,dest={}", out.path().display())])
        .expect_ok();
    assert_eq!(std::fs::read_to_string(out.path().join("seen")).unwrap().trim(), "");
}
