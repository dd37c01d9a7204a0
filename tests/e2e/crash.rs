//! Crash safety (issue 5): rbuild killed with SIGKILL at several points of a build leaves no
//! sandbox running, and after the next start no cgroup, mount or run directory of the dead
//! process; the next build succeeds with the right image; after `prune --all` every byte on
//! disk belongs to the tagged image. And Ctrl-C (or SIGTERM) stops a build quickly, with the
//! signal's exit code and nothing tagged.

use crate::harness::{self, Rbuild, Running, require_lab};
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Reproducible image ids, so that a store that went through crashes can be compared with a
/// clean one.
const EPOCH: &str = "SOURCE_DATE_EPOCH=1700000000";

/// A unique marker for the commands of one test, found in `/proc/*/cmdline` (of the shell
/// running a RUN: it must not be the last command, which busybox sh would exec).
fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{what}-{}-{}", std::process::id(), nanos.subsec_nanos())
}

/// Processes (other than this one) whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if pid != me && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// The sandbox inits rbuild `pid` started (the executor passes its pid in their environment;
/// pid 1 of the sandbox inherits it).
fn sandbox_inits_of(pid: u32) -> Vec<u32> {
    let marker = format!("RBUILD_SANDBOX_PARENT={pid}\0");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if String::from_utf8_lossy(&environ).contains(&marker) {
            out.push(p);
        }
    }
    out
}

/// Asserts that nothing rbuild `pid` ran is left within a few seconds: no process carrying
/// `needle`, no sandbox init of that rbuild.
#[track_caller]
fn assert_sandbox_gone(pid: u32, needle: &str, moment: &str) {
    let start = Instant::now();
    loop {
        let (commands, inits) = (processes_with(needle), sandbox_inits_of(pid));
        if commands.is_empty() && inits.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(5) {
            panic!(
                "killed {moment}: the sandbox outlived rbuild (pid {pid}): commands {commands:?}, inits {inits:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run cgroups (`.../rbuild/<pid>-<n>-<hex>`) made by rbuild `pid`, in any hierarchy.
fn run_cgroups_of(pid: u32) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, prefix: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let under_rbuild = dir.file_name().is_some_and(|n| n == "rbuild");
            if under_rbuild && entry.file_name().to_string_lossy().starts_with(prefix) {
                out.push(path);
            } else if depth > 0 {
                walk(&path, depth - 1, prefix, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 6, &format!("{pid}-"), &mut out);
    out
}

/// Mount points below `root` in this (the host's) mount namespace.
fn mounts_under(root: &Path) -> Vec<String> {
    let prefix = root.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

/// Bytes allocated below `path` (directories included, hard links once), measured the way
/// the store measures a layer.
fn allocated(path: &Path, seen: &mut BTreeSet<(u64, u64)>) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
        return 0;
    }
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            total += allocated(&entry.path(), seen);
        }
    }
    total
}

/// A value of `rbuild du` (`layers:`, `reclaimable:`...), in bytes.
fn du_value(du: &str, field: &str) -> f64 {
    let line = du.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in:\n{du}"));
    let value = line[field.len()..].split_whitespace().next().unwrap_or("0B");
    let (num, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len()));
    let factor = match unit {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    num.parse::<f64>().unwrap_or_else(|_| panic!("bad {field} value {value:?}")) * factor
}

/// `size` bytes that do not compress (so the layer export takes a while).
fn random_file(path: &Path, size: u64) {
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom").and_then(|f| f.take(size).read_to_end(&mut data)).expect("urandom");
    std::fs::write(path, data).expect("write random file");
}

/// Every blob of the store belongs to its only manifest and the manifest has all its blobs;
/// nothing half-written, mounted or left of a run remains. (Layer directories are checked by
/// size against `rbuild du`: only the store knows which image or record each one serves.)
#[track_caller]
fn assert_only_the_tagged_image_is_stored(root: &Path) {
    let blobs_dir = root.join("blobs/sha256");
    let blobs: BTreeSet<String> = std::fs::read_dir(&blobs_dir)
        .expect("blobs dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let manifests: Vec<(String, serde_json::Value)> = blobs
        .iter()
        .filter_map(|b| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(blobs_dir.join(b)).ok()?).ok()?;
            v.get("layers").is_some().then(|| (b.clone(), v))
        })
        .collect();
    assert_eq!(manifests.len(), 1, "expected only the tagged image's manifest, found {}", manifests.len());
    let (digest, manifest) = &manifests[0];
    let hex = |d: &serde_json::Value| {
        d["digest"].as_str().unwrap_or_default().trim_start_matches("sha256:").to_string()
    };
    let layers: Vec<String> = manifest["layers"].as_array().expect("layers").iter().map(hex).collect();
    let mut referenced: BTreeSet<String> = layers.iter().cloned().collect();
    referenced.insert(hex(&manifest["config"]));
    referenced.insert(digest.clone());
    let orphans: Vec<&String> = blobs.difference(&referenced).collect();
    assert!(orphans.is_empty(), "blobs no image references: {orphans:?}");
    let missing: Vec<&String> = referenced.difference(&blobs).collect();
    assert!(missing.is_empty(), "blobs of the tagged image are missing: {missing:?}");
    for dir in ["blobs/tmp", "mnt", "executor/runs"] {
        let left: Vec<_> =
            std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "{dir} is not empty: {left:?}");
    }
}

