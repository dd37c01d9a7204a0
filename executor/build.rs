//! Fingerprints the executor's sources: rbuild and the standalone `rbuild-sandbox-init` talk
//! over a private protocol, so rbuild uses a standalone init only when it was built from the
//! same sources (see `ExecutorConfig::standalone_init`).

use std::path::{Path, PathBuf};

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    println!("cargo:rerun-if-changed={}", src.display());
    let mut files = Vec::new();
    collect(&src, &mut files);
    files.sort();
    // FNV-1a, 64 bits: a fingerprint, not a security boundary.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let name = file.strip_prefix(&src).unwrap_or(file).to_string_lossy().into_owned();
        let body = std::fs::read(file).unwrap_or_default();
        for byte in name.as_bytes().iter().chain([0u8].iter()).chain(body.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=RBUILD_SANDBOX_PROTOCOL={}-{hash:016x}", env!("CARGO_PKG_VERSION"));
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
