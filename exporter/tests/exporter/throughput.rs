//! Throughput measurements (ignored by default; run with
//! `cargo test -p exporter --release --test exporter throughput -- --ignored --nocapture`).

use crate::util;
use exporter::{LayerOptions, export_layer_with_threads};
use registry::Compression;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Incompressible bytes from a xorshift generator (fast, no dependency).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn measure(label: &str, dir: &Path, total: u64) {
    let (_s, store) = util::store();
    let cases = [
        ("gzip, all cores", Compression::Gzip, 0),
        ("gzip, 1 thread", Compression::Gzip, 1),
        ("zstd", Compression::Zstd, 0),
        ("uncompressed", Compression::Uncompressed, 0),
    ];
    for (name, compression, threads) in cases {
        let opts = LayerOptions { compression, ..LayerOptions::default() };
        let start = Instant::now();
        let layer = export_layer_with_threads(&store, dir, &opts, threads).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label}: {name}: {:.1} MB/s ({:.2} s, {} -> {} bytes)",
            total as f64 / secs / 1e6,
            secs,
            total,
            layer.blob.size
        );
    }
}

#[test]
#[ignore = "benchmark"]
fn throughput_big_incompressible_file() {
    let dir = tempfile::tempdir().unwrap();
    let len = 256 << 20;
    let mut f = std::fs::File::create(dir.path().join("big")).unwrap();
    for i in 0..16u64 {
        f.write_all(&noise(len / 16, 0x9e37_79b9_7f4a_7c15 ^ i)).unwrap();
    }
    drop(f);
    measure("256 MiB incompressible", dir.path(), len as u64);
}

#[test]
#[ignore = "benchmark"]
fn throughput_many_small_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0u64;
    for i in 0..20_001u64 {
        // 118 MB over 20,001 files: sizes 0..~11.8 KB, mean ~5.9 KB.
        let size = ((i * 7919) % 11_800) as usize;
        let path = dir.path().join(format!("d{}/f{i}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        std::fs::write(&path, noise(size, i + 1)).unwrap();
        total += size as u64;
    }
    measure("20,001 files", dir.path(), total);
}
