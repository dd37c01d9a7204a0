//! `rbuild save`: stored images as a docker-archive (`docker load`-able: an OCI layout plus
//! docker's `manifest.json`) or an OCI layout tar.
//!
//! One image (under any number of names) goes through the exporter's writers, byte for byte
//! what `build -o type=docker|oci` writes. Several different images share one archive here:
//! every image in `index.json` (one entry per name), one `manifest.json` entry per image, the
//! blobs once, entries sorted with fixed metadata so the same images give the same bytes.

use crate::{Engine, EngineError};
use exporter::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Destination};
use registry::{AnyManifest, Descriptor, Digest, ImageIndex, MediaType, Reference};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// The archive kinds `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// docker-archive: `manifest.json` with `RepoTags`, plus the OCI layout.
    Docker,
    /// OCI image layout.
    Oci,
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One image to write and the names to record for it.
struct Entry {
    manifest: Descriptor,
    config: Descriptor,
    layers: Vec<Descriptor>,
    names: Vec<Reference>,
}

impl Engine {
    /// Writes the images `queries` name (as [`Engine::find_image`] finds them) to `dest`, a
    /// file (written beside its name and renamed into place when complete) or stdout. Names
    /// given as names are recorded in the archive; images given by ID are written unnamed.
    pub async fn save_images(
        &self,
        queries: &[String],
        format: ArchiveFormat,
        dest: &Destination,
    ) -> Result<(), EngineError> {
        if let Destination::Dir(d) = dest {
            return Err(EngineError::Invalid(format!(
                "save writes a tar file, not a directory ({})",
                d.display()
            )));
        }
        let mut entries: Vec<Entry> = Vec::new();
        for query in queries {
            let image = self.find_image(query)?;
            let name = image.matched_name.as_deref().and_then(|n| n.parse::<Reference>().ok());
            // A docker archive holds one platform's image: of an index, the platform shown.
            let root = match format {
                ArchiveFormat::Docker => &image.platform_manifest,
                ArchiveFormat::Oci => &image.manifest,
            };
            match entries.iter_mut().find(|e| e.manifest.digest == root.digest) {
                Some(e) => e.names.extend(name.filter(|n| !e.names.contains(n))),
                None => entries.push(Entry {
                    manifest: root.clone(),
                    config: image.parsed.config.clone(),
                    layers: image.parsed.layers.clone(),
                    names: name.into_iter().collect(),
                }),
            }
        }
        let store = self.store.clone();
        let dest = dest.clone();
        tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
            if let [one] = entries.as_slice() {
                let content = store.content();
                match format {
                    ArchiveFormat::Docker => {
                        exporter::write_docker_archive(content, &one.manifest, &one.names, &dest)?
                    }
                    ArchiveFormat::Oci => {
                        exporter::write_oci_archive(content, &one.manifest, &one.names, &dest)?
                    }
                }
                return Ok(());
            }
            write_many(&store, &entries, format, &dest)
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("save task failed: {e}")))?
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn invalid(reason: impl Into<String>) -> EngineError {
    EngineError::Invalid(reason.into())
}

/// The archive of several images (see the module docs).
fn write_many(
    store: &Arc<cache::Store>,
    entries: &[Entry],
    format: ArchiveFormat,
    dest: &Destination,
) -> Result<(), EngineError> {
    let content = store.content();
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut todo: Vec<Descriptor> = entries.iter().map(|e| e.manifest.clone()).collect();
    while let Some(d) = todo.pop() {
        if blobs.contains_key(&d.digest) {
            continue;
        }
        let size = content.size(&d.digest).map_err(cache::StoreError::from)?;
        if size != d.size {
            return Err(invalid(format!("blob {} is {size} bytes in the store, not {}", d.digest, d.size)));
        }
        blobs.insert(d.digest.clone(), size);
        if d.media_type.is_manifest() || d.media_type.is_index() {
            let bytes = content.read(&d.digest).map_err(cache::StoreError::from)?;
            match AnyManifest::parse(Some(&d.media_type), &bytes) {
                Ok(AnyManifest::Image(m)) => {
                    todo.push(m.config);
                    todo.extend(m.layers);
                }
                Ok(AnyManifest::Index(i)) => todo.extend(i.manifests),
                Err(e) => return Err(invalid(format!("{}: {e}", d.digest))),
            }
        }
    }
    let mut manifests = Vec::new();
    for e in entries {
        if e.names.is_empty() {
            manifests.push(e.manifest.clone());
        }
        for n in &e.names {
            let mut d = e.manifest.clone();
            d.annotations.insert(ANNOTATION_IMAGE_NAME.into(), n.to_string());
            if let Some(tag) = &n.tag {
                d.annotations.insert(ANNOTATION_REF_NAME.into(), tag.clone());
            }
            manifests.push(d);
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        manifests,
        annotations: BTreeMap::new(),
    };
    let index = serde_json::to_vec(&index).map_err(|e| invalid(e.to_string()))?;
    let docker = match format {
        ArchiveFormat::Oci => None,
        ArchiveFormat::Docker => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct DockerEntry {
                config: String,
                repo_tags: Vec<String>,
                layers: Vec<String>,
            }
            let mut list = Vec::new();
            for e in entries {
                if !e.manifest.media_type.is_manifest() {
                    return Err(invalid(format!(
                        "{} is not one platform's image manifest",
                        e.manifest.digest
                    )));
                }
                list.push(DockerEntry {
                    config: blob_path(&e.config.digest),
                    repo_tags: e.names.iter().filter(|n| n.tag.is_some()).map(|n| n.familiar()).collect(),
                    layers: e.layers.iter().map(|l| blob_path(&l.digest)).collect(),
                });
            }
            Some(serde_json::to_vec(&list).map_err(|e| invalid(e.to_string()))?)
        }
    };
    let fill = |out: &mut dyn Write| -> Result<(), EngineError> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        let io = |e: std::io::Error| invalid(format!("writing the archive: {e}"));
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
        }
        for (digest, size) in &blobs {
            let f = content.open_blob(digest).map_err(cache::StoreError::from)?;
            let mut h = header(tar::EntryType::Regular, 0o444, *size);
            tar.append_data(&mut h, blob_path(digest), f).map_err(io)?;
        }
        let mut files: Vec<(&str, &[u8])> = vec![("index.json", &index)];
        if let Some(m) = &docker {
            files.push(("manifest.json", m));
        }
        files.push(("oci-layout", OCI_LAYOUT));
        for (name, bytes) in files {
            let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            tar.append_data(&mut h, name, bytes).map_err(io)?;
        }
        tar.into_inner().map_err(io)?.flush().map_err(io)
    };
    write_destination(dest, fill)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Runs `fill` against a temporary file renamed to the destination on success, or stdout.
