//! OCI image layouts (directory or tar) and docker-archive tarballs.
//!
//! Both archives hold an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/...`); the
//! docker one adds docker's `manifest.json` (config and layer paths, `RepoTags`) so that
//! `docker load` and `skopeo ... docker-archive:` read it, as BuildKit's docker exporter
//! does. Tar entries are sorted by path with fixed metadata (root, mtime 0), so the same
//! image always gives the same archive bytes.

use crate::ExportError;
use crate::archive::TarStream;
use crate::output::Destination;
use cache::ContentStore;
use registry::{AnyManifest, Descriptor, Digest, ImageIndex, MediaType, Reference};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// containerd's annotation with the full image name, set on `index.json` entries.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation with the reference name (the tag), set on `index.json` entries.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes the image rooted at `root` (a manifest or an index) with all its blobs as an OCI
/// image layout: a tar file, a tar on stdout or a layout directory.
///
/// In a directory, existing blobs are kept and `index.json` is replaced atomically; a file
/// appears only complete (written beside its name, then renamed).
pub fn write_oci_archive(
    store: &ContentStore,
    root: &Descriptor,
    names: &[Reference],
    dest: &Destination,
) -> Result<(), ExportError> {
    let blobs = collect_blobs(store, root)?;
    let index = layout_index(root, names)?;
    match dest {
        Destination::Dir(dir) => write_layout_dir(store, &blobs, &index, dir),
        _ => write_archive(store, &blobs, &index, None, dest),
    }
}

/// Writes a `docker load`-able tarball of the single-platform image `manifest`.
pub fn write_docker_archive(
    store: &ContentStore,
    manifest: &Descriptor,
    names: &[Reference],
    dest: &Destination,
) -> Result<(), ExportError> {
    if !manifest.media_type.is_manifest() {
        return Err(ExportError::invalid(format!(
            "a docker archive holds one platform's image, not {} (pick a platform's manifest)",
            manifest.media_type
        )));
    }
    if let Destination::Dir(d) = dest {
        return Err(ExportError::invalid(format!(
            "the docker output writes a tar file, not a directory ({})",
            d.display()
        )));
    }
    let bytes = store.read(&manifest.digest)?;
    let AnyManifest::Image(m) = parse(&manifest.digest, Some(&manifest.media_type), &bytes)? else {
        return Err(ExportError::invalid(format!("{} is an index, not an image manifest", manifest.digest)));
    };
    #[derive(Serialize)]
    struct DockerManifest {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags")]
        repo_tags: Vec<String>,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let repo_tags = names
        .iter()
        .filter(|n| n.tag.is_some())
        .map(|n| Reference { digest: None, ..n.clone() }.familiar())
        .collect();
    let docker = [DockerManifest {
        config: blob_path(&m.config.digest),
        repo_tags,
        layers: m.layers.iter().map(|l| blob_path(&l.digest)).collect(),
    }];
    let docker_json = serde_json::to_vec(&docker).map_err(|e| ExportError::invalid(e.to_string()))?;
    let blobs = collect_blobs(store, manifest)?;
    let index = layout_index(manifest, names)?;
    write_archive(store, &blobs, &index, Some(&docker_json), dest)
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn parse(digest: &Digest, media_type: Option<&MediaType>, bytes: &[u8]) -> Result<AnyManifest, ExportError> {
    AnyManifest::parse(media_type, bytes).map_err(|e| match e {
        registry::ManifestError::Json { source, .. } => {
            ExportError::BadBlob { digest: digest.clone(), what: "manifest", source }
        }
        other => ExportError::invalid(other.to_string()),
    })
}

/// Every blob the image needs (manifests, configs, layers), by digest.
fn collect_blobs(store: &ContentStore, root: &Descriptor) -> Result<BTreeMap<Digest, u64>, ExportError> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.clone()];
    let mut seen = BTreeSet::new();
    while let Some(desc) = todo.pop() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let size = store.size(&desc.digest)?;
        if size != desc.size {
            return Err(ExportError::invalid(format!(
                "blob {} is {size} bytes in the store but {} in its descriptor",
                desc.digest, desc.size
            )));
        }
        out.insert(desc.digest.clone(), size);
        if desc.media_type.is_manifest() || desc.media_type.is_index() {
            let bytes = store.read(&desc.digest)?;
            match parse(&desc.digest, Some(&desc.media_type), &bytes)? {
                AnyManifest::Image(m) => {
                    todo.push(m.config);
                    todo.extend(m.layers);
                }
                AnyManifest::Index(i) => todo.extend(i.manifests),
            }
        }
    }
    Ok(out)
}