#[test]
fn sigkill_at_any_point_leaves_a_consistent_store() {
    require_lab!();
    let base = &harness::lab().base;
    let commit = token("commit");
    let run = token("run");
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!(
            "FROM {base}\n\
             RUN mkdir /many && for i in $(seq 1 2000); do echo $i > /many/$i; done && sleep 0.3 # {commit}\n\
             COPY big.bin /big.bin\n\
             ARG NAP=0\n\
             RUN sleep $NAP && echo {run}\n"
        ),
    )]);
    random_file(&ctx.path().join("big.bin"), 32 << 20);
    let rb = Rbuild::new();
    let build = |nap: &str| {
        rb.cmd(["build", "--progress", "plain", "--build-arg", EPOCH, "--build-arg"])
            .arg(format!("NAP={nap}"))
            .arg(ctx.path())
    };
    let mut killed = Vec::new();
    let mut kill = |running: Running, moment: &str, needle: &str| {
        let pid = running.pid();
        running.signal("KILL");
        let o = running.wait();
        assert_eq!(o.code, Some(128 + 9), "rbuild was not killed {moment}:\n{o}");
        // Where exactly the kill landed, for whoever reads the test output.
        eprintln!("killed {moment}; last progress:\n{}", harness::rbuild::tail(&o.stderr, 4));
        assert_sandbox_gone(pid, needle, moment);
        killed.push(pid);
    };

    // 1. Right after a RUN's command ended: while the sandbox is torn down and its layer
    //    (2000 files) is committed and recorded.
    let mut b = build("30").spawn();
    let mut shell = None;
    b.wait_until("the first RUN", Duration::from_secs(60), |_| {
        shell = processes_with(&commit).first().copied();
        shell.is_some()
    });
    let shell = shell.unwrap_or_default();
    b.wait_until("the end of the first RUN", Duration::from_secs(30), |_| {
        !Path::new(&format!("/proc/{shell}")).exists()
    });
    kill(b, "while committing a RUN", &commit);

    // 2. While a COPY writes the big file into its new layer.
    let mut b = build("30").spawn();
    let layers = rb.root().join("layers");
    b.wait_until("the big COPY", Duration::from_secs(60), |_| {
        std::fs::read_dir(&layers)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("diff/big.bin").exists())
    });
    kill(b, "while a COPY writes a layer", &run);

    // 3. During a RUN.
    let mut b = build("30").spawn();
    b.wait_until("the sleeping RUN", Duration::from_secs(60), |_| !processes_with(&run).is_empty());
    kill(b, "during a RUN", &run);

    // 4. While the export writes a big layer into the content store.
    let mut b = build("0").spawn();
    let tmp = rb.root().join("blobs/tmp");
    b.wait_until("the layer export", Duration::from_secs(60), |_| {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 4 << 20))
    });
    kill(b, "while writing a layer blob", "__no_sandbox_runs_here__");

    // The next build succeeds and makes the image a clean store makes.
    let done = build("0").args(["-t", "crash:1"]).expect_ok();
    let image = |o: &harness::Outcome| {
        o.stderr.lines().find_map(|l| l.strip_prefix("image ")?.split_whitespace().next().map(String::from))
    };
    let clean = Rbuild::new();
    let reference = clean
        .cmd(["build", "--progress", "plain", "--build-arg", EPOCH, "--build-arg", "NAP=0"])
        .arg(ctx.path())
        .expect_ok();
    assert_eq!(image(&done), image(&reference), "the store that went through crashes built another image");

    // What the killed processes left was cleaned up when the next one started.
    for pid in &killed {
        let left = run_cgroups_of(*pid);
        assert!(left.is_empty(), "cgroups of the killed rbuild {pid} remain: {left:?}");
    }
    let mounts = mounts_under(rb.root());
    assert!(mounts.is_empty(), "mounts left under the store: {mounts:?}");

    // No orphans: after prune --all, every byte is the tagged image's.
    rb.cmd(["prune", "--all"]).expect_ok();
    let du = rb.cmd(["du"]).expect_ok().stdout;
    assert_eq!(du_value(&du, "reclaimable:"), 0.0, "{du}");
    assert_eq!(du_value(&du, "cache records:"), 0.0, "{du}");
    assert_only_the_tagged_image_is_stored(rb.root());
    let on_disk = allocated(&rb.root().join("layers"), &mut BTreeSet::new()) as f64;
    let counted = du_value(&du, "layers:");
    // du prints three significant digits; the layer directories themselves are not counted.
    assert!(
        (on_disk - counted).abs() <= counted * 0.01 + 64e3,
        "layers on disk {on_disk} vs du {counted}:\n{du}"
    );
    let blob_bytes: u64 = std::fs::read_dir(rb.root().join("blobs/sha256"))
        .expect("blobs")
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    let counted = du_value(&du, "blobs:");
    assert!(
        (blob_bytes as f64 - counted).abs() <= counted * 0.01,
        "blobs on disk {blob_bytes} vs du {counted}"
    );
    // The image survived the prune complete: saved and read back by the tar crate.
    let out = harness::tempdir();
    let archive = out.path().join("crash.tar");
    rb.cmd(["save", "crash:1", "-o"]).arg(&archive).expect_ok();
    let fs = harness::Image::from_docker_archive(&archive).rootfs();
    assert_eq!(fs.get("big.bin").map(|e| e.data.len()), Some(32 << 20), "big.bin");
    assert_eq!(fs.get("many/2000").map(|e| e.data.as_slice()), Some(&b"2000\n"[..]), "many/2000");
}

