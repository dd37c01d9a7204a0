//! Full images: OCI layout (dir and tar), docker archive and multi-platform index, checked
//! with oci-image-tool, umoci and skopeo.

use crate::util::{self, require_root};
use cache::ContentStore;
use exporter::{
    Destination, LayerOptions, WrittenImage, export_layer, recompress_layer, write_docker_archive,
    write_image, write_index, write_oci_archive,
};
use registry::{
    Compression, ContainerConfig, Descriptor, History, ImageConfig, MediaType, Reference, RootFs,
};
use rustix::fs::FileType;
use std::fs;
use std::path::Path;

/// Two layers: the second deletes a file of the first (whiteout) and replaces a directory
/// (opaque). Returns the layer descriptors and diff IDs.
pub fn two_layers(
    store: &ContentStore,
    dir: &Path,
    opts: &LayerOptions,
) -> (Vec<Descriptor>, Vec<registry::Digest>) {
    let l1 = dir.join("l1");
    util::write(&l1.join("etc/hostname"), b"one\n", 0o644);
    util::write(&l1.join("data/keep"), b"keep\n", 0o644);
    util::write(&l1.join("data/gone"), b"gone\n", 0o644);
    util::write(&l1.join("cachedir/old"), b"old\n", 0o644);
    let l2 = dir.join("l2");
    util::mkdir(&l2.join("data"), 0o755);
    util::mknod(&l2.join("data/gone"), FileType::CharacterDevice, 0, 0);
    util::mkdir(&l2.join("cachedir"), 0o755);
    util::set_xattr(&l2.join("cachedir"), "trusted.overlay.opaque", b"y");
    util::write(&l2.join("cachedir/new"), b"new\n", 0o644);
    util::write(&l2.join("etc/motd"), b"hello\n", 0o644);
    util::set_all_mtimes(&l1, 1_700_000_000);
    util::set_all_mtimes(&l2, 1_700_000_100);
    let a = export_layer(store, &l1, opts).unwrap();
    let b = export_layer(store, &l2, opts).unwrap();
    (vec![a.blob, b.blob], vec![a.diff_id, b.diff_id])
}

pub fn config(arch: &str, diff_ids: Vec<registry::Digest>) -> ImageConfig {
    ImageConfig {
        created: Some("2024-01-01T00:00:00Z".into()),
        architecture: arch.into(),
        os: "linux".into(),
        config: ContainerConfig {
            cmd: Some(vec!["/bin/sh".into()]),
            env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()]),
            ..Default::default()
        },
        rootfs: RootFs { diff_ids, ..Default::default() },
        history: vec![
            History { created_by: Some("COPY l1 /".into()), ..Default::default() },
            History { created_by: Some("ENV A=b".into()), empty_layer: true, ..Default::default() },
            History { created_by: Some("RUN rm /data/gone".into()), ..Default::default() },
        ],
        ..Default::default()
    }
}

fn image(store: &ContentStore, dir: &Path, oci: bool) -> WrittenImage {
    let opts = LayerOptions { oci_media_types: oci, ..LayerOptions::default() };
    let (layers, diff_ids) = two_layers(store, dir, &opts);
    write_image(store, &config("amd64", diff_ids), &layers, oci).unwrap()
}

fn name() -> Reference {
    "example.com/team/app:v1".parse().unwrap()
}

fn skopeo_inspect(transport_path: &str) -> serde_json::Value {
    serde_json::from_str(&util::run("skopeo", &["inspect", transport_path])).unwrap()
}

#[test]
fn oci_layout_dir_validates_and_unpacks() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    let img = image(&store, dir.path(), true);
    let layout = dir.path().join("layout");
    write_oci_archive(&store, &img.manifest, &[name()], &Destination::Dir(layout.clone())).unwrap();

    util::run(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v1", util::path_str(&layout)],
    );
    let bundle = dir.path().join("bundle");
    util::run("umoci", &["unpack", "--image", &format!("{}:v1", layout.display()), util::path_str(&bundle)]);
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read(rootfs.join("data/keep")).unwrap(), b"keep\n");
    assert_eq!(fs::read(rootfs.join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(fs::read(rootfs.join("cachedir/new")).unwrap(), b"new\n");
    assert!(!rootfs.join("data/gone").exists(), "whiteout must delete data/gone");
    assert!(!rootfs.join("cachedir/old").exists(), "opaque dir must hide cachedir/old");

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(annotations["io.containerd.image.name"], "example.com/team/app:v1");
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v1");
    // Writing again into the same layout keeps it valid and changes nothing.
    write_oci_archive(&store, &img.manifest, &[name()], &Destination::Dir(layout.clone())).unwrap();
    util::run(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v1", util::path_str(&layout)],
    );
}

#[test]
fn oci_archive_tar_is_read_by_skopeo_and_reproducible() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    let img = image(&store, dir.path(), true);
    let tar1 = dir.path().join("out/image.tar");
    fs::create_dir_all(tar1.parent().unwrap()).unwrap();
    write_oci_archive(&store, &img.manifest, &[name()], &Destination::File(tar1.clone())).unwrap();
    let v = skopeo_inspect(&format!("oci-archive:{}", tar1.display()));
    assert_eq!(v["Digest"], img.manifest.digest.to_string());
    assert_eq!(v["Architecture"], "amd64");
    let manifest: registry::ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
    let layers: Vec<String> = manifest.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(v["Layers"], serde_json::json!(layers));
    // oci-image-tool 1.0 fails on any layout tar with layers ("end of walk", also for GNU
    // tar's own archive of a valid layout), so validate the unpacked archive instead.
    let unpacked = dir.path().join("unpacked");
    util::untar(&tar1, &unpacked);
    util::run(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v1", util::path_str(&unpacked)],
    );

    let tar2 = dir.path().join("image2.tar");
    write_oci_archive(&store, &img.manifest, &[name()], &Destination::File(tar2.clone())).unwrap();
    assert_eq!(fs::read(&tar1).unwrap(), fs::read(&tar2).unwrap());
    let leftovers: Vec<_> =
        fs::read_dir(tar1.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("image.tar")], "no temporary files left");
}

