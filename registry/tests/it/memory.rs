//! Bounded memory: a large blob is pushed and pulled as a stream. Ignored by default (it
//! writes the blob twice to disk); run with
//! `cargo test -p registry --test it memory -- --ignored --nocapture`, alone, since it reads
//! the whole process's peak RSS. `RBUILD_MEMORY_TEST_MIB` sets the size (default 1024).

use crate::harness::*;
use registry::{Descriptor, Hasher, MediaType, PushedBlob};
use std::io::Write;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "writes a large blob; run alone to measure peak RSS"]
async fn large_blob_push_and_pull_stay_within_bounded_memory() {
    require_registry!();
    let mib: usize =
        std::env::var("RBUILD_MEMORY_TEST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut hasher = Hasher::new();
    for i in 0..mib {
        let chunk = pseudo_random(1 << 20, i as u64 + 1);
        hasher.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    let desc = Descriptor {
        media_type: MediaType::OciLayerGzip,
        digest: hasher.finish(),
        size: (mib as u64) << 20,
        platform: None,
        annotations: Default::default(),
    };
    let before = peak_rss_kib();
    let repo = reg.reference("lab/huge:latest");
    let started = std::time::Instant::now();
    let pushed = client.push_blob(&repo, &desc, &path, None, &no_progress()).await.unwrap();
    let push_time = started.elapsed();
    assert_eq!(pushed, PushedBlob::Uploaded);
    let out_path = dir.path().join("pulled");
    let mut out = tokio::fs::File::create(&out_path).await.unwrap();
    let started = std::time::Instant::now();
    client.get_blob(&repo, &desc, &mut out, &no_progress()).await.unwrap();
    let pull_time = started.elapsed();
    drop(out);
    let after = peak_rss_kib();
    eprintln!(
        "{mib} MiB: push {push_time:?}, pull {pull_time:?}, peak RSS {} MiB (before transfers {} MiB)",
        after / 1024,
        before / 1024
    );
    assert_eq!(std::fs::metadata(&out_path).unwrap().len(), desc.size);
    assert!(after < 100 * 1024 || after - before < 64 * 1024, "peak RSS {after} KiB");
}
