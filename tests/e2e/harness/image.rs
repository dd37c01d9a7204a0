//! Reading results back: OCI archives (`index.json` → manifest → config), docker archives
//! (`manifest.json`), and the headers of plain tar files — with the `tar` crate, not rbuild's
//! own code.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One entry of a tar stream.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `'-'` file, `'d'` directory, `'l'` symlink, `'h'` hard link, `'?'` anything else.
    pub kind: char,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Target of a symlink or hard link.
    pub link: Option<String>,
    /// Content of a regular file.
    pub data: Vec<u8>,
    /// Modification time in the tar header (seconds).
    pub mtime: u64,
}

/// Normalises a tar path the way the expectations write paths.
pub fn clean_path(p: &str) -> String {
    p.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string()
}

/// All entries of an (uncompressed or gzip) tar stream, by path.
pub fn entries(bytes: &[u8]) -> BTreeMap<String, Entry> {
    let mut plain = Vec::new();
    let data: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut plain).expect("gunzip layer");
        &plain
    } else {
        bytes
    };
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(data);
    for e in archive.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let h = e.header().clone();
        let path = clean_path(&e.path().expect("tar path").to_string_lossy());
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => '-',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => '?',
        };
        let link = e.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned());
        let mut content = Vec::new();
        if kind == '-' {
            e.read_to_end(&mut content).expect("tar entry data");
        }
        out.insert(
            path,
            Entry {
                kind,
                uid: h.uid().unwrap_or(u64::MAX),
                gid: h.gid().unwrap_or(u64::MAX),
                mode: h.mode().unwrap_or(0),
                link,
                data: content,
                mtime: h.mtime().unwrap_or(0),
            },
        );
    }
    out
}

/// Entries of a tar file on disk.
pub fn tar_file_entries(path: &Path) -> BTreeMap<String, Entry> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    entries(&bytes)
}

/// An image read from an archive: manifest, config and layer blobs.
#[derive(Debug)]
pub struct Image {
    /// The manifest (OCI archive) or the `manifest.json` entry (docker archive).
    pub manifest: Value,
    /// The config blob.
    pub config: Value,
    /// Compressed layer blobs, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// The archive's `index.json`, when it has one.
    pub index: Option<Value>,
}

fn read_members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    entries(&bytes).into_iter().filter(|(_, e)| e.kind == '-').map(|(k, e)| (k, e.data)).collect()
}

fn json(members: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    let bytes = members.get(name).unwrap_or_else(|| panic!("archive has no {name}"));
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

impl Image {
    /// Reads an OCI layout archive (`-o type=oci`): its single manifest.
    pub fn from_oci_archive(path: &Path) -> Image {
        let members = read_members(path);
        let index = json(&members, "index.json");
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "expected one manifest in index.json: {index}");
        let manifest = json(&members, &blob_path(manifests[0]["digest"].as_str().expect("digest")));
        let config =
            json(&members, &blob_path(manifest["config"]["digest"].as_str().expect("config digest")));
        let layers = manifest["layers"]
            .as_array()
            .expect("manifest layers")
            .iter()
            .map(|l| {
                let p = blob_path(l["digest"].as_str().expect("layer digest"));
                members.get(&p).unwrap_or_else(|| panic!("archive lacks layer {p}")).clone()
            })
            .collect();
        Image { manifest, config, layers, index: Some(index) }
    }

    /// Reads a docker archive (`-o type=docker`) through its `manifest.json`.
    pub fn from_docker_archive(path: &Path) -> Image {
        let members = read_members(path);
        let list = json(&members, "manifest.json");
        let entry = list.as_array().and_then(|a| a.first()).expect("manifest.json entry").clone();
        let config = json(&members, &clean_path(entry["Config"].as_str().expect("Config")));
        let layers = entry["Layers"]
            .as_array()
            .expect("Layers")
            .iter()
            .map(|l| {
                let p = clean_path(l.as_str().expect("layer path"));
                members.get(&p).unwrap_or_else(|| panic!("archive lacks layer {p}")).clone()
            })
            .collect();
        Image { manifest: entry, config, layers, index: None }
    }

    /// A field of the config's `config` object (`Null` when absent).
    pub fn cfg(&self, key: &str) -> &Value {
        &self.config["config"][key]
    }

    /// `rootfs.diff_ids`.
    /// The digest of the (single) manifest, from `index.json`.
    pub fn manifest_digest(&self) -> String {
        let index = self.index.as_ref().expect("an OCI archive has an index");
        index["manifests"][0]["digest"].as_str().expect("manifest digest").to_string()
    }

    /// `(path, entry)` of every entry of the layers after the first `skip` (the base image's).
    pub fn new_layer_entries(&self, skip: usize) -> Vec<(String, Entry)> {
        self.layers.iter().skip(skip).flat_map(|l| entries(l).into_iter()).collect()
    }

    pub fn diff_ids(&self) -> Vec<String> {
        strings(&self.config["rootfs"]["diff_ids"])
    }

    /// `history`.
    pub fn history(&self) -> Vec<Value> {
        self.config["history"].as_array().cloned().unwrap_or_default()
    }

    /// The file system of the image: all layers applied in order (whiteouts honoured).
    pub fn rootfs(&self) -> BTreeMap<String, Entry> {
        let mut fs: BTreeMap<String, Entry> = BTreeMap::new();
        for layer in &self.layers {
            for (path, e) in entries(layer) {
                let (dir, name) = path.rsplit_once('/').map_or(("", path.as_str()), |(d, n)| (d, n));
                if name == ".wh..wh..opq" {
                    let prefix = format!("{dir}/");
                    fs.retain(|k, _| !k.starts_with(&prefix));
                } else if let Some(hidden) = name.strip_prefix(".wh.") {
                    let gone = if dir.is_empty() { hidden.to_string() } else { format!("{dir}/{hidden}") };
                    let prefix = format!("{gone}/");
                    fs.retain(|k, _| *k != gone && !k.starts_with(&prefix));
                } else {
                    fs.insert(path, e);
                }
            }
        }
        fs
    }
}

/// A JSON array of strings as a `Vec` (empty for anything else).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// The keys of a JSON object, sorted (empty for anything else).
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}