#[test]
fn docker_archive_is_loadable_format() {
    require_root!();
    for oci in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (_s, store) = util::store();
        let img = image(&store, dir.path(), oci);
        let want_type = if oci { MediaType::OciManifest } else { MediaType::DockerManifest };
        assert_eq!(img.manifest.media_type, want_type);
        let tar = dir.path().join("docker.tar");
        let names = [name(), "busybox:latest".parse().unwrap()];
        write_docker_archive(&store, &img.manifest, &names, &Destination::File(tar.clone())).unwrap();

        let v = skopeo_inspect(&format!("docker-archive:{}", tar.display()));
        assert_eq!(v["Architecture"], "amd64");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

        let listing = util::run("tar", &["-tf", util::path_str(&tar)]);
        for want in ["manifest.json", "index.json", "oci-layout", "blobs/sha256/"] {
            assert!(listing.lines().any(|l| l == want), "missing {want} in\n{listing}");
        }
        let mj: serde_json::Value =
            serde_json::from_str(&util::run("tar", &["-xOf", util::path_str(&tar), "manifest.json"]))
                .unwrap();
        assert_eq!(mj[0]["Config"], format!("blobs/sha256/{}", img.config.digest.hex()));
        assert_eq!(mj[0]["RepoTags"], serde_json::json!(["example.com/team/app:v1", "busybox:latest"]));
        let manifest: registry::ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
        let paths: Vec<String> =
            manifest.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect();
        assert_eq!(mj[0]["Layers"], serde_json::json!(paths));
    }
}

#[test]
fn docker_archive_rejects_indexes_and_directories() {
    let (_s, store) = util::store();
    let dir = tempfile::tempdir().unwrap();
    let index = Descriptor::for_bytes(MediaType::OciIndex, b"{}");
    let err =
        write_docker_archive(&store, &index, &[], &Destination::File(dir.path().join("x.tar"))).unwrap_err();
    assert!(err.to_string().contains("one platform"), "{err}");
    let manifest = Descriptor::for_bytes(MediaType::OciManifest, b"{}");
    let err = write_docker_archive(&store, &manifest, &[], &Destination::Dir(dir.path().into())).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    let err =
        write_oci_archive(&store, &manifest, &[], &Destination::File(dir.path().join("y.tar"))).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(!dir.path().join("y.tar").exists());
}

#[test]
fn multi_platform_index_in_oci_archive() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    let (layers, diff_ids) = two_layers(&store, dir.path(), &LayerOptions::default());
    let amd = write_image(&store, &config("amd64", diff_ids.clone()), &layers, true).unwrap();
    let mut arm_cfg = config("arm64", diff_ids);
    arm_cfg.variant = Some("v8".into());
    let arm = write_image(&store, &arm_cfg, &layers, true).unwrap();
    let index = write_index(&store, &[amd.manifest.clone(), arm.manifest.clone()], true).unwrap();

    let layout = dir.path().join("layout");
    write_oci_archive(&store, &index, &[name()], &Destination::Dir(layout.clone())).unwrap();
    util::run(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v1", util::path_str(&layout)],
    );
    let tar = dir.path().join("multi.tar");
    write_oci_archive(&store, &index, &[name()], &Destination::File(tar.clone())).unwrap();
    let raw: serde_json::Value = serde_json::from_str(&util::run(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", tar.display())],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"][1]["platform"]["architecture"], "arm64");
    assert_eq!(raw["manifests"][1]["platform"]["variant"], "v8");
    let arm_view: serde_json::Value = serde_json::from_str(&util::run(
        "skopeo",
        &["--override-arch", "arm64", "inspect", &format!("oci-archive:{}", tar.display())],
    ))
    .unwrap();
    assert_eq!(arm_view["Architecture"], "arm64");
    let arm_manifest: registry::ImageManifest = serde_json::from_slice(&arm.manifest_bytes).unwrap();
    assert_eq!(arm_view["Layers"][0], arm_manifest.layers[0].digest.to_string());
}

#[test]
fn recompressing_keeps_the_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    util::write(&dir.path().join("a/file"), &vec![b'x'; 300_000], 0o644);
    let (_s, store) = util::store();
    let gz = export_layer(&store, &dir.path().join("a"), &LayerOptions::default()).unwrap();
    let cases = [
        (Compression::Zstd, true, MediaType::OciLayerZstd),
        (Compression::Uncompressed, true, MediaType::OciLayer),
        (Compression::Gzip, false, MediaType::DockerLayerGzip),
    ];
    for (compression, oci, want) in cases {
        let opts = LayerOptions { compression, oci_media_types: oci, ..LayerOptions::default() };
        let re = recompress_layer(&store, &gz.blob, &opts).unwrap();
        assert_eq!(re.diff_id, gz.diff_id, "{compression:?}");
        assert_eq!(re.blob.media_type, want);
        assert!(store.contains(&re.blob.digest));
        let back = recompress_layer(&store, &re.blob, &LayerOptions::default()).unwrap();
        assert_eq!(back, gz, "back to gzip from {compression:?} gives the same blob");
    }
}