#[test]
fn interrupt_or_terminate_cancels_a_run_quickly() {
    require_lab!();
    let base = &harness::lab().base;
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let marker = token(&format!("sig{signal}"));
        let ctx =
            harness::context(&[("Dockerfile", &format!("FROM {base}\nRUN sleep 30 && echo {marker}\n"))]);
        let rb = Rbuild::new();
        let mut b = rb.build(ctx.path()).args(["-t", "interrupted:1"]).spawn();
        b.wait_until("the RUN", Duration::from_secs(60), |_| !processes_with(&marker).is_empty());
        let pid = b.pid();
        let sent = Instant::now();
        b.signal(signal);
        let o = b.wait();
        let took = sent.elapsed();
        assert_eq!(o.code, Some(code), "SIG{signal}: exit code\n{o}");
        assert!(took < Duration::from_secs(5), "SIG{signal}: the build took {took:?} to stop");
        assert!(o.error_text().contains("cancelled"), "SIG{signal}:\n{o}");
        assert_sandbox_gone(pid, &marker, &format!("by SIG{signal}"));
        assert!(run_cgroups_of(pid).is_empty(), "SIG{signal}: cgroups left {:?}", run_cgroups_of(pid));
        assert!(!rb.images().contains("interrupted"), "SIG{signal}: the cancelled build tagged an image");
    }
}