/// `index.json`: one entry per name (annotated like containerd's exporter), or one
/// unnamed entry.
fn layout_index(root: &Descriptor, names: &[Reference]) -> Result<Vec<u8>, ExportError> {
    let entries = if names.is_empty() {
        vec![root.clone()]
    } else {
        names
            .iter()
            .map(|n| {
                let mut d = root.clone();
                d.annotations.insert(ANNOTATION_IMAGE_NAME.into(), n.to_string());
                if let Some(tag) = &n.tag {
                    d.annotations.insert(ANNOTATION_REF_NAME.into(), tag.clone());
                }
                d
            })
            .collect()
    };
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        manifests: entries,
        annotations: BTreeMap::new(),
    };
    serde_json::to_vec(&index).map_err(|e| ExportError::invalid(e.to_string()))
}

fn write_archive(
    store: &ContentStore,
    blobs: &BTreeMap<Digest, u64>,
    index: &[u8],
    docker_manifest: Option<&[u8]>,
    dest: &Destination,
) -> Result<(), ExportError> {
    let fill = |out: &mut dyn Write| -> Result<(), ExportError> {
        let mut tar = TarStream::new(out);
        tar.dir("blobs/")?;
        tar.dir("blobs/sha256/")?;
        for (digest, size) in blobs {
            let mut f = store.open_blob(digest)?;
            tar.file(&blob_path(digest), 0o444, *size, &mut f)?;
        }
        tar.file("index.json", 0o644, index.len() as u64, &mut &index[..])?;
        if let Some(m) = docker_manifest {
            tar.file("manifest.json", 0o644, m.len() as u64, &mut &m[..])?;
        }
        tar.file("oci-layout", 0o644, OCI_LAYOUT.len() as u64, &mut &OCI_LAYOUT[..])?;
        tar.finish()?;
        Ok(())
    };
    write_destination(dest, fill)
}

/// Runs `fill` against the destination's writer: a temp file renamed into place, or stdout.
pub(crate) fn write_destination(
    dest: &Destination,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    match dest {
        Destination::Stdout => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
            fill(&mut out)?;
            out.flush().map_err(|source| ExportError::Io { op: "write", path: "<stdout>".into(), source })
        }
        Destination::File(path) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let io_err = |op: &'static str| move |source| ExportError::Io { op, path: path.clone(), source };
            let tmp = tempfile::Builder::new()
                .prefix(".rbuild-export-")
                .tempfile_in(parent)
                .map_err(io_err("create temporary file for"))?;
            let mut out = io::BufWriter::with_capacity(1 << 20, tmp);
            fill(&mut out)?;
            let tmp = out.into_inner().map_err(|e| io_err("write")(e.into_error()))?;
            tmp.as_file().sync_all().map_err(io_err("sync"))?;
            set_mode(tmp.path(), 0o644).map_err(io_err("chmod"))?;
            tmp.persist(path).map_err(|e| io_err("rename into")(e.error))?;
            Ok(())
        }
        Destination::Dir(d) => {
            Err(ExportError::invalid(format!("this output writes a file, not a directory ({})", d.display())))
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn write_layout_dir(
    store: &ContentStore,
    blobs: &BTreeMap<Digest, u64>,
    index: &[u8],
    dir: &Path,
) -> Result<(), ExportError> {
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(|source| ExportError::Io {
        op: "create",
        path: blob_dir.clone(),
        source,
    })?;
    for (digest, size) in blobs {
        let dest = blob_dir.join(digest.hex());
        if fs::metadata(&dest).is_ok_and(|m| m.len() == *size) {
            continue;
        }
        let io_err = |op: &'static str| {
            let dest = dest.clone();
            move |source| ExportError::Io { op, path: dest, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&blob_dir)
            .map_err(io_err("create temporary file in"))?;
        let mut src = store.open_blob(digest)?;
        io::copy(&mut src, tmp.as_file_mut()).map_err(io_err("copy blob to"))?;
        set_mode(tmp.path(), 0o444).map_err(io_err("chmod"))?;
        tmp.persist(&dest).map_err(|e| io_err("rename into")(e.error))?;
    }
    for (name, bytes) in [("oci-layout", OCI_LAYOUT), ("index.json", index)] {
        let dest = dir.join(name);
        let io_err = |op: &'static str| {
            let dest = dest.clone();
            move |source| ExportError::Io { op, path: dest, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io_err("create temporary file in"))?;
        tmp.write_all(bytes).map_err(io_err("write"))?;
        set_mode(tmp.path(), 0o644).map_err(io_err("chmod"))?;
        tmp.persist(&dest).map_err(|e| io_err("rename into")(e.error))?;
    }
    Ok(())
}