fn write_destination(
    dest: &Destination,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    match dest {
        Destination::Stdout => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            fill(&mut out)
        }
        Destination::File(path) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            let fail = |what: &str, e: std::io::Error| invalid(format!("{what} {}: {e}", path.display()));
            let tmp = tempfile::Builder::new()
                .prefix(".rbuild-save-")
                .tempfile_in(parent)
                .map_err(|e| fail("cannot create a temporary file beside", e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
            fill(&mut out)?;
            let tmp = out.into_inner().map_err(|e| fail("cannot write", e.into_error()))?;
            tmp.as_file().sync_all().map_err(|e| fail("cannot sync", e))?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| fail("cannot chmod", e))?;
            }
            tmp.persist(path).map_err(|e| fail("cannot rename into", e.error))?;
            Ok(())
        }
        Destination::Dir(d) => {
            Err(invalid(format!("save writes a tar file, not a directory ({})", d.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config and layers of the single-platform image `manifest`.
    fn parts(store: &cache::Store, manifest: &Descriptor) -> (Descriptor, Vec<Descriptor>) {
        let bytes = store.content().read(&manifest.digest).expect("manifest");
        match AnyManifest::parse(Some(&manifest.media_type), &bytes).expect("parse") {
            AnyManifest::Image(m) => (m.config, m.layers),
            AnyManifest::Index(_) => panic!("index"),
        }
    }

    fn image(store: &cache::Store, seed: &str) -> Descriptor {
        store.content().write_bytes(seed.as_bytes()).unwrap();
        let layer = Descriptor::for_bytes(MediaType::OciLayer, seed.as_bytes());
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            layer.digest
        );
        store.content().write_bytes(config.as_bytes()).unwrap();
        let manifest = registry::ImageManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            config: Descriptor::for_bytes(MediaType::OciConfig, config.as_bytes()),
            layers: vec![layer],
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        store.content().write_bytes(&bytes).unwrap();
        Descriptor::for_bytes(MediaType::OciManifest, &bytes)
    }

    #[test]
    fn several_images_share_one_deterministic_archive() {
        let root = tempfile::tempdir().unwrap();
        let store = Arc::new(cache::Store::open(root.path()).unwrap());
        let entries: Vec<Entry> = ["one", "two"]
            .iter()
            .map(|seed| {
                let manifest = image(&store, seed);
                let (config, layers) = parts(&store, &manifest);
                Entry { manifest, config, layers, names: vec![format!("app/{seed}:1").parse().unwrap()] }
            })
            .collect();
        let out = tempfile::tempdir().unwrap();
        let (a, b) = (out.path().join("a.tar"), out.path().join("b.tar"));
        for p in [&a, &b] {
            write_many(&store, &entries, ArchiveFormat::Docker, &Destination::File(p.clone())).unwrap();
        }
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(bytes, std::fs::read(&b).unwrap(), "same images, same bytes");
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        let mut manifest_json = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path == "manifest.json" {
                std::io::Read::read_to_string(&mut entry, &mut manifest_json).unwrap();
            }
            names.push(path);
        }
        let blobs = names.iter().filter(|n| n.strip_prefix("blobs/sha256/").is_some_and(|h| h.len() == 64));
        assert_eq!(blobs.count(), 6, "manifest, config and layer of each image: {names:?}");
        assert_eq!(&names[names.len() - 3..], ["index.json", "manifest.json", "oci-layout"]);
        let docker: serde_json::Value = serde_json::from_str(&manifest_json).unwrap();
        assert_eq!(docker[0]["RepoTags"][0], "app/one:1");
        assert_eq!(docker[1]["RepoTags"][0], "app/two:1");
    }
}
